//! `/api/v1/meetings/{id}/…`: join (a room token, or the waiting room), leave, the waiting room
//! (list, admit, admit all, reject) and participants (list, remove, ask to mute).

use std::sync::atomic::Ordering;

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use videocall_auth::RoomClaims;
use videocall_meetings::{Joined, MeetingError, Participant};

use super::session::Caller;
use super::{Api, ApiError, meeting_id, user_id};

/// `POST /api/v1/meetings/{id}/join` body: `{}` at least.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JoinBody {
    /// Name shown to others; the user's own when absent.
    display_name: Option<String>,
    /// Receive only.
    #[serde(default)]
    observer: bool,
}

/// Joins: 200 `{"status": "admitted", "token", "expires_at", "participant"}`, or 202
/// `{"status": "waiting", "participant"}` until a host admits the caller (join again then).
pub(super) async fn join(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<JoinBody>,
) -> Result<HttpResponse, ApiError> {
    let id = meeting_id(&path)?;
    let user = &caller.0.user;
    let joined = api
        .store
        .join(user, &id, body.display_name.as_deref(), body.observer)
        .await;
    match joined {
        Ok(Joined::Admitted(p)) => {
            api.metrics.joins_admitted.fetch_add(1, Ordering::Relaxed);
            let exp =
                now_secs() + i64::try_from(api.token_ttl.as_secs()).unwrap_or(i64::from(u32::MAX));
            // The token carries the meeting's E2EE setting, signed: clients take it from there
            // (not from the unauthenticated GET) and relays enforce it (issue #16).
            let e2ee = match api.store.meeting(id.as_str()).await? {
                Some(meeting) => super::meetings::e2ee(&api, &meeting),
                None => api.policy.e2ee(id.as_str()),
            };
            let mut claims = RoomClaims::new(
                &user_id(&p.user_id)?,
                &id,
                p.display_name.clone(),
                p.role.grants(),
                e2ee,
                exp,
            );
            claims.is_guest = user.provider == "guest";
            Ok(HttpResponse::Ok().json(serde_json::json!({
                "status": "admitted",
                "token": api.tokens.sign(&claims),
                "expires_at": exp,
                "participant": p,
            })))
        }
        Ok(Joined::Waiting(p)) => {
            api.metrics.joins_waiting.fetch_add(1, Ordering::Relaxed);
            Ok(HttpResponse::Accepted().json(serde_json::json!({
                "status": "waiting",
                "participant": p,
            })))
        }
        Err(e) => {
            match e {
                MeetingError::Full(_) => &api.metrics.joins_full,
                MeetingError::WaitingRoomFull => &api.metrics.waiting_room_full,
                _ => return Err(e.into()),
            }
            .fetch_add(1, Ordering::Relaxed);
            Err(e.into())
        }
    }
}

/// Leaves the meeting (or its waiting room): the participant.
pub(super) async fn leave(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<web::Json<Participant>, ApiError> {
    let id = meeting_id(&path)?;
    Ok(web::Json(api.store.leave(&caller.0.user.id, &id).await?))
}

/// The waiting room, first come first (hosts only).
pub(super) async fn waiting(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<web::Json<Vec<Participant>>, ApiError> {
    let id = meeting_id(&path)?;
    Ok(web::Json(api.store.waiting(&caller.0.user.id, &id).await?))
}

/// Admits one waiting user (hosts only): the participant.
pub(super) async fn admit(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Participant>, ApiError> {
    let (meeting, user) = path.into_inner();
    let (id, user) = (meeting_id(&meeting)?, user_id(&user)?);
    let p = api
        .store
        .admit(&caller.0.user.id, &id, user.as_str())
        .await?;
    Ok(web::Json(p))
}

/// Admits everyone waiting while there is room (hosts only): `{"admitted": [...],
/// "still_waiting": n}`.
pub(super) async fn admit_all(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = meeting_id(&path)?;
    let all = api.store.admit_all(&caller.0.user.id, &id).await?;
    Ok(HttpResponse::Ok().json(all))
}

/// Turns one waiting user away (hosts only): the participant.
pub(super) async fn reject(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Participant>, ApiError> {
    let (meeting, user) = path.into_inner();
    let (id, user) = (meeting_id(&meeting)?, user_id(&user)?);
    let p = api
        .store
        .reject(&caller.0.user.id, &id, user.as_str())
        .await?;
    Ok(web::Json(p))
}

/// Those admitted (participants and hosts may ask).
pub(super) async fn list(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<web::Json<Vec<Participant>>, ApiError> {
    let id = meeting_id(&path)?;
    Ok(web::Json(
        api.store.participants(&caller.0.user.id, &id).await?,
    ))
}

/// Removes a participant (hosts only); they stay out, and the relays close their sessions.
pub(super) async fn remove(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<web::Json<Participant>, ApiError> {
    let (meeting, user) = path.into_inner();
    let (id, user) = (meeting_id(&meeting)?, user_id(&user)?);
    let p = api
        .store
        .remove(&caller.0.user.id, &id, user.as_str())
        .await?;
    api.relay.remove(&id, &user);
    Ok(web::Json(p))
}

/// Asks an admitted participant to mute (hosts only): 202, the relays pass it on.
pub(super) async fn mute(
    api: web::Data<Api>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (meeting, user) = path.into_inner();
    let (id, user) = (meeting_id(&meeting)?, user_id(&user)?);
    api.store
        .ask_to_mute(&caller.0.user.id, &id, user.as_str())
        .await?;
    api.relay.ask_to_mute(&id, &user);
    Ok(HttpResponse::Accepted().json(serde_json::json!({
        "meeting_id": id.as_str(),
        "user_id": user.as_str(),
        "asked_to_mute": true,
    })))
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
