//! The scenarios of `make bench`: what each run asks of `videocall-bot`, and on what nodes.

use std::time::Duration;

/// The nodes a scenario runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Topology {
    /// One all-in-one node (`actix-api --webtransport`), in-process bus.
    Single,
    /// Two `actix-api` nodes joined by one `nats-server`; participants alternate between them.
    Nats,
    /// Three `nats-server`s joined by routes into one cluster, one `actix-api` node on each;
    /// participants alternate between the nodes, so a meeting spans every server.
    Cluster,
}

impl Topology {
    /// Relay nodes started.
    pub(crate) fn nodes(self) -> usize {
        match self {
            Self::Single => 1,
            Self::Nats => 2,
            Self::Cluster => 3,
        }
    }
}

/// One run of the bot.
#[derive(Debug, Clone)]
pub(crate) struct Scenario {
    /// Short id, also the name of its JSON report (`b-ws`, `a-64`, …).
    pub(crate) id: String,
    /// The letter: a … g, or `-` for extra points.
    pub(crate) group: char,
    /// What a reader sees in the table.
    pub(crate) title: String,
    pub(crate) transport: &'static str,
    pub(crate) topology: Topology,
    pub(crate) meetings: usize,
    pub(crate) publishers: usize,
    pub(crate) subscribers: usize,
    pub(crate) visible: usize,
    pub(crate) unmuted: Option<usize>,
    pub(crate) throttled: usize,
    /// Participants encrypt end to end (`--e2ee on`).
    pub(crate) e2ee: bool,
    /// Participants act as clients of the original presence protocol (`--presence original`):
    /// every heartbeat forwarded to everyone.
    pub(crate) original_presence: bool,
}

impl Scenario {
    fn new(id: &str, group: char, title: &str, meetings: usize, publishers: usize) -> Self {
        Self {
            id: id.to_owned(),
            group,
            title: title.to_owned(),
            transport: "ws",
            topology: Topology::Single,
            meetings,
            publishers,
            subscribers: 0,
            visible: 0,
            unmuted: None,
            throttled: 0,
            e2ee: false,
            original_presence: false,
        }
    }

    fn wt(mut self) -> Self {
        self.transport = "wt";
        self
    }

    fn nats(mut self) -> Self {
        self.topology = Topology::Nats;
        self
    }

    /// Participants the bot starts.
    pub(crate) fn participants(&self) -> usize {
        self.meetings * (self.publishers + self.subscribers) + self.throttled
    }

    /// Video frames/s the subscriptions call for when every publisher sends its full 30 fps
    /// (the bot's `expected` counts only what its publishers managed to send).
    pub(crate) fn full_rate_fps(&self) -> f64 {
        let (p, v) = (self.publishers, self.visible);
        let seen_by_subscriber = if v == 0 { p } else { v.min(p) };
        let others = p.saturating_sub(1);
        let seen_by_publisher = if v == 0 { others } else { v.min(others) };
        let per_meeting = self.subscribers * seen_by_subscriber + p * seen_by_publisher;
        (self.meetings * per_meeting * 30) as f64
    }

    /// Joins are spread over this long: ≈ 150 joins a second, at least 2 s.
    pub(crate) fn ramp(&self) -> Duration {
        Duration::from_secs_f64((self.participants() as f64 / 150.0).max(2.0))
    }

    /// The bot's flags (without URLs, duration and output).
    pub(crate) fn bot_args(&self) -> Vec<String> {
        let mut args = vec![
            "--transport".into(),
            self.transport.into(),
            "--meetings".into(),
            self.meetings.to_string(),
            "--publishers".into(),
            self.publishers.to_string(),
            "--subscribers".into(),
            self.subscribers.to_string(),
            "--visible".into(),
            self.visible.to_string(),
            "--prefix".into(),
            format!("bench-{}", self.id),
        ];
        if let Some(n) = self.unmuted {
            args.extend(["--unmuted".into(), n.to_string()]);
        }
        if self.throttled > 0 {
            args.extend(["--throttled".into(), self.throttled.to_string()]);
        }
        if self.e2ee {
            args.extend(["--e2ee".into(), "on".into()]);
        }
        if self.original_presence {
            args.extend(["--presence".into(), "original".into()]);
        }
        args
    }
}

/// Meeting counts tried for (a), in order, until one fails.
pub(crate) const CAPACITY_STEPS: &[usize] = &[8, 16, 32, 48, 64, 96, 128, 160, 200, 256, 320];

/// Step `meetings` of (a): that many 4×4 meetings.
pub(crate) fn capacity_step(meetings: usize) -> Scenario {
    Scenario::new(
        &format!("a-{meetings}"),
        'a',
        &format!("{meetings} meetings of 4×4"),
        meetings,
        4,
    )
}

/// The fixed scenarios that run before the (a) steps, in order.
pub(crate) fn fixed() -> Vec<Scenario> {
    vec![
        Scenario::new("b-ws", 'b', "25×25 all-to-all", 1, 25),
        Scenario {
            throttled: 1,
            ..Scenario::new("g-ws", 'g', "25×25 + 1 throttled subscriber", 1, 25)
        },
        Scenario::new("b-wt", 'b', "25×25 all-to-all", 1, 25).wt(),
        Scenario {
            e2ee: true,
            ..Scenario::new("b-ws-e2ee", '-', "25×25 all-to-all, E2EE on", 1, 25)
        },
        Scenario::new("60-ws", 'f', "60×60 all-to-all", 1, 60),
        Scenario::new("60-wt", 'f', "60×60 all-to-all", 1, 60).wt(),
        Scenario::new("e-25", 'e', "25×25, 2 nodes on NATS", 1, 25).nats(),
        Scenario::new("e-60", 'e', "60×60, 2 nodes on NATS", 1, 60).nats(),
        Scenario {
            topology: Topology::Cluster,
            ..Scenario::new(
                "e-60-cluster",
                'e',
                "60×60, 3 nodes on a 3-server NATS cluster",
                1,
                60,
            )
        },
    ]
}

/// The largest meetings, run after the (a) steps so that what they leave behind cannot touch them.
pub(crate) fn large() -> Vec<Scenario> {
    let mut list = Vec::new();
    for m in [50, 100, 200, 500] {
        list.push(Scenario {
            subscribers: m,
            ..Scenario::new(&format!("c-{m}"), 'c', &format!("1 → {m} broadcast"), 1, 1)
        });
    }
    // The same broadcast with clients of the original presence protocol: what the digests save.
    list.push(Scenario {
        subscribers: 500,
        original_presence: true,
        ..Scenario::new(
            "p-500-original",
            'p',
            "1 → 500 broadcast, every heartbeat forwarded (original clients)",
            1,
            1,
        )
    });
    list.push(Scenario {
        subscribers: 970,
        visible: 9,
        unmuted: Some(3),
        ..Scenario::new(
            "d-1000",
            'd',
            "1000: 30 publishers (3 unmuted), 970 viewers, 9 visible",
            1,
            30,
        )
    });
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenario_ids_are_unique_and_the_big_meeting_has_a_thousand_people() {
        let list: Vec<Scenario> = fixed().into_iter().chain(large()).collect();
        let mut ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), list.len());
        let big = list.iter().find(|s| s.group == 'd').expect("(d) is there");
        assert_eq!(big.participants(), 1000);
        assert!(big.bot_args().windows(2).any(|w| w == ["--unmuted", "3"]));
        assert_eq!(capacity_step(8).participants(), 32);
        assert!(big.ramp() > Duration::from_secs(6));
        // 970 viewers × 9 tiles + 30 publishers × 9, at 30 fps; 60×60: 60 × 59 at 30 fps.
        assert_eq!(big.full_rate_fps(), 270_000.0);
        assert_eq!(
            Scenario::new("x", 'f', "60×60", 1, 60).full_rate_fps(),
            106_200.0
        );
        assert_eq!(capacity_step(64).full_rate_fps(), 64.0 * 12.0 * 30.0);
        let original = list.iter().find(|s| s.group == 'p').expect("(p) is there");
        assert!(
            original
                .bot_args()
                .windows(2)
                .any(|w| w == ["--presence", "original"])
        );
        assert!(!big.bot_args().iter().any(|a| a == "--presence"));
        let cluster = list.iter().find(|s| s.topology == Topology::Cluster);
        assert_eq!(cluster.map(|s| s.topology.nodes()), Some(3));
    }
}
