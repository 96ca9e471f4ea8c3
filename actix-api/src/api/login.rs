//! Guest login, who am I, logout. (Identity-provider login is in `oauth.rs`.)

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use videocall_meetings::User;

use super::session::{Caller, is_https, removal_cookie};
use super::{Api, ApiError};

/// `POST /api/v1/login/guest` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct GuestBody {
    display_name: String,
}

/// A new guest user and login session: 200 with the user, and the login cookie.
pub(super) async fn guest(
    api: web::Data<Api>,
    req: HttpRequest,
    body: web::Json<GuestBody>,
) -> Result<HttpResponse, ApiError> {
    let user = api.store.create_guest(&body.display_name).await?;
    log_in(&api, &req, user).await
}

/// Starts a login session for `user`: 200 with the user, and the login cookie.
pub(super) async fn log_in(
    api: &Api,
    req: &HttpRequest,
    user: User,
) -> Result<HttpResponse, ApiError> {
    let ttl = i64::try_from(api.session_ttl.as_millis()).unwrap_or(i64::MAX);
    let session = api.store.create_login_session(&user, ttl).await?;
    api.metrics.logins.fetch_add(1, Ordering::Relaxed);
    tracing::info!(user = %user.id, provider = %user.provider, "login");
    Ok(HttpResponse::Ok()
        .cookie(api.sessions.cookie(&session, is_https(req)))
        .json(user))
}

/// The logged-in user, or 401.
pub(super) async fn me(caller: Caller) -> web::Json<User> {
    web::Json(caller.0.user)
}

/// Ends the login session and removes the cookie: 204.
pub(super) async fn logout(api: web::Data<Api>, caller: Caller) -> Result<HttpResponse, ApiError> {
    api.store.end_login_session(&caller.0.id).await?;
    Ok(HttpResponse::NoContent().cookie(removal_cookie()).finish())
}
