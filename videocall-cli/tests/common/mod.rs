//! What the CLI's integration tests share: a node, the connection flags, the CLI as a process,
//! reading its lines.
#![allow(dead_code, unreachable_pub)] // each test file uses a part

use std::path::PathBuf;
use std::sync::mpsc;
use std::time::Instant;

use videocall_testkit::process::{Service, binary, certificate_hash};
use videocall_testkit::{PATIENCE, free_tcp_port, free_udp_port};

/// The all-in-one node on these ports.
pub fn node_on(http: u16, udp: u16) -> Service {
    videocall_testkit::process::single_node_on(http, udp, &[])
}

/// An all-in-one node: (process, http port, udp port).
pub fn single_node() -> (Service, u16, u16) {
    let (http, udp) = (free_tcp_port(), free_udp_port());
    (node_on(http, udp), http, udp)
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Via {
    WebTransport,
    WebSocket,
}

/// The connection flags for `user` in `meeting` on the node.
pub fn connect_args(via: Via, http: u16, udp: u16, user: &str, meeting: &str) -> Vec<String> {
    let mut args: Vec<String> = vec![
        "--user-id".into(),
        user.into(),
        "--meeting-id".into(),
        meeting.into(),
        "--websocket-url".into(),
        format!("http://127.0.0.1:{http}"),
    ];
    match via {
        Via::WebTransport => {
            let hash: String = certificate_hash(http)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            args.extend([
                "--transport".into(),
                "webtransport".into(),
                "--url".into(),
                format!("https://127.0.0.1:{udp}"),
                "--cert-hash".into(),
                hash,
            ]);
        }
        Via::WebSocket => args.extend(["--transport".into(), "websocket".into()]),
    }
    args
}

pub fn cli(subcommand: &str, args: Vec<String>) -> Service {
    let mut all = vec![subcommand.to_owned()];
    all.extend(args);
    Service::start(&binary("videocall-cli"), &all, &[], "joined meeting")
}

pub fn out_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("videocall-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Reads lines until one satisfies `want`; returns it (panics after `PATIENCE`).
pub fn line_until(
    lines: &mpsc::Receiver<String>,
    what: &str,
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if want(&line) => return line,
            Ok(_) => {}
            Err(e) => panic!("no line {what}: {e}"),
        }
    }
}

/// The number in `line` right after `prefix`.
pub fn number_after(line: &str, prefix: &str) -> u64 {
    line.split(prefix)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| {
            n.trim_end_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no number after {prefix:?} in {line:?}"))
}
