//! `videocall-cli chat` as two real processes against a real single node: lines typed on one's
//! stdin print on the other's stdout as `<user>: <text>`, in an end-to-end encrypted meeting
//! (the node's default), with a raised hand; the end of stdin leaves cleanly.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use videocall_testkit::PATIENCE;
use videocall_testkit::process::{binary, single_node};

/// A running `videocall-cli chat`: its stdin, and its stdout line by line.
struct Chat {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Chat {
    fn start(http: u16, user: &str, meeting: &str) -> Self {
        let mut child = Command::new(binary("videocall-cli"))
            .args(["chat", "--transport", "websocket"])
            .args(["--user-id", user, "--meeting-id", meeting])
            .args(["--websocket-url", &format!("http://127.0.0.1:{http}")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("videocall-cli starts");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line equal to `want` (or starting with it, when `prefix`).
    fn expect(&mut self, want: &str, prefix: bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line == want || (prefix && line.starts_with(want)) {
                        return line;
                    }
                }
                Err(_) => panic!("never printed {want:?}; printed {:#?}", self.seen),
            }
        }
    }

    /// As [`Chat::expect`] for a whole line, but also accepts one already read.
    fn saw_or_expect(&mut self, want: &str) {
        if !self.seen.iter().any(|l| l == want) {
            self.expect(want, false);
        }
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("the chat reads stdin");
        stdin.flush().unwrap();
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn two_cli_chats_talk_through_a_node_end_to_end_encrypted() {
    let (_node, http, _udp) = single_node(&[]);
    let mut alice = Chat::start(http, "alice", "talk");
    alice.expect("E2EE on", true);
    alice.expect("joined meeting talk as session", true);
    let mut bob = Chat::start(http, "bob", "talk");
    bob.expect("joined meeting talk as session", true);
    alice.expect("joined bob session", true);
    bob.expect("joined alice session", true);

    alice.type_line("hello bob, see https://example.org");
    bob.expect("alice: hello bob, see https://example.org", false);
    bob.type_line("/hand");
    alice.expect("* bob raised their hand", false);
    bob.type_line("  hi alice  ");
    alice.expect("bob: hi alice", false);
    bob.type_line("/react 👍");
    alice.expect("* bob reacted 👍", false);

    // A late joiner gets what was said, once, from one member.
    let mut carol = Chat::start(http, "carol", "talk");
    carol.expect(
        "alice: hello bob, see https://example.org (history via ",
        true,
    );
    carol.expect("bob: hi alice (history via ", true);
    // Bob's hand is told at once, the history after the keys: either order.
    carol.saw_or_expect("* bob raised their hand");

    // End of stdin: alice leaves and exits successfully; the others see her go.
    drop(alice.stdin.take());
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(status) = alice.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "alice never exited");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    bob.expect("left alice session", true);
    // Nobody saw a message twice.
    assert_eq!(
        bob.seen
            .iter()
            .filter(|l| l.starts_with("alice: hello"))
            .count(),
        1
    );
}
