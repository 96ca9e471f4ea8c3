//! The API's errors: JSON `{"code": "...", "message": "..."}` with a 4xx status for anything a
//! client got wrong, 503 when the database is down; never a 500 for client input. actix's own
//! extractor errors (bad JSON, a body over the limit, a wrong content type) come out the same.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, ResponseError, error};
use serde::Serialize;
use videocall_meetings::{MeetingError, StoreError};

/// Largest JSON body the API reads; larger ones are refused with 413 before being read whole.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// An error answer of the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Short machine-readable code.
    pub code: &'static str,
    /// What went wrong, for people.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    /// An error with `status`, `code` and `message`.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 with `code`.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: no (valid) login session.
    pub fn login_required() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "login_required",
            "log in first: POST /api/v1/login/guest or GET /api/v1/login/oauth",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status).json(Body {
            code: self.code,
            message: &self.message,
        })
    }
}

impl From<MeetingError> for ApiError {
    fn from(e: MeetingError) -> Self {
        let status = match &e {
            MeetingError::NotFound(_) => StatusCode::NOT_FOUND,
            MeetingError::Ended => StatusCode::GONE,
            MeetingError::Forbidden(_) | MeetingError::Rejected => StatusCode::FORBIDDEN,
            MeetingError::Full(_) | MeetingError::WaitingRoomFull | MeetingError::AlreadyExists => {
                StatusCode::CONFLICT
            }
            MeetingError::Invalid(_) => StatusCode::BAD_REQUEST,
            MeetingError::Store(store) => return store_error(store),
            _ => StatusCode::BAD_REQUEST,
        };
        Self::new(status, e.code(), e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        store_error(&e)
    }
}

/// The database failed: 503 (the client may retry), the detail in the log only.
fn store_error(e: &StoreError) -> ApiError {
    tracing::warn!(error = %e, "meeting store error");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "database_unavailable",
        "the meeting database is not available; try again",
    )
}

/// JSON bodies: at most [`MAX_BODY_BYTES`], errors as JSON.
pub(super) fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(MAX_BODY_BYTES)
        .error_handler(|err, _req: &HttpRequest| {
            let api = match &err {
                error::JsonPayloadError::OverflowKnownLength { .. }
                | error::JsonPayloadError::Overflow { .. } => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!("request bodies are at most {MAX_BODY_BYTES} bytes"),
                ),
                error::JsonPayloadError::ContentType => ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send JSON with content-type: application/json",
                ),
                error::JsonPayloadError::Deserialize(e) => {
                    ApiError::bad_request("invalid_json", e.to_string())
                }
                other => ApiError::bad_request("invalid_body", other.to_string()),
            };
            error::InternalError::from_response(err, api.error_response()).into()
        })
}

/// Path segments that do not parse, as JSON.
pub(super) fn path_config() -> actix_web::web::PathConfig {
    actix_web::web::PathConfig::default().error_handler(|err, _req| {
        let api = ApiError::bad_request("invalid_path", err.to_string());
        error::InternalError::from_response(err, api.error_response()).into()
    })
}

/// Query strings that do not parse, as JSON.
pub(super) fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        let api = ApiError::bad_request("invalid_query", err.to_string());
        error::InternalError::from_response(err, api.error_response()).into()
    })
}
