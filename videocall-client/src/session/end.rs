//! The ends a session does not come back from: a host removed us, a host ended the meeting, or
//! a newer connection of ours replaced this one. The relay says so in band (a MEETING
//! `PARTICIPANT_REMOVED` or `MEETING_ENDED` just before it closes us) and in the close code
//! (4010, 4011, 4012, the same on WebSocket and WebTransport, [`FinalClose`]); either one ends
//! the session, so a transport that loses the close code (a browser's WebTransport sees a
//! closed QUIC connection without its code) still ends it for a removal or an end.

use std::time::Duration;

use videocall_types::FinalClose;

use super::{Action, ConnectionState, Event, Session};

impl Session {
    /// The relay closed the transport with `code` (a WebSocket close code or a WebTransport
    /// application error code) and `reason`. A [`FinalClose`] code ends the session
    /// ([`Event::Ended`]); any other is a lost connection ([`Session::handle_disconnected`]).
    pub fn handle_closed(&mut self, now: Duration, code: u32, reason: impl Into<String>) {
        match FinalClose::from_code(code) {
            Some(why) => self.end(why),
            None => self.handle_disconnected(now, reason),
        }
    }

    /// Why the session ended for good, once it has.
    pub fn ended(&self) -> Option<FinalClose> {
        self.ended
    }

    /// Ends the session for good: peers are gone, the transport is closed, nothing reconnects.
    pub(super) fn end(&mut self, why: FinalClose) {
        if matches!(self.state, ConnectionState::Closed | ConnectionState::Idle) {
            return;
        }
        self.state = ConnectionState::Closed;
        self.transport_open = false;
        self.connect_deadline = None;
        self.transmit.clear();
        self.peer_states.clear();
        for (session, user) in std::mem::take(&mut self.peers) {
            self.events.push_back(Event::PeerLeft { session, user });
        }
        self.ended = Some(why);
        self.actions.push_back(Action::Close);
        self.events.push_back(Event::Ended(why));
    }
}
