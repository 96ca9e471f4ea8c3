//! Where the relay is and how to reach it: the page's server says (`/api/v1/config`), and
//! whether the meeting is end-to-end encrypted (`/api/v1/meetings/<id>`). Asked again on every
//! reconnect, since a restarted node has a new development certificate (and may have moved
//! WebTransport).

use js_sys::Reflect;
use videocall_types::MeetingId;
use wasm_bindgen::JsCast;

use crate::transport::{self, Endpoints, OnClose, OnPacket, Transport, await_promise};

/// The JSON a GET of `path` on this page's server answers with 200, if it does.
async fn fetch_json(path: &str) -> Option<wasm_bindgen::JsValue> {
    let window = web_sys::window()?;
    let response = await_promise(window.fetch_with_str(path)).await.ok()?;
    let response: web_sys::Response = response.unchecked_into();
    if !response.ok() {
        return None;
    }
    await_promise(response.json().ok()?).await.ok()
}

/// The `e2ee` claim of our room token (issue #16). Read, not verified: the relay verifies this
/// very token, so one altered in transit to say "clear" is refused, and the claim cannot be
/// downgraded the way the unauthenticated `GET /api/v1/meetings/{id}` answer can.
pub(crate) fn token_e2ee(token: &str) -> Option<bool> {
    let payload = token.split('.').nth(1)?;
    let mut base64: String = payload
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !base64.len().is_multiple_of(4) {
        base64.push('=');
    }
    let json = web_sys::window()?.atob(&base64).ok()?;
    let claims = js_sys::JSON::parse(&json).ok()?;
    Reflect::get(&claims, &"e2ee".into()).ok()?.as_bool()
}

/// Whether the node says `meeting` is end-to-end encrypted; encrypted when it does not say.
/// Only for a join without a room token (see [`token_e2ee`]).
pub(crate) async fn meeting_is_encrypted(meeting: &MeetingId) -> bool {
    fetch_json(&format!("/api/v1/meetings/{meeting}"))
        .await
        .and_then(|settings| Reflect::get(&settings, &"e2ee".into()).ok())
        .and_then(|v| v.as_bool())
        .unwrap_or(true)
}

/// Asks the server where the relays are (scheme, host and port; each attempt adds the session's
/// lobby path); falls back to WebSocket on this host. `?transport=websocket` in the page's URL
/// leaves WebTransport out.
pub(crate) async fn fetch_endpoints() -> Endpoints {
    let Some(window) = web_sys::window() else {
        return Endpoints {
            websocket_url: String::new(),
            webtransport_url: None,
            certificate_hash: None,
        };
    };
    let location = window.location();
    let host = location.host().unwrap_or_default();
    let hostname = location.hostname().unwrap_or_default();
    let secure = location.protocol().unwrap_or_default() == "https:";
    let mut endpoints = Endpoints {
        websocket_url: format!("{}://{host}", if secure { "wss" } else { "ws" }),
        webtransport_url: None,
        certificate_hash: None,
    };
    let Some(server) = fetch_json("/api/v1/config").await else {
        return endpoints;
    };
    let disabled = web_sys::UrlSearchParams::new_with_str(&location.search().unwrap_or_default())
        .map(|p| p.get("transport").as_deref() == Some("websocket"))
        .unwrap_or(false);
    if let Some(port) = Reflect::get(&server, &"webtransport_port".into())
        .ok()
        .and_then(|p| p.as_f64())
        && !disabled
    {
        endpoints.webtransport_url = Some(format!("https://{hostname}:{port}"));
    }
    if let Ok(hash) = Reflect::get(&server, &"certificate_hash".into())
        && hash.is_object()
    {
        endpoints.certificate_hash = Some(js_sys::Uint8Array::new(&hash).to_vec());
    }
    endpoints
}

/// One connection attempt: the endpoints learnt when the page joined serve the very first
/// attempt; every later one asks the server again. WebTransport first; when it fails, the server
/// is asked once more before falling back to WebSocket, because a node that restarted while we
/// looked it up (the answer came from the old process) serves a new development certificate,
/// which the old hash refuses. Answers the transport (or why none opened) and the endpoints it
/// used, to keep for next time.
/// `lobby` is the session's lobby path (`/lobby/<user>/<meeting>`, `/lobby?token=…`, with the
/// relay's reconnect secret once it issued one).
pub(crate) async fn connect(
    lobby: &str,
    known: Option<Endpoints>,
    on_packet: OnPacket,
    on_close: OnClose,
) -> (Result<Transport, String>, Endpoints) {
    let mut endpoints = match known {
        Some(endpoints) => endpoints,
        None => fetch_endpoints().await,
    };
    let mut tried = Vec::new();
    if endpoints.webtransport_url.is_some() {
        let attempt = endpoints.with_path(lobby);
        match transport::connect_webtransport(&attempt, on_packet.clone(), on_close.clone()).await {
            Ok(t) => return (Ok(t), endpoints),
            Err(e) => tried.push(e),
        }
        let fresh = fetch_endpoints().await;
        let moved = fresh.webtransport_url.is_some()
            && (fresh.certificate_hash != endpoints.certificate_hash
                || fresh.webtransport_url != endpoints.webtransport_url);
        endpoints = fresh;
        if moved {
            let attempt = endpoints.with_path(lobby);
            match transport::connect_webtransport(&attempt, on_packet.clone(), on_close.clone())
                .await
            {
                Ok(t) => return (Ok(t), endpoints),
                Err(e) => tried.push(format!("{e} (with the server's new certificate)")),
            }
        }
    }
    let attempt = endpoints.with_path(lobby);
    match transport::connect_websocket(&attempt, on_packet, on_close).await {
        Ok(t) => (Ok(t), endpoints),
        Err(e) => {
            tried.push(e);
            let reason = format!("cannot reach the relay ({})", tried.join("; "));
            (Err(reason), endpoints)
        }
    }
}
