//! What the API tests share: the API over a real store (PostgreSQL or SQLite), a relay control
//! that records its calls, and a request helper that returns status, JSON and login cookie.

#![allow(dead_code, unreachable_pub)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_api::MeetingPolicy;
use actix_api::api::{self, Api, RelayControl};
use actix_web::body::MessageBody;
use actix_web::cookie::Cookie;
use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::Method;
use actix_web::test;
use serde_json::Value;
use videocall_auth::TokenKey;
use videocall_meetings::{Store, StoreConfig};
use videocall_testkit::postgres::TestDatabase;
use videocall_types::{MeetingId, UserId};

/// The room-token secret of the tests.
pub const SECRET: &[u8] = b"api-test-secret-0123456789abcdef";

/// Which database a test body runs on.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    Postgres,
    Sqlite,
}

/// Records what the API told the relays, as `"remove m u"`, `"mute m u"`, `"end m"`.
#[derive(Debug, Default)]
pub struct RecordingRelay(pub Mutex<Vec<String>>);

impl RecordingRelay {
    pub fn calls(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

impl RelayControl for RecordingRelay {
    fn remove(&self, meeting: &MeetingId, user: &UserId) {
        self.0
            .lock()
            .unwrap()
            .push(format!("remove {meeting} {user}"));
    }
    fn ask_to_mute(&self, meeting: &MeetingId, user: &UserId) {
        self.0
            .lock()
            .unwrap()
            .push(format!("mute {meeting} {user}"));
    }
    fn end(&self, meeting: &MeetingId) {
        self.0.lock().unwrap().push(format!("end {meeting}"));
    }
}

/// The API over a fresh database of `kind`.
pub async fn api(kind: Kind) -> (Api, Arc<RecordingRelay>, TestDatabase) {
    let db = match kind {
        Kind::Postgres => TestDatabase::postgres(),
        Kind::Sqlite => TestDatabase::sqlite(),
    };
    let store = Store::open(&db.url(), StoreConfig::default())
        .await
        .expect("the store opens");
    let relay = Arc::new(RecordingRelay::default());
    let api = Api {
        store,
        tokens: TokenKey::new(SECRET).unwrap(),
        sessions: api::SessionKey::derive(SECRET),
        relay: relay.clone(),
        token_ttl: Duration::from_secs(600),
        session_ttl: Duration::from_secs(3600),
        policy: Arc::new(MeetingPolicy::default()),
        oauth: None,
        metrics: Arc::default(),
    };
    (api, relay, db)
}

/// The API as an actix service (no port).
pub async fn service(
    api: Api,
) -> impl Service<
    actix_http::Request,
    Response = ServiceResponse<impl MessageBody>,
    Error = actix_web::Error,
> {
    test::init_service(actix_web::App::new().configure(api::configure(api))).await
}

/// An answer: status, JSON body (Null when not JSON), the login cookie if one was set.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub json: Value,
    pub cookie: Option<String>,
}

impl Reply {
    /// The JSON error code.
    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("<no code>")
    }
}

/// A request with an optional login cookie and JSON body.
pub async fn send<S, B>(
    app: &S,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    body: Option<Value>,
) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let mut req = test::TestRequest::default().method(method).uri(path);
    if let Some(c) = cookie {
        req = req.cookie(Cookie::new(api::COOKIE, c.to_owned()));
    }
    if let Some(body) = body {
        req = req.set_json(body);
    }
    call(app, req).await
}

/// Sends a prepared request.
pub async fn call<S, B>(app: &S, req: test::TestRequest) -> Reply
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let resp = test::call_service(app, req.to_request()).await;
    let status = resp.status().as_u16();
    let cookie = resp
        .response()
        .cookies()
        .find(|c| c.name() == api::COOKIE)
        .map(|c| c.value().to_owned());
    let bytes = test::read_body(resp).await;
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Reply {
        status,
        json,
        cookie,
    }
}

/// Logs in a guest named `name`: (their cookie, their user id).
pub async fn guest<S, B>(app: &S, name: &str) -> (String, String)
where
    S: Service<actix_http::Request, Response = ServiceResponse<B>, Error = actix_web::Error>,
    B: MessageBody,
{
    let reply = send(
        app,
        Method::POST,
        "/api/v1/login/guest",
        None,
        Some(serde_json::json!({ "display_name": name })),
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let cookie = reply.cookie.expect("login sets the cookie");
    (cookie, reply.json["id"].as_str().unwrap().to_owned())
}

/// Runs each named test body on PostgreSQL and on SQLite.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[actix_web::test]
            async fn on_postgres() {
                super::$name(super::api_support::Kind::Postgres).await;
            }
            #[actix_web::test]
            async fn on_sqlite() {
                super::$name(super::api_support::Kind::Sqlite).await;
            }
        }
    )+};
}
