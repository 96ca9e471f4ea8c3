//! Who may join, and as whom: grants, display names, removed users, and **no takeover** — a
//! connection for a user already present in the meeting (here or on another node) is refused
//! unless it proves it is the same client: a room token for that user, or the reconnect secret
//! the relay issued to the present session.
//!
//! A reconnect secret is `<session id hex>.<HMAC-SHA256(key, meeting, user, session)[..16] hex>`:
//! nodes sharing the key verify each other's secrets without sharing state, and a secret only
//! ever replaces the session it was issued to.

use std::time::Instant;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use videocall_types::{MeetingEventType, MeetingId, MeetingPacket, SessionId, UserId, packets};

use super::{CloseReason, Relay};
use crate::error::JoinError;

pub use videocall_auth::Grants;

/// Longest display name kept, in bytes; longer names are cut (at a character boundary).
pub const MAX_DISPLAY_NAME_BYTES: usize = 128;
/// Most removed users remembered per meeting; past it removals still disconnect but a removed
/// user's later join is no longer refused by this node.
pub const MAX_REMOVED_PER_MEETING: usize = 1024;
/// Longest reconnect secret looked at (16 hex digits, a dot, 32 hex digits).
const MAX_SECRET_LEN: usize = 64;
/// Bytes of the HMAC kept in a secret.
const TAG_BYTES: usize = 16;
/// A participant not heard from for this long (two heartbeat periods) is no longer present:
/// its id may be joined without proof.
pub const PRESENCE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// How a connection proved who it is, beyond the user id it claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Nothing: a plain join of an open meeting.
    None,
    /// A verified room token whose subject is the user: it may replace the user's session.
    Token,
    /// The reconnect secret issued to the user's earlier session (`?reconnect=`).
    Reconnect(String),
}

/// A join the transport has admitted: the token was verified, or the meeting gate said the
/// meeting is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Join {
    /// The participant (from the token, or the path of an open meeting).
    pub user: UserId,
    /// The meeting.
    pub meeting: MeetingId,
    /// Name shown to others.
    pub display_name: String,
    /// What the participant may do.
    pub grants: Grants,
    /// The meeting is end-to-end encrypted by a signed or stored record (the room token's
    /// `e2ee` claim, the meeting store): clear media from this session is dropped and counted
    /// (`cleartext_in_e2ee_meeting`), and from then on in the whole meeting on this node.
    pub e2ee: bool,
    /// What proves this connection is the user's own client.
    pub proof: Proof,
    /// The client understands PRESENCE (it asked with `?presence=1`): it is sent a peer's
    /// heartbeat only when the peer's state changes, and presence digests at a low rate.
    /// Clients of the original (false) receive every heartbeat.
    pub presence: bool,
}

impl Join {
    /// A plain join of an open meeting: publish and subscribe, named by its user id, no proof.
    pub fn open(user: UserId, meeting: MeetingId) -> Self {
        Self {
            display_name: user.as_str().to_owned(),
            user,
            meeting,
            grants: Grants {
                publish: true,
                subscribe: true,
                host: false,
            },
            e2ee: false,
            proof: Proof::None,
            presence: false,
        }
    }

    /// A join the caller vouches for as the user's own (as a token's subject).
    pub fn trusted(user: UserId, meeting: MeetingId) -> Self {
        Self {
            proof: Proof::Token,
            ..Self::open(user, meeting)
        }
    }
}

/// `name` cut to [`MAX_DISPLAY_NAME_BYTES`] at a character boundary; the user id when empty.
pub(crate) fn display_name(name: impl AsRef<[u8]>, user: &Bytes) -> Bytes {
    let name = String::from_utf8_lossy(name.as_ref());
    let name = name.trim();
    if name.is_empty() {
        return user.clone();
    }
    let mut end = name.len().min(MAX_DISPLAY_NAME_BYTES);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    Bytes::copy_from_slice(&name.as_bytes()[..end])
}

fn mac(key: &[u8; 32], meeting: &MeetingId, user: &[u8], session: SessionId) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    // Length-prefixed, so that no two (meeting, user) pairs hash alike.
    for part in [meeting.as_str().as_bytes(), user] {
        mac.update(&(part.len() as u64).to_be_bytes());
        mac.update(part);
    }
    mac.update(&session.get().to_be_bytes());
    mac
}

/// The reconnect secret of `session` (user `user` in `meeting`).
pub(crate) fn reconnect_secret(
    key: &[u8; 32],
    meeting: &MeetingId,
    user: &[u8],
    session: SessionId,
) -> String {
    let tag = mac(key, meeting, user, session).finalize().into_bytes();
    let hex: String = tag[..TAG_BYTES]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{:x}.{hex}", session.get())
}

/// The session a reconnect secret was issued to, if it is genuine for this user and meeting.
pub(crate) fn verify_secret(
    key: &[u8; 32],
    meeting: &MeetingId,
    user: &[u8],
    secret: &str,
) -> Option<SessionId> {
    if secret.len() > MAX_SECRET_LEN {
        return None;
    }
    let (session, tag) = secret.split_once('.')?;
    let session = SessionId::from_wire(u64::from_str_radix(session, 16).ok()?)?;
    if tag.len() != 2 * TAG_BYTES {
        return None;
    }
    let tag: Vec<u8> = (0..tag.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(tag.get(i..i + 2)?, 16).ok())
        .collect::<Option<_>>()?;
    // Constant-time comparison of the truncated tag.
    mac(key, meeting, user, session)
        .verify_truncated_left(&tag)
        .ok()?;
    Some(session)
}

impl Relay {
    /// An admitted join (see [`Join`]). Refused when a host removed the user
    /// ([`JoinError::Removed`]), or when the user is present in the meeting (a session here,
    /// or one the bus roster knows on another node, heard from within [`PRESENCE_TIMEOUT`])
    /// and the join proves nothing
    /// ([`JoinError::UserPresent`]). A proven join replaces the user's live session here (it is
    /// closed as [`CloseReason::Replaced`] and its leave is never announced). The new session
    /// gets SESSION_ASSIGNED, the roster, then its reconnect secret (MEETING
    /// `RECONNECT_SECRET`, for it only).
    pub fn handle_admit(&mut self, now: Instant, join: Join) -> Result<SessionId, JoinError> {
        let user = Bytes::copy_from_slice(join.user.as_bytes());
        let mut replaced = Vec::new();
        // The user's session on another node that this join replaces (a move between nodes).
        let mut replaced_remote = false;
        if self
            .removed
            .get(&join.meeting)
            .is_some_and(|r| r.contains(&user))
        {
            self.metrics.joins_refused += 1;
            return Err(JoinError::Removed);
        }
        if let Some(meeting) = self.meetings.get(&join.meeting) {
            // Present = heard from within PRESENCE_TIMEOUT: a live client heartbeats every
            // second, so a participant whose node died (or whose socket is dead and not yet
            // timed out) does not hold its id against its own reconnect through another node
            // that cannot verify its secret (nodes without a shared JWT_SECRET).
            let latest = meeting.by_user.get(&user).copied();
            let present = latest.filter(|s| {
                let heard = match self.sessions.get(s) {
                    Some(local) => Some(local.last_inbound),
                    None => meeting.remote.get(s).map(|r| r.last_seen),
                };
                heard.is_some_and(|at| now.saturating_duration_since(at) < PRESENCE_TIMEOUT)
            });
            let proven = match &join.proof {
                Proof::None => false,
                Proof::Token => true,
                Proof::Reconnect(secret) => {
                    verify_secret(&self.config.reconnect_key, &join.meeting, &user, secret)
                        .is_some_and(|issued| {
                            latest == Some(issued)
                                || meeting.pending_leaves.iter().any(|p| p.session == issued)
                        })
                }
            };
            if present.is_some() && !proven {
                self.metrics.joins_refused += 1;
                return Err(JoinError::UserPresent { user: join.user });
            }
            if proven {
                replaced_remote = latest.is_some_and(|s| meeting.remote.contains_key(&s));
                replaced = meeting
                    .local
                    .iter()
                    .copied()
                    .filter(|s| self.sessions.get(s).is_some_and(|s| s.user_bytes == user))
                    .collect();
            }
        }
        let meeting_id = join.meeting.clone();
        if replaced_remote
            && let Some(old) = self
                .meetings
                .get_mut(&meeting_id)
                .and_then(|m| m.replace_remote(&user, None))
        {
            // A move from another node: the old session is not in the roster the new one is
            // sent, and is never announced as left here (the new JOINED replaces it).
            self.feedback.forget(old);
        }
        let id = self.join_session(now, join)?;
        for old in replaced {
            // Said in band too: not every transport shows the client the close code.
            let event = MeetingPacket {
                event_type: MeetingEventType::SessionReplaced as i32,
                room_id: meeting_id.as_str().to_owned(),
                message: CloseReason::Replaced.as_str().to_owned(),
                session_id: old.get(),
                ..Default::default()
            };
            self.send_to(old, packets::encode(&packets::meeting_event(&event)));
            self.close(now, old, CloseReason::Replaced);
        }
        if let Some(meeting) = self.meetings.get_mut(&meeting_id) {
            // The user never left: the replaced session's leave is not announced.
            meeting.cancel_leaves_of(&user);
        }
        let secret = reconnect_secret(&self.config.reconnect_key, &meeting_id, &user, id);
        let event = MeetingPacket {
            event_type: MeetingEventType::ReconnectSecret as i32,
            room_id: meeting_id.as_str().to_owned(),
            target_user_id: user,
            room_token: secret,
            session_id: id.get(),
            ..Default::default()
        };
        self.send_to(id, packets::encode(&packets::meeting_event(&event)));
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (MeetingId, Bytes) {
        (MeetingId::new("m1").unwrap(), Bytes::from_static(b"alice"))
    }

    #[test]
    fn a_reconnect_secret_names_its_session_and_nothing_else_verifies() {
        let key = [7; 32];
        let (meeting, user) = ids();
        let session = SessionId::new(3, 42);
        let secret = reconnect_secret(&key, &meeting, &user, session);
        assert_eq!(verify_secret(&key, &meeting, &user, &secret), Some(session));
        // Another key, user, meeting or session: refused.
        assert_eq!(verify_secret(&[8; 32], &meeting, &user, &secret), None);
        assert_eq!(verify_secret(&key, &meeting, b"bob", &secret), None);
        let other = MeetingId::new("m2").unwrap();
        assert_eq!(verify_secret(&key, &other, &user, &secret), None);
        let (_, tag) = secret.split_once('.').unwrap();
        let forged = format!("{:x}.{tag}", SessionId::new(3, 43).get());
        assert_eq!(verify_secret(&key, &meeting, &user, &forged), None);
        // Garbage never panics.
        for junk in ["", ".", "zz.zz", "1.", "1.é", &"a".repeat(1000), "0.00"] {
            assert_eq!(verify_secret(&key, &meeting, &user, junk), None, "{junk}");
        }
    }

    #[test]
    fn display_names_are_capped_at_a_character_boundary_and_default_to_the_user() {
        let user = Bytes::from_static(b"alice");
        assert_eq!(display_name("  ", &user), user);
        assert_eq!(display_name("Alice A.", &user), &b"Alice A."[..]);
        let long = "é".repeat(MAX_DISPLAY_NAME_BYTES);
        let cut = display_name(&long, &user);
        assert!(cut.len() <= MAX_DISPLAY_NAME_BYTES);
        assert!(std::str::from_utf8(&cut).is_ok());
    }
}
