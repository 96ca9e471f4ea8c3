//! The WebTransport session path parser (`videocall_types::lobby`, used by
//! webtransport-server): any path is parsed or refused with a reason, never a panic. What it
//! accepts round-trips: the ids it returns, written back into a path (the user id fully
//! percent-encoded), parse to the same ids; and percent-decoding undoes percent-encoding for any
//! text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use videocall_types::lobby::{parse_lobby_path, percent_decode};

fn percent_encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    assert_eq!(
        percent_decode(&percent_encode_all(path)).as_deref(),
        Some(path)
    );
    match parse_lobby_path(path) {
        Ok((user, meeting)) => {
            let again = format!("/lobby/{}/{meeting}", percent_encode_all(user.as_str()));
            assert_eq!(parse_lobby_path(&again), Ok((user, meeting)), "{again}");
        }
        Err(e) => {
            // Every refusal says why.
            assert!(!e.to_string().is_empty());
        }
    }
});
