//! The standalone WebTransport server's HTTP/1.1 endpoint (hyper): `GET /healthz` (200 only
//! while the bus is connected and the node is not draining; `NodeHandle::health`), `GET
//! /metrics` (Prometheus text) and `GET /api/v1/webtransport/certificate_hash`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tracing::{debug, info};
use videocall_relay::node::NodeHandle;

use crate::WtMetrics;
use crate::admission::Gatekeeper;
use crate::limits::NodeLimits;

/// What the endpoint reads to answer.
#[derive(Clone)]
struct State {
    node: NodeHandle,
    metrics: Arc<WtMetrics>,
    limits: Arc<NodeLimits>,
    gatekeeper: Arc<Gatekeeper>,
    certificate_hash: [u8; 32],
}

/// Serves until `shutdown` turns true.
pub async fn serve(
    listen: SocketAddr,
    node: NodeHandle,
    metrics: Arc<WtMetrics>,
    limits: Arc<NodeLimits>,
    gatekeeper: Arc<Gatekeeper>,
    certificate_hash: [u8; 32],
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    info!("health and metrics on http://{listen}");
    let state = State {
        node,
        metrics,
        limits,
        gatekeeper,
        certificate_hash,
    };
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => accepted?,
            _ = shutdown.wait_for(|stop| *stop) => return Ok(()),
        };
        let state = state.clone();
        tokio::spawn(async move {
            // A client that keeps a connection open without finishing its request is dropped
            // after the handshake timeout; a scrape or probe takes milliseconds.
            let deadline = state.limits.handshake_timeout;
            let service = service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(answer(&state, &request).await) }
            });
            let connection = http1::Builder::new()
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(deadline, connection).await {
                Ok(Err(e)) => debug!("health endpoint: {e}"),
                Err(_) => debug!("health endpoint: request not finished in {deadline:?}"),
                Ok(Ok(())) => {}
            }
        });
    }
}

async fn answer(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "text/plain", "GET only\n");
    }
    match request.uri().path() {
        "/healthz" => match state.node.health() {
            Ok(()) => text(StatusCode::OK, "text/plain", "ok\n"),
            Err(reason) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{reason}\n"),
            ),
        },
        "/metrics" => match state.node.render_metrics().await {
            Ok(mut body) => {
                state.metrics.render(&mut body);
                state.limits.render(&mut body);
                state.gatekeeper.render(&mut body);
                text(StatusCode::OK, "text/plain; version=0.0.4", body)
            }
            Err(e) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain",
                format!("{e}\n"),
            ),
        },
        "/api/v1/webtransport/certificate_hash" => text(
            StatusCode::OK,
            "application/json",
            certificate_hash_json(&state.certificate_hash),
        ),
        _ => text(StatusCode::NOT_FOUND, "text/plain", "not found\n"),
    }
}

fn text(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// `{"algorithm":"sha-256","value":[..32 bytes..],"hex":"…"}`: `value` goes straight into
/// `serverCertificateHashes` as a `Uint8Array`.
pub fn certificate_hash_json(hash: &[u8; 32]) -> String {
    let bytes: Vec<String> = hash.iter().map(u8::to_string).collect();
    format!(
        "{{\"algorithm\":\"sha-256\",\"value\":[{}],\"hex\":\"{}\"}}",
        bytes.join(","),
        videocall_service::cert::hex(hash)
    )
}
