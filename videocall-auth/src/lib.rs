//! Room access tokens: the one credential a relay accepts for a protected meeting.
//!
//! The meeting API (`actix-api`, `/api/v1/`) signs a [`RoomClaims`] with `JWT_SECRET` (HS256)
//! when a participant is admitted; both relays verify it on `/lobby?token=…` with the same secret
//! and take the user id, display name and [`Grants`] from it, never from the URL.
//!
//! The claim set is the original videocall-rs meeting backend's (`sub`, `room`, `room_join`,
//! `is_host`, `is_guest`, `display_name`, `observer`, `end_on_host_leave`, `exp`, `iss`, `typ`)
//! plus the required `e2ee` (issue #16: the meeting's end-to-end encryption setting, signed, so
//! that it cannot be downgraded in transit). Tokens its backend issues lack `e2ee` and are
//! refused as malformed; its clients join open meetings by path. A token without `typ` (older original tokens) is accepted; a token of
//! another type (`"session"`) is refused.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use videocall_types::{MeetingId, UserId};

/// Issuer written into tokens we sign; the original backend's, so its relays accept ours too.
pub const ISSUER: &str = "videocall-meeting-backend";
/// `typ` of a room access token (a login session token has another type and is refused).
pub const TOKEN_TYPE: &str = "room_access";
/// Seconds of clock skew tolerated on `exp`.
pub const LEEWAY_SECS: u64 = 5;
/// A secret shorter than this is refused at start-up: HS256 with a guessable key is no protection.
pub const MIN_SECRET_LEN: usize = 16;
/// Longest token accepted (bytes of the compact JWT); longer input is refused before parsing.
pub const MAX_TOKEN_LEN: usize = 4096;

/// JWT payload of a room access token (the original's field names and meanings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomClaims {
    /// The participant's user id (the identity the relay stamps on their packets).
    pub sub: String,
    /// The meeting id the token opens.
    pub room: String,
    /// Must be true: the token allows joining (receiving).
    pub room_join: bool,
    /// The participant is a host: may remove others and end the meeting.
    pub is_host: bool,
    /// The participant is a guest (no login).
    #[serde(default)]
    pub is_guest: bool,
    /// Name shown to others.
    pub display_name: String,
    /// Observer: may receive but not publish (the relay drops its media and counts it).
    #[serde(default)]
    pub observer: bool,
    /// The meeting ends for everyone when the host leaves (original's default: true).
    #[serde(default = "default_true")]
    pub end_on_host_leave: bool,
    /// The meeting is end-to-end encrypted (issue #16): clients that join with this token never
    /// send media in clear, and relays drop clear media in the meeting (counted as
    /// `cleartext_in_e2ee_meeting`). Every token our API issues carries it. It is signed like
    /// every claim: changing or removing it in transit breaks the signature, so a client that
    /// takes its setting from the token it joins with gets the setting the relay enforces.
    /// Absent only in the original videocall-rs backend's tokens (its clients do not use our
    /// E2EE): those still open protected meetings, the relay enforces no E2EE setting for
    /// them, and our clients holding one ask the meeting's settings as a token-less join does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e2ee: Option<bool>,
    /// Expiry, Unix seconds.
    pub exp: i64,
    /// Issuer; [`ISSUER`].
    pub iss: String,
    /// Token type; [`TOKEN_TYPE`], or absent in older tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub typ: Option<String>,
}

fn default_true() -> bool {
    true
}

/// What a token allows, as the relay enforces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grants {
    /// May send media (false for observers).
    pub publish: bool,
    /// May receive the meeting.
    pub subscribe: bool,
    /// May remove participants and end the meeting.
    pub host: bool,
}

impl RoomClaims {
    /// Claims for `user` in `meeting`, valid until `exp` (Unix seconds).
    pub fn new(
        user: &UserId,
        meeting: &MeetingId,
        display_name: impl Into<String>,
        grants: Grants,
        e2ee: bool,
        exp: i64,
    ) -> Self {
        Self {
            e2ee: Some(e2ee),
            sub: user.as_str().to_owned(),
            room: meeting.as_str().to_owned(),
            room_join: grants.subscribe,
            is_host: grants.host,
            is_guest: false,
            display_name: display_name.into(),
            observer: !grants.publish,
            end_on_host_leave: false,
            exp,
            iss: ISSUER.to_owned(),
            typ: Some(TOKEN_TYPE.to_owned()),
        }
    }

    /// The claims of `token` read **without verifying it**: for a client to learn which user
    /// and meeting its own token names (the relay verifies it). Never for admission.
    pub fn peek(token: &str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed(format!(
                "more than {MAX_TOKEN_LEN} bytes"
            )));
        }
        jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|e| TokenError::Malformed(e.to_string()))
    }

    /// The grants these claims carry.
    pub fn grants(&self) -> Grants {
        Grants {
            publish: self.room_join && !self.observer,
            subscribe: self.room_join,
            host: self.room_join && self.is_host,
        }
    }
}

/// Why a token was refused. Each maps to one HTTP status and one counter label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT, bad base64/JSON, a missing claim or too long.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Signed with another key or algorithm.
    #[error("token signature is not valid")]
    BadSignature,
    /// Past its `exp`.
    #[error("token has expired")]
    Expired,
    /// Not a room access token (wrong `iss` or `typ`).
    #[error("not a room access token: {0}")]
    WrongType(String),
    /// For another meeting than the one asked for.
    #[error("token is for another meeting")]
    WrongMeeting,
    /// `room_join` is false.
    #[error("token does not grant joining")]
    MissingGrant,
    /// `sub` or `room` is not a valid id.
    #[error("token names an invalid id: {0}")]
    InvalidId(String),
}

impl TokenError {
    /// Short label for counters and JSON error codes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Malformed(_) => "token_malformed",
            Self::BadSignature => "token_bad_signature",
            Self::Expired => "token_expired",
            Self::WrongType(_) => "token_wrong_type",
            Self::WrongMeeting => "token_wrong_meeting",
            Self::MissingGrant => "token_missing_grant",
            Self::InvalidId(_) => "token_invalid_id",
        }
    }
}

/// The secret is missing or too short to sign with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JWT_SECRET must be at least {MIN_SECRET_LEN} bytes (got {0})")]
pub struct WeakSecret(pub usize);

/// A room token verified against its signature, expiry, type and ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomToken {
    /// The participant.
    pub user: UserId,
    /// The meeting.
    pub meeting: MeetingId,
    /// What the participant may do.
    pub grants: Grants,
    /// The raw claims (display name, expiry, flags).
    pub claims: RoomClaims,
}

/// Signs and verifies room tokens with one HS256 secret (`JWT_SECRET`).
#[derive(Clone)]
pub struct TokenKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

impl TokenKey {
    /// A key from the shared secret; refuses one shorter than [`MIN_SECRET_LEN`].
    pub fn new(secret: &[u8]) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_LEN {
            return Err(WeakSecret(secret.len()));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret).map_err(|_| WeakSecret(secret.len()))?,
            decoding: DecodingKey::from_secret(secret).map_err(|_| WeakSecret(secret.len()))?,
        })
    }

    /// The compact JWT of `claims`.
    pub fn sign(&self, claims: &RoomClaims) -> String {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .expect("HS256 over serializable claims cannot fail")
    }

    /// Verifies `token` at the current time. When `meeting` is given, the token must be for it.
    pub fn verify(&self, token: &str, meeting: Option<&str>) -> Result<RoomToken, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed(format!(
                "{} bytes, more than {MAX_TOKEN_LEN}",
                token.len()
            )));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data = jsonwebtoken::decode::<RoomClaims>(token, &self.decoding, &validation).map_err(
            |e| {
                use jsonwebtoken::errors::ErrorKind as K;
                match e.kind() {
                    K::InvalidSignature | K::InvalidAlgorithm => TokenError::BadSignature,
                    K::ExpiredSignature => TokenError::Expired,
                    _ => TokenError::Malformed(e.to_string()),
                }
            },
        )?;
        let claims = data.claims;
        if claims.iss != ISSUER {
            return Err(TokenError::WrongType(format!("issuer {:?}", claims.iss)));
        }
        if let Some(typ) = claims.typ.as_deref()
            && typ != TOKEN_TYPE
        {
            return Err(TokenError::WrongType(format!("type {typ:?}")));
        }
        if meeting.is_some_and(|m| m != claims.room) {
            return Err(TokenError::WrongMeeting);
        }
        if !claims.room_join {
            return Err(TokenError::MissingGrant);
        }
        let user =
            UserId::new(claims.sub.clone()).map_err(|e| TokenError::InvalidId(e.to_string()))?;
        let meeting_id = MeetingId::new(claims.room.clone())
            .map_err(|e| TokenError::InvalidId(e.to_string()))?;
        Ok(RoomToken {
            user,
            meeting: meeting_id,
            grants: claims.grants(),
            claims,
        })
    }
}

#[cfg(test)]
mod tests;

/// How a plain `/lobby/{user}/{meeting}` join (no token) is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenJoin {
    /// The meeting is open: the user may join with these grants under this display name.
    Allowed {
        /// What the participant may do.
        grants: Grants,
        /// Name shown to others.
        display_name: String,
        /// The meeting was created end-to-end encrypted through the meeting API: the relay
        /// drops clear media in it. False for meetings with no such record (then only the
        /// clients' own setting protects them).
        e2ee: bool,
    },
    /// The meeting is protected: only a room token opens it.
    TokenRequired,
    /// The meeting has ended (or never existed and unknown meetings are not created on join).
    NotFound,
}

/// Why the gate could not answer (the database is down): the join is refused with 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("meeting store unavailable: {0}")]
pub struct GateError(pub String);

/// The boxed future a [`MeetingGate`] returns (object-safe async).
pub type GateFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<OpenJoin, GateError>> + Send + 'a>>;

/// Decides plain (token-less) joins. The relays hold an `Arc<dyn MeetingGate>`: the meeting store
/// in `actix-api` implements it (open / protected / ended per meeting), and [`AllowOpen`] /
/// [`TokensOnly`] serve a relay with no store.
pub trait MeetingGate: Send + Sync + std::fmt::Debug {
    /// The answer for `user` joining `meeting` without a token.
    fn open_join<'a>(&'a self, meeting: &'a MeetingId, user: &'a UserId) -> GateFuture<'a>;
}

/// Every meeting is open (single node with no store, development).
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowOpen;

impl MeetingGate for AllowOpen {
    fn open_join<'a>(&'a self, _meeting: &'a MeetingId, user: &'a UserId) -> GateFuture<'a> {
        let display_name = user.as_str().to_owned();
        Box::pin(async move {
            Ok(OpenJoin::Allowed {
                grants: Grants {
                    publish: true,
                    subscribe: true,
                    host: false,
                },
                display_name,
                e2ee: false,
            })
        })
    }
}

/// No meeting is open: every join needs a room token.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokensOnly;

impl MeetingGate for TokensOnly {
    fn open_join<'a>(&'a self, _meeting: &'a MeetingId, _user: &'a UserId) -> GateFuture<'a> {
        Box::pin(async { Ok(OpenJoin::TokenRequired) })
    }
}
