//! `nats-server`s of the test's own on free ports, stopped on drop: one alone, or a cluster of
//! several joined by routes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// A running (or stopped, restartable) `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    /// Its TCP port.
    pub port: u16,
    /// Its HTTP monitoring port (`/connz`, `/routez`).
    pub monitor_port: u16,
    /// Flags besides the listening and monitoring ports (cluster routes).
    args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        Self::start_with(Vec::new())
    }

    fn start_with(args: Vec<String>) -> Self {
        let mut server = Self {
            port: crate::free_tcp_port(),
            monitor_port: crate::free_tcp_port(),
            args,
            child: None,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same ports and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server must be installed (`make test` installs it: apt-get install nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        // The server gives no readiness signal of its own: its accepting connections is it.
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not start listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the server.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A monitoring endpoint's JSON (`/connz?subs=1`, `/routez`).
    pub fn monitor(&self, path: &str) -> serde_json::Value {
        let (status, body) = crate::process::http_get(self.monitor_port, path);
        assert_eq!(status, 200, "nats-server {path}: {body}");
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("nats-server {path}: {e}: {body}"))
    }

    /// The subscriptions of each client connection named `name`, one list per connection.
    pub fn subscriptions_of(&self, name: &str) -> Vec<Vec<String>> {
        let connz = self.monitor("/connz?subs=1");
        let connections = connz["connections"].as_array().cloned().unwrap_or_default();
        connections
            .iter()
            .filter(|c| c["name"] == name)
            .map(|c| {
                let subs = c["subscriptions_list"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let mut subs: Vec<String> = subs
                    .iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect();
                subs.sort();
                subs
            })
            .collect()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Several `nats-server`s joined by cluster routes (each solicits routes to all the others).
#[derive(Debug)]
pub struct NatsCluster {
    /// The members, each with its own client port.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `size` servers and waits until each has a route to every other.
    pub fn start(size: usize) -> Self {
        let route_ports: Vec<u16> = (0..size).map(|_| crate::free_tcp_port()).collect();
        let servers = route_ports
            .iter()
            .map(|&own| {
                let others: Vec<String> = route_ports
                    .iter()
                    .filter(|&&p| p != own)
                    .map(|p| format!("nats://127.0.0.1:{p}"))
                    .collect();
                NatsServer::start_with(vec![
                    "--cluster_name".into(),
                    "videocall-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{own}"),
                    "--routes".into(),
                    others.join(","),
                ])
            })
            .collect();
        let cluster = Self { servers };
        cluster.wait_for_routes(size - 1);
        cluster
    }

    /// Waits until every running member reports `routes` routes (the members tell nobody when
    /// a route forms: their monitoring endpoint is asked until it says so).
    pub fn wait_for_routes(&self, routes: usize) {
        let deadline = Instant::now() + PATIENCE;
        for server in self.servers.iter().filter(|s| s.child.is_some()) {
            loop {
                let got = server.monitor("/routez")["num_routes"].as_u64();
                if got == Some(routes as u64) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "nats-server on port {} has {got:?} routes, not {routes}",
                    server.port
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    /// Every member's URL, comma-separated (a `NATS_URL` listing the whole cluster).
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self.servers.iter().map(NatsServer::url).collect();
        urls.join(",")
    }
}
