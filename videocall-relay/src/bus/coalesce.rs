//! Coalescing a node's publications per meeting (sans-IO: time is an argument).
//!
//! The first packet for a meeting opens its batch; the batch goes out when it reaches
//! [`MAX_BATCH_BYTES`] or [`MAX_ENTRIES`], or when [`WINDOW`] has passed since it opened,
//! whichever comes first. Packets of one meeting keep their order (a batch is sent whole before
//! the next one opens); meetings do not wait for each other.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::bus_batch::{BATCH_TOKEN, BatchWriter, split_subject};
#[cfg(doc)]
use crate::bus_batch::{MAX_BATCH_BYTES, MAX_ENTRIES};

/// How long the first packet of a batch may wait for others. The worker's timer fires on
/// tokio's millisecond ticks, so a packet waits at most ~2 ms: a tenth of the 20 ms between a
/// sender's audio packets and a twentieth of the browser's 40 ms jitter buffer, while a busy
/// meeting (a node relaying 30 publishers sends a packet every ~0.4 ms) fills several packets
/// per batch.
pub(crate) const WINDOW: Duration = Duration::from_millis(1);

/// A message to hand to NATS: its subject, payload and how many packets it carries.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) subject: String,
    pub(crate) payload: Bytes,
    pub(crate) packets: usize,
}

struct Open {
    writer: BatchWriter,
    /// When the window closes; also tells this batch apart from a later one of the meeting.
    deadline: Instant,
}

/// Open batches per meeting, and when each must go.
#[derive(Default)]
pub(crate) struct Coalescer {
    /// By meeting prefix (`room.<meeting>`).
    open: HashMap<String, Open>,
    /// Windows in the order they close (all have the same length, so opening order).
    deadlines: VecDeque<(Instant, String)>,
}

impl Coalescer {
    /// Takes one publication; returns what must be sent at once (a full batch, or a publication
    /// that is not a meeting's, which goes as it is).
    pub(crate) fn handle_publish(
        &mut self,
        now: Instant,
        subject: &str,
        payload: Bytes,
        ready: &mut Vec<Ready>,
    ) {
        let Some((meeting, tail)) = split_subject(subject) else {
            ready.push(Ready {
                subject: subject.to_owned(),
                payload,
                packets: 1,
            });
            return;
        };
        if let Some(open) = self.open.get(meeting)
            && !open.writer.fits(tail, &payload)
        {
            let open = self.open.remove(meeting).expect("just looked up");
            ready.push(finish(meeting, open.writer));
        }
        let open = match self.open.get_mut(meeting) {
            Some(open) => open,
            None => {
                let deadline = now + WINDOW;
                self.deadlines.push_back((deadline, meeting.to_owned()));
                self.open.entry(meeting.to_owned()).or_insert(Open {
                    writer: BatchWriter::new(),
                    deadline,
                })
            }
        };
        let pushed = open.writer.push(tail, &payload);
        debug_assert!(
            pushed,
            "split_subject checked the tail, and it fits an open batch"
        );
        if open.writer.is_full() {
            let open = self.open.remove(meeting).expect("just pushed to it");
            ready.push(finish(meeting, open.writer));
        }
    }

    /// When the next window closes.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.front().map(|(at, _)| *at)
    }

    /// Sends the batches whose window has closed by `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant, ready: &mut Vec<Ready>) {
        while let Some((at, _)) = self.deadlines.front()
            && *at <= now
        {
            let (at, meeting) = self.deadlines.pop_front().expect("looked at it");
            // The batch this deadline was for may have gone out full already, and another
            // opened since with a later deadline of its own.
            if self
                .open
                .get(&meeting)
                .is_some_and(|open| open.deadline == at)
            {
                let open = self.open.remove(&meeting).expect("just looked up");
                ready.push(finish(&meeting, open.writer));
            }
        }
    }

    /// Every open batch, now (a flush).
    pub(crate) fn drain(&mut self, ready: &mut Vec<Ready>) {
        self.deadlines.clear();
        for (meeting, open) in self.open.drain() {
            ready.push(finish(&meeting, open.writer));
        }
    }

    /// Forgets every open batch (the connection broke); returns how many packets they held.
    pub(crate) fn discard(&mut self) -> usize {
        self.deadlines.clear();
        self.open.drain().map(|(_, o)| o.writer.entries()).sum()
    }
}

fn finish(meeting: &str, writer: BatchWriter) -> Ready {
    Ready {
        subject: format!("{meeting}.{BATCH_TOKEN}"),
        packets: writer.entries(),
        payload: writer.finish(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus_batch::{MAX_BATCH_BYTES, decode};

    #[test]
    fn a_meetings_packets_wait_together_until_the_window_closes() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        let mut ready = Vec::new();
        c.handle_publish(t0, "room.a.1", Bytes::from_static(b"a1"), &mut ready);
        c.handle_publish(t0, "room.b.2", Bytes::from_static(b"b2"), &mut ready);
        c.handle_publish(t0, "room.a.3.1", Bytes::from_static(b"a3"), &mut ready);
        assert!(ready.is_empty(), "nothing goes before its window closes");
        assert_eq!(c.poll_timeout(), Some(t0 + WINDOW));
        c.handle_timeout(t0 + WINDOW / 2, &mut ready);
        assert!(ready.is_empty());
        c.handle_timeout(t0 + WINDOW, &mut ready);
        let subjects: Vec<_> = ready.iter().map(|r| r.subject.as_str()).collect();
        assert_eq!(subjects, ["room.a.batch", "room.b.batch"]);
        let a = decode(&ready[0].payload).unwrap();
        let a: Vec<_> = a.iter().map(|(t, p)| (*t, p.as_ref())).collect();
        assert_eq!(a, [("1", &b"a1"[..]), ("3.1", b"a3")]);
        assert_eq!(ready[0].packets, 2);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn a_full_batch_goes_at_once_and_the_next_gets_its_own_window() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        let mut ready = Vec::new();
        let chunk = Bytes::from(vec![7; MAX_BATCH_BYTES / 3]);
        c.handle_publish(t0, "room.a.1", chunk.clone(), &mut ready);
        c.handle_publish(t0, "room.a.1", chunk.clone(), &mut ready);
        assert!(ready.is_empty());
        let later = t0 + WINDOW / 2;
        c.handle_publish(later, "room.a.1", chunk.clone(), &mut ready);
        assert_eq!(
            ready.len(),
            1,
            "the third chunk did not fit: the first two went"
        );
        assert_eq!(ready[0].packets, 2);
        // The first window's deadline belonged to the batch that left; the open one stays.
        c.handle_timeout(t0 + WINDOW, &mut ready);
        assert_eq!(ready.len(), 1);
        // A packet over the cap on its own goes at once.
        c.handle_publish(
            later,
            "room.b.1",
            Bytes::from(vec![0; MAX_BATCH_BYTES]),
            &mut ready,
        );
        assert_eq!(ready.len(), 2);
        assert_eq!(ready[1].packets, 1);
        c.handle_timeout(later + WINDOW, &mut ready);
        assert_eq!(ready.len(), 3);
        assert_eq!(ready[2].packets, 1);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn subjects_outside_meetings_go_as_they_are_and_a_break_discards_open_batches() {
        let t0 = Instant::now();
        let mut c = Coalescer::default();
        let mut ready = Vec::new();
        c.handle_publish(t0, "other", Bytes::from_static(b"x"), &mut ready);
        assert_eq!(ready[0].subject, "other");
        assert_eq!(ready[0].payload.as_ref(), b"x");
        c.handle_publish(t0, "room.a.1", Bytes::from_static(b"1"), &mut ready);
        c.handle_publish(t0, "room.a.1", Bytes::from_static(b"2"), &mut ready);
        assert_eq!(c.discard(), 2);
        c.handle_timeout(t0 + WINDOW, &mut ready);
        assert_eq!(ready.len(), 1);
    }
}
