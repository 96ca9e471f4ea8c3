//! `/api/v1/meetings`: create, read, change settings, end.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use videocall_meetings::{Access, Meeting, NewMeeting, SettingsPatch};

use super::session::Caller;
use super::{Api, ApiError, meeting_id};

/// `POST /api/v1/meetings` body; every field optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    id: Option<String>,
    access: Option<Access>,
    waiting_room: Option<bool>,
    e2ee_required: Option<bool>,
    max_participants: Option<i64>,
}

/// `PATCH /api/v1/meetings/{id}` body; absent fields keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateBody {
    access: Option<Access>,
    waiting_room: Option<bool>,
    e2ee_required: Option<bool>,
    max_participants: Option<i64>,
}

/// Creates a meeting owned by the caller: 201 with the meeting.
pub(super) async fn create(
    api: web::Data<Api>,
    caller: Caller,
    body: web::Json<CreateBody>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let defaults = NewMeeting::default();
    let new = NewMeeting {
        id: body.id.as_deref().map(meeting_id).transpose()?,
        access: body.access.unwrap_or(defaults.access),
        waiting_room: body.waiting_room.unwrap_or(defaults.waiting_room),
        e2ee_required: body.e2ee_required.unwrap_or(defaults.e2ee_required),
        max_participants: body.max_participants.unwrap_or(defaults.max_participants),
    };
    let meeting = api.store.create_meeting(&caller.0.user, new).await?;
    Ok(HttpResponse::Created().json(view(&api, &meeting)))
}

/// A meeting's settings, public (clients read `e2ee` before joining): `{"meeting_id", "e2ee"}`,
/// plus `"meeting"` with the stored meeting when there is one.
pub(super) async fn get(
    api: web::Data<Api>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = meeting_id(&path)?;
    Ok(match api.store.meeting(id.as_str()).await? {
        Some(meeting) => HttpResponse::Ok().json(view(&api, &meeting)),
        None => HttpResponse::Ok().json(serde_json::json!({
            "meeting_id": id.as_str(),
            "e2ee": api.policy.e2ee(id.as_str()),
        })),
    })
}

/// Changes settings (hosts only): the meeting.
pub(super) async fn update(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let id = meeting_id(&path)?;
    let body = body.into_inner();
    let patch = SettingsPatch {
        access: body.access,
        waiting_room: body.waiting_room,
        e2ee_required: body.e2ee_required,
        max_participants: body.max_participants,
    };
    let meeting = api
        .store
        .update_settings(&caller.0.user.id, &id, patch)
        .await?;
    Ok(HttpResponse::Ok().json(view(&api, &meeting)))
}

/// Ends the meeting for everyone (hosts only) and tells the relays: the meeting.
pub(super) async fn end(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = meeting_id(&path)?;
    let meeting = api.store.end_meeting(&caller.0.user.id, &id).await?;
    api.relay.end(&id);
    Ok(HttpResponse::Ok().json(view(&api, &meeting)))
}

/// Whether `meeting` is end-to-end encrypted: its setting when an owner made it through the
/// API, else (a meeting created by an open join) the node's policy. Room tokens carry it, signed.
pub(super) fn e2ee(api: &Api, meeting: &Meeting) -> bool {
    if meeting.owner_id.is_some() {
        meeting.e2ee_required
    } else {
        api.policy.e2ee(&meeting.id)
    }
}

/// The JSON of a stored meeting. `e2ee` is the meeting's setting when an owner made it through
/// the API, else (a meeting created by an open join) the node's policy.
fn view(api: &Api, meeting: &Meeting) -> serde_json::Value {
    let e2ee = e2ee(api, meeting);
    serde_json::json!({
        "meeting_id": meeting.id,
        "e2ee": e2ee,
        "meeting": meeting,
    })
}
