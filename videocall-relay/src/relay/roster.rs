//! The roster: who is in each meeting the node serves — local sessions, participants on other
//! nodes learnt from the bus, and leaves waiting for their reconnect grace — and when a meeting is
//! no longer served.
//!
//! [`Meeting`] is the bookkeeping, with no output; the `Relay` methods below turn its changes into
//! participant events, bus publications and subscriptions.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use videocall_types::{MeetingEventType, MeetingId, SessionId, packets};

use super::admission::{self, Join};
use super::presence::Presence;
use super::session::Session;
use super::timer::Timer;
use super::{Output, Relay};
use crate::classify::Class;
use crate::error::JoinError;
use crate::subject;

/// A participant on another node.
#[derive(Debug)]
pub(super) struct RemotePeer {
    pub(super) user: Bytes,
    pub(super) display_name: Bytes,
    pub(super) last_seen: Instant,
}

/// A local session that left, whose PARTICIPANT_LEFT waits for the reconnect grace.
#[derive(Debug)]
pub(super) struct PendingLeave {
    pub(super) session: SessionId,
    pub(super) user: Bytes,
    pub(super) due: Instant,
}

/// One meeting the node serves.
#[derive(Debug)]
pub(super) struct Meeting {
    pub(super) id: MeetingId,
    /// Local sessions in join order.
    pub(super) local: Vec<SessionId>,
    /// Sessions on other nodes, learnt from the bus.
    pub(super) remote: HashMap<SessionId, RemotePeer>,
    /// User → their latest session here or elsewhere, for keyframe requests addressed by user.
    pub(super) by_user: HashMap<Bytes, SessionId>,
    /// Whether a [`Timer::RemoteExpiry`] is armed for this meeting.
    remote_timer_armed: bool,
    pub(super) pending_leaves: Vec<PendingLeave>,
    /// End-to-end encrypted by a signed or stored record (a join with [`Join::e2ee`]); once
    /// set it stays set while the node serves the meeting: clear media is dropped.
    pub(super) e2ee: bool,
    /// Remote sessions a newer session of their user replaced (a move between nodes), newest
    /// last, at most [`REPLACED_CAP`]: traffic still in flight from them is not taken for a
    /// new participant (only their own JOINED brings them back).
    replaced: VecDeque<SessionId>,
    /// What each participant last said in its heartbeat, and the digest rotation.
    pub(super) presence: Presence,
}

/// Replaced remote sessions remembered per meeting.
const REPLACED_CAP: usize = 64;

impl Meeting {
    fn new(id: MeetingId) -> Self {
        Self {
            id,
            local: Vec::new(),
            remote: HashMap::new(),
            by_user: HashMap::new(),
            remote_timer_armed: false,
            pending_leaves: Vec::new(),
            e2ee: false,
            replaced: VecDeque::new(),
            presence: Presence::default(),
        }
    }

    pub(super) fn participant_count(&self) -> i64 {
        (self.local.len() + self.remote.len()) as i64
    }

    /// Forgets that `session` is `user`'s latest, unless a newer session took its place.
    fn forget_user(&mut self, user: &Bytes, session: SessionId) {
        if self.by_user.get(user) == Some(&session) {
            self.by_user.remove(user);
        }
    }

    /// A local session of `user` joined. Coming back within the reconnect grace, the user's
    /// earlier session's leave is never announced.
    fn add_local(&mut self, session: SessionId, user: Bytes) {
        self.cancel_leaves_of(&user);
        self.local.push(session);
        self.by_user.insert(user, session);
    }

    /// A local session of `user` left; its leave is announced at `due` unless cancelled.
    /// Returns false, and keeps no leave, when the user's latest session is another one (it
    /// came back, here or through another node, before this connection was seen to close):
    /// the user never left.
    pub(super) fn remove_local(&mut self, session: SessionId, user: Bytes, due: Instant) -> bool {
        self.local.retain(|id| *id != session);
        self.presence.forget(session);
        let replaced = self
            .by_user
            .get(&user)
            .is_some_and(|latest| *latest != session);
        self.forget_user(&user, session);
        if !replaced {
            self.pending_leaves
                .push(PendingLeave { session, user, due });
        }
        !replaced
    }

    /// The user is back (or was replaced, never gone): its pending leaves are not announced.
    /// Returns how many there were.
    pub(super) fn cancel_leaves_of(&mut self, user: &Bytes) -> usize {
        let waiting = self.pending_leaves.len();
        self.pending_leaves.retain(|p| p.user != *user);
        waiting - self.pending_leaves.len()
    }

    /// A new session of `user` (`new`, when already known) replaces its latest one, when that
    /// was on another node: the old one leaves the roster silently (the new session's JOINED
    /// tells clients it replaces it; its node never announces its leave). Returns the session
    /// forgotten.
    pub(super) fn replace_remote(
        &mut self,
        user: &Bytes,
        new: Option<SessionId>,
    ) -> Option<SessionId> {
        let old = *self.by_user.get(user)?;
        if Some(old) == new || self.remote.remove(&old).is_none() {
            return None;
        }
        self.presence.forget(old);
        self.by_user.remove(user);
        if self.replaced.len() == REPLACED_CAP {
            self.replaced.pop_front();
        }
        self.replaced.push_back(old);
        Some(old)
    }

    /// The pending leaves of the sessions `which` selects become due at `now`.
    pub(super) fn hasten_leaves(&mut self, now: Instant, which: impl Fn(SessionId) -> bool) {
        for leave in &mut self.pending_leaves {
            if which(leave.session) {
                leave.due = now;
            }
        }
    }

    /// Removes and returns the pending leaves due at `now`.
    fn take_due_leaves(&mut self, now: Instant) -> Vec<PendingLeave> {
        let (due, waiting) = std::mem::take(&mut self.pending_leaves)
            .into_iter()
            .partition(|p| p.due <= now);
        self.pending_leaves = waiting;
        due
    }

    /// Whether nothing keeps the node serving the meeting: no local session, no leave to
    /// announce.
    fn is_unused(&self) -> bool {
        self.local.is_empty() && self.pending_leaves.is_empty()
    }

    /// Whether the roster may hold `origin`: it is known, or there is room under `max`.
    pub(super) fn has_room_for(&self, origin: SessionId, max: usize) -> bool {
        self.remote.len() < max || self.remote.contains_key(&origin)
    }

    /// A PARTICIPANT_JOINED from the bus. Returns whether `origin` was new to us.
    pub(super) fn learn_joined(
        &mut self,
        now: Instant,
        origin: SessionId,
        user: Bytes,
        display_name: Bytes,
    ) -> bool {
        self.replaced.retain(|s| *s != origin);
        let peer = RemotePeer {
            display_name,
            user: user.clone(),
            last_seen: now,
        };
        let learned = self.remote.insert(origin, peer).is_none();
        // A roster reply repeating a session we know must not make an older session of the user
        // its latest again.
        if learned {
            self.by_user.insert(user, origin);
        }
        learned
    }

    /// Traffic from `origin` (of `user`) on the bus. Returns whether `origin` was new to us.
    pub(super) fn heard_from(&mut self, now: Instant, origin: SessionId, user: &Bytes) -> bool {
        if let Some(peer) = self.remote.get_mut(&origin) {
            peer.last_seen = now;
            return false;
        }
        if self.replaced.contains(&origin) {
            return false;
        }
        let peer = RemotePeer {
            user: user.clone(),
            display_name: user.clone(),
            last_seen: now,
        };
        self.by_user.insert(user.clone(), origin);
        self.remote.insert(origin, peer);
        true
    }

    /// A PARTICIPANT_LEFT from the bus.
    pub(super) fn remote_left(&mut self, origin: SessionId) {
        if let Some(peer) = self.remote.remove(&origin) {
            self.forget_user(&peer.user, origin);
        }
        self.presence.forget(origin);
    }

    /// Whether a [`Timer::RemoteExpiry`] must be armed (there are remote peers and none is).
    pub(super) fn arm_remote_expiry(&mut self) -> bool {
        let arm = !self.remote_timer_armed && !self.remote.is_empty();
        self.remote_timer_armed |= arm;
        arm
    }

    /// Forgets the remote peers not heard from for `idle`; returns them (session, user) and when
    /// the next one expires (the timer is then armed for it).
    fn expire_remote(
        &mut self,
        now: Instant,
        idle: Duration,
    ) -> (Vec<(SessionId, Bytes)>, Option<Instant>) {
        let gone: Vec<(SessionId, Bytes)> = self
            .remote
            .iter()
            .filter(|(_, p)| p.last_seen + idle <= now)
            .map(|(s, p)| (*s, p.user.clone()))
            .collect();
        for (session, user) in &gone {
            self.remote.remove(session);
            self.presence.forget(*session);
            self.forget_user(user, *session);
        }
        let next = self.remote.values().map(|p| p.last_seen + idle).min();
        self.remote_timer_armed = next.is_some();
        (gone, next)
    }
}

impl Relay {
    /// Adds a local session once admission (removal, takeover) has passed: it is sent
    /// SESSION_ASSIGNED and a PARTICIPANT_JOINED for everyone already there; everyone else
    /// hears it joined.
    pub(super) fn join_session(
        &mut self,
        now: Instant,
        join: Join,
    ) -> Result<SessionId, JoinError> {
        let Join {
            user,
            meeting: meeting_id,
            display_name,
            grants,
            e2ee,
            presence,
            ..
        } = join;
        if self.stopping {
            self.metrics.joins_refused += 1;
            return Err(JoinError::ShuttingDown);
        }
        match self.meetings.get(&meeting_id) {
            None if self.meetings.len() >= self.config.max_meetings => {
                self.metrics.joins_refused += 1;
                return Err(JoinError::NodeFull {
                    max: self.config.max_meetings,
                });
            }
            Some(m) if m.local.len() >= self.config.max_sessions_per_meeting => {
                self.metrics.joins_refused += 1;
                return Err(JoinError::MeetingFull {
                    meeting: meeting_id,
                    max: self.config.max_sessions_per_meeting,
                });
            }
            _ => {}
        }
        let seq = self.next_seq;
        self.next_seq = seq
            .checked_add(self.seq_step)
            .ok_or(JoinError::SessionIdsExhausted)?;
        let id = SessionId::new(self.config.node_id, seq);

        if !self.meetings.contains_key(&meeting_id) {
            self.meetings
                .insert(meeting_id.clone(), Meeting::new(meeting_id.clone()));
            self.outputs.push_back(Output::Subscribe {
                subject: subject::meeting_subject(&meeting_id),
                meeting: meeting_id.clone(),
            });
        }
        self.arm_presence_digest(now, &meeting_id);
        let user_bytes = Bytes::copy_from_slice(user.as_bytes());
        let display_name = admission::display_name(&display_name, &user_bytes);
        let mut session = Session::new(
            now,
            &self.config,
            id,
            user,
            meeting_id.clone(),
            display_name.clone(),
            grants,
        );
        session.presence = presence;
        self.sessions.insert(id, session);
        self.timers
            .push(now + self.config.idle_timeout, Timer::Idle(id));
        self.metrics.joins += 1;
        let meeting = self
            .meetings
            .get_mut(&meeting_id)
            .expect("inserted above when missing");
        meeting.add_local(id, user_bytes.clone());
        meeting.e2ee |= e2ee;

        self.send_to(id, packets::encode(&packets::session_assigned(id)));
        let meeting = &self.meetings[&meeting_id];
        let mut present: Vec<(Bytes, Bytes, SessionId)> = meeting
            .local
            .iter()
            .filter(|s| **s != id)
            .map(|s| {
                let other = &self.sessions[s];
                (other.user_bytes.clone(), other.display_name.clone(), *s)
            })
            .collect();
        present.extend(
            meeting
                .remote
                .iter()
                .map(|(s, p)| (p.user.clone(), p.display_name.clone(), *s)),
        );
        let count = meeting.participant_count();
        for (user, name, session) in present {
            let event = participant_event(
                MeetingEventType::ParticipantJoined,
                &meeting_id,
                count,
                (user, name),
                session,
            );
            self.send_to(id, event);
        }
        if presence {
            self.send_full_digest(id, &meeting_id);
        }
        let joined = participant_event(
            MeetingEventType::ParticipantJoined,
            &meeting_id,
            count,
            (user_bytes.clone(), display_name),
            id,
        );
        self.fan_out(now, &meeting_id, id, &joined, Class::Control, &user_bytes);
        self.publish(subject::session_subject(&meeting_id, id), joined);
        Ok(id)
    }

    /// Announces the meeting's leaves due at `now` (here and on the bus), then stops serving the
    /// meeting if nothing keeps it.
    pub(super) fn announce_leaves(&mut self, now: Instant, meeting_id: &MeetingId) {
        let Some(meeting) = self.meetings.get_mut(meeting_id) else {
            return;
        };
        for leave in meeting.take_due_leaves(now) {
            let count = self.meetings[meeting_id].participant_count();
            let event = participant_event(
                MeetingEventType::ParticipantLeft,
                meeting_id,
                count,
                (leave.user.clone(), leave.user.clone()),
                leave.session,
            );
            self.fan_out(
                now,
                meeting_id,
                leave.session,
                &event,
                Class::Control,
                &leave.user,
            );
            self.publish(subject::session_subject(meeting_id, leave.session), event);
        }
        self.forget_meeting_if_unused(meeting_id);
    }

    /// Stops serving a meeting with no local session and no leave to announce: its roster and
    /// its remote participants' feedback throttles are forgotten, and its bus subscription ends.
    pub(super) fn forget_meeting_if_unused(&mut self, meeting_id: &MeetingId) {
        if !self
            .meetings
            .get(meeting_id)
            .is_some_and(Meeting::is_unused)
        {
            return;
        }
        if let Some(meeting) = self.meetings.remove(meeting_id) {
            for session in meeting.remote.keys() {
                self.feedback.forget(*session);
            }
        }
        self.outputs.push_back(Output::Unsubscribe {
            meeting: meeting_id.clone(),
        });
    }

    /// Announces as left the remote participants not heard from for the idle timeout (their
    /// node crashed or was cut off without saying goodbye).
    pub(super) fn expire_remote(&mut self, now: Instant, meeting_id: &MeetingId) {
        let idle = self.config.idle_timeout;
        let Some(meeting) = self.meetings.get_mut(meeting_id) else {
            return;
        };
        let (gone, next) = meeting.expire_remote(now, idle);
        if let Some(next) = next {
            self.timers
                .push(next, Timer::RemoteExpiry(meeting_id.clone()));
        }
        for (session, user) in gone {
            self.feedback.forget(session);
            let count = self.meetings[meeting_id].participant_count();
            let event = participant_event(
                MeetingEventType::ParticipantLeft,
                meeting_id,
                count,
                (user.clone(), user.clone()),
                session,
            );
            self.fan_out(now, meeting_id, session, &event, Class::Control, &user);
        }
    }
}

/// A participant event about `(user, display name)`'s `session`, encoded as a MEETING wrapper.
pub(super) fn participant_event(
    kind: MeetingEventType,
    meeting: &MeetingId,
    count: i64,
    (user, display_name): (Bytes, Bytes),
    session: SessionId,
) -> Bytes {
    let mut event = packets::participant_event(kind, meeting.as_str(), count, user, session);
    event.display_name = display_name;
    packets::encode(&packets::meeting_event(&event))
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE: Duration = Duration::from_secs(10);

    fn meeting() -> Meeting {
        Meeting::new(MeetingId::new("m").unwrap())
    }

    fn alice() -> Bytes {
        Bytes::from_static(b"alice")
    }

    #[test]
    fn a_user_back_within_the_grace_cancels_its_pending_leave() {
        let t0 = Instant::now();
        let mut m = meeting();
        let (old, new) = (SessionId::new(1, 1), SessionId::new(1, 2));
        m.add_local(old, alice());
        m.remove_local(old, alice(), t0 + Duration::from_secs(3));
        assert!(m.by_user.is_empty());
        assert!(!m.is_unused(), "a pending leave keeps the meeting served");
        m.add_local(new, alice());
        assert!(m.pending_leaves.is_empty());
        assert_eq!(m.by_user[&alice()], new);
        assert!(m.take_due_leaves(t0 + IDLE).is_empty());
    }

    #[test]
    fn leaves_are_announced_once_due_and_hastened_ones_at_once() {
        let t0 = Instant::now();
        let mut m = meeting();
        let (a, b) = (SessionId::new(1, 1), SessionId::new(1, 2));
        m.add_local(a, alice());
        m.add_local(b, Bytes::from_static(b"bob"));
        let due = t0 + Duration::from_secs(3);
        m.remove_local(a, alice(), due);
        m.remove_local(b, Bytes::from_static(b"bob"), due);
        assert!(m.take_due_leaves(t0).is_empty());
        m.hasten_leaves(t0, |s| s == b);
        let now: Vec<SessionId> = m.take_due_leaves(t0).iter().map(|p| p.session).collect();
        assert_eq!(now, [b]);
        let later: Vec<SessionId> = m.take_due_leaves(due).iter().map(|p| p.session).collect();
        assert_eq!(later, [a]);
        assert!(m.is_unused());
    }

    #[test]
    fn an_older_session_repeated_in_a_roster_reply_does_not_become_the_users_latest() {
        let t0 = Instant::now();
        let mut m = meeting();
        let (old, new) = (SessionId::new(2, 1), SessionId::new(2, 2));
        assert!(m.learn_joined(t0, old, alice(), alice()));
        assert!(m.learn_joined(t0, new, alice(), alice()));
        assert!(!m.learn_joined(t0, old, alice(), alice()));
        assert_eq!(m.by_user[&alice()], new);
        assert_eq!(m.participant_count(), 2);
        // The old session leaving does not forget the user's newer one.
        m.remote_left(old);
        assert_eq!(m.by_user[&alice()], new);
        m.remote_left(new);
        assert!(m.by_user.is_empty());
    }

    #[test]
    fn remote_peers_expire_after_the_idle_timeout_and_the_timer_follows_the_next_one() {
        let t0 = Instant::now();
        let mut m = meeting();
        let (a, b) = (SessionId::new(2, 1), SessionId::new(3, 1));
        assert!(!m.arm_remote_expiry(), "nothing to expire yet");
        assert!(m.heard_from(t0, a, &alice()));
        assert!(m.arm_remote_expiry());
        assert!(!m.arm_remote_expiry(), "armed once");
        let later = t0 + Duration::from_secs(4);
        assert!(m.heard_from(later, b, &Bytes::from_static(b"bob")));
        assert!(!m.heard_from(later, b, &Bytes::from_static(b"bob")));
        let (gone, next) = m.expire_remote(t0 + IDLE, IDLE);
        assert_eq!(gone, [(a, alice())]);
        assert_eq!(next, Some(later + IDLE));
        assert!(!m.by_user.contains_key(&alice()));
        let (gone, next) = m.expire_remote(later + IDLE, IDLE);
        assert_eq!(gone.len(), 1);
        assert_eq!(next, None);
        assert!(m.remote.is_empty());
        assert!(!m.arm_remote_expiry(), "nobody left to expire");
    }

    #[test]
    fn the_roster_of_remote_peers_is_capped_for_newcomers_only() {
        let t0 = Instant::now();
        let mut m = meeting();
        let known = SessionId::new(2, 1);
        m.heard_from(t0, known, &alice());
        assert!(!m.has_room_for(SessionId::new(2, 2), 1));
        assert!(m.has_room_for(known, 1));
        assert!(m.has_room_for(SessionId::new(2, 2), 2));
    }
}
