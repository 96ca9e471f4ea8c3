//! What a node tells clients over its plain-HTTP address (feature `native`): the WebTransport
//! certificate hash and a meeting's settings, as the browser app asks for them.
//!
//! The requests go through `ureq` (plain HTTP, no TLS: these are the same requests the page
//! makes to the address it was loaded from), a small blocking client run on tokio's blocking
//! pool: two requests per join do not justify an async HTTP stack's compile time. Trusting
//! their answers is as safe as the plain WebSocket on that address (no more); a pinned
//! `--cert-hash` and E2EE's safety code do not depend on them.

use std::time::Duration;

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
    /// The body (at most 64 KiB are read).
    pub body: String,
}

/// `method path` on `http_base` (`http://host:port`), with a `cookie` header and a JSON body
/// when given (the meeting API's calls): the answer whatever its status, else why there was
/// none.
pub async fn request(
    http_base: &str,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    json_body: Option<&str>,
) -> Result<Response, String> {
    if !http_base.starts_with("http://") {
        return Err(format!("{http_base}: only http:// addresses are asked"));
    }
    let url = format!("{}{path}", http_base.trim_end_matches('/'));
    let method = ureq::http::Method::from_bytes(method.as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    let cookie = cookie.map(str::to_owned);
    let body = json_body.map(str::to_owned);
    tokio::task::spawn_blocking(move || send(method, &url, cookie, body))
        .await
        .map_err(|e| format!("{path}: {e}"))?
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        // A refusal's body says why: read it rather than turn the status into an error.
        .http_status_as_error(false)
        .build()
        .into()
}

fn send(
    method: ureq::http::Method,
    url: &str,
    cookie: Option<String>,
    body: Option<String>,
) -> Result<Response, String> {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(cookie) = cookie {
        builder = builder.header("cookie", cookie);
    }
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(body.unwrap_or_default())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut response = agent().run(request).map_err(|e| match e {
        ureq::Error::Timeout(_) => format!("{url} did not answer within {TIMEOUT:?}"),
        other => format!("{url}: {other}"),
    })?;
    let set_cookies = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    Ok(Response {
        status: response.status().as_u16(),
        set_cookies,
        body,
    })
}

/// GET `path` from `http_base` (`http://host:port`); the body of a 200 answer, else why not.
pub async fn get(http_base: &str, path: &str) -> Result<String, String> {
    if !http_base.starts_with("http://") {
        return Err(format!("{http_base}: only http:// addresses are asked"));
    }
    let url = format!("{}{path}", http_base.trim_end_matches('/'));
    tokio::task::spawn_blocking(move || fetch(&url))
        .await
        .map_err(|e| format!("{path}: {e}"))?
}

fn fetch(url: &str) -> Result<String, String> {
    let mut response = agent().get(url).call().map_err(|e| match e {
        ureq::Error::Timeout(_) => format!("{url} did not answer within {TIMEOUT:?}"),
        other => format!("{url}: {other}"),
    })?;
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_string()
        .map_err(|e| format!("{url}: {e}"))?;
    if status == ureq::http::StatusCode::OK {
        Ok(body)
    } else {
        Err(format!("{url}: {status} {}", body.trim()))
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
    use super::parse_hash;

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
