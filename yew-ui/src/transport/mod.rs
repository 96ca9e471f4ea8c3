//! The two ways to the relay: WebTransport (preferred) and WebSocket (fallback). Both deliver
//! whole packets (one encoded `PacketWrapper` each) to `on_packet` and report closure once to
//! `on_close`.

mod websocket;
mod webtransport;

pub(crate) use webtransport::read as read_chunk;

use std::rc::Rc;

use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use crate::state::TransportKind;

/// Called with each packet received.
pub(crate) type OnPacket = Rc<dyn Fn(Vec<u8>)>;
/// Called once when the transport closes, with the server's close code when it gave one (a
/// WebSocket close code, a WebTransport `closeCode`) and the reason.
pub(crate) type OnClose = Rc<dyn Fn(Option<u32>, String)>;

/// An open transport.
pub(crate) enum Transport {
    WebTransport(webtransport::WtTransport),
    WebSocket(websocket::WsTransport),
}

impl Transport {
    pub(crate) fn kind(&self) -> TransportKind {
        match self {
            Transport::WebTransport(_) => TransportKind::WebTransport,
            Transport::WebSocket(_) => TransportKind::WebSocket,
        }
    }

    pub(crate) fn send(&self, packet: &[u8]) {
        match self {
            Transport::WebTransport(t) => t.send(packet),
            Transport::WebSocket(t) => t.send(packet),
        }
    }

    pub(crate) fn close(&self) {
        match self {
            Transport::WebTransport(t) => t.close(),
            Transport::WebSocket(t) => t.close(),
        }
    }
}

/// Where the relay is, as the page learnt it from `/api/v1/config`; a connection attempt uses
/// [`Endpoints::with_path`] to add the session's lobby path.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    /// `wss?://host` (and, for an attempt, the lobby path).
    pub(crate) websocket_url: String,
    /// `https://host:port` (and, for an attempt, the lobby path), when the server offers
    /// WebTransport.
    pub(crate) webtransport_url: Option<String>,
    /// SHA-256 of a development certificate, for `serverCertificateHashes`.
    pub(crate) certificate_hash: Option<Vec<u8>>,
}

impl Endpoints {
    /// These endpoints with `path` (the session's lobby path and query) appended.
    pub(crate) fn with_path(&self, path: &str) -> Self {
        Self {
            websocket_url: format!("{}{path}", self.websocket_url),
            webtransport_url: self
                .webtransport_url
                .as_ref()
                .map(|url| format!("{url}{path}")),
            certificate_hash: self.certificate_hash.clone(),
        }
    }
}

/// How long WebTransport may take before the WebSocket fallback is tried.
const WEBTRANSPORT_TIMEOUT_MS: u32 = 3_000;
/// How long WebSocket may take before giving up.
const WEBSOCKET_TIMEOUT_MS: u32 = 5_000;

/// Opens WebTransport, when the endpoints offer it, within [`WEBTRANSPORT_TIMEOUT_MS`]; the
/// error says why not.
pub(crate) async fn connect_webtransport(
    endpoints: &Endpoints,
    on_packet: OnPacket,
    on_close: OnClose,
) -> Result<Transport, String> {
    let Some(url) = &endpoints.webtransport_url else {
        return Err("WebTransport: not offered".to_owned());
    };
    let attempt = webtransport::WtTransport::connect(
        url,
        endpoints.certificate_hash.as_deref(),
        on_packet,
        on_close,
    );
    match with_timeout(attempt, WEBTRANSPORT_TIMEOUT_MS).await {
        Some(Ok(t)) => Ok(Transport::WebTransport(t)),
        Some(Err(e)) => Err(format!("WebTransport: {e}")),
        None => Err("WebTransport: timed out".to_owned()),
    }
}

/// Opens WebSocket within [`WEBSOCKET_TIMEOUT_MS`]; the error says why not.
pub(crate) async fn connect_websocket(
    endpoints: &Endpoints,
    on_packet: OnPacket,
    on_close: OnClose,
) -> Result<Transport, String> {
    let attempt = websocket::WsTransport::connect(&endpoints.websocket_url, on_packet, on_close);
    match with_timeout(attempt, WEBSOCKET_TIMEOUT_MS).await {
        Some(Ok(t)) => Ok(Transport::WebSocket(t)),
        Some(Err(e)) => Err(format!("WebSocket: {e}")),
        None => Err("WebSocket: timed out".to_owned()),
    }
}

pub(crate) async fn with_timeout<T>(
    future: impl std::future::Future<Output = T>,
    ms: u32,
) -> Option<T> {
    let future = std::pin::pin!(future);
    let timer = gloo_timers::future::TimeoutFuture::new(ms);
    match futures_util::future::select(future, timer).await {
        futures_util::future::Either::Left((value, _)) => Some(value),
        futures_util::future::Either::Right(_) => None,
    }
}

/// Text of a JS error value.
pub(crate) fn js_error(value: &JsValue) -> String {
    value
        .as_string()
        .or_else(|| {
            js_sys::Reflect::get(value, &"message".into())
                .ok()
                .and_then(|m| m.as_string())
        })
        .unwrap_or_else(|| format!("{value:?}"))
}

/// Awaits a promise, mapping rejection to text.
pub(crate) async fn await_promise(promise: js_sys::Promise) -> Result<JsValue, String> {
    JsFuture::from(promise).await.map_err(|e| js_error(&e))
}
