//! A `nats-server` of the test's own on a free port, stopped on drop.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::PATIENCE;

/// A running (or stopped, restartable) `nats-server`.
#[derive(Debug)]
pub struct NatsServer {
    /// Its TCP port.
    pub port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        let mut server = Self {
            port: crate::free_tcp_port(),
            child: None,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
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
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}
