//! The session path every transport connects to: `/lobby/{user_id}/{meeting_id}`.
//!
//! The WebTransport relay reads the path off the CONNECT request itself (the WebSocket relay's
//! router does the same job with its own decoder). The parser is pure so that it can be fuzzed
//! without a QUIC stack.

use crate::{IdError, MeetingId, UserId};

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
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match bytes.get(i..i + 3) {
            Some([b'%', hi, lo]) => hex(*hi).zip(hex(*lo)).map(|(hi, lo)| hi << 4 | lo),
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn hex(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
