//! The service binaries as real processes.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// Path of a binary of this workspace, built beside the running test (`target/<profile>/<name>`;
/// `make test` builds every binary before the tests run).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is not built: `make test` builds it (cargo build --workspace --bins --all-features)",
        path.display()
    );
    path
}

/// A running service process, killed on drop.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// Its own `DATA_DIR` (actix-api's embedded meeting database), removed on drop.
    data_dir: PathBuf,
    /// Lines the service printed on stdout after its ready line.
    pub stdout: mpsc::Receiver<String>,
}

impl Service {
    /// Starts `bin` with `args` and `env`, and waits until it prints a line containing `ready`.
    pub fn start(bin: &PathBuf, args: &[String], env: &[(&str, String)], ready: &str) -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let data_dir = std::env::temp_dir().join(format!(
            "videocall-service-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut command = Command::new(bin);
        command
            .args(args)
            // Each process its own meeting database, not one shared file in the package dir.
            .env("DATA_DIR", &data_dir)
            .env(
                "RUST_LOG",
                std::env::var("SERVICE_LOG").unwrap_or("warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains(ready) => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!("{} never printed {ready:?}", bin.display());
                }
            }
        }
        Self {
            child,
            data_dir,
            stdout: rx,
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill(1) runs");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait works") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The all-in-one single node (`actix-api --webtransport`) on the given ports, with `extra`
/// flags; returns once it prints that it runs.
pub fn single_node_on(http: u16, udp: u16, extra: &[&str]) -> Service {
    let mut args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{http}"),
        "--webtransport".to_owned(),
        "--webtransport-listen".to_owned(),
        format!("[::]:{udp}"),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    Service::start(&binary("actix-api"), &args, &[], "Ctrl-C stops.")
}

/// [`single_node_on`] free ports: (process, http port, udp port).
pub fn single_node(extra: &[&str]) -> (Service, u16, u16) {
    let (http, udp) = (crate::free_tcp_port(), crate::free_udp_port());
    (single_node_on(http, udp, extra), http, udp)
}

/// An `actix-api` node (WebSocket only) on the NATS at `nats_url`, with `extra` flags, ready
/// (its `/healthz` answers 200): (process, http port).
pub fn ws_node_on_nats(nats_url: &str, extra: &[&str]) -> (Service, u16) {
    let http = crate::free_tcp_port();
    let mut args = vec![
        "--listen".to_owned(),
        format!("127.0.0.1:{http}"),
        "--nats-url".to_owned(),
        nats_url.to_owned(),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let service = Service::start(&binary("actix-api"), &args, &[], "Ctrl-C stops.");
    wait_for_status(http, "/healthz", 200);
    (service, http)
}

/// A standalone webtransport-server on the NATS at `nats_url`, with `env`, ready (its
/// `/healthz` answers 200): (process, health port, udp port).
pub fn webtransport_server_on(nats_url: &str, env: &[(&str, String)]) -> (Service, u16, u16) {
    let (health, udp) = (crate::free_tcp_port(), crate::free_udp_port());
    let args = vec![
        "--webtransport-listen".to_owned(),
        format!("[::]:{udp}"),
        "--health-listen".to_owned(),
        format!("127.0.0.1:{health}"),
        "--nats-url".to_owned(),
        nats_url.to_owned(),
    ];
    let service = Service::start(
        &binary("webtransport-server"),
        &args,
        env,
        "webtransport-server:",
    );
    wait_for_status(health, "/healthz", 200);
    (service, health, udp)
}

/// `GET http://127.0.0.1:{port}{path}`: status code and body, whatever the status (a refusal's
/// body says why). Panics when nothing answers within [`PATIENCE`]: a test cannot go on.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(PATIENCE))
        .build()
        .into();
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut response = agent
        .get(&url)
        .call()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let body = response
        .body_mut()
        .read_to_string()
        .unwrap_or_else(|e| panic!("GET {url}: body: {e}"));
    (response.status().as_u16(), body)
}

/// What [`api_call`] got: the status, the login cookie the node set (`videocall_session=…`, if
/// any) and the JSON answer (`Null` when the body is not JSON).
#[derive(Debug)]
pub struct ApiReply {
    pub status: u16,
    pub cookie: Option<String>,
    pub json: serde_json::Value,
}

/// One call on a node's `/api/v1/` (or any JSON endpoint): `body`, when given, is sent as JSON.
pub fn api_call(
    port: u16,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: Option<serde_json::Value>,
) -> ApiReply {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(PATIENCE))
        .http_status_as_error(false)
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1:{port}{path}"));
    if let Some(cookie) = cookie {
        request = request.header("cookie", cookie);
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map(|b| b.to_string()).unwrap_or_default())
        .expect("a valid request");
    let mut response = agent
        .run(request)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("videocall_session="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned);
    let text = response.body_mut().read_to_string().unwrap_or_default();
    ApiReply {
        status: response.status().as_u16(),
        cookie,
        json: serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    }
}

/// Polls `GET path` until it answers `status` (a service's state changes without telling us).
pub fn wait_for_status(port: u16, path: &str, status: u16) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && http_get(port, path).0 == status
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {path} on port {port} never answered {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The `hex` field of `/api/v1/webtransport/certificate_hash`, as bytes.
pub fn certificate_hash(port: u16) -> [u8; 32] {
    let (status, body) = http_get(port, "/api/v1/webtransport/certificate_hash");
    assert_eq!(status, 200, "{body}");
    let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON answer");
    let hex = json["hex"].as_str().expect("a hex field");
    assert_eq!(hex.len(), 64, "{body}");
    let mut hash = [0u8; 32];
    for (i, byte) in hash.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("hex digits");
    }
    hash
}
