//! Validated identifiers. Anything that reaches a bus subject or a log line goes through these.

use std::fmt;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Empty id.
    #[error("{kind} is empty")]
    Empty {
        /// Which id.
        kind: &'static str,
    },
    /// Longer than allowed.
    #[error("{kind} is {len} bytes long; at most {max} are allowed")]
    TooLong {
        /// Which id.
        kind: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// A character outside the allowed set.
    #[error("{kind} contains {found:?}; allowed: {allowed}")]
    BadChar {
        /// Which id.
        kind: &'static str,
        /// The first offending character.
        found: char,
        /// The allowed set, for the message.
        allowed: &'static str,
    },
    /// The reserved server identity.
    #[error("user id {0:?} is reserved for the server")]
    Reserved(String),
}

/// A meeting id: 1–64 characters of `[A-Za-z0-9_-]`, so it is safe as a NATS subject token,
/// a URL path segment and a log field.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MeetingId(String);

impl MeetingId {
    /// Longest accepted meeting id, in characters.
    pub const MAX_LEN: usize = 64;

    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        const KIND: &str = "meeting id";
        if id.is_empty() {
            return Err(IdError::Empty { kind: KIND });
        }
        if id.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                kind: KIND,
                len: id.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some(found) = id
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '-'))
        {
            return Err(IdError::BadChar {
                kind: KIND,
                found,
                allowed: "A-Z a-z 0-9 _ -",
            });
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MeetingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

// Lets maps keyed by `MeetingId` be searched with a `&str` read off the wire; sound because the
// derived `Hash`/`Eq` are those of the inner `String`.
impl std::borrow::Borrow<str> for MeetingId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for MeetingId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A user id as people type it (often an e-mail address): 1–256 bytes of UTF-8 without control
/// characters, and never the server's own id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Longest accepted user id, in bytes.
    pub const MAX_LEN: usize = 256;

    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        const KIND: &str = "user id";
        if id.is_empty() {
            return Err(IdError::Empty { kind: KIND });
        }
        if id.len() > Self::MAX_LEN {
            return Err(IdError::TooLong {
                kind: KIND,
                len: id.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some(found) = id.chars().find(|c| c.is_control()) {
            return Err(IdError::BadChar {
                kind: KIND,
                found,
                allowed: "printable characters",
            });
        }
        if id == crate::SYSTEM_USER_ID {
            return Err(IdError::Reserved(id));
        }
        Ok(Self(id))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as wire bytes (`PacketWrapper.user_id`).
    pub fn as_bytes(&self) -> &[u8] {
        self.0.as_bytes()
    }

    /// An id read off the wire (`PacketWrapper.user_id`, as the relay stamped it): `None` unless
    /// it is UTF-8 and a valid user id (the server's own id is not).
    pub fn from_wire(bytes: &[u8]) -> Option<Self> {
        std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| Self::new(s).ok())
    }
}

impl PartialEq<str> for UserId {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for UserId {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for UserId {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl std::borrow::Borrow<str> for UserId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for UserId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for UserId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

/// A session id, unique across the relay nodes of a deployment: the node's 20-bit id in the high
/// bits and a per-node 32-bit counter in the low bits. It stays below 2^53 so JavaScript numbers
/// hold it exactly. Zero means "no session" on the wire and is never assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(u64);

impl SessionId {
    /// Number of bits of the node part.
    pub const NODE_BITS: u32 = 20;

    /// Builds the id of the `seq`-th session of node `node` (only the low 20 bits of `node`
    /// are used).
    pub fn new(node: u32, seq: u32) -> Self {
        let node = u64::from(node) & ((1 << Self::NODE_BITS) - 1);
        Self((node << 32) | u64::from(seq))
    }

    /// Wraps a value read from the wire. Zero is not a session.
    pub fn from_wire(raw: u64) -> Option<Self> {
        (raw != 0).then_some(Self(raw))
    }

    /// The wire value.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The node part.
    pub fn node(self) -> u32 {
        (self.0 >> 32) as u32
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Which of a publisher's video streams: the camera or the shared screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamKind {
    /// The camera (MediaType VIDEO).
    Camera,
    /// The shared screen (MediaType SCREEN).
    Screen,
}

/// One video stream of a meeting: whose, and which. Clients key decoders, reorder buffers and
/// statistics by it; the relay's keyframe waits are per stream too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamKey {
    /// The publishing session.
    pub session: SessionId,
    /// Camera or screen.
    pub kind: StreamKind,
}

impl StreamKey {
    /// The camera stream of `session`.
    pub fn camera(session: SessionId) -> Self {
        Self {
            session,
            kind: StreamKind::Camera,
        }
    }

    /// The screen stream of `session`.
    pub fn screen(session: SessionId) -> Self {
        Self {
            session,
            kind: StreamKind::Screen,
        }
    }

    /// The stream of `session` a video packet belongs to: the screen for MediaType SCREEN
    /// (`screen`), else the camera.
    pub fn of_video(session: SessionId, screen: bool) -> Self {
        if screen {
            Self::screen(session)
        } else {
            Self::camera(session)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meeting_ids_accept_the_safe_charset_only() {
        assert!(MeetingId::new("team-standup_42").is_ok());
        assert!(MeetingId::new("a".repeat(64)).is_ok());
        assert_eq!(
            MeetingId::new(""),
            Err(IdError::Empty { kind: "meeting id" })
        );
        assert!(matches!(
            MeetingId::new("a".repeat(65)),
            Err(IdError::TooLong { len: 65, .. })
        ));
        for bad in ["a.b", "a*", "a>", "a b", "ä", "../x", "a/b"] {
            assert!(
                matches!(MeetingId::new(bad), Err(IdError::BadChar { .. })),
                "{bad} accepted"
            );
        }
    }

    #[test]
    fn user_ids_refuse_control_chars_and_the_system_id() {
        assert!(UserId::new("alice@example.com").is_ok());
        assert!(UserId::new("Zoë").is_ok());
        assert!(matches!(UserId::new("a\nb"), Err(IdError::BadChar { .. })));
        assert!(matches!(
            UserId::new(crate::SYSTEM_USER_ID),
            Err(IdError::Reserved(_))
        ));
        assert!(matches!(
            UserId::new("x".repeat(257)),
            Err(IdError::TooLong { .. })
        ));
    }

    #[test]
    fn session_ids_keep_node_and_counter_and_stay_javascript_safe() {
        let id = SessionId::new(0xF_FFFF, u32::MAX);
        assert_eq!(id.node(), 0xF_FFFF);
        assert!(id.get() < (1u64 << 53));
        assert_eq!(SessionId::new(0x1F_FFFF, 1).node(), 0xF_FFFF);
        assert_eq!(SessionId::from_wire(0), None);
        assert_eq!(SessionId::from_wire(7).map(SessionId::get), Some(7));
    }
}
