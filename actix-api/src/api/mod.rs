//! The meeting API under `/api/v1/` (JSON; described by `docs/openapi.yaml`): login, meetings,
//! the waiting room and participants. The rules live in `videocall-meetings`; these handlers
//! parse and validate input, find the caller from the login cookie, sign room tokens, and tell
//! the relays ([`RelayControl`]) what a host decided.
//!
//! Every bad input is a JSON error with a 4xx status ([`ApiError`]); bodies are at most
//! [`MAX_BODY_BYTES`]; ids are validated as [`videocall_types::MeetingId`] / [`UserId`] before
//! the store sees them.

mod error;
mod login;
mod meetings;
mod oauth;
mod participants;
mod relay_control;
mod session;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::Method;
use actix_web::{FromRequest, Handler, Responder, web};
use videocall_auth::TokenKey;
use videocall_meetings::Store;
use videocall_relay::exposition::Exposition;
use videocall_types::{MeetingId, UserId};

use crate::MeetingPolicy;
pub use error::{ApiError, MAX_BODY_BYTES};
pub use oauth::{OAuth, OAuthConfig, OAuthError};
pub use relay_control::{LoggingRelayControl, NodeRelayControl, RelayControl};
pub use session::{COOKIE, SessionKey};

/// What the API's handlers share.
#[derive(Debug, Clone)]
pub struct Api {
    /// Meetings, participants, users, login sessions.
    pub store: Store,
    /// Signs room tokens (`JWT_SECRET`).
    pub tokens: TokenKey,
    /// Signs login cookies (derived from `JWT_SECRET`).
    pub sessions: SessionKey,
    /// Tells the relays about removals, mute requests and ended meetings.
    pub relay: Arc<dyn RelayControl>,
    /// How long a room token from a join is valid.
    pub token_ttl: Duration,
    /// How long a login lasts.
    pub session_ttl: Duration,
    /// E2EE of meetings the store does not know (the node's `--e2ee` / `--plaintext-meeting`).
    pub policy: Arc<MeetingPolicy>,
    /// The identity provider, when `OAUTH_*` is set.
    pub oauth: Option<Arc<OAuth>>,
    /// Counters on `/metrics`.
    pub metrics: Arc<ApiMetrics>,
}

/// Counters of the meeting API.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    /// Joins answered with a room token.
    pub joins_admitted: AtomicU64,
    /// Joins sent to the waiting room.
    pub joins_waiting: AtomicU64,
    /// Joins refused because the meeting was full.
    pub joins_full: AtomicU64,
    /// Joins refused because the waiting room was full.
    pub waiting_room_full: AtomicU64,
    /// Logins (guest and identity provider).
    pub logins: AtomicU64,
}

impl ApiMetrics {
    /// Appends the counters in Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut e = Exposition::new();
        for (name, help, value) in [
            (
                "api_joins_admitted_total",
                "Meeting joins answered with a room token.",
                &self.joins_admitted,
            ),
            (
                "api_joins_waiting_total",
                "Meeting joins sent to the waiting room.",
                &self.joins_waiting,
            ),
            (
                "api_joins_full_total",
                "Meeting joins refused: the meeting was full.",
                &self.joins_full,
            ),
            (
                "api_waiting_room_full_total",
                "Meeting joins refused: the waiting room was full.",
                &self.waiting_room_full,
            ),
            ("api_logins_total", "Logins.", &self.logins),
        ] {
            e.counter(
                &format!("videocall_{name}"),
                help,
                value.load(Ordering::Relaxed),
            );
        }
        e.render(out);
    }
}

/// Registers the API's routes and shared data on an actix app. Register it before the UI's
/// catch-all file service, which would otherwise answer these paths.
pub fn configure(api: Api) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(api))
            .app_data(error::json_config())
            .app_data(error::path_config())
            .app_data(error::query_config());
        register(cfg);
    }
}

/// Every route of the API as (method, path), in the form `docs/openapi.yaml` describes them.
pub fn routes() -> Vec<(Method, &'static str)> {
    let mut seen = Vec::new();
    let _ = actix_web::App::new().configure(|cfg| seen = register(cfg));
    seen
}

/// Adds each route to `cfg` and to the list it returns, so the list is what is served.
fn register(cfg: &mut web::ServiceConfig) -> Vec<(Method, &'static str)> {
    let mut r = Registrar {
        cfg,
        seen: Vec::new(),
        resources: Vec::new(),
    };
    r.add(Method::POST, "/api/v1/login/guest", login::guest);
    r.add(Method::GET, "/api/v1/login/oauth", oauth::start);
    r.add(Method::GET, "/api/v1/login/callback", oauth::callback);
    r.add(Method::GET, "/api/v1/me", login::me);
    r.add(Method::POST, "/api/v1/logout", login::logout);
    r.add(Method::POST, "/api/v1/meetings", meetings::create);
    r.add(Method::GET, "/api/v1/meetings/{meeting_id}", meetings::get);
    r.add(
        Method::PATCH,
        "/api/v1/meetings/{meeting_id}",
        meetings::update,
    );
    r.add(
        Method::POST,
        "/api/v1/meetings/{meeting_id}/end",
        meetings::end,
    );
    r.add(
        Method::POST,
        "/api/v1/meetings/{meeting_id}/join",
        participants::join,
    );
    r.add(
        Method::POST,
        "/api/v1/meetings/{meeting_id}/leave",
        participants::leave,
    );
    r.add(
        Method::GET,
        "/api/v1/meetings/{meeting_id}/waiting",
        participants::waiting,
    );
    r.add(
        Method::POST,
        "/api/v1/meetings/{meeting_id}/waiting/admit_all",
        participants::admit_all,
    );
    r.add(
        Method::POST,
        "/api/v1/meetings/{meeting_id}/waiting/{user_id}/admit",
        participants::admit,
    );
    r.add(
        Method::POST,
        "/api/v1/meetings/{meeting_id}/waiting/{user_id}/reject",
        participants::reject,
    );
    r.add(
        Method::GET,
        "/api/v1/meetings/{meeting_id}/participants",
        participants::list,
    );
    r.add(
        Method::DELETE,
        "/api/v1/meetings/{meeting_id}/participants/{user_id}",
        participants::remove,
    );
    r.add(
        Method::POST,
        "/api/v1/meetings/{meeting_id}/participants/{user_id}/mute",
        participants::mute,
    );
    r.finish()
}

struct Registrar<'a> {
    cfg: &'a mut web::ServiceConfig,
    seen: Vec<(Method, &'static str)>,
    /// The routes of each path, in registration order.
    resources: Vec<(&'static str, Vec<actix_web::Route>)>,
}

impl Registrar<'_> {
    fn add<F, Args>(&mut self, method: Method, path: &'static str, handler: F)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.seen.push((method.clone(), path));
        let route = web::method(method).to(handler);
        match self.resources.iter_mut().find(|(p, _)| *p == path) {
            Some((_, routes)) => routes.push(route),
            None => self.resources.push((path, vec![route])),
        }
    }

    /// Registers one resource per path: another method on it is a 405 JSON error.
    fn finish(self) -> Vec<(Method, &'static str)> {
        for (path, routes) in self.resources {
            let mut resource = web::resource(path);
            for route in routes {
                resource = resource.route(route);
            }
            self.cfg
                .service(resource.default_service(web::to(method_not_allowed)));
        }
        self.seen
    }
}

async fn method_not_allowed(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} is not allowed on {}", req.method(), req.path()),
    ))
}

/// The answer to any other path under `/api/v1/`: 404 JSON (never the UI's index.html nor an
/// empty body). Registered by the app after every `/api/v1/` route (`crate::configure`).
pub async fn no_such_route(req: actix_web::HttpRequest) -> actix_web::HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        actix_web::http::StatusCode::NOT_FOUND,
        "no_such_route",
        format!(
            "{} {} is not part of the API (docs/openapi.yaml)",
            req.method(),
            req.path()
        ),
    ))
}

/// A meeting id from the path, or 400 JSON.
fn meeting_id(raw: &str) -> Result<MeetingId, ApiError> {
    MeetingId::new(raw).map_err(|e| {
        ApiError::bad_request("invalid_meeting_id", format!("invalid meeting id: {e}"))
    })
}

/// A user id from the path, or 400 JSON.
fn user_id(raw: &str) -> Result<UserId, ApiError> {
    UserId::new(raw)
        .map_err(|e| ApiError::bad_request("invalid_user_id", format!("invalid user id: {e}")))
}
