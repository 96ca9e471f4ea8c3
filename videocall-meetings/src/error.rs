//! The store's errors: opening it ([`StoreError`]) and the meeting rules ([`MeetingError`]).

/// The database could not be opened or used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Neither `postgres://` nor `sqlite:`.
    #[error("DATABASE_URL {0} is not supported: use postgres://… or sqlite://path")]
    UnsupportedUrl(String),
    /// Could not connect (down, wrong host, credentials, database or file).
    #[error("cannot open the meeting database {url}: {reason}")]
    Unreachable {
        /// The URL without its password.
        url: String,
        /// The driver's reason.
        reason: String,
    },
    /// Connected, but the schema could not be brought up to date.
    #[error("cannot migrate the meeting database {url}: {reason}")]
    Migration {
        /// The URL without its password.
        url: String,
        /// The migrator's reason.
        reason: String,
    },
    /// A query failed (connection lost, database full, …).
    #[error("meeting database error: {0}")]
    Query(#[from] sqlx::Error),
    /// A stored row holds a value this version does not know.
    #[error("meeting database holds an unexpected value: {0}")]
    Corrupt(String),
}

/// Why a meeting operation was refused. Each maps to one HTTP status and one JSON `code`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MeetingError {
    /// No such meeting (or no such participant in it).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The meeting has ended.
    #[error("the meeting has ended")]
    Ended,
    /// The caller may not do this (not the owner or a host; not a participant).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The host rejected or removed this user; they stay out.
    #[error("you were turned away from this meeting")]
    Rejected,
    /// The meeting holds `max_participants` admitted people already.
    #[error("the meeting is full ({0} participants)")]
    Full(i64),
    /// The waiting room holds [`MAX_WAITING`](crate::MAX_WAITING) people already.
    #[error("the waiting room is full")]
    WaitingRoomFull,
    /// A meeting with this id exists.
    #[error("a meeting with this id exists")]
    AlreadyExists,
    /// A setting or name out of range.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for MeetingError {
    fn from(e: sqlx::Error) -> Self {
        Self::Store(StoreError::Query(e))
    }
}

impl MeetingError {
    /// Short label for JSON error codes and counters.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Ended => "meeting_ended",
            Self::Forbidden(_) => "forbidden",
            Self::Rejected => "rejected",
            Self::Full(_) => "meeting_full",
            Self::WaitingRoomFull => "waiting_room_full",
            Self::AlreadyExists => "already_exists",
            Self::Invalid(_) => "invalid_input",
            Self::Store(_) => "database_unavailable",
        }
    }
}
