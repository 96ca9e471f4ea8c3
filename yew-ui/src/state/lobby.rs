//! The way into a meeting made through the API (`/m/<meeting>`): log in, ask to join, wait to be
//! admitted, take part with a room token, and the screens that end it (rejected, ended,
//! removed, token expired). A pure reducer like [`MeetingState`](super::MeetingState); the page
//! makes the API calls and reports their answers as [`LobbyAction`]s.

use videocall_types::FinalClose;

use crate::api::{ApiError, JoinAnswer, MeetingView, Participant, User};

/// Where we are on the way in (and out).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LobbyPhase {
    /// Finding out whether we are logged in.
    Starting,
    /// Not logged in: ask for a display name (guest login).
    SignIn,
    /// Asking the API to join.
    Joining,
    /// In the waiting room until a host admits (or rejects) us.
    Waiting,
    /// Admitted: the meeting page runs with this room token.
    InMeeting {
        /// Room token for the relays.
        token: String,
        /// When it expires, Unix seconds.
        expires_at: i64,
    },
    /// A host turned us away (or removed us earlier): we stay out.
    Rejected,
    /// The meeting is over for everyone.
    Ended,
    /// A host removed us from the meeting.
    Removed,
    /// Our room token expired while we were in the meeting.
    TokenExpired,
    /// Something else went wrong: the API's message.
    Failed(String),
}

/// Everything the lobby page renders.
#[derive(Debug, Clone, PartialEq)]
pub struct LobbyState {
    /// The meeting.
    pub meeting: String,
    /// Who we are, once logged in.
    pub me: Option<User>,
    /// Where we are.
    pub phase: LobbyPhase,
    /// We may admit, reject, remove, ask to mute and end.
    pub host: bool,
    /// Those waiting to be admitted (hosts only; first come first).
    pub waiting: Vec<Participant>,
    /// The last failed host action or sign-in, shown until the next success.
    pub error: Option<String>,
}

/// What the API answered, or what happened to the connection.
#[derive(Debug, Clone, PartialEq)]
pub enum LobbyAction {
    /// `GET /me`: not logged in.
    LoggedOut,
    /// Logged in (`GET /me` or a guest login).
    LoggedIn(User),
    /// Logging in failed.
    LoginFailed(ApiError),
    /// The join's answer: admitted or waiting.
    Joined(JoinAnswer),
    /// The join failed.
    JoinFailed(ApiError),
    /// The waiting room as a host sees it.
    WaitingList(Vec<Participant>),
    /// A host action (admit, reject, remove, mute, end) failed.
    HostActionFailed(ApiError),
    /// The meeting's state as the API states it.
    MeetingChecked(MeetingView),
    /// The relay connection dropped at `now` (Unix seconds): an expired token is the reason
    /// when it has expired; else the page asks the API whether we are still admitted.
    ConnectionLost {
        /// Unix seconds.
        now: i64,
    },
    /// `GET …/participants` refused us after a lost connection: a host removed us.
    NotAdmitted,
    /// We ended the meeting for everyone.
    EndedByUs,
    /// The relay ended our session for good (its close code or in-band event): a removal or
    /// an end shows its screen; a replacement is the meeting page's to show.
    SessionEnded(FinalClose),
}

impl LobbyState {
    /// The lobby of `meeting`, before we know who we are.
    pub fn new(meeting: impl Into<String>) -> Self {
        Self {
            meeting: meeting.into(),
            me: None,
            phase: LobbyPhase::Starting,
            host: false,
            waiting: Vec::new(),
            error: None,
        }
    }

    /// The screens nothing leads out of but going home.
    pub fn is_over(&self) -> bool {
        matches!(
            self.phase,
            LobbyPhase::Rejected
                | LobbyPhase::Ended
                | LobbyPhase::Removed
                | LobbyPhase::TokenExpired
        )
    }

    /// The page should ask to join again (periodically) while we wait.
    pub fn polls_join(&self) -> bool {
        self.phase == LobbyPhase::Waiting
    }

    /// The page should fetch the waiting room (periodically): hosts in the meeting.
    pub fn polls_waiting_room(&self) -> bool {
        self.host && matches!(self.phase, LobbyPhase::InMeeting { .. })
    }

    /// The state after `action`.
    pub fn reduce(mut self, action: LobbyAction) -> Self {
        if self.is_over() {
            // An answer to a request sent before the end changes nothing.
            return self;
        }
        match action {
            LobbyAction::LoggedOut => self.phase = LobbyPhase::SignIn,
            LobbyAction::LoggedIn(user) => {
                self.me = Some(user);
                self.error = None;
                self.phase = LobbyPhase::Joining;
            }
            LobbyAction::LoginFailed(e) => {
                self.phase = LobbyPhase::SignIn;
                self.error = Some(e.message);
            }
            LobbyAction::Joined(JoinAnswer::Admitted {
                token,
                expires_at,
                participant,
            }) => {
                self.host = participant.is_host();
                // A second admission while in the meeting (a renewed token) keeps it running.
                self.phase = LobbyPhase::InMeeting { token, expires_at };
            }
            LobbyAction::Joined(JoinAnswer::Waiting { participant }) => {
                self.host = participant.is_host();
                self.phase = LobbyPhase::Waiting;
            }
            LobbyAction::JoinFailed(e) => {
                self.phase = match e.code.as_str() {
                    "rejected" => LobbyPhase::Rejected,
                    "meeting_ended" => LobbyPhase::Ended,
                    "login_required" => LobbyPhase::SignIn,
                    _ => LobbyPhase::Failed(e.message),
                }
            }
            LobbyAction::WaitingList(waiting) => {
                if self.host {
                    self.waiting = waiting;
                }
            }
            LobbyAction::HostActionFailed(e) => match e.code.as_str() {
                "meeting_ended" => self.phase = LobbyPhase::Ended,
                _ => self.error = Some(e.message),
            },
            LobbyAction::MeetingChecked(view) => {
                if view.meeting.is_some_and(|m| m.state == "ended") {
                    self.phase = LobbyPhase::Ended;
                }
            }
            LobbyAction::ConnectionLost { now } => {
                if let LobbyPhase::InMeeting { expires_at, .. } = self.phase
                    && now >= expires_at
                {
                    self.phase = LobbyPhase::TokenExpired;
                }
            }
            LobbyAction::NotAdmitted => {
                if matches!(self.phase, LobbyPhase::InMeeting { .. }) {
                    self.phase = LobbyPhase::Removed;
                }
            }
            LobbyAction::EndedByUs => self.phase = LobbyPhase::Ended,
            LobbyAction::SessionEnded(FinalClose::Removed) => self.phase = LobbyPhase::Removed,
            LobbyAction::SessionEnded(FinalClose::MeetingEnded) => self.phase = LobbyPhase::Ended,
            LobbyAction::SessionEnded(FinalClose::Replaced) => {}
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Meeting;

    fn me() -> User {
        User {
            id: "u1".into(),
            display_name: "Ada".into(),
        }
    }

    fn participant(role: &str, status: &str) -> Participant {
        Participant {
            user_id: "u1".into(),
            display_name: "Ada".into(),
            role: role.into(),
            status: status.into(),
        }
    }

    fn admitted(role: &str, expires_at: i64) -> LobbyAction {
        LobbyAction::Joined(JoinAnswer::Admitted {
            token: "jwt".into(),
            expires_at,
            participant: participant(role, "admitted"),
        })
    }

    fn error(code: &str) -> ApiError {
        ApiError {
            status: 403,
            code: code.into(),
            message: format!("message of {code}"),
        }
    }

    fn view(state: &str) -> MeetingView {
        MeetingView {
            meeting_id: "m".into(),
            e2ee: true,
            meeting: Some(Meeting {
                id: "m".into(),
                state: state.into(),
                access: "protected".into(),
                waiting_room: true,
                owner_id: None,
            }),
        }
    }

    fn in_meeting(role: &str) -> LobbyState {
        LobbyState::new("m")
            .reduce(LobbyAction::LoggedIn(me()))
            .reduce(admitted(role, 1000))
    }

    #[test]
    fn a_guest_signs_in_waits_then_is_admitted_into_the_meeting() {
        let s = LobbyState::new("m").reduce(LobbyAction::LoggedOut);
        assert_eq!(s.phase, LobbyPhase::SignIn);
        let s = s.reduce(LobbyAction::LoggedIn(me()));
        assert_eq!(s.phase, LobbyPhase::Joining);
        let s = s.reduce(LobbyAction::Joined(JoinAnswer::Waiting {
            participant: participant("attendee", "waiting"),
        }));
        assert_eq!(s.phase, LobbyPhase::Waiting);
        assert!(s.polls_join() && !s.polls_waiting_room());
        let s = s.reduce(admitted("attendee", 1000));
        assert_eq!(
            s.phase,
            LobbyPhase::InMeeting {
                token: "jwt".into(),
                expires_at: 1000
            }
        );
        assert!(!s.host && !s.polls_join() && !s.polls_waiting_room());
    }

    #[test]
    fn the_host_polls_the_waiting_room_and_attendees_never_hold_one() {
        let host = in_meeting("host");
        assert!(host.host && host.polls_waiting_room());
        let waiting = vec![participant("attendee", "waiting")];
        let host = host.reduce(LobbyAction::WaitingList(waiting.clone()));
        assert_eq!(host.waiting, waiting);
        let guest = in_meeting("attendee").reduce(LobbyAction::WaitingList(waiting));
        assert!(guest.waiting.is_empty());
    }

    #[test]
    fn a_rejected_or_ended_join_shows_its_screen_and_other_errors_their_message() {
        let joining = LobbyState::new("m").reduce(LobbyAction::LoggedIn(me()));
        let rejected = joining
            .clone()
            .reduce(LobbyAction::JoinFailed(error("rejected")));
        assert_eq!(rejected.phase, LobbyPhase::Rejected);
        assert!(rejected.is_over());
        let ended = joining
            .clone()
            .reduce(LobbyAction::JoinFailed(error("meeting_ended")));
        assert_eq!(ended.phase, LobbyPhase::Ended);
        let full = joining.reduce(LobbyAction::JoinFailed(error("meeting_full")));
        assert_eq!(
            full.phase,
            LobbyPhase::Failed("message of meeting_full".into())
        );
    }

    #[test]
    fn the_meeting_ending_ends_it_for_those_waiting_and_those_in_it() {
        let waiting = LobbyState::new("m")
            .reduce(LobbyAction::LoggedIn(me()))
            .reduce(LobbyAction::Joined(JoinAnswer::Waiting {
                participant: participant("attendee", "waiting"),
            }));
        let active = waiting
            .clone()
            .reduce(LobbyAction::MeetingChecked(view("active")));
        assert_eq!(active.phase, LobbyPhase::Waiting);
        let ended = waiting.reduce(LobbyAction::MeetingChecked(view("ended")));
        assert_eq!(ended.phase, LobbyPhase::Ended);
        let ended = in_meeting("attendee").reduce(LobbyAction::MeetingChecked(view("ended")));
        assert_eq!(ended.phase, LobbyPhase::Ended);
        // A late admission answer does not reopen an ended meeting.
        assert_eq!(
            ended.reduce(admitted("attendee", 1000)).phase,
            LobbyPhase::Ended
        );
    }

    #[test]
    fn a_lost_connection_is_an_expired_token_only_past_its_expiry() {
        let s = in_meeting("attendee");
        let early = s.clone().reduce(LobbyAction::ConnectionLost { now: 999 });
        assert!(matches!(early.phase, LobbyPhase::InMeeting { .. }));
        let late = s.reduce(LobbyAction::ConnectionLost { now: 1000 });
        assert_eq!(late.phase, LobbyPhase::TokenExpired);
    }

    #[test]
    fn being_refused_the_participant_list_in_the_meeting_means_removed() {
        let removed = in_meeting("attendee").reduce(LobbyAction::NotAdmitted);
        assert_eq!(removed.phase, LobbyPhase::Removed);
        // While waiting it means nothing yet (the join answer decides).
        let waiting = LobbyState::new("m")
            .reduce(LobbyAction::LoggedIn(me()))
            .reduce(LobbyAction::Joined(JoinAnswer::Waiting {
                participant: participant("attendee", "waiting"),
            }))
            .reduce(LobbyAction::NotAdmitted);
        assert_eq!(waiting.phase, LobbyPhase::Waiting);
    }

    #[test]
    fn the_relay_ending_our_session_shows_the_removed_or_ended_screen() {
        let removed = in_meeting("attendee").reduce(LobbyAction::SessionEnded(FinalClose::Removed));
        assert_eq!(removed.phase, LobbyPhase::Removed);
        let ended =
            in_meeting("attendee").reduce(LobbyAction::SessionEnded(FinalClose::MeetingEnded));
        assert_eq!(ended.phase, LobbyPhase::Ended);
        // Replaced: the meeting page says so; the lobby stays where it is.
        let replaced =
            in_meeting("attendee").reduce(LobbyAction::SessionEnded(FinalClose::Replaced));
        assert!(matches!(replaced.phase, LobbyPhase::InMeeting { .. }));
    }

    #[test]
    fn a_failed_host_action_is_shown_and_the_host_ending_it_ends_it() {
        let s = in_meeting("host").reduce(LobbyAction::HostActionFailed(error("forbidden")));
        assert_eq!(s.error.as_deref(), Some("message of forbidden"));
        assert!(matches!(s.phase, LobbyPhase::InMeeting { .. }));
        assert_eq!(s.reduce(LobbyAction::EndedByUs).phase, LobbyPhase::Ended);
    }
}
