//! HTTP routes.

use std::sync::atomic::Ordering;

use actix_web::{HttpRequest, HttpResponse, web};
use videocall_relay::exposition::Exposition;

use crate::{AppState, ws};

/// Registers the relay's routes and the UI on an actix `App` (the meeting API is
/// [`crate::api::configure`], registered before these: the UI's file service answers every path
/// not registered before it).
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let ui_dir = state.ui_dir.clone();
        cfg.app_data(web::Data::new(state))
            .route("/lobby", web::get().to(ws::lobby))
            .route("/lobby/{user_id}/{meeting_id}", web::get().to(ws::lobby))
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics))
            .route(
                "/api/v1/webtransport/certificate_hash",
                web::get().to(certificate_hash),
            )
            .route("/api/v1/config", web::get().to(client_config))
            // Every other path under /api/v1/ (the meeting API registers its own before this).
            .service(web::resource(["/api/v1", "/api/v1/{tail:.*}"]).to(crate::api::no_such_route));
        if let Some(dir) = ui_dir {
            let index = dir.join("index.html");
            // Client-side routes (`/meeting/...`) get the app's index; files are served as is.
            cfg.service(
                actix_files::Files::new("/", dir)
                    .index_file("index.html")
                    .default_handler(web::to(move |req: HttpRequest| {
                        let index = index.clone();
                        async move {
                            actix_files::NamedFile::open_async(index)
                                .await
                                .map(|file| file.into_response(&req))
                        }
                    })),
            );
        }
    }
}

async fn healthz(state: web::Data<AppState>) -> HttpResponse {
    if *state.shutdown.borrow() {
        return HttpResponse::ServiceUnavailable().body("shutting down\n");
    }
    // Draining (SIGTERM): not ready, so load balancers route new clients to other nodes.
    match state.node.health() {
        Ok(()) => HttpResponse::Ok().body("ok\n"),
        Err(reason) => HttpResponse::ServiceUnavailable().body(format!("{reason}\n")),
    }
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut text = match state.node.render_metrics().await {
        Ok(text) => text,
        Err(e) => return HttpResponse::ServiceUnavailable().body(format!("{e}\n")),
    };
    let m = &state.metrics;
    let mut e = Exposition::new();
    for (name, help, value) in [
        (
            "ws_refused_total",
            "WebSocket upgrades refused (bad ids).",
            &m.refused,
        ),
        (
            "ws_protocol_errors_total",
            "WebSockets closed for a protocol error.",
            &m.protocol_errors,
        ),
        (
            "ws_text_messages_total",
            "Text messages received and discarded.",
            &m.text_messages,
        ),
        (
            "ws_ping_timeouts_total",
            "WebSockets closed for not answering pings.",
            &m.ping_timeouts,
        ),
        (
            "ws_oversize_messages_total",
            "WebSockets closed for a message over the message limit.",
            &m.oversize_messages,
        ),
    ] {
        e.counter(
            &format!("videocall_{name}"),
            help,
            value.load(Ordering::Relaxed),
        );
    }
    e.render(&mut text);
    if let Some(wt) = &state.extra_metrics {
        wt.render(&mut text);
    }
    state.limits.render(&mut text);
    if let Some(api) = &state.api_metrics {
        api.render(&mut text);
    }
    state.gatekeeper.render(&mut text);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text)
}

/// What the browser app needs to connect: `{"webtransport_port": 4433 | null,
/// "certificate_hash": [..32 bytes..] | null}`.
async fn client_config(state: web::Data<AppState>) -> HttpResponse {
    let port = state
        .webtransport_port
        .map_or("null".to_owned(), |p| p.to_string());
    let hash = state.certificate_hash.map_or("null".to_owned(), |h| {
        let bytes: Vec<String> = h.iter().map(u8::to_string).collect();
        format!("[{}]", bytes.join(","))
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(format!(
            "{{\"webtransport_port\":{port},\"certificate_hash\":{hash}}}"
        ))
}

async fn certificate_hash(state: web::Data<AppState>) -> HttpResponse {
    match &state.certificate_hash {
        Some(hash) => HttpResponse::Ok()
            .content_type("application/json")
            .body(webtransport_server::health::certificate_hash_json(hash)),
        None => HttpResponse::NotFound().body("no WebTransport certificate configured\n"),
    }
}
