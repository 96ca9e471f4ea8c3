//! The bot's command line: one clap struct, every flag with its env-free default.

use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::churn::Span;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Transport {
    /// WebSocket.
    Ws,
    /// WebTransport.
    Wt,
}

/// videocall load generator.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Args {
    /// HTTP/WebSocket base URL of a node (also where the WebTransport certificate hash is asked).
    /// Repeatable: participant k of each meeting uses the (k mod n)-th.
    #[arg(long, default_value = "http://localhost:8080")]
    pub(crate) url: Vec<String>,
    /// WebTransport base URL; repeatable like `--url`, in the same order.
    #[arg(long, default_value = "https://localhost:4433")]
    pub(crate) wt_url: Vec<String>,
    /// Transport every participant uses.
    #[arg(long, value_enum, default_value_t = Transport::Ws)]
    pub(crate) transport: Transport,
    /// Meetings.
    #[arg(long, default_value_t = 1)]
    pub(crate) meetings: usize,
    /// Video publishers per meeting.
    #[arg(long, default_value_t = 2)]
    pub(crate) publishers: usize,
    /// Receive-only participants per meeting.
    #[arg(long, default_value_t = 2)]
    pub(crate) subscribers: usize,
    /// How long media flows once everyone joined, e.g. `30s`.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub(crate) duration: Duration,
    /// Joins are spread over this long, e.g. `10s`.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub(crate) ramp: Duration,
    /// Each participant subscribes to the video of this many publishers (0: all).
    #[arg(long, default_value_t = 0)]
    pub(crate) visible: usize,
    /// Only this many publishers of each meeting send audio (the others are muted); all when
    /// unset.
    #[arg(long)]
    pub(crate) unmuted: Option<usize>,
    /// Extra WebSocket subscribers in the first meeting that read their socket slowly (see
    /// `--throttle-bytes-per-sec`); they are not counted in the figures of the others.
    #[arg(long, default_value_t = 0)]
    pub(crate) throttled: usize,
    /// Read rate of each throttled subscriber.
    #[arg(long, default_value_t = 64_000)]
    pub(crate) throttle_bytes_per_sec: u64,
    /// Write the report as JSON here too.
    #[arg(long)]
    pub(crate) json: Option<std::path::PathBuf>,
    /// Sample this server process's CPU and memory (repeatable).
    #[arg(long)]
    pub(crate) server_pid: Vec<u32>,
    /// Prefix of meeting ids (bot-0, bot-1, …).
    #[arg(long, default_value = "bot")]
    pub(crate) prefix: String,
    /// End-to-end encrypt media as clients do. One RSA-2048 identity, generated at start, is
    /// shared by every participant of this bot (keygen per participant would dominate a run);
    /// every participant still unwraps each sender key and seals and opens every frame.
    #[arg(long, value_enum, default_value_t = Toggle::Off)]
    pub(crate) e2ee: Toggle,
    /// The first N participants of each meeting use WebTransport whatever `--transport` says
    /// (a mixed meeting).
    #[arg(long, default_value_t = 0)]
    pub(crate) wt_participants: usize,
    /// Churn: each participant leaves after a random life drawn from this span (e.g.
    /// `20s..90s`) and joins again, as a new session of the same user, for the whole run.
    #[arg(long, value_parser = parse_span)]
    pub(crate) churn: Option<Span>,
    /// With `--churn`: how long a participant stays away before it joins again (spans the
    /// relay's 3 s reconnect grace by default, so both a quick return and a full leave occur).
    #[arg(long, default_value = "0s..5s", value_parser = parse_span)]
    pub(crate) churn_pause: Span,
    /// Seed of the churn schedule (lives and pauses), for a run that can be repeated.
    #[arg(long, default_value_t = 1)]
    pub(crate) seed: u64,
    /// Record a sample (delivered frames/s, servers' RSS and CPU, joins, leaves) this often,
    /// into the report's `samples`.
    #[arg(long, value_parser = parse_duration)]
    pub(crate) sample_every: Option<Duration>,
    /// Threads the participants run on, each a single-threaded runtime with its share of
    /// them (default: one per core).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// How participants learn each other's state: `digest` (`?presence=1`, a peer's heartbeat
    /// only when its state changes, plus the relay's digests) as our clients do, or `original`
    /// (every heartbeat of everyone, as clients of the original protocol get).
    #[arg(long, value_enum, default_value_t = PresenceMode::Digest)]
    pub(crate) presence: PresenceMode,
}

/// What participants ask of the relay for presence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum PresenceMode {
    /// Presence digests and changed heartbeats only.
    Digest,
    /// Every heartbeat forwarded.
    Original,
}

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Toggle {
    /// On.
    On,
    /// Off.
    Off,
}

/// A duration as people write it (`30s`, `500ms`, `2m`, `1h 30m`): humantime's syntax.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s}: {e} (e.g. 30s, 500ms, 2m)"))
}

fn parse_span(s: &str) -> Result<Span, String> {
    Span::parse(s, parse_duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("x").is_err());
        // A number without its unit is ambiguous: refused with the reason.
        let bare = parse_duration("7").unwrap_err();
        assert!(bare.contains("e.g. 30s"), "{bare}");
    }

    #[test]
    fn churn_spans_take_the_same_durations() {
        let span = parse_span("20s..1m 30s").unwrap();
        assert_eq!(
            (span.min, span.max),
            (Duration::from_secs(20), Duration::from_secs(90))
        );
    }
}
