//! The bot's report (`--json`): written by `videocall-bot`, read by `videocall-bench` for
//! `docs/PERFORMANCE.md` and `make soak`. One serde type both sides compile against, so a
//! renamed or missing figure is a compile error or a parse error, not a silent NaN.
//!
//! Figures that may not exist (a percentile of no samples, the CPU of a server that went away)
//! are `Option`s: JSON has no NaN.

use serde::{Deserialize, Serialize};

/// Everything one bot run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BotReport {
    /// `ws` or `wt`.
    pub transport: String,
    /// Relay nodes used.
    pub nodes: usize,
    /// Meetings.
    pub meetings: usize,
    /// Video publishers per meeting.
    pub publishers: usize,
    /// Receive-only participants per meeting.
    pub subscribers: usize,
    /// Publishers each participant subscribed to (0: all).
    pub visible: usize,
    /// Publishers per meeting sending audio.
    pub unmuted: usize,
    /// Participants in all.
    pub participants: usize,
    /// Participants that joined at least once.
    pub joined: u64,
    /// Participants that could not connect.
    pub failed: u64,
    /// Length of the measurement window.
    pub window_seconds: f64,
    /// Counted (video frame, receiver) pairs.
    pub expected_frames: u64,
    /// Of which delivered.
    pub delivered_frames: u64,
    /// Per second of the window.
    pub expected_frames_per_sec: f64,
    /// Per second of the window.
    pub delivered_frames_per_sec: f64,
    /// 100 × (1 − delivered / expected).
    pub loss_percent: f64,
    /// Relay hop latency of counted video frames.
    pub latency_ms: Latency,
    /// Join → first video frame.
    pub first_frame_ms: FirstFrame,
    /// Audio packets delivered (whole run).
    pub audio_delivered: u64,
    /// Counted audio, per second of the window.
    pub audio_expected_per_sec: f64,
    /// Delivered counted audio, per second of the window.
    pub audio_delivered_per_sec: f64,
    /// 100 × (1 − delivered / expected) for audio.
    pub audio_loss_percent: f64,
    /// CONGESTION signals publishers received.
    pub congestion_signals: u64,
    /// Video frames a decoder could not use: late, or skipped for a gap (reorder buffers).
    #[serde(default)]
    pub reorder: Reorder,
    /// End-to-end encryption.
    pub e2ee: E2ee,
    /// Throttled (slow-reading) subscribers.
    pub throttled: Throttled,
    /// The bot process over the window.
    pub bot: Process,
    /// Each `--server-pid` over the window.
    pub servers: Vec<Process>,
    /// Participants per meeting on WebTransport whatever `--transport` says.
    pub wt_participants: usize,
    /// Leaving and joining again.
    pub churn: Churn,
    /// `--sample-every`'s time series.
    pub samples: Vec<Sample>,
}

/// Latency percentiles, milliseconds (`None`: no sample).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// Median.
    pub p50: Option<f64>,
    /// 99th percentile.
    pub p99: Option<f64>,
    /// 99.9th percentile.
    pub p999: Option<f64>,
}

/// Time to first frame, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct FirstFrame {
    /// Median.
    pub p50: Option<f64>,
    /// Slowest.
    pub max: Option<f64>,
}

/// What the reorder buffers refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reorder {
    /// Frames that came after their turn had passed.
    pub late: u64,
    /// Frames dropped because one they depend on never came.
    pub skipped: u64,
}

/// End-to-end encryption figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct E2ee {
    /// Whether media was encrypted.
    pub on: bool,
    /// Frames that did not open.
    pub undecryptable: u64,
    /// Media refused because it came in clear.
    pub refused_in_clear: u64,
}

/// What the throttled subscribers read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttled {
    /// How many there were.
    pub subscribers: usize,
    /// How many joined.
    pub joined: u64,
    /// Packets read.
    pub packets: u64,
    /// Bytes read.
    pub bytes: u64,
}

/// CPU and memory of one process over the window (`None`: it could not be measured).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Process {
    /// Its pid (absent for the bot itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Percent of one core.
    pub cpu_percent: Option<f64>,
    /// Resident set.
    pub rss_bytes: Option<u64>,
}

/// Churn settings and what happened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Churn {
    /// Whether participants churned.
    pub on: bool,
    /// Range of a life, seconds.
    pub life_seconds: Option<[f64; 2]>,
    /// Range of an absence, seconds.
    pub away_seconds: [f64; 2],
    /// Seed of the schedule.
    pub seed: u64,
    /// Every join.
    pub joins: u64,
    /// Leaves the churn asked for.
    pub leaves: u64,
    /// Joins after the first.
    pub rejoins: u64,
    /// Counted frames delivered to a session that was not its participant's first.
    pub delivered_after_rejoin: u64,
}

/// One point of the time series: rates over the interval since the sample before.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Since the start of the run.
    pub t_seconds: f64,
    /// Sessions joined now.
    pub connected: i64,
    /// Joins so far.
    pub joins: u64,
    /// Leaves so far.
    pub leaves: u64,
    /// Video frames sent per second.
    pub sent_fps: f64,
    /// Video frames delivered per second.
    pub delivered_fps: f64,
    /// Counted frames expected per second.
    pub expected_counted_fps: f64,
    /// Counted frames delivered per second.
    pub delivered_counted_fps: f64,
    /// Each `--server-pid` (CPU over the interval).
    pub servers: Vec<Process>,
    /// The bot's resident set.
    pub bot_rss_bytes: Option<u64>,
    /// The whole machine's busy time, percent of one core.
    pub machine_busy_percent: Option<f64>,
}

impl BotReport {
    /// Parses a report written by the bot.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_survives_json_and_missing_figures_stay_missing() {
        let report = BotReport {
            transport: "wt".into(),
            joined: 4,
            latency_ms: Latency {
                p50: Some(1.5),
                p99: None,
                p999: None,
            },
            servers: vec![Process {
                pid: Some(7),
                cpu_percent: None,
                rss_bytes: Some(1 << 20),
            }],
            samples: vec![Sample {
                t_seconds: 1.0,
                delivered_fps: 30.0,
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = serde_json::to_string(&report).unwrap();
        assert!(text.contains(r#""p99":null"#), "{text}");
        assert_eq!(BotReport::from_json(&text).unwrap(), report);
        // A report without a figure the reader needs is an error, not a zero.
        let cut = text.replace(r#""joined":4,"#, "");
        assert!(BotReport::from_json(&cut).is_err());
    }
}
