//! Counters of one relay node, rendered in the Prometheus text format.

use std::fmt::Write;

/// Why a packet was not delivered to a session (or not accepted from one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropReason {
    /// Inbound packet over the size limit.
    Oversize,
    /// Inbound bytes that are not a `PacketWrapper`.
    Malformed,
    /// Inbound packet of an unknown type.
    UnknownType,
    /// Inbound packet of a type only the server sends.
    ServerOnly,
    /// Inbound packet over the session's rate limit.
    RateLimited,
    /// Inbound KEYFRAME_REQUEST over its limit.
    KeyframeRequestThrottled,
    /// Video dropped because the receiver's queue was full.
    Congestion,
    /// Video delta dropped while its stream waits for a keyframe.
    SkipToKeyframe,
    /// Audio or control dropped because even the headroom was full.
    QueueOverflow,
    /// Bus message with an unparseable subject or payload.
    BusMalformed,
}

impl DropReason {
    /// Every reason, in rendering order.
    pub const ALL: [DropReason; 10] = [
        DropReason::Oversize,
        DropReason::Malformed,
        DropReason::UnknownType,
        DropReason::ServerOnly,
        DropReason::RateLimited,
        DropReason::KeyframeRequestThrottled,
        DropReason::Congestion,
        DropReason::SkipToKeyframe,
        DropReason::QueueOverflow,
        DropReason::BusMalformed,
    ];

    /// The label value used on `/metrics`.
    pub fn label(self) -> &'static str {
        match self {
            DropReason::Oversize => "oversize",
            DropReason::Malformed => "malformed",
            DropReason::UnknownType => "unknown_type",
            DropReason::ServerOnly => "server_only",
            DropReason::RateLimited => "rate_limited",
            DropReason::KeyframeRequestThrottled => "keyframe_request_throttled",
            DropReason::Congestion => "congestion",
            DropReason::SkipToKeyframe => "skip_to_keyframe",
            DropReason::QueueOverflow => "queue_overflow",
            DropReason::BusMalformed => "bus_malformed",
        }
    }
}

/// Monotonic counters of a relay node.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Packets accepted from local sessions.
    pub packets_in: u64,
    /// Bytes accepted from local sessions.
    pub bytes_in: u64,
    /// Packets queued to local sessions.
    pub packets_out: u64,
    /// Bytes queued to local sessions.
    pub bytes_out: u64,
    /// Messages published to the bus.
    pub bus_published: u64,
    /// Messages received from the bus.
    pub bus_received: u64,
    /// Sessions that joined.
    pub joins: u64,
    /// Joins refused (full meeting or node).
    pub joins_refused: u64,
    /// Sessions closed for idleness.
    pub idle_closes: u64,
    /// CONGESTION signals sent to publishers.
    pub congestion_signals: u64,
    /// KEYFRAME_REQUESTs the relay sent on behalf of skipping receivers.
    pub keyframe_requests_sent: u64,
    drops: [u64; DropReason::ALL.len()],
}

impl Metrics {
    /// Counts one drop.
    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Drops counted for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Appends the counters in the Prometheus text format, with the current `sessions` and
    /// `meetings` gauges.
    pub fn render_prometheus(&self, sessions: usize, meetings: usize, out: &mut String) {
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP videocall_{name} {help}\n# TYPE videocall_{name} {kind}\nvideocall_{name} {value}"
            );
        };
        metric(
            "sessions",
            "gauge",
            "Sessions connected to this node.",
            sessions as u64,
        );
        metric(
            "meetings",
            "gauge",
            "Meetings served by this node.",
            meetings as u64,
        );
        metric(
            "packets_in_total",
            "counter",
            "Packets accepted from sessions.",
            self.packets_in,
        );
        metric(
            "bytes_in_total",
            "counter",
            "Bytes accepted from sessions.",
            self.bytes_in,
        );
        metric(
            "packets_out_total",
            "counter",
            "Packets queued to sessions.",
            self.packets_out,
        );
        metric(
            "bytes_out_total",
            "counter",
            "Bytes queued to sessions.",
            self.bytes_out,
        );
        metric(
            "bus_published_total",
            "counter",
            "Messages published to the bus.",
            self.bus_published,
        );
        metric(
            "bus_received_total",
            "counter",
            "Messages received from the bus.",
            self.bus_received,
        );
        metric(
            "joins_total",
            "counter",
            "Sessions that joined.",
            self.joins,
        );
        metric(
            "joins_refused_total",
            "counter",
            "Joins refused by a limit.",
            self.joins_refused,
        );
        metric(
            "idle_closes_total",
            "counter",
            "Sessions closed for idleness.",
            self.idle_closes,
        );
        metric(
            "congestion_signals_total",
            "counter",
            "CONGESTION signals sent to publishers.",
            self.congestion_signals,
        );
        metric(
            "keyframe_requests_sent_total",
            "counter",
            "Keyframe requests sent by the relay.",
            self.keyframe_requests_sent,
        );
        let _ = writeln!(
            out,
            "# HELP videocall_dropped_packets_total Packets dropped, by reason.\n# TYPE videocall_dropped_packets_total counter"
        );
        for reason in DropReason::ALL {
            let _ = writeln!(
                out,
                "videocall_dropped_packets_total{{reason=\"{}\"}} {}",
                reason.label(),
                self.drops(reason)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drop_reasons_index_their_own_counter() {
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(*reason as usize, i);
        }
        let mut m = Metrics::default();
        m.drop(DropReason::Congestion);
        let mut text = String::new();
        m.render_prometheus(3, 1, &mut text);
        assert!(text.contains("videocall_sessions 3\n"));
        assert!(text.contains("videocall_dropped_packets_total{reason=\"congestion\"} 1\n"));
        assert!(text.contains("videocall_dropped_packets_total{reason=\"oversize\"} 0\n"));
    }
}
