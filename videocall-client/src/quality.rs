//! Adaptive send quality: a ladder of (height, frame rate, bitrate) rungs the camera sender moves
//! along as the relay and the network say how its video fares. Down fast, up slowly:
//!
//! - **Down** one rung at once on a bad signal — a CONGESTION from the relay (a receiver's queue
//!   is dropping our frames), or the round trip to the relay well above its recent floor three
//!   times in a row (queues building on our path) — then not again for [`DOWN_HOLD`], so one burst of
//!   signals costs one rung.
//! - **Up** one rung after `up_wait` without a bad signal (from [`UP_WAIT_MIN`]). A step up that
//!   meets a bad signal within [`UP_PROBE`] was a failed probe: the wait doubles (to
//!   [`UP_WAIT_MAX`]), so a link that fits rung 2 does not oscillate between 1 and 2. A step up
//!   that holds for [`UP_PROBE`] resets the wait.
//!
//! Loss below the transport is repaired by QUIC or TCP; what the sender can see of it is the
//! round trip growing and receivers falling behind at the relay (CONGESTION), which is what the
//! ladder follows. Sans-IO like the session: time is a `Duration` since the driver's origin.

use std::time::Duration;

/// One step of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rung {
    /// Frame height at most (width follows the source's aspect ratio).
    pub height: u32,
    /// Frames per second at most.
    pub fps: u32,
    /// Target bitrate, bits per second.
    pub bitrate: u32,
}

impl Rung {
    /// This rung for a `source_width` × `source_height` source: the source scaled down (never
    /// up) to the rung's height with its aspect ratio kept and even dimensions (encoders want
    /// them), and the bitrate scaled by the pixels actually sent, so bits per pixel stay the
    /// rung's.
    pub fn fit(&self, source_width: u32, source_height: u32) -> Fitted {
        let (sw, sh) = (source_width.max(2), source_height.max(2));
        let height = sh.min(self.height);
        let width = (u64::from(sw) * u64::from(height) / u64::from(sh)) as u32;
        let (width, height) = ((width & !1).max(2), (height & !1).max(2));
        let full = u64::from(self.height) * u64::from(self.height) * 16 / 9;
        let sent = u64::from(width) * u64::from(height);
        let bitrate = if sent >= full {
            self.bitrate
        } else {
            (u64::from(self.bitrate) * sent / full).max(50_000) as u32
        };
        Fitted {
            width,
            height,
            fps: self.fps,
            bitrate,
        }
    }
}

/// A rung applied to a source: what to configure the encoder with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fitted {
    /// Encoded width.
    pub width: u32,
    /// Encoded height.
    pub height: u32,
    /// Frames per second at most.
    pub fps: u32,
    /// Target bitrate, bits per second.
    pub bitrate: u32,
}

/// The camera ladder, best first (bitrates for 16:9 at the rung's height). Each step roughly halves the bits; below 360p the frame rate
/// goes too, since a smooth tiny picture helps less than a sharp one.
pub const LADDER: [Rung; 5] = [
    Rung {
        height: 720,
        fps: 30,
        bitrate: 1_500_000,
    },
    Rung {
        height: 540,
        fps: 30,
        bitrate: 900_000,
    },
    Rung {
        height: 360,
        fps: 30,
        bitrate: 500_000,
    },
    Rung {
        height: 270,
        fps: 20,
        bitrate: 250_000,
    },
    Rung {
        height: 180,
        fps: 15,
        bitrate: 120_000,
    },
];

/// After stepping down, further bad signals are ignored this long.
pub const DOWN_HOLD: Duration = Duration::from_millis(1_500);
/// Quiet time before the first step up.
pub const UP_WAIT_MIN: Duration = Duration::from_secs(8);
/// The longest quiet time asked before a step up (after repeated failed probes).
pub const UP_WAIT_MAX: Duration = Duration::from_secs(64);
/// A bad signal this soon after a step up makes it a failed probe.
pub const UP_PROBE: Duration = Duration::from_secs(5);
/// RTT floor: the lowest RTT seen in windows of this length.
const RTT_WINDOW: Duration = Duration::from_secs(30);
/// RTT is high when above both `floor × RTT_FACTOR` and `floor + RTT_MARGIN`.
const RTT_FACTOR: u32 = 2;
const RTT_MARGIN: Duration = Duration::from_millis(200);
/// This many high round trips in a row are a bad signal (one slow probe is not).
const HIGH_RTTS: u32 = 3;

/// Why the rung changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The first rung, for the source.
    Start,
    /// A receiver was dropping our video at the relay.
    Congestion,
    /// The round trip to the relay rose well above its floor.
    Rtt,
    /// Quiet for long enough: trying the next rung up.
    Probe,
}

impl Reason {
    /// For people (diagnostics, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Start => "start",
            Reason::Congestion => "congestion",
            Reason::Rtt => "round trip rising",
            Reason::Probe => "link quiet",
        }
    }
}

/// A rung change for the encoder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// Index in [`LADDER`] (0 is best).
    pub index: usize,
    /// The rung.
    pub rung: Rung,
    /// Why.
    pub reason: Reason,
}

/// The sender's position on the ladder.
#[derive(Debug, Clone)]
pub struct QualityController {
    index: usize,
    /// Best rung for the source (a 480p camera gains nothing from the 720p rung's bitrate).
    top: usize,
    last_bad: Option<Duration>,
    last_down: Option<Duration>,
    last_up: Option<Duration>,
    /// When we arrived at the current rung.
    since: Duration,
    up_wait: Duration,
    rtt_floor: Option<Duration>,
    /// The floor of the window in progress, and when it began.
    window_floor: Option<Duration>,
    window_start: Duration,
    high_rtts: u32,
    changes: Vec<Change>,
    steps_down: u64,
    steps_up: u64,
}

impl QualityController {
    /// Starts at the best rung for a source `source_height` pixels high: the smallest rung
    /// that still holds it whole (a 480p camera starts at "540p", i.e. 480p at that bitrate).
    /// That first rung is the first change to poll.
    pub fn new(now: Duration, source_height: u32) -> Self {
        let top = LADDER
            .iter()
            .rposition(|r| r.height >= source_height)
            .unwrap_or(0);
        let mut controller = Self {
            index: top,
            top,
            last_bad: None,
            last_down: None,
            last_up: None,
            since: now,
            up_wait: UP_WAIT_MIN,
            rtt_floor: None,
            window_floor: None,
            window_start: now,
            high_rtts: 0,
            changes: Vec::new(),
            steps_down: 0,
            steps_up: 0,
        };
        controller.push(Reason::Start);
        controller
    }

    /// The current rung and its index.
    pub fn current(&self) -> (usize, Rung) {
        (self.index, LADDER[self.index])
    }

    /// Steps taken down and up so far.
    pub fn steps(&self) -> (u64, u64) {
        (self.steps_down, self.steps_up)
    }

    /// The relay said a receiver is dropping our video.
    pub fn handle_congestion(&mut self, now: Duration) {
        self.bad(now, Reason::Congestion);
    }

    /// A round trip to the relay took `rtt`.
    pub fn handle_rtt(&mut self, now: Duration, rtt: Duration) {
        if now.saturating_sub(self.window_start) >= RTT_WINDOW {
            // The floor follows the last full window, so a route that got slower for good
            // stops counting as congestion after one window.
            self.rtt_floor = self.window_floor.or(self.rtt_floor);
            self.window_floor = None;
            self.window_start = now;
        }
        self.window_floor = Some(self.window_floor.map_or(rtt, |f| f.min(rtt)));
        let floor = match self.rtt_floor {
            Some(floor) => floor.min(rtt),
            None => {
                self.rtt_floor = Some(rtt);
                rtt
            }
        };
        self.rtt_floor = Some(floor);
        let high = rtt > floor * RTT_FACTOR && rtt > floor + RTT_MARGIN;
        if high {
            self.high_rtts += 1;
            if self.high_rtts >= HIGH_RTTS {
                self.high_rtts = 0;
                self.bad(now, Reason::Rtt);
            }
        } else {
            self.high_rtts = 0;
        }
    }

    /// Time passed: steps up after a quiet `up_wait`.
    pub fn handle_timeout(&mut self, now: Duration) {
        if self
            .last_up
            .is_some_and(|up| now.saturating_sub(up) >= UP_PROBE)
        {
            // The last step up held: the link has room again, so the next one comes soon.
            self.up_wait = UP_WAIT_MIN;
            self.last_up = None;
        }
        if self.index <= self.top {
            return;
        }
        let quiet_since = self.last_bad.unwrap_or(self.since).max(self.since);
        if now.saturating_sub(quiet_since) >= self.up_wait {
            self.index -= 1;
            self.steps_up += 1;
            self.last_up = Some(now);
            self.since = now;
            self.push(Reason::Probe);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) may next step up, if it can.
    pub fn poll_timeout(&self) -> Option<Duration> {
        if self.index <= self.top {
            return None;
        }
        let quiet_since = self.last_bad.unwrap_or(self.since).max(self.since);
        Some(quiet_since + self.up_wait)
    }

    /// The next rung change to apply, oldest first.
    pub fn poll_change(&mut self) -> Option<Change> {
        if self.changes.is_empty() {
            None
        } else {
            Some(self.changes.remove(0))
        }
    }

    fn bad(&mut self, now: Duration, reason: Reason) {
        self.last_bad = Some(now);
        if self
            .last_up
            .is_some_and(|up| now.saturating_sub(up) < UP_PROBE)
        {
            self.up_wait = (self.up_wait * 2).min(UP_WAIT_MAX);
            self.last_up = None;
        }
        let held = self
            .last_down
            .is_some_and(|down| now.saturating_sub(down) < DOWN_HOLD);
        if held || self.index + 1 >= LADDER.len() {
            return;
        }
        self.index += 1;
        self.steps_down += 1;
        self.last_down = Some(now);
        self.since = now;
        self.push(reason);
    }

    fn push(&mut self, reason: Reason) {
        // Bounded: the driver polls after every input; an unpolled backlog keeps the last few.
        if self.changes.len() >= LADDER.len() {
            self.changes.remove(0);
        }
        self.changes.push(Change {
            index: self.index,
            rung: LADDER[self.index],
            reason,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn drain(q: &mut QualityController) -> Vec<Change> {
        std::iter::from_fn(|| q.poll_change()).collect()
    }

    /// A controller for a 720p source, its start change taken.
    fn ctl() -> QualityController {
        let mut q = QualityController::new(s(0.0), 720);
        let start = drain(&mut q);
        assert_eq!(start.len(), 1);
        assert_eq!((start[0].index, start[0].reason), (0, Reason::Start));
        q
    }

    #[test]
    fn starts_at_the_best_rung_the_source_allows() {
        assert_eq!(QualityController::new(s(0.0), 1080).current().0, 0);
        assert_eq!(QualityController::new(s(0.0), 720).current().0, 0);
        assert_eq!(QualityController::new(s(0.0), 540).current().0, 1);
        assert_eq!(QualityController::new(s(0.0), 480).current().0, 1);
        assert_eq!(QualityController::new(s(0.0), 100).current().0, 4);
    }

    #[test]
    fn a_rung_scales_the_source_down_never_up_and_the_bitrate_with_it() {
        // 640×480 at the 540p rung: whole, at the rung's bits per pixel (≈ 60 % of its rate).
        let f = LADDER[1].fit(640, 480);
        assert_eq!((f.width, f.height, f.fps), (640, 480, 30));
        assert_eq!(u64::from(f.bitrate), 900_000u64 * (640 * 480) / (960 * 540));
        // 1280×720 at the 360p rung: scaled to 640×360, the rung's full bitrate.
        let f = LADDER[2].fit(1280, 720);
        assert_eq!((f.width, f.height, f.bitrate), (640, 360, 500_000));
        // Odd sizes come out even; a tiny source keeps a sane floor.
        let f = LADDER[4].fit(333, 201);
        assert_eq!((f.width % 2, f.height % 2), (0, 0));
        assert!(f.height <= 180 && f.bitrate >= 50_000);
        let f = LADDER[0].fit(0, 0);
        assert!(f.width >= 2 && f.height >= 2);
    }

    #[test]
    fn congestion_steps_down_at_once_and_a_burst_costs_one_rung() {
        let mut q = ctl();
        q.handle_congestion(s(1.0));
        let changes = drain(&mut q);
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0].index, changes[0].reason),
            (1, Reason::Congestion)
        );
        // The relay signals at most once a second; a burst inside DOWN_HOLD is one step.
        q.handle_congestion(s(1.5));
        q.handle_congestion(s(2.4));
        assert!(drain(&mut q).is_empty());
        // Still congested after the hold: another step.
        q.handle_congestion(s(2.6));
        assert_eq!(q.current().0, 2);
        assert_eq!(q.steps(), (2, 0));
    }

    #[test]
    fn never_below_the_last_rung() {
        let mut q = ctl();
        for i in 0..20 {
            q.handle_congestion(s(f64::from(i) * 2.0));
        }
        assert_eq!(q.current().0, LADDER.len() - 1);
        assert_eq!(q.steps().0, LADDER.len() as u64 - 1);
    }

    #[test]
    fn steps_up_one_rung_after_a_quiet_wait_and_not_before() {
        let mut q = ctl();
        q.handle_congestion(s(1.0));
        q.handle_congestion(s(3.0));
        assert_eq!(q.current().0, 2);
        drain(&mut q);
        assert_eq!(q.poll_timeout(), Some(s(3.0) + UP_WAIT_MIN));
        q.handle_timeout(s(3.0) + UP_WAIT_MIN - s(0.1));
        assert_eq!(q.current().0, 2, "too early");
        q.handle_timeout(s(3.0) + UP_WAIT_MIN);
        let up = drain(&mut q);
        assert_eq!(up.len(), 1);
        assert_eq!((up[0].index, up[0].reason), (1, Reason::Probe));
        // One rung per wait, back to the top, then no more timers.
        q.handle_timeout(s(3.0) + UP_WAIT_MIN * 2);
        assert_eq!(q.current().0, 0);
        assert_eq!(q.poll_timeout(), None);
        q.handle_timeout(s(100.0));
        assert_eq!(q.current().0, 0);
    }

    #[test]
    fn a_failed_probe_doubles_the_wait() {
        let mut q = ctl();
        q.handle_congestion(s(1.0));
        q.handle_congestion(s(3.0)); // rung 2
        let up_at = s(3.0) + UP_WAIT_MIN;
        q.handle_timeout(up_at); // probe to rung 1
        assert_eq!(q.current().0, 1);
        q.handle_congestion(up_at + s(2.0)); // fails within UP_PROBE: back to 2
        assert_eq!(q.current().0, 2);
        let bad = up_at + s(2.0);
        assert_eq!(q.poll_timeout(), Some(bad + UP_WAIT_MIN * 2));
        q.handle_timeout(bad + UP_WAIT_MIN * 2 - s(0.1));
        assert_eq!(q.current().0, 2);
        q.handle_timeout(bad + UP_WAIT_MIN * 2);
        assert_eq!(q.current().0, 1);
    }

    #[test]
    fn the_wait_is_capped_and_resets_after_a_long_hold() {
        let mut q = ctl();
        let mut now = s(1.0);
        q.handle_congestion(now);
        for _ in 0..10 {
            let at = q.poll_timeout().expect("below the top");
            assert!(at - now <= UP_WAIT_MAX, "wait {:?}", at - now);
            now = at;
            q.handle_timeout(now);
            now += s(1.0);
            q.handle_congestion(now); // every probe fails
        }
        assert_eq!(q.poll_timeout(), Some(now + UP_WAIT_MAX));
        // A probe that holds for UP_PROBE: the wait is back to the minimum.
        q.handle_timeout(now + UP_WAIT_MAX);
        assert_eq!(q.current().0, 0);
        q.handle_timeout(now + UP_WAIT_MAX + UP_PROBE);
        let bad = now + UP_WAIT_MAX + UP_PROBE + s(1.0);
        q.handle_congestion(bad);
        assert_eq!(q.poll_timeout(), Some(bad + UP_WAIT_MIN));
    }

    #[test]
    fn a_rising_round_trip_steps_down_but_one_spike_does_not() {
        let mut q = ctl();
        for i in 0..5 {
            q.handle_rtt(s(f64::from(i)), Duration::from_millis(20));
        }
        q.handle_rtt(s(5.0), Duration::from_millis(400)); // one spike
        q.handle_rtt(s(6.0), Duration::from_millis(22));
        assert_eq!(q.current().0, 0, "a single spike is not congestion");
        q.handle_rtt(s(7.0), Duration::from_millis(300));
        q.handle_rtt(s(8.0), Duration::from_millis(350));
        assert_eq!(q.current().0, 0, "two in a row are not yet");
        q.handle_rtt(s(9.0), Duration::from_millis(320));
        assert_eq!(q.current().0, 1);
        assert_eq!(drain(&mut q)[0].reason, Reason::Rtt);
        // Small absolute rises on a fast link are not congestion (below floor + margin).
        let mut q = ctl();
        q.handle_rtt(s(0.0), Duration::from_millis(2));
        for i in 1..10 {
            q.handle_rtt(s(f64::from(i)), Duration::from_millis(150));
        }
        assert_eq!(q.current().0, 0);
    }

    #[test]
    fn a_route_that_got_slower_for_good_stops_counting_after_a_window() {
        let mut q = ctl();
        q.handle_rtt(s(0.0), Duration::from_millis(10));
        let mut t = 1.0;
        // The route changes: 250 ms from now on. It costs a step or two, then the floor
        // follows and the controller climbs back.
        while t < 200.0 {
            q.handle_rtt(s(t), Duration::from_millis(250));
            q.handle_timeout(s(t));
            t += 1.0;
        }
        assert_eq!(q.current().0, 0, "{:?}", q.steps());
        assert!(q.steps().0 >= 1);
    }
}
