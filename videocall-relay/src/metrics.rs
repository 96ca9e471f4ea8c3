//! Counters of one relay node, rendered in the Prometheus text format.

use crate::exposition::Exposition;
use crate::relay::CloseReason;

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
    /// Control traffic dropped because the receiver's control budget was full.
    ControlOverflow,
    /// Dropped because the node's bound on queued bytes was reached.
    NodeQueueFull,
    /// Inbound media frame larger than a receiver's queue for its kind: it could never be
    /// delivered, so it is refused at ingress.
    FrameTooLarge,
    /// Inbound control traffic over the session's control rate.
    ControlRateLimited,
    /// Inbound KEYFRAME_REQUEST not forwarded: the publisher was asked less than
    /// `KEYFRAME_FORWARD_INTERVAL` ago (one keyframe serves every requester).
    KeyframeRequestAggregated,
    /// Inbound KEYFRAME_REQUEST for nobody in the meeting.
    KeyframeRequestUnknownTarget,
    /// Inbound SUBSCRIPTION larger than the meeting's size allows; refused before decoding.
    SubscriptionTooLarge,
    /// Bus message from a participant the meeting has no room for (`max_remote_per_meeting`).
    RemotePeersFull,
    /// Media from a session without the publish grant (an observer).
    ObserverMedia,
    /// A host request (remove, mute, end) from a session without the host grant.
    NotHost,
    /// An E2EE key packet addressed to one session (AES_KEY of one wrap, KEY_REQUEST) that is
    /// not in the sender's meeting.
    KeyTargetUnknown,
    /// Video, screen or audio in clear (no sealed envelope) in a meeting that is end-to-end
    /// encrypted by its room token or stored record: from a local session, or over the bus.
    CleartextInE2eeMeeting,
    /// A CHAT or REACTION larger than its cap (`chat_limits`), refused before decoding.
    ChatTooLarge,
    /// A CHAT for one session (history for a newcomer) that is not in the sender's meeting.
    ChatTargetUnknown,
}

impl DropReason {
    /// Every reason, in rendering order.
    pub const ALL: [DropReason; 24] = [
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
        DropReason::ControlOverflow,
        DropReason::NodeQueueFull,
        DropReason::FrameTooLarge,
        DropReason::ControlRateLimited,
        DropReason::KeyframeRequestAggregated,
        DropReason::KeyframeRequestUnknownTarget,
        DropReason::SubscriptionTooLarge,
        DropReason::RemotePeersFull,
        DropReason::ObserverMedia,
        DropReason::NotHost,
        DropReason::KeyTargetUnknown,
        DropReason::CleartextInE2eeMeeting,
        DropReason::ChatTooLarge,
        DropReason::ChatTargetUnknown,
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
            DropReason::ControlOverflow => "control_overflow",
            DropReason::NodeQueueFull => "node_queue_full",
            DropReason::FrameTooLarge => "frame_too_large",
            DropReason::ControlRateLimited => "control_rate_limited",
            DropReason::KeyframeRequestAggregated => "keyframe_request_aggregated",
            DropReason::KeyframeRequestUnknownTarget => "keyframe_request_unknown_target",
            DropReason::SubscriptionTooLarge => "subscription_too_large",
            DropReason::RemotePeersFull => "remote_peers_full",
            DropReason::ObserverMedia => "observer_media",
            DropReason::NotHost => "not_host",
            DropReason::KeyTargetUnknown => "key_target_unknown",
            DropReason::CleartextInE2eeMeeting => "cleartext_in_e2ee_meeting",
            DropReason::ChatTooLarge => "chat_too_large",
            DropReason::ChatTargetUnknown => "chat_target_unknown",
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
    /// Joins refused (full meeting or node, a takeover, a removed user).
    pub joins_refused: u64,
    /// Host actions carried out on this node (remove, ask to mute, end), from the API, the bus
    /// or a host's session.
    pub host_actions: u64,
    /// Sessions closed for idleness.
    pub idle_closes: u64,
    /// CONGESTION signals sent to publishers.
    pub congestion_signals: u64,
    /// KEYFRAME_REQUESTs the relay sent on behalf of skipping receivers.
    pub keyframe_requests_sent: u64,
    /// Ids in SUBSCRIPTION packets that named nobody in the meeting (ignored).
    pub subscription_ids_ignored: u64,
    /// RELAY_NOTICE packets sent to sessions.
    pub notices_sent: u64,
    /// Bytes queued to sessions and not yet written, across the node.
    pub queued_bytes: u64,
    /// Sessions told to reconnect elsewhere because the node drains (MEETING `NODE_DRAINING`).
    pub drain_notices: u64,
    /// Leaves never announced because the user's newer session (here or on another node)
    /// replaced the one that went.
    pub leaves_replaced: u64,
    /// Heartbeats not delivered to a receiver that takes presence digests: the sender's state
    /// had not changed (issue #17).
    pub heartbeats_suppressed: u64,
    /// PRESENCE digests queued to sessions.
    pub presence_digests: u64,
    /// Heartbeats whose sender was not added to a meeting's presence table: it was full.
    pub presence_table_full: u64,
    drops: [u64; DropReason::ALL.len()],
    closes: [u64; CloseReason::ALL.len()],
}

impl Metrics {
    /// Adds `other`'s counters (and its queued bytes) to these: a node's total over its shards.
    pub fn add(&mut self, other: &Metrics) {
        let Metrics {
            packets_in,
            bytes_in,
            packets_out,
            bytes_out,
            bus_published,
            bus_received,
            joins,
            joins_refused,
            host_actions,
            idle_closes,
            congestion_signals,
            keyframe_requests_sent,
            subscription_ids_ignored,
            notices_sent,
            queued_bytes,
            drain_notices,
            leaves_replaced,
            heartbeats_suppressed,
            presence_digests,
            presence_table_full,
            drops,
            closes,
        } = other;
        self.packets_in += packets_in;
        self.bytes_in += bytes_in;
        self.packets_out += packets_out;
        self.bytes_out += bytes_out;
        self.bus_published += bus_published;
        self.bus_received += bus_received;
        self.joins += joins;
        self.joins_refused += joins_refused;
        self.host_actions += host_actions;
        self.idle_closes += idle_closes;
        self.congestion_signals += congestion_signals;
        self.keyframe_requests_sent += keyframe_requests_sent;
        self.subscription_ids_ignored += subscription_ids_ignored;
        self.notices_sent += notices_sent;
        self.queued_bytes += queued_bytes;
        self.drain_notices += drain_notices;
        self.leaves_replaced += leaves_replaced;
        self.heartbeats_suppressed += heartbeats_suppressed;
        self.presence_digests += presence_digests;
        self.presence_table_full += presence_table_full;
        for (sum, n) in self.drops.iter_mut().zip(drops) {
            *sum += n;
        }
        for (sum, n) in self.closes.iter_mut().zip(closes) {
            *sum += n;
        }
    }

    /// Counts one drop.
    pub(crate) fn drop(&mut self, reason: DropReason) {
        self.drops[reason as usize] += 1;
    }

    /// Drops counted for `reason`.
    pub fn drops(&self, reason: DropReason) -> u64 {
        self.drops[reason as usize]
    }

    /// Counts one session closed by the relay.
    pub(crate) fn close(&mut self, reason: CloseReason) {
        self.closes[reason as usize] += 1;
    }

    /// Sessions the relay closed for `reason`.
    pub fn closes(&self, reason: CloseReason) -> u64 {
        self.closes[reason as usize]
    }

    /// Appends the counters in the Prometheus text format, with the current `sessions` and
    /// `meetings` gauges.
    pub fn render_prometheus(&self, sessions: usize, meetings: usize, out: &mut String) {
        let mut e = Exposition::new();
        e.gauge(
            "videocall_sessions",
            "Sessions connected to this node.",
            sessions as f64,
        );
        e.gauge(
            "videocall_meetings",
            "Meetings served by this node.",
            meetings as f64,
        );
        for (name, help, value) in [
            (
                "videocall_packets_in_total",
                "Packets accepted from sessions.",
                self.packets_in,
            ),
            (
                "videocall_bytes_in_total",
                "Bytes accepted from sessions.",
                self.bytes_in,
            ),
            (
                "videocall_packets_out_total",
                "Packets queued to sessions.",
                self.packets_out,
            ),
            (
                "videocall_bytes_out_total",
                "Bytes queued to sessions.",
                self.bytes_out,
            ),
            (
                "videocall_bus_published_total",
                "Messages published to the bus.",
                self.bus_published,
            ),
            (
                "videocall_bus_received_total",
                "Messages received from the bus.",
                self.bus_received,
            ),
            ("videocall_joins_total", "Sessions that joined.", self.joins),
            (
                "videocall_joins_refused_total",
                "Joins refused by a limit, a takeover attempt or a removal.",
                self.joins_refused,
            ),
            (
                "videocall_host_actions_total",
                "Host actions (remove, ask to mute, end) carried out on this node.",
                self.host_actions,
            ),
            (
                "videocall_idle_closes_total",
                "Sessions closed for idleness.",
                self.idle_closes,
            ),
            (
                "videocall_congestion_signals_total",
                "CONGESTION signals sent to publishers.",
                self.congestion_signals,
            ),
            (
                "videocall_keyframe_requests_sent_total",
                "Keyframe requests sent by the relay.",
                self.keyframe_requests_sent,
            ),
            (
                "videocall_subscription_ids_ignored_total",
                "Ids in SUBSCRIPTION packets that named nobody in the meeting.",
                self.subscription_ids_ignored,
            ),
            (
                "videocall_relay_notices_total",
                "RELAY_NOTICE packets telling a session why its input was refused.",
                self.notices_sent,
            ),
            (
                "videocall_drain_notices_total",
                "Sessions told to reconnect to another node because this one drains.",
                self.drain_notices,
            ),
            (
                "videocall_leaves_replaced_total",
                "Leaves not announced: the user came back (here or through another node) in time.",
                self.leaves_replaced,
            ),
            (
                "videocall_heartbeats_suppressed_total",
                "Heartbeats not delivered to a session that takes presence digests: no change.",
                self.heartbeats_suppressed,
            ),
            (
                "videocall_presence_digests_total",
                "PRESENCE digests queued to sessions.",
                self.presence_digests,
            ),
            (
                "videocall_presence_table_full_total",
                "Heartbeats from a sender the meeting's full presence table could not hold.",
                self.presence_table_full,
            ),
        ] {
            e.counter(name, help, value);
        }
        e.gauge(
            "videocall_queued_bytes",
            "Bytes queued to sessions and not yet written, across the node.",
            self.queued_bytes as f64,
        );
        e.counters(
            "videocall_closed_sessions_total",
            "Sessions the relay closed, by reason.",
            "reason",
            CloseReason::ALL.map(|r| (r.label(), self.closes(r))),
        );
        e.counters(
            "videocall_dropped_packets_total",
            "Packets dropped, by reason.",
            "reason",
            DropReason::ALL.map(|r| (r.label(), self.drops(r))),
        );
        e.render(out);
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
        // Every reason has its series, zero or not, so dashboards see them from the start.
        let series = |name: &str| text.lines().filter(|l| l.starts_with(name)).count();
        assert_eq!(
            series("videocall_dropped_packets_total{"),
            DropReason::ALL.len()
        );
        assert_eq!(
            series("videocall_closed_sessions_total{"),
            CloseReason::ALL.len()
        );
        assert!(text.contains(
            "# HELP videocall_queued_bytes Bytes queued to sessions and not yet written, across the node.\n# TYPE videocall_queued_bytes gauge\n"
        ));
    }
}
