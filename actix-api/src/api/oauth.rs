//! Login with an OAuth2/OIDC identity provider: authorization code + PKCE (S256), when
//! `OAUTH_ISSUER`, `OAUTH_CLIENT_ID`, `OAUTH_CLIENT_SECRET` and `OAUTH_REDIRECT_URL` are set.
//!
//! `GET /api/v1/login/oauth` makes a PKCE verifier and a state, keeps both in a short-lived
//! signed HttpOnly cookie (so any node can finish the login: nothing is held in memory), and
//! redirects to the provider. `GET /api/v1/login/callback` checks the state against the cookie,
//! exchanges the code with the verifier at the token endpoint, reads the userinfo endpoint, and
//! logs the user in (`oidc-<sub>`) like a guest login does. Calls to the provider are blocking
//! (ureq) and run on actix's blocking pool.

use std::time::Duration;

use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::session::{is_https, removal_cookie_named};
use super::{Api, ApiError};

/// Cookie holding the state and PKCE verifier of a login in progress.
const FLOW_COOKIE: &str = "videocall_oauth";
/// How long a login at the provider may take.
const FLOW_SECS: i64 = 600;
/// How long a call to the provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// The `OAUTH_*` settings.
#[derive(Debug, Clone)]
pub struct OAuthConfig {
    /// Issuer URL; its `/.well-known/openid-configuration` names the endpoints.
    pub issuer: String,
    /// Our client id at the provider.
    pub client_id: String,
    /// Our client secret at the provider.
    pub client_secret: String,
    /// Where the provider sends the browser back: `https://<host>/api/v1/login/callback`.
    pub redirect_url: String,
}

/// Why the provider could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OAuthError {
    /// An HTTP call failed or answered an error.
    #[error("identity provider request to {url} failed: {reason}")]
    Request {
        /// What was called.
        url: String,
        /// Why it failed.
        reason: String,
    },
    /// An answer lacked a field we need.
    #[error("identity provider answer from {url} lacks {field}")]
    Missing {
        /// What was called.
        url: String,
        /// The field.
        field: &'static str,
    },
}

/// A configured identity provider with its endpoints.
#[derive(Clone)]
pub struct OAuth {
    config: OAuthConfig,
    authorization_endpoint: String,
    token_endpoint: String,
    userinfo_endpoint: String,
    flow_encoding: EncodingKey,
    flow_decoding: DecodingKey,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .field("authorization_endpoint", &self.authorization_endpoint)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize)]
struct Discovery {
    authorization_endpoint: Option<String>,
    token_endpoint: Option<String>,
    userinfo_endpoint: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FlowClaims {
    state: String,
    verifier: String,
    exp: i64,
    typ: String,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    access_token: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UserInfo {
    sub: Option<String>,
    name: Option<String>,
    preferred_username: Option<String>,
    email: Option<String>,
}

/// `GET /api/v1/login/callback` query.
#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(PROVIDER_TIMEOUT))
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn read_json<T: for<'de> Deserialize<'de>>(
    url: &str,
    response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<T, OAuthError> {
    let fail = |reason: String| OAuthError::Request {
        url: url.to_owned(),
        reason,
    };
    let mut response = response.map_err(|e| fail(e.to_string()))?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(256 * 1024)
        .read_to_string()
        .map_err(|e| fail(e.to_string()))?;
    if !status.is_success() {
        return Err(fail(format!(
            "{status}: {}",
            body.chars().take(200).collect::<String>()
        )));
    }
    serde_json::from_str(&body).map_err(|e| fail(format!("not the JSON expected: {e}")))
}

impl OAuth {
    /// Reads the provider's endpoints from `{issuer}/.well-known/openid-configuration`
    /// (blocking). `flow_secret` signs the login-in-progress cookie.
    pub fn discover(config: OAuthConfig, flow_secret: &[u8]) -> Result<Self, OAuthError> {
        let url = format!(
            "{}/.well-known/openid-configuration",
            config.issuer.trim_end_matches('/')
        );
        let found: Discovery = read_json(&url, agent().get(&url).call())?;
        let need = |value: Option<String>, field| {
            value.ok_or(OAuthError::Missing {
                url: url.clone(),
                field,
            })
        };
        let mut key = Sha256::new();
        key.update(b"videocall oauth flow cookie\0");
        key.update(flow_secret);
        let key = key.finalize();
        Ok(Self {
            authorization_endpoint: need(found.authorization_endpoint, "authorization_endpoint")?,
            token_endpoint: need(found.token_endpoint, "token_endpoint")?,
            userinfo_endpoint: need(found.userinfo_endpoint, "userinfo_endpoint")?,
            config,
            flow_encoding: EncodingKey::from_secret(&key).expect("a 32-byte HMAC key is valid"),
            flow_decoding: DecodingKey::from_secret(&key).expect("a 32-byte HMAC key is valid"),
        })
    }

    /// The code exchange and userinfo read (blocking): (subject, name, e-mail).
    fn finish(
        &self,
        code: &str,
        verifier: &str,
    ) -> Result<(String, String, Option<String>), OAuthError> {
        let agent = agent();
        let url = &self.token_endpoint;
        let token: TokenAnswer = read_json(
            url,
            agent.post(url).send_form([
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", self.config.redirect_url.as_str()),
                ("client_id", self.config.client_id.as_str()),
                ("client_secret", self.config.client_secret.as_str()),
                ("code_verifier", verifier),
            ]),
        )?;
        let access = token.access_token.ok_or(OAuthError::Missing {
            url: url.clone(),
            field: "access_token",
        })?;
        let url = &self.userinfo_endpoint;
        let info: UserInfo = read_json(
            url,
            agent
                .get(url)
                .header("authorization", &format!("Bearer {access}"))
                .call(),
        )?;
        let sub = info.sub.ok_or(OAuthError::Missing {
            url: url.clone(),
            field: "sub",
        })?;
        let name = info
            .name
            .or(info.preferred_username)
            .or_else(|| info.email.clone())
            .unwrap_or_else(|| sub.clone());
        Ok((sub, name, info.email))
    }
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "oauth_not_configured",
        "this node has no identity provider (OAUTH_ISSUER); use POST /api/v1/login/guest",
    )
}

fn random_urlsafe(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the OS random source is available");
    URL_SAFE_NO_PAD.encode(buf)
}

/// Redirects to the provider with a fresh state and PKCE challenge (S256).
pub(super) async fn start(api: web::Data<Api>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let oauth = api.oauth.as_ref().ok_or_else(not_configured)?;
    let state = random_urlsafe(16);
    let verifier = random_urlsafe(32);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    let location = url::Url::parse_with_params(
        &oauth.authorization_endpoint,
        [
            ("response_type", "code"),
            ("client_id", oauth.config.client_id.as_str()),
            ("redirect_uri", oauth.config.redirect_url.as_str()),
            ("scope", "openid profile email"),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "oauth_misconfigured",
            format!("authorization endpoint: {e}"),
        )
    })?;
    let claims = FlowClaims {
        state,
        verifier,
        exp: now_secs() + FLOW_SECS,
        typ: "oauth_flow".to_owned(),
    };
    let flow = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &oauth.flow_encoding,
    )
    .expect("HS256 over serializable claims cannot fail");
    let cookie = Cookie::build(FLOW_COOKIE, flow)
        .path("/api/v1/login/")
        .http_only(true)
        // Lax: the cookie comes back on the provider's top-level redirect to the callback.
        .same_site(SameSite::Lax)
        .secure(is_https(&req))
        .max_age(actix_web::cookie::time::Duration::seconds(FLOW_SECS))
        .finish();
    Ok(HttpResponse::Found()
        .insert_header(("location", location.as_str()))
        .cookie(cookie)
        .finish())
}

/// The provider's redirect back: checks the state, exchanges the code, logs the user in and
/// redirects to the app.
pub(super) async fn callback(
    api: web::Data<Api>,
    req: HttpRequest,
    query: web::Query<CallbackQuery>,
) -> Result<HttpResponse, ApiError> {
    let oauth = api.oauth.clone().ok_or_else(not_configured)?;
    let query = query.into_inner();
    if let Some(error) = query.error {
        return Err(ApiError::bad_request(
            "oauth_denied",
            format!(
                "the identity provider refused: {}",
                error.chars().take(100).collect::<String>()
            ),
        ));
    }
    let (Some(code), Some(state)) = (query.code, query.state) else {
        return Err(ApiError::bad_request(
            "oauth_bad_callback",
            "code and state are required",
        ));
    };
    let flow = req
        .cookie(FLOW_COOKIE)
        .and_then(|c| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_required_spec_claims(&["exp"]);
            jsonwebtoken::decode::<FlowClaims>(c.value(), &oauth.flow_decoding, &validation).ok()
        })
        .map(|data| data.claims)
        .filter(|claims| claims.typ == "oauth_flow")
        .ok_or_else(|| {
            ApiError::bad_request(
                "oauth_no_flow",
                "no login in progress (start at /api/v1/login/oauth)",
            )
        })?;
    if flow.state != state {
        return Err(ApiError::bad_request(
            "oauth_state_mismatch",
            "state does not match this login",
        ));
    }
    let provider = oauth.clone();
    let finished = web::block(move || provider.finish(&code, &flow.verifier))
        .await
        .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "try again"))?;
    let (sub, name, email) = finished.map_err(|e| {
        tracing::warn!(error = %e, "identity provider login failed");
        ApiError::new(StatusCode::BAD_GATEWAY, "oauth_failed", e.to_string())
    })?;
    let name: String = name
        .chars()
        .take(videocall_meetings::MAX_DISPLAY_NAME)
        .collect();
    let user = api
        .store
        .upsert_oidc_user(&sub, &name, email.as_deref())
        .await?;
    let cookie = super::login::start_session(&api, &req, &user).await?;
    Ok(HttpResponse::Found()
        .insert_header(("location", "/"))
        .cookie(cookie)
        .cookie(removal_cookie_named(FLOW_COOKIE, "/api/v1/login/"))
        .finish())
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
