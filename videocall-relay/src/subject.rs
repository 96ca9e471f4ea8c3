//! Bus subjects: a session publishes on `room.<meeting>.<session>`; a packet meant for one
//! session only (CONGESTION, a relay's KEYFRAME_REQUEST) goes on
//! `room.<meeting>.<origin>.<target>`. A node subscribes once per meeting to `room.<meeting>.>`.
//! Meeting ids are validated (`[A-Za-z0-9_-]`), so they are always one subject token.

use std::sync::Arc;

use videocall_types::{MeetingId, SessionId};

/// The subject a node subscribes to for `meeting`.
pub fn meeting_subject(meeting: &MeetingId) -> String {
    format!("room.{meeting}.>")
}

/// The subject `origin` publishes on in `meeting`.
pub(crate) fn session_subject(meeting: &MeetingId, origin: SessionId) -> Arc<str> {
    format!("room.{meeting}.{origin}").into()
}

/// The subject of a packet from `origin` for `target` only.
pub(crate) fn directed_subject(
    meeting: &MeetingId,
    origin: SessionId,
    target: SessionId,
) -> Arc<str> {
    format!("room.{meeting}.{origin}.{target}").into()
}

/// A parsed subject.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Parsed<'a> {
    pub(crate) meeting: &'a str,
    pub(crate) origin: SessionId,
    pub(crate) target: Option<SessionId>,
}

/// Parses a subject made by [`session_subject`] or [`directed_subject`].
pub(crate) fn parse(subject: &str) -> Option<Parsed<'_>> {
    let mut tokens = subject.split('.');
    if tokens.next()? != "room" {
        return None;
    }
    let meeting = tokens.next()?;
    let origin = SessionId::from_wire(tokens.next()?.parse().ok()?)?;
    let target = match tokens.next() {
        None => None,
        Some(t) => Some(SessionId::from_wire(t.parse().ok()?)?),
    };
    if tokens.next().is_some() {
        return None;
    }
    Some(Parsed {
        meeting,
        origin,
        target,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip_and_junk_is_refused() {
        let m = MeetingId::new("m-1").unwrap();
        let a = SessionId::new(3, 9);
        let b = SessionId::new(4, 1);
        assert_eq!(meeting_subject(&m), "room.m-1.>");
        let one = session_subject(&m, a);
        let p = parse(&one).unwrap();
        assert_eq!((p.meeting, p.origin, p.target), ("m-1", a, None));
        let two = directed_subject(&m, a, b);
        let p = parse(&two).unwrap();
        assert_eq!(p.target, Some(b));
        for junk in [
            "",
            "room",
            "room.m",
            "room.m.x",
            "room.m.0",
            "other.m.1",
            "room.m.1.2.3",
        ] {
            assert_eq!(parse(junk), None, "{junk}");
        }
    }
}
