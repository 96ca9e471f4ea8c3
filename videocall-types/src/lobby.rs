//! The session path every transport connects to: `/lobby/{user_id}/{meeting_id}`, with an
//! optional query (`?framed=1` for the WebTransport framed stream, …).
//!
//! Clients build it with [`LobbyPath`] (the user id is percent-encoded: ids are e-mail
//! addresses and names, with `/`, `?`, `#`, `%`, spaces and any Unicode); the WebTransport relay
//! reads it off the CONNECT request with [`parse_lobby_path`] (the WebSocket relay's router does
//! the same job with its own decoder). Both are pure so that they can be fuzzed without a QUIC
//! stack; the escaping is the `percent-encoding` crate's.

use std::fmt;

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::{IdError, MeetingId, UserId};

/// What is escaped in a path segment or a query value: everything but RFC 3986's unreserved
/// characters, so a user id can never add a segment (`/`), start a query (`?`) or a fragment
/// (`#`), or be decoded twice (`%`).
const ESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Why a lobby path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LobbyPathError {
    /// Not of the form `/lobby/{user_id}/{meeting_id}`.
    #[error("{0}: expected /lobby/{{user_id}}/{{meeting_id}}")]
    Shape(String),
    /// The user id is not valid percent-encoded UTF-8.
    #[error("user id is not valid percent-encoded UTF-8")]
    Encoding,
    /// A refused id.
    #[error(transparent)]
    Id(#[from] IdError),
}

/// Who joins what: an open meeting by its ids, or whatever a room token names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Open { user: UserId, meeting: MeetingId },
    Token(String),
}

/// A session path as a client connects to it; [`fmt::Display`] renders it percent-encoded
/// (`/lobby/alice%2Fbob/m-1?framed=1`).
///
/// ```
/// # use videocall_types::{lobby::LobbyPath, MeetingId, UserId};
/// let user = UserId::new("Zoë Smith/ops").unwrap();
/// let path = LobbyPath::open(user, MeetingId::new("m-1").unwrap()).with_query("framed", "1");
/// assert_eq!(path.to_string(), "/lobby/Zo%C3%AB%20Smith%2Fops/m-1?framed=1");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LobbyPath {
    target: Target,
    query: Vec<(&'static str, String)>,
}

impl LobbyPath {
    /// `/lobby/{user}/{meeting}`: joining an open meeting.
    pub fn open(user: UserId, meeting: MeetingId) -> Self {
        Self {
            target: Target::Open { user, meeting },
            query: Vec::new(),
        }
    }

    /// `/lobby?token={token}`: joining with a room access token (which names user and meeting).
    pub fn token(token: impl Into<String>) -> Self {
        Self {
            target: Target::Token(token.into()),
            query: Vec::new(),
        }
    }

    /// Adds `key=value` to the query (`value` percent-encoded; keys are ours, plain ASCII).
    pub fn with_query(mut self, key: &'static str, value: impl Into<String>) -> Self {
        self.query.push((key, value.into()));
        self
    }

    /// The user and meeting of an open join (`None` for a token join).
    pub fn ids(&self) -> Option<(&UserId, &MeetingId)> {
        match &self.target {
            Target::Open { user, meeting } => Some((user, meeting)),
            Target::Token(_) => None,
        }
    }
}

impl fmt::Display for LobbyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let token = match &self.target {
            Target::Open { user, meeting } => {
                let user = utf8_percent_encode(user.as_str(), ESCAPED);
                let meeting = utf8_percent_encode(meeting.as_str(), ESCAPED);
                write!(f, "/lobby/{user}/{meeting}")?;
                None
            }
            Target::Token(token) => {
                f.write_str("/lobby")?;
                Some(("token", token.as_str()))
            }
        };
        let query = token
            .into_iter()
            .chain(self.query.iter().map(|(k, v)| (*k, v.as_str())));
        for (i, (key, value)) in query.enumerate() {
            let value = utf8_percent_encode(value, ESCAPED);
            write!(f, "{}{key}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

/// Parses `/lobby/{user_id}/{meeting_id}`: the user id percent-decoded, the query ignored.
pub fn parse_lobby_path(path: &str) -> Result<(UserId, MeetingId), LobbyPathError> {
    let path = path.split('?').next().unwrap_or_default();
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("lobby"), Some(user), Some(meeting), None) => {
            let user = percent_decode(user).ok_or(LobbyPathError::Encoding)?;
            Ok((UserId::new(user)?, MeetingId::new(meeting)?))
        }
        _ => Err(LobbyPathError::Shape(path.to_owned())),
    }
}

/// Decodes `%XX` escapes (two hex digits; a `%` not followed by two is kept as it is). `None`
/// when the result is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(user: &str, meeting: &str) -> (UserId, MeetingId) {
        (UserId::new(user).unwrap(), MeetingId::new(meeting).unwrap())
    }

    #[test]
    fn lobby_paths_parse_and_bad_ones_say_why() {
        let (user, meeting) = parse_lobby_path("/lobby/alice%40example.com/m-1?x=1").unwrap();
        assert_eq!(
            (user.as_str(), meeting.as_str()),
            ("alice@example.com", "m-1")
        );
        assert!(matches!(
            parse_lobby_path("/lobby/alice/bad.meeting"),
            Err(LobbyPathError::Id(IdError::BadChar {
                kind: "meeting id",
                ..
            }))
        ));
        let shape = parse_lobby_path("/other/a/b").unwrap_err();
        assert!(shape.to_string().contains("expected /lobby"), "{shape}");
        assert!(parse_lobby_path("/lobby/a").is_err());
        assert_eq!(
            parse_lobby_path("/lobby/%ff/m"),
            Err(LobbyPathError::Encoding)
        );
    }

    #[test]
    fn user_ids_with_slashes_queries_spaces_percents_and_unicode_round_trip() {
        for user in [
            "a/b",
            "who?framed=0",
            "Zoë Smith",
            "100%",
            "%41",
            "x#y",
            "a+b&c=d",
            "日本語 ユーザー",
            "emoji 🎥",
            "../..",
        ] {
            let (user, meeting) = ids(user, "team_42");
            let path = LobbyPath::open(user.clone(), meeting.clone()).with_query("framed", "1");
            let text = path.to_string();
            // One path, one query: nothing in the user id escapes its segment.
            assert_eq!(text.matches('/').count(), 3, "{text}");
            assert_eq!(text.matches('?').count(), 1, "{text}");
            assert!(text.ends_with("/team_42?framed=1"), "{text}");
            assert!(text.is_ascii(), "{text}");
            assert_eq!(parse_lobby_path(&text), Ok((user, meeting)), "{text}");
        }
    }

    #[test]
    fn token_paths_carry_the_token_escaped_and_further_query_after_it() {
        let path = LobbyPath::token("a.b+c/d=").with_query("framed", "1");
        assert_eq!(path.to_string(), "/lobby?token=a.b%2Bc%2Fd%3D&framed=1");
        assert_eq!(path.ids(), None);
        let plain = LobbyPath::open(ids("bob", "m").0, ids("bob", "m").1);
        assert_eq!(plain.to_string(), "/lobby/bob/m");
        assert_eq!(plain.ids().map(|(u, _)| u.as_str()), Some("bob"));
    }

    #[test]
    fn percent_decoding_takes_exactly_two_hex_digits() {
        assert_eq!(percent_decode("a%41%4a%4A").as_deref(), Some("aAJJ"));
        assert_eq!(percent_decode("%c3%a9").as_deref(), Some("é"));
        // Not escapes: kept as they are.
        for kept in ["%", "%4", "a%", "%zz", "%+1", "%-1", "% 1", "100%"] {
            assert_eq!(percent_decode(kept).as_deref(), Some(kept), "{kept}");
        }
        // A `%` right before a multi-byte character is not an escape (and does not split it).
        assert_eq!(percent_decode("%é").as_deref(), Some("%é"));
        assert_eq!(percent_decode("%4é").as_deref(), Some("%4é"));
    }
}
