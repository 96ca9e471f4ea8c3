//! The API calls over `fetch` (same origin, so the login cookie goes along by default).

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::{ApiError, JoinAnswer, MeetingView, NewMeeting, Participant, User};

fn js_error(what: &str, e: JsValue) -> ApiError {
    ApiError::network(format!(
        "{what}: {}",
        e.as_string()
            .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
            .unwrap_or_else(|| "no answer".into())
    ))
}

/// `method path` with an optional JSON body: the status and body text of any answer.
async fn send(method: &str, path: &str, body: Option<String>) -> Result<(u16, String), ApiError> {
    let window = web_sys::window().ok_or_else(|| ApiError::network("no window"))?;
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        let headers = web_sys::Headers::new().map_err(|e| js_error(path, e))?;
        headers
            .set("content-type", "application/json")
            .map_err(|e| js_error(path, e))?;
        init.set_headers(&headers);
        init.set_body(&JsValue::from_str(&body));
    }
    let response = JsFuture::from(window.fetch_with_str_and_init(path, &init))
        .await
        .map_err(|e| js_error(path, e))?;
    let response: web_sys::Response = response.unchecked_into();
    let text = JsFuture::from(response.text().map_err(|e| js_error(path, e))?)
        .await
        .map_err(|e| js_error(path, e))?
        .as_string()
        .unwrap_or_default();
    Ok((response.status(), text))
}

/// A call answering JSON `T` on 2xx, the API's `{code, message}` otherwise.
async fn call<T: DeserializeOwned>(
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<T, ApiError> {
    let (status, text) = send(method, path, body).await?;
    if (200..300).contains(&status) {
        serde_json::from_str(&text)
            .map_err(|e| ApiError::network(format!("{path}: unexpected answer: {e}")))
    } else {
        Err(error_of(status, &text))
    }
}

/// A call whose answer's body does not matter.
async fn call_unit(method: &str, path: &str) -> Result<(), ApiError> {
    let (status, text) = send(method, path, None).await?;
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(error_of(status, &text))
    }
}

fn error_of(status: u16, text: &str) -> ApiError {
    match serde_json::from_str::<ApiError>(text) {
        Ok(e) => ApiError { status, ..e },
        Err(_) => ApiError {
            status,
            code: "http_error".into(),
            message: format!("the server answered {status}"),
        },
    }
}

fn json(value: &impl Serialize) -> Option<String> {
    // Our own plain structs always serialise.
    Some(serde_json::to_string(value).expect("plain structs serialise"))
}

fn component(text: &str) -> String {
    String::from(js_sys::encode_uri_component(text))
}

/// The logged-in user (`login_required` when there is none).
pub(crate) async fn me() -> Result<User, ApiError> {
    call("GET", "/api/v1/me", None).await
}

/// Logs in as a guest named `display_name` (the cookie is set by the answer).
pub(crate) async fn login_guest(display_name: &str) -> Result<User, ApiError> {
    let body = json(&serde_json::json!({ "display_name": display_name }));
    call("POST", "/api/v1/login/guest", body).await
}

/// Creates a meeting we own (protected, E2EE).
pub(crate) async fn create_meeting(settings: &NewMeeting) -> Result<MeetingView, ApiError> {
    call("POST", "/api/v1/meetings", json(settings)).await
}

/// A meeting's settings and state (public).
pub(crate) async fn meeting(id: &str) -> Result<MeetingView, ApiError> {
    call("GET", &format!("/api/v1/meetings/{}", component(id)), None).await
}

/// Asks to join: admitted with a token, or waiting.
pub(crate) async fn join(id: &str, display_name: &str) -> Result<JoinAnswer, ApiError> {
    let body = json(&serde_json::json!({ "display_name": display_name }));
    call(
        "POST",
        &format!("/api/v1/meetings/{}/join", component(id)),
        body,
    )
    .await
}

/// Leaves the meeting or its waiting room.
pub(crate) async fn leave(id: &str) -> Result<(), ApiError> {
    call_unit("POST", &format!("/api/v1/meetings/{}/leave", component(id))).await
}

/// Those admitted (refused to anyone not admitted, e.g. after removal).
pub(crate) async fn participants(id: &str) -> Result<Vec<Participant>, ApiError> {
    let path = format!("/api/v1/meetings/{}/participants", component(id));
    call("GET", &path, None).await
}

/// The waiting room (hosts).
pub(crate) async fn waiting(id: &str) -> Result<Vec<Participant>, ApiError> {
    let path = format!("/api/v1/meetings/{}/waiting", component(id));
    call("GET", &path, None).await
}

/// What a host can do to one participant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostAction {
    /// Let a waiting user in.
    Admit,
    /// Turn a waiting user away.
    Reject,
    /// Remove an admitted participant.
    Remove,
    /// Ask an admitted participant to mute.
    Mute,
}

/// Carries out `action` on `user` in meeting `id` (hosts only).
pub(crate) async fn host_action(id: &str, user: &str, action: HostAction) -> Result<(), ApiError> {
    let (id, user) = (component(id), component(user));
    let (method, path) = match action {
        HostAction::Admit => (
            "POST",
            format!("/api/v1/meetings/{id}/waiting/{user}/admit"),
        ),
        HostAction::Reject => (
            "POST",
            format!("/api/v1/meetings/{id}/waiting/{user}/reject"),
        ),
        HostAction::Remove => (
            "DELETE",
            format!("/api/v1/meetings/{id}/participants/{user}"),
        ),
        HostAction::Mute => (
            "POST",
            format!("/api/v1/meetings/{id}/participants/{user}/mute"),
        ),
    };
    call_unit(method, &path).await
}

/// Admits everyone waiting while there is room (hosts).
pub(crate) async fn admit_all(id: &str) -> Result<(), ApiError> {
    call_unit(
        "POST",
        &format!("/api/v1/meetings/{}/waiting/admit_all", component(id)),
    )
    .await
}

/// Ends the meeting for everyone (hosts).
pub(crate) async fn end(id: &str) -> Result<(), ApiError> {
    call_unit("POST", &format!("/api/v1/meetings/{}/end", component(id))).await
}
