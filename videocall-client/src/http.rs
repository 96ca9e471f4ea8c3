//! What a node tells clients over its plain-HTTP address (feature `native`): the WebTransport
//! certificate hash and a meeting's settings, as the browser app asks for them.
//!
//! A minimal HTTP/1.1 GET (no TLS): these are the same requests the page makes to the address
//! it was loaded from. Trusting their answers is as safe as the plain WebSocket on that address
//! (no more); a pinned `--cert-hash` and E2EE's safety code do not depend on them.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use videocall_types::MeetingId;

/// Most bytes read of an answer.
const MAX_RESPONSE: u64 = 64 * 1024;
/// A node that has not answered by then is taken as not answering.
const TIMEOUT: Duration = Duration::from_secs(2);

/// A meeting's settings (`GET /api/v1/meetings/{id}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MeetingSettings {
    /// Media of this meeting is end-to-end encrypted (clients that cannot must not join).
    pub e2ee: bool,
}

/// An HTTP answer: status, the `Set-Cookie` values, the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code (e.g. 200).
    pub status: u16,
    /// Every `Set-Cookie` header's value.
    pub set_cookies: Vec<String>,
    /// The body (at most 64 KiB were read).
    pub body: String,
}

/// `method path` on `http_base` (`http://host:port`), with a `cookie` header and a JSON body
/// when given: the answer, whatever its status, else why there was none.
pub async fn request(
    http_base: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    json_body: Option<&str>,
) -> Result<Response, String> {
    let authority = http_base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{http_base}: only http:// addresses are asked"))?
        .trim_end_matches('/');
    let host = authority.split(':').next().unwrap_or(authority);
    let fetch = async {
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .map_err(|e| format!("{authority}: {e}"))?;
        let mut request =
            format!("{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n");
        if let Some(cookie) = cookie {
            request.push_str(&format!("cookie: {cookie}\r\n"));
        }
        let body = json_body.unwrap_or_default();
        if json_body.is_some() {
            request.push_str("content-type: application/json\r\n");
        }
        request.push_str(&format!("content-length: {}\r\n\r\n{body}", body.len()));
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut response = Vec::new();
        stream
            .take(MAX_RESPONSE)
            .read_to_end(&mut response)
            .await
            .map_err(|e| e.to_string())?;
        parse_response(&String::from_utf8_lossy(&response))
            .ok_or_else(|| format!("{path}: not an HTTP answer"))
    };
    tokio::time::timeout(TIMEOUT, fetch)
        .await
        .map_err(|_| format!("{authority} did not answer {path} within {TIMEOUT:?}"))?
}

fn parse_response(text: &str) -> Option<Response> {
    let (head, body) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let set_cookies = lines
        .filter_map(|line| line.split_once(':'))
        .filter(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.trim().to_owned())
        .collect();
    Some(Response {
        status,
        set_cookies,
        body: body.to_owned(),
    })
}

/// GET `path` from `http_base` (`http://host:port`); the body of a 200 answer, else why not.
pub async fn get(http_base: &str, path: &str) -> Result<String, String> {
    let response = request(http_base, "GET", path, None, None).await?;
    if response.status == 200 {
        Ok(response.body)
    } else {
        Err(format!(
            "{path}: HTTP {} {}",
            response.status,
            response.body.trim()
        ))
    }
}

/// The WebTransport certificate hash the node serves at `/api/v1/webtransport/certificate_hash`.
pub async fn served_certificate_hash(http_base: &str) -> Option<[u8; 32]> {
    let body = get(http_base, "/api/v1/webtransport/certificate_hash")
        .await
        .ok()?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    parse_hash(json.get("hex")?.as_str()?)
}

/// The settings of `meeting` as the node states them.
pub async fn meeting_settings(
    http_base: &str,
    meeting: &MeetingId,
) -> Result<MeetingSettings, String> {
    let body = get(http_base, &format!("/api/v1/meetings/{meeting}")).await?;
    let json: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("meeting settings: {e}"))?;
    let e2ee = json
        .get("e2ee")
        .and_then(serde_json::Value::as_bool)
        .ok_or("meeting settings without \"e2ee\"")?;
    Ok(MeetingSettings { e2ee })
}

/// 64 hex digits (colons and spaces allowed between) as 32 bytes.
pub fn parse_hash(hex: &str) -> Option<[u8; 32]> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !matches!(b, b':' | b' ')).collect();
    if digits.len() != 64 {
        return None;
    }
    let mut hash = [0u8; 32];
    for (byte, pair) in hash.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(hash)
}

#[cfg(test)]
mod tests {
    use super::{parse_hash, parse_response};

    #[test]
    fn answers_give_their_status_cookies_and_body() {
        let text = "HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\nSet-Cookie: a=1; HttpOnly\r\n\
                    set-cookie: b=2\r\n\r\n{}";
        let response = parse_response(text).unwrap();
        assert_eq!(response.status, 202);
        assert_eq!(response.set_cookies, ["a=1; HttpOnly", "b=2"]);
        assert_eq!(response.body, "{}");
        assert_eq!(parse_response("garbage"), None);
    }

    #[test]
    fn hashes_parse_with_or_without_colons_and_bad_ones_do_not() {
        let plain = "00".repeat(31) + "ff";
        let colons = vec!["00"; 31].join(":") + ":ff";
        assert_eq!(parse_hash(&plain).unwrap()[31], 0xff);
        assert_eq!(parse_hash(&colons), parse_hash(&plain));
        assert_eq!(parse_hash("abc"), None);
        assert_eq!(parse_hash(&"zz".repeat(32)), None);
    }
}
