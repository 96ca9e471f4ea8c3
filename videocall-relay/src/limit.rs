//! Rate limits with time as an argument.

use std::time::{Duration, Instant};

/// At most `N` events in any window of `window`.
#[derive(Debug, Clone)]
pub(crate) struct WindowLimit<const N: usize> {
    times: [Option<Instant>; N],
    next: usize,
}

impl<const N: usize> Default for WindowLimit<N> {
    fn default() -> Self {
        Self {
            times: [None; N],
            next: 0,
        }
    }
}

impl<const N: usize> WindowLimit<N> {
    /// Records an event at `now` and returns true if it is within the limit.
    pub(crate) fn allow(&mut self, now: Instant, window: Duration) -> bool {
        // The slot to reuse holds the oldest of the last N events.
        if let Some(oldest) = self.times[self.next]
            && now.saturating_duration_since(oldest) < window
        {
            return false;
        }
        self.times[self.next] = Some(now);
        self.next = (self.next + 1) % N;
        true
    }
}

/// A token bucket: `rate` per second sustained, `burst` at most.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(now: Instant, rate: u64, burst: u64) -> Self {
        Self {
            tokens: burst as f64,
            burst: burst as f64,
            rate: rate as f64,
            last: now,
        }
    }

    /// Takes `cost` tokens if there are enough.
    pub(crate) fn take(&mut self, now: Instant, cost: u64) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = self.last.max(now);
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= cost as f64 {
            self.tokens -= cost as f64;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_limit_allows_n_per_window_and_no_more() {
        let t0 = Instant::now();
        let w = Duration::from_secs(1);
        let mut limit = WindowLimit::<2>::default();
        assert!(limit.allow(t0, w));
        assert!(limit.allow(t0 + Duration::from_millis(100), w));
        assert!(!limit.allow(t0 + Duration::from_millis(900), w));
        assert!(limit.allow(t0 + Duration::from_millis(1000), w));
        assert!(!limit.allow(t0 + Duration::from_millis(1050), w));
        assert!(limit.allow(t0 + Duration::from_millis(1100), w));
    }

    #[test]
    fn token_bucket_refills_at_its_rate_up_to_its_burst() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(t0, 100, 200);
        assert!(bucket.take(t0, 200));
        assert!(!bucket.take(t0, 1));
        assert!(bucket.take(t0 + Duration::from_millis(500), 50));
        assert!(!bucket.take(t0 + Duration::from_millis(500), 1));
        assert!(bucket.take(t0 + Duration::from_secs(100), 200));
    }
}
