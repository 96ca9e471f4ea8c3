//! The replay window of one received sender key.
//!
//! Frames may arrive out of order (WebTransport carries each frame on its own stream), so a
//! receiver accepts any counter it has not seen within the last [`REPLAY_WINDOW`] counters
//! below the highest one opened, and refuses everything else. The window only moves on frames
//! that authenticated: the caller checks, opens, then marks.

use super::error::E2eeError;

/// How many counters below the highest opened one are still accepted (about 12 s of 30 fps
/// video plus 50 packets/s audio under one key).
pub(crate) const REPLAY_WINDOW: u64 = 1024;

const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Which counters were opened, as a ring of bits indexed by `counter % REPLAY_WINDOW`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReplayWindow {
    top: Option<u64>,
    seen: [u64; WORDS],
}

impl ReplayWindow {
    /// Whether `counter` may be opened: new and within the window.
    pub(crate) fn check(&self, counter: u64) -> Result<(), E2eeError> {
        match self.top {
            None => Ok(()),
            Some(top) if counter > top => Ok(()),
            Some(top) if top - counter >= REPLAY_WINDOW => Err(E2eeError::TooOld(counter)),
            Some(_) if self.is_set(counter) => Err(E2eeError::Replayed(counter)),
            Some(_) => Ok(()),
        }
    }

    /// Records `counter` as opened; call only after [`ReplayWindow::check`] and authentication.
    pub(crate) fn mark(&mut self, counter: u64) {
        match self.top {
            Some(top) if counter <= top => {}
            Some(top) if counter - top < REPLAY_WINDOW => {
                // Slots top+1..=counter are reused for the new counters: forget what they held.
                for c in top + 1..=counter {
                    self.clear(c);
                }
                self.top = Some(counter);
            }
            _ => {
                self.seen = [0; WORDS];
                self.top = Some(counter);
            }
        }
        let (word, bit) = slot(counter);
        self.seen[word] |= bit;
    }

    fn is_set(&self, counter: u64) -> bool {
        let (word, bit) = slot(counter);
        self.seen[word] & bit != 0
    }

    fn clear(&mut self, counter: u64) {
        let (word, bit) = slot(counter);
        self.seen[word] &= !bit;
    }
}

fn slot(counter: u64) -> (usize, u64) {
    let index = counter % REPLAY_WINDOW;
    ((index / 64) as usize, 1 << (index % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(window: &mut ReplayWindow, counter: u64) -> Result<(), E2eeError> {
        window.check(counter)?;
        window.mark(counter);
        Ok(())
    }

    #[test]
    fn a_counter_opens_once() {
        let mut w = ReplayWindow::default();
        assert_eq!(open(&mut w, 0), Ok(()));
        assert_eq!(open(&mut w, 0), Err(E2eeError::Replayed(0)));
        assert_eq!(open(&mut w, 1), Ok(()));
        assert_eq!(open(&mut w, 1), Err(E2eeError::Replayed(1)));
    }

    #[test]
    fn reordered_counters_within_the_window_open() {
        let mut w = ReplayWindow::default();
        for c in [5, 3, 4, 0, 1, 2, 1000, 6] {
            assert_eq!(open(&mut w, c), Ok(()), "counter {c}");
        }
        for c in [5, 3, 4, 0, 1000, 6] {
            assert_eq!(open(&mut w, c), Err(E2eeError::Replayed(c)));
        }
    }

    #[test]
    fn counters_below_the_window_are_too_old() {
        let mut w = ReplayWindow::default();
        open(&mut w, 10).unwrap();
        open(&mut w, 10 + REPLAY_WINDOW).unwrap();
        assert_eq!(open(&mut w, 10), Err(E2eeError::TooOld(10)));
        assert_eq!(open(&mut w, 11), Ok(()));
    }

    #[test]
    fn a_jump_beyond_the_window_forgets_everything_below() {
        let mut w = ReplayWindow::default();
        for c in 0..100 {
            open(&mut w, c).unwrap();
        }
        open(&mut w, 5000).unwrap();
        // Slot of 5000 - 1024 + 10 was used by counter 10 long ago: it must read as unseen.
        assert_eq!(open(&mut w, 5000 - REPLAY_WINDOW + 10), Ok(()));
        assert_eq!(open(&mut w, 5000), Err(E2eeError::Replayed(5000)));
    }

    #[test]
    fn a_slot_reused_by_a_later_counter_does_not_read_as_seen() {
        let mut w = ReplayWindow::default();
        open(&mut w, 3).unwrap();
        open(&mut w, 3 + REPLAY_WINDOW - 1).unwrap();
        // 3 + REPLAY_WINDOW shares the slot of 3 and is new.
        assert_eq!(open(&mut w, 3 + REPLAY_WINDOW), Ok(()));
        assert_eq!(open(&mut w, 3), Err(E2eeError::TooOld(3)));
    }
}
