//! The login cookie: an HS256 JWT (`typ: "session"`) naming a login session of the store, signed
//! with a key derived from `JWT_SECRET` (so a cookie is never a room token, nor the reverse).
//! The store decides whether the session is still live (logout ends it there).

use std::future::Future;
use std::pin::Pin;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::{FromRequest, HttpRequest, web};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use videocall_meetings::LoginSession;

use super::{Api, ApiError};

/// Name of the login cookie.
pub const COOKIE: &str = "videocall_session";
/// `typ` of a session cookie's JWT.
const SESSION_TYPE: &str = "session";

#[derive(Debug, Serialize, Deserialize)]
struct SessionClaims {
    /// The login session's id in the store.
    sid: String,
    /// The user.
    sub: String,
    /// Expiry, Unix seconds.
    exp: i64,
    typ: String,
}

/// Signs and verifies login cookies.
#[derive(Clone)]
pub struct SessionKey {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKey(..)")
    }
}

impl SessionKey {
    /// The cookie key of `jwt_secret`: SHA-256 of a fixed label and the secret.
    pub fn derive(jwt_secret: &[u8]) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"videocall login cookie\0");
        hash.update(jwt_secret);
        let key = hash.finalize();
        Self {
            encoding: EncodingKey::from_secret(&key).expect("a 32-byte HMAC key is valid"),
            decoding: DecodingKey::from_secret(&key).expect("a 32-byte HMAC key is valid"),
        }
    }

    /// The cookie for `session`; `Secure` when the request came over HTTPS.
    pub fn cookie(&self, session: &LoginSession, secure: bool) -> Cookie<'static> {
        let claims = SessionClaims {
            sid: session.id.clone(),
            sub: session.user.id.clone(),
            exp: session.expires_at / 1000,
            typ: SESSION_TYPE.to_owned(),
        };
        let jwt = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 over serializable claims cannot fail");
        Cookie::build(COOKIE, jwt)
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .secure(secure)
            .max_age(actix_web::cookie::time::Duration::seconds(
                (session.expires_at / 1000 - now_secs()).max(0),
            ))
            .finish()
    }

    /// The login session id a cookie value names, if it is ours, unexpired and a session.
    fn session_id(&self, value: &str) -> Option<String> {
        if value.len() > videocall_auth::MAX_TOKEN_LEN {
            return None;
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        let data =
            jsonwebtoken::decode::<SessionClaims>(value, &self.decoding, &validation).ok()?;
        (data.claims.typ == SESSION_TYPE).then_some(data.claims.sid)
    }
}

/// A cookie that removes the login cookie.
pub(super) fn removal_cookie() -> Cookie<'static> {
    let mut cookie = Cookie::build(COOKIE, "").path("/").finish();
    cookie.make_removal();
    cookie
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether `req` came over HTTPS (directly or, per `Forwarded`/`X-Forwarded-Proto`, via a proxy).
pub(super) fn is_https(req: &HttpRequest) -> bool {
    req.connection_info().scheme() == "https"
}

/// The logged-in caller of a request: its live login session. A handler taking it answers 401
/// JSON to a request without one.
#[derive(Debug, Clone)]
pub(super) struct Caller(pub(super) LoginSession);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let api = req.app_data::<web::Data<Api>>().cloned();
        let cookie = req.cookie(COOKIE).map(|c| c.value().to_owned());
        Box::pin(async move {
            let api = api.ok_or_else(|| {
                ApiError::new(
                    actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
                    "api_unavailable",
                    "the meeting API is not configured on this node",
                )
            })?;
            let sid = cookie
                .and_then(|value| api.sessions.session_id(&value))
                .ok_or_else(ApiError::login_required)?;
            match api.store.login_session(&sid).await? {
                Some(session) => Ok(Caller(session)),
                None => Err(ApiError::login_required()),
            }
        })
    }
}
