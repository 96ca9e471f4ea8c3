//! Identity-provider login (authorization code + PKCE) against a small provider this test runs
//! on a real socket: discovery, /authorize, /token (which checks the PKCE verifier and the
//! client secret) and /userinfo.

mod api_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::cookie::Cookie;
use actix_web::http::Method;
use actix_web::{App, HttpResponse, HttpServer, test, web};
use api_support::{Kind, api, send, service};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "videocall";
const CLIENT_SECRET: &str = "client-secret";
const REDIRECT: &str = "http://localhost:8080/api/v1/login/callback";

/// The provider's memory: code → PKCE challenge, access token → subject.
#[derive(Default)]
struct Provider {
    codes: Mutex<HashMap<String, String>>,
    tokens: Mutex<HashMap<String, String>>,
    base: Mutex<String>,
}

async fn discovery(p: web::Data<Provider>) -> HttpResponse {
    let base = p.base.lock().unwrap().clone();
    HttpResponse::Ok().json(serde_json::json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "userinfo_endpoint": format!("{base}/userinfo"),
    }))
}

async fn authorize(p: web::Data<Provider>, q: web::Query<HashMap<String, String>>) -> HttpResponse {
    let ok = q.get("client_id").map(String::as_str) == Some(CLIENT_ID)
        && q.get("redirect_uri").map(String::as_str) == Some(REDIRECT)
        && q.get("response_type").map(String::as_str) == Some("code")
        && q.get("code_challenge_method").map(String::as_str) == Some("S256");
    let (Some(challenge), Some(state), true) = (q.get("code_challenge"), q.get("state"), ok) else {
        return HttpResponse::BadRequest().body("bad authorization request");
    };
    let mut codes = p.codes.lock().unwrap();
    let code = format!("code-{}", codes.len());
    codes.insert(code.clone(), challenge.clone());
    HttpResponse::Found()
        .insert_header(("location", format!("{REDIRECT}?code={code}&state={state}")))
        .finish()
}

async fn token(p: web::Data<Provider>, form: web::Form<HashMap<String, String>>) -> HttpResponse {
    let get = |k: &str| form.get(k).cloned().unwrap_or_default();
    if get("client_secret") != CLIENT_SECRET || get("grant_type") != "authorization_code" {
        return HttpResponse::Unauthorized().json(serde_json::json!({"error": "invalid_client"}));
    }
    let Some(challenge) = p.codes.lock().unwrap().remove(&get("code")) else {
        return HttpResponse::BadRequest().json(serde_json::json!({"error": "invalid_grant"}));
    };
    if URL_SAFE_NO_PAD.encode(Sha256::digest(get("code_verifier").as_bytes())) != challenge {
        return HttpResponse::BadRequest()
            .json(serde_json::json!({"error": "invalid_grant", "error_description": "PKCE"}));
    }
    let mut tokens = p.tokens.lock().unwrap();
    let access = format!("at-{}", tokens.len());
    tokens.insert(access.clone(), "alice-123".to_owned());
    HttpResponse::Ok().json(serde_json::json!({"access_token": access, "token_type": "Bearer"}))
}

async fn userinfo(p: web::Data<Provider>, req: actix_web::HttpRequest) -> HttpResponse {
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    match p.tokens.lock().unwrap().get(bearer) {
        Some(sub) => HttpResponse::Ok().json(serde_json::json!({
            "sub": sub, "name": "Alice Liddell", "email": "alice@example.org"
        })),
        None => HttpResponse::Unauthorized().finish(),
    }
}

/// Starts the provider on its own thread (its own actix system) and port: its base URL.
fn start_provider() -> String {
    let provider = web::Data::new(Provider::default());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let data = provider.clone();
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route(
                        "/.well-known/openid-configuration",
                        web::get().to(discovery),
                    )
                    .route("/authorize", web::get().to(authorize))
                    .route("/token", web::post().to(token))
                    .route("/userinfo", web::get().to(userinfo))
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("the provider binds");
            let base = format!("http://{}", server.addrs()[0]);
            *provider.base.lock().unwrap() = base.clone();
            tx.send(base).expect("the test waits for the address");
            server.run().await
        })
    });
    rx.recv().expect("the provider starts")
}

/// Runs `req` and returns (status, location, cookies set).
async fn raw<S, B>(app: &S, req: test::TestRequest) -> (u16, String, HashMap<String, String>)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let resp = test::call_service(app, req.to_request()).await;
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let cookies = resp
        .response()
        .cookies()
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect();
    (resp.status().as_u16(), location, cookies)
}

/// Starts a login: the provider URL to visit and the login-in-progress cookie.
async fn start<S, B>(app: &S) -> (String, String)
where
    S: actix_web::dev::Service<
            actix_http::Request,
            Response = actix_web::dev::ServiceResponse<B>,
            Error = actix_web::Error,
        >,
    B: actix_web::body::MessageBody,
{
    let (status, location, cookies) =
        raw(app, test::TestRequest::get().uri("/api/v1/login/oauth")).await;
    assert_eq!(status, 302);
    (location, cookies["videocall_oauth"].clone())
}

/// The browser's visit to the provider: the callback query it is sent back with.
fn visit_provider(location: &str) -> String {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let resp = agent.get(location).call().expect("the provider answers");
    assert_eq!(
        resp.status().as_u16(),
        302,
        "the provider accepts the request"
    );
    let back = resp.headers()["location"].to_str().unwrap().to_owned();
    back.strip_prefix(REDIRECT)
        .expect("sent back to our callback")
        .to_owned()
}

#[actix_web::test]
async fn a_user_logs_in_at_the_identity_provider_with_pkce() {
    let base = start_provider();
    let (mut api, _relay, _db) = api(Kind::Sqlite).await;
    let config = actix_api::api::OAuthConfig {
        issuer: base,
        client_id: CLIENT_ID.into(),
        client_secret: CLIENT_SECRET.into(),
        redirect_url: REDIRECT.into(),
    };
    api.oauth = Some(Arc::new(
        actix_api::api::OAuth::discover(config, api_support::SECRET).expect("discovery works"),
    ));
    let app = service(api).await;

    let callback = |query: String, flow: String| {
        test::TestRequest::get()
            .uri(&format!("/api/v1/login/callback{query}"))
            .cookie(Cookie::new("videocall_oauth", flow))
    };

    let (location, flow) = start(&app).await;
    assert!(
        location.contains("code_challenge_method=S256"),
        "{location}"
    );
    let query = visit_provider(&location);
    let (status, to, cookies) = raw(&app, callback(query, flow)).await;
    assert_eq!((status, to.as_str()), (302, "/"));
    let session = cookies[actix_api::api::COOKIE].clone();
    let me = send(&app, Method::GET, "/api/v1/me", Some(&session), None).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json["id"], "oidc-alice-123");
    assert_eq!(me.json["provider"], "oidc");
    assert_eq!(me.json["display_name"], "Alice Liddell");
    assert_eq!(me.json["email"], "alice@example.org");

    // A state that is not this browser's login is refused before the provider is asked.
    let (location, flow) = start(&app).await;
    let query = visit_provider(&location);
    let forged = query.replace("state=", "state=x");
    let r = api_support::call(&app, callback(forged, flow)).await;
    assert_eq!((r.status, r.code()), (400, "oauth_state_mismatch"));

    // Another login's code with this login's verifier: the provider's PKCE check refuses it.
    let (location_a, _flow_a) = start(&app).await;
    let (location_b, flow_b) = start(&app).await;
    let query_a = visit_provider(&location_a);
    let query_b = visit_provider(&location_b);
    let code_a = query_a.split('&').next().unwrap().to_owned();
    let state_b = query_b.split('&').nth(1).unwrap();
    let r = api_support::call(&app, callback(format!("{code_a}&{state_b}"), flow_b)).await;
    assert_eq!((r.status, r.code()), (502, "oauth_failed"), "{r:?}");

    // No login in progress.
    let r = api_support::call(
        &app,
        test::TestRequest::get().uri("/api/v1/login/callback?code=c&state=s"),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, "oauth_no_flow"));
}

#[actix_web::test]
async fn without_a_provider_the_oauth_login_is_not_found() {
    let (api, _relay, _db) = api(Kind::Sqlite).await;
    let app = service(api).await;
    let r = send(&app, Method::GET, "/api/v1/login/oauth", None, None).await;
    assert_eq!((r.status, r.code()), (404, "oauth_not_configured"));
}
