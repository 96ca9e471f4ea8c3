//! `videocall-dev-cert` as a process: it writes a certificate and a private key only its owner
//! reads, keeps them while they stay valid long enough (same hash: pages keep their pin), and
//! replaces them when they near their end.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

fn scratch_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("videocall-dev-cert-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Runs the binary into `dir`; returns its stdout line and the hash it printed.
fn run(dir: &Path, extra: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_videocall-dev-cert"))
        .arg("--out-dir")
        .arg(dir)
        .args(extra)
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("utf-8 output");
    let hash = line
        .split("SHA-256 ")
        .nth(1)
        .expect("the line names the hash")
        .trim()
        .to_owned();
    assert_eq!(hash.len(), 64, "{line}");
    (line, hash)
}

#[test]
fn writes_a_certificate_then_keeps_it_while_it_is_valid() {
    let dir = scratch_dir("keep");
    let (first, hash) = run(&dir, &["--name", "localhost,webtransport-server"]);
    assert!(first.starts_with("wrote "), "{first}");
    assert!(first.contains("webtransport-server"), "{first}");
    let key_mode = std::fs::metadata(dir.join("key.pem"))
        .expect("key.pem written")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);
    assert!(
        std::fs::read_to_string(dir.join("cert.pem"))
            .expect("cert.pem written")
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    let (second, same) = run(&dir, &[]);
    assert!(second.starts_with("keeping "), "{second}");
    assert_eq!(same, hash);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}

#[test]
fn replaces_a_certificate_that_ends_within_the_renewal_margin() {
    let dir = scratch_dir("renew");
    let (_, hash) = run(&dir, &["--days", "3"]);
    // Ends in 3 days, renewal margin 5 days: replaced, with a new key and hash.
    let (line, renewed) = run(&dir, &["--renew-days", "5"]);
    assert!(line.starts_with("wrote "), "{line}");
    assert_ne!(renewed, hash);
    std::fs::remove_dir_all(&dir).expect("cleanup");
}
