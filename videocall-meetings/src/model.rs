//! What the store holds, as the API shows it (serialised to JSON as is).

use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use videocall_auth::Grants;

use crate::StoreError;

/// Declares a text enum stored in a TEXT column (`as_str` / `parse` and serde in snake_case).
macro_rules! text_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vdoc])* $variant),+ }

        impl $name {
            /// The stored text.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            fn parse(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    other => Err(StoreError::Corrupt(format!(
                        "{} {other:?}", stringify!($name)
                    ))),
                }
            }
        }
    };
}

text_enum!(
    /// Where a meeting is in its life.
    MeetingState {
        /// Created; nobody admitted at the moment.
        Idle = "idle",
        /// Someone is admitted.
        Active = "active",
        /// Ended by a host: nobody joins any more.
        Ended = "ended",
    }
);

text_enum!(
    /// Who may join without asking the API.
    Access {
        /// A plain relay join (no token) is let in.
        Open = "open",
        /// Only a room token from the API's join opens it.
        Protected = "protected",
    }
);

text_enum!(
    /// A participant's role.
    Role {
        /// Admits, rejects, removes, mutes, changes settings, ends.
        Host = "host",
        /// Sends and receives.
        Attendee = "attendee",
        /// Receives only.
        Observer = "observer",
    }
);

text_enum!(
    /// Where a participant stands.
    ParticipantStatus {
        /// In the waiting room.
        Waiting = "waiting",
        /// In the meeting (holds one of its `max_participants` places).
        Admitted = "admitted",
        /// Turned away or removed by a host; stays out.
        Rejected = "rejected",
        /// Left of their own accord; may join again.
        Left = "left",
    }
);

impl Role {
    /// What a room token for this role allows.
    pub fn grants(self) -> Grants {
        Grants {
            publish: self != Role::Observer,
            subscribe: true,
            host: self == Role::Host,
        }
    }
}

/// A meeting and its settings. Times are Unix milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Meeting {
    /// Its id (the URL's meeting part).
    pub id: String,
    /// The user who created it; none for a meeting created by an open join.
    pub owner_id: Option<String>,
    /// Idle, active or ended.
    pub state: MeetingState,
    /// Open or protected.
    pub access: Access,
    /// Joiners wait until a host admits them.
    pub waiting_room: bool,
    /// Media must be end-to-end encrypted.
    pub e2ee_required: bool,
    /// Most people admitted at once (hosts included).
    pub max_participants: i64,
    /// When it was created.
    pub created_at: i64,
    /// When someone was first admitted.
    pub started_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
}

impl Meeting {
    pub(crate) const COLUMNS: &'static str = "id, owner_id, state, access, waiting_room, \
        e2ee_required, max_participants, created_at, started_at, ended_at";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.try_get("id")?,
            owner_id: row.try_get("owner_id")?,
            state: MeetingState::parse(&row.try_get::<String, _>("state")?)?,
            access: Access::parse(&row.try_get::<String, _>("access")?)?,
            waiting_room: row.try_get::<i64, _>("waiting_room")? != 0,
            e2ee_required: row.try_get::<i64, _>("e2ee_required")? != 0,
            max_participants: row.try_get("max_participants")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            ended_at: row.try_get("ended_at")?,
        })
    }

    /// Whether `user` owns it.
    pub fn is_owner(&self, user: &str) -> bool {
        self.owner_id.as_deref() == Some(user)
    }
}

/// Settings of a meeting to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMeeting {
    /// Its id; a random one when none is asked for.
    pub id: Option<videocall_types::MeetingId>,
    /// Open or protected.
    pub access: Access,
    /// Joiners wait until admitted.
    pub waiting_room: bool,
    /// Media must be end-to-end encrypted.
    pub e2ee_required: bool,
    /// Most people admitted at once (1..=[`MAX_PARTICIPANTS_LIMIT`](crate::MAX_PARTICIPANTS_LIMIT)).
    pub max_participants: i64,
}

impl Default for NewMeeting {
    fn default() -> Self {
        Self {
            id: None,
            access: Access::Protected,
            waiting_room: false,
            e2ee_required: true,
            max_participants: crate::DEFAULT_MAX_PARTICIPANTS,
        }
    }
}

/// Settings to change; `None` keeps the current value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    /// Open or protected.
    pub access: Option<Access>,
    /// Joiners wait until admitted.
    pub waiting_room: Option<bool>,
    /// Media must be end-to-end encrypted.
    pub e2ee_required: Option<bool>,
    /// Most people admitted at once (not below those admitted now).
    pub max_participants: Option<i64>,
}

/// One person's place in one meeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Participant {
    /// The meeting.
    pub meeting_id: String,
    /// The user.
    pub user_id: String,
    /// Name shown to others.
    pub display_name: String,
    /// Host, attendee or observer.
    pub role: Role,
    /// Waiting, admitted, rejected or left.
    pub status: ParticipantStatus,
    /// When they first asked to join.
    pub joined_at: i64,
    /// When they were last admitted.
    pub admitted_at: Option<i64>,
    /// When they last left (or were removed).
    pub left_at: Option<i64>,
}

impl Participant {
    pub(crate) const COLUMNS: &'static str =
        "meeting_id, user_id, display_name, role, status, joined_at, admitted_at, left_at";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            meeting_id: row.try_get("meeting_id")?,
            user_id: row.try_get("user_id")?,
            display_name: row.try_get("display_name")?,
            role: Role::parse(&row.try_get::<String, _>("role")?)?,
            status: ParticipantStatus::parse(&row.try_get::<String, _>("status")?)?,
            joined_at: row.try_get("joined_at")?,
            admitted_at: row.try_get("admitted_at")?,
            left_at: row.try_get("left_at")?,
        })
    }
}

/// The answer to a join.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    /// In: the caller signs a room token for this participant.
    Admitted(Participant),
    /// In the waiting room until a host admits them.
    Waiting(Participant),
}

/// What "admit all" did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdmitAll {
    /// Those admitted now.
    pub admitted: Vec<Participant>,
    /// Those still waiting (the meeting filled up).
    pub still_waiting: i64,
}

/// A user: a guest (named, no account) or someone who logged in with the identity provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    /// Their id: the identity the relays stamp on their packets.
    pub id: String,
    /// Name shown to others.
    pub display_name: String,
    /// `guest` or `oidc`.
    pub provider: String,
    /// E-mail address from the identity provider, if it gave one.
    pub email: Option<String>,
}

impl User {
    pub(crate) const COLUMNS: &'static str = "id, display_name, provider, email";

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: row.try_get("id")?,
            display_name: row.try_get("display_name")?,
            provider: row.try_get("provider")?,
            email: row.try_get("email")?,
        })
    }
}

/// A login: what the session cookie names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSession {
    /// Its random id (what the signed cookie carries).
    pub id: String,
    /// Whose.
    pub user: User,
    /// Until when it is valid (Unix milliseconds).
    pub expires_at: i64,
}
