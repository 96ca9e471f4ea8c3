//! The meeting API (`/api/v1/`, `docs/openapi.yaml`) as the browser app uses it: typed answers
//! here (they build natively, so the lobby reducer's tests use them), the `fetch` calls in
//! [`fetch`] (wasm32 only). Every failure is an [`ApiError`] carrying the API's own
//! `{code, message}`, which the page shows as it is.

use serde::{Deserialize, Serialize};

#[cfg(target_arch = "wasm32")]
pub(crate) mod fetch;

/// An API failure: the status and the API's `{code, message}`; `status` 0 when the request
/// never got an answer (network down, not JSON).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    /// HTTP status (0: no answer).
    #[serde(default)]
    pub status: u16,
    /// The API's error code (`login_required`, `rejected`, `meeting_ended`, …).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl ApiError {
    /// A failure without an answer from the API.
    pub fn network(message: impl Into<String>) -> Self {
        Self {
            status: 0,
            code: "network".into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

/// The logged-in user (`GET /api/v1/me`, `POST /api/v1/login/guest`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct User {
    /// User id: the `sub` of room tokens, the user id the relays stamp.
    pub id: String,
    /// Display name.
    pub display_name: String,
}

/// A stored meeting.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Meeting {
    /// Meeting id.
    pub id: String,
    /// `idle`, `active` or `ended`.
    pub state: String,
    /// `open` or `protected`.
    pub access: String,
    /// Joiners wait for a host.
    pub waiting_room: bool,
    /// Owner (its host), if any.
    #[serde(default)]
    pub owner_id: Option<String>,
}

/// `GET /api/v1/meetings/{id}`: `meeting` is absent for a meeting the store does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct MeetingView {
    /// Meeting id.
    pub meeting_id: String,
    /// Media is end-to-end encrypted.
    pub e2ee: bool,
    /// The stored meeting.
    #[serde(default)]
    pub meeting: Option<Meeting>,
}

/// Settings of a new meeting (`POST /api/v1/meetings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewMeeting {
    /// Joiners wait until a host admits them.
    pub waiting_room: bool,
}

/// A participant (`status`: waiting, admitted, rejected, left; `role`: host, attendee,
/// observer).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Participant {
    /// User id.
    pub user_id: String,
    /// Display name.
    pub display_name: String,
    /// Role.
    pub role: String,
    /// Status.
    pub status: String,
}

impl Participant {
    /// May admit, remove and end.
    pub fn is_host(&self) -> bool {
        self.role == "host"
    }
}

/// The answer to `POST /api/v1/meetings/{id}/join`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum JoinAnswer {
    /// In: the room token opens the meeting on the relays until `expires_at` (Unix seconds).
    Admitted {
        /// Room token (HS256 JWT).
        token: String,
        /// Unix seconds.
        expires_at: i64,
        /// Ourselves in the meeting.
        participant: Participant,
    },
    /// In the waiting room: join again once a host admitted us.
    Waiting {
        /// Ourselves, waiting.
        participant: Participant,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_answers_and_errors_read_as_the_api_writes_them() {
        let admitted: JoinAnswer = serde_json::from_str(
            r#"{"status":"admitted","token":"t","expires_at":5,"participant":
            {"meeting_id":"m","user_id":"u","display_name":"Ada","role":"host","status":"admitted",
            "joined_at":1,"admitted_at":2,"left_at":null}}"#,
        )
        .unwrap();
        let JoinAnswer::Admitted { participant, .. } = admitted else {
            panic!("admitted expected");
        };
        assert!(participant.is_host());
        let waiting: JoinAnswer = serde_json::from_str(
            r#"{"status":"waiting","participant":{"user_id":"g","display_name":"Bob",
            "role":"attendee","status":"waiting"}}"#,
        )
        .unwrap();
        assert!(matches!(waiting, JoinAnswer::Waiting { participant } if !participant.is_host()));
        let error: ApiError =
            serde_json::from_str(r#"{"code":"rejected","message":"a host turned you away"}"#)
                .unwrap();
        assert_eq!(error.to_string(), "a host turned you away (rejected)");
    }
}
