//! Stopping a node: the drain of a rolling update, then the shutdown.
//!
//! A drain ([`Relay::handle_drain`]) refuses joins and sends every local session a MEETING
//! `NODE_DRAINING` event: its client reconnects at once, to another node of the deployment. A
//! session that goes leaves as any other (its leave waits the reconnect grace), and when its
//! user comes back through another node within the grace — that node's PARTICIPANT_JOINED
//! reaches this one over the bus — the leave is never announced: peers see the new session
//! replace the old one, as after any reconnect, and keep its tile. The node is
//! [`drained`](Relay::drained) once no session is left and no leave waits that anyone else could
//! hear; the shutdown ([`Relay::handle_shutdown`]) then closes whatever remains.

use std::time::Instant;

use videocall_types::{MeetingEventType, MeetingId, MeetingPacket, SessionId, packets};

use super::{CloseReason, Relay};

/// What a draining node tells its sessions (MEETING `NODE_DRAINING`, `message`).
pub const DRAINING_MESSAGE: &str = "this server is stopping for an update; reconnect to another";

impl Relay {
    /// The node is about to stop (a rolling update): joins are refused from now on
    /// ([`JoinError::ShuttingDown`](crate::JoinError::ShuttingDown)) and every local session is
    /// told to reconnect elsewhere (MEETING `NODE_DRAINING`). Sessions stay open until they go
    /// or [`Relay::handle_shutdown`] closes them. Telling twice does nothing more.
    pub fn handle_drain(&mut self, _now: Instant) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            let s = &self.sessions[&id];
            let event = MeetingPacket {
                event_type: MeetingEventType::NodeDraining as i32,
                room_id: s.meeting.as_str().to_owned(),
                message: DRAINING_MESSAGE.to_owned(),
                target_user_id: s.user_bytes.clone(),
                session_id: id.get(),
                ..Default::default()
            };
            self.metrics.drain_notices += 1;
            self.send_to(id, packets::encode(&packets::meeting_event(&event)));
        }
    }

    /// Whether a draining node has nothing left to wait for: no local session, and no leave
    /// waiting its reconnect grace in a meeting that other nodes serve (a user who moved away
    /// cancels its leave when its new session's JOINED arrives; where nobody else is in the
    /// meeting, nobody could hear the leave).
    pub fn drained(&self) -> bool {
        // Sessions first: the scan of meetings only runs once they have all gone.
        self.sessions.is_empty() && self.meetings.values().all(|m| m.remote.is_empty())
    }

    /// The node is stopping: every local session is closed, and the leaves of its sessions
    /// (and those still waiting for their reconnect grace) are published on the bus at once, so
    /// other nodes' participants see them go now rather than after the idle timeout. Joins are
    /// refused from now on.
    pub fn handle_shutdown(&mut self, now: Instant) {
        self.stopping = true;
        let mut ids: Vec<SessionId> = self.sessions.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.close(now, id, CloseReason::Shutdown);
        }
        let meetings: Vec<MeetingId> = self.meetings.keys().cloned().collect();
        for meeting_id in meetings {
            if let Some(meeting) = self.meetings.get_mut(&meeting_id) {
                meeting.hasten_leaves(now, |_| true);
            }
            self.announce_leaves(now, &meeting_id);
        }
    }
}
