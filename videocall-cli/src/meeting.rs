//! `videocall-cli meeting …`: protected meetings through the meeting API (`/api/v1/`), so a
//! headless device can create a meeting, let people in and end it. Every answer is printed as
//! `key=value` lines (values are ids, JWTs and cookies: nothing a shell must quote), so a
//! script can `eval "$(videocall-cli meeting create)"`.

use anyhow::{Context, bail};
use serde_json::{Value, json};
use videocall_client::http::{Response, request};

use crate::args::{MeetingAction, MeetingArgs};

/// The login cookie's name.
const SESSION_COOKIE: &str = "videocall_session";

/// Runs one `meeting` subcommand.
pub async fn run(args: MeetingArgs) -> anyhow::Result<()> {
    let mut api = Api {
        base: args.api_url.trim_end_matches('/').to_owned(),
        session: args.session.clone(),
        name: args.name.clone(),
    };
    match args.action {
        MeetingAction::Login => {
            let user = api.login().await?;
            println!("session={}", api.session.as_deref().unwrap_or_default());
            println!("user_id={user}");
        }
        MeetingAction::Create { id, waiting_room } => {
            let user = api.ensure_login().await?;
            let mut body = json!({ "waiting_room": waiting_room });
            if let Some(id) = id {
                body["id"] = json!(id);
            }
            let created = api
                .call("POST", "/api/v1/meetings", Some(body))
                .await
                .context("creating the meeting")?;
            let meeting = created["meeting_id"]
                .as_str()
                .context("the API answered a meeting without an id")?
                .to_owned();
            println!("session={}", api.session.as_deref().unwrap_or_default());
            println!("user_id={user}");
            println!("meeting_id={meeting}");
            api.join(&meeting).await?;
        }
        MeetingAction::Join { meeting_id } => {
            let user = api.ensure_login().await?;
            println!("session={}", api.session.as_deref().unwrap_or_default());
            println!("user_id={user}");
            api.join(&meeting_id).await?;
        }
        MeetingAction::Waiting { meeting_id } => {
            api.ensure_login().await?;
            let path = format!("/api/v1/meetings/{meeting_id}/waiting");
            let waiting = api.call("GET", &path, None).await?;
            for p in waiting.as_array().into_iter().flatten() {
                println!("waiting={}", p["user_id"].as_str().unwrap_or_default());
            }
        }
        MeetingAction::Admit {
            meeting_id,
            user,
            all,
        } => {
            api.ensure_login().await?;
            match (user, all) {
                (Some(user), false) => {
                    let path = format!(
                        "/api/v1/meetings/{meeting_id}/waiting/{}/admit",
                        path_segment(&user)
                    );
                    let admitted = api.call("POST", &path, None).await?;
                    println!("admitted={}", admitted["user_id"].as_str().unwrap_or(&user));
                }
                (None, true) => {
                    let path = format!("/api/v1/meetings/{meeting_id}/waiting/admit_all");
                    let answer = api.call("POST", &path, None).await?;
                    for p in answer["admitted"].as_array().into_iter().flatten() {
                        println!("admitted={}", p["user_id"].as_str().unwrap_or_default());
                    }
                    println!("still_waiting={}", answer["still_waiting"]);
                }
                _ => bail!("give --user USER or --all"),
            }
        }
        MeetingAction::End { meeting_id } => {
            api.ensure_login().await?;
            let path = format!("/api/v1/meetings/{meeting_id}/end");
            api.call("POST", &path, None).await?;
            println!("ended={meeting_id}");
        }
    }
    Ok(())
}

/// A user id as one path segment: the API's ids are UTF-8 without control characters, so
/// everything but unreserved characters is percent-encoded.
fn path_segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The API at one node, as one login.
struct Api {
    base: String,
    session: Option<String>,
    name: String,
}

impl Api {
    /// Logs in as a guest named `name`; keeps the login; answers our user id.
    async fn login(&mut self) -> anyhow::Result<String> {
        let body = json!({ "display_name": self.name }).to_string();
        let response = request(&self.base, "POST", "/api/v1/login/guest", None, Some(&body))
            .await
            .map_err(anyhow::Error::msg)?;
        let user = answer(response.clone(), "logging in")?;
        self.session = response
            .set_cookies
            .iter()
            .find_map(|c| c.strip_prefix(&format!("{SESSION_COOKIE}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned);
        if self.session.is_none() {
            bail!("logging in: the API set no {SESSION_COOKIE} cookie");
        }
        Ok(user["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Our user id: of the login given, else of a new guest login.
    async fn ensure_login(&mut self) -> anyhow::Result<String> {
        if self.session.is_none() {
            return self.login().await;
        }
        let me = self.call("GET", "/api/v1/me", None).await?;
        Ok(me["id"].as_str().unwrap_or_default().to_owned())
    }

    /// Asks to join `meeting` and prints the outcome.
    async fn join(&mut self, meeting: &str) -> anyhow::Result<()> {
        let body = json!({ "display_name": self.name });
        let path = format!("/api/v1/meetings/{meeting}/join");
        let joined = self
            .call("POST", &path, Some(body))
            .await
            .context("joining")?;
        match joined["status"].as_str() {
            Some("admitted") => {
                println!("status=admitted");
                println!("token={}", joined["token"].as_str().unwrap_or_default());
                println!("expires_at={}", joined["expires_at"]);
            }
            Some("waiting") => println!("status=waiting"),
            other => bail!("joining: unexpected status {other:?}"),
        }
        Ok(())
    }

    /// `method path` as our login: the JSON of a 2xx answer, else the API's message.
    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let cookie = self
            .session
            .as_ref()
            .map(|s| format!("{SESSION_COOKIE}={s}"));
        let body = body.map(|b| b.to_string());
        let response = request(&self.base, method, path, cookie.as_deref(), body.as_deref())
            .await
            .map_err(anyhow::Error::msg)?;
        answer(response, path)
    }
}

/// The JSON of a 2xx answer (`null` when empty); else the API's `{code, message}` as the error.
fn answer(response: Response, what: &str) -> anyhow::Result<Value> {
    let json: Value = if response.body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&response.body).unwrap_or(Value::Null)
    };
    if (200..300).contains(&response.status) {
        return Ok(json);
    }
    match (json["code"].as_str(), json["message"].as_str()) {
        (Some(code), Some(message)) => {
            bail!("{what}: {message} ({code}, HTTP {})", response.status)
        }
        _ => bail!("{what}: HTTP {} {}", response.status, response.body.trim()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_are_one_path_segment() {
        assert_eq!(path_segment("guest-1_a.b"), "guest-1_a.b");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(path_segment("é"), "%C3%A9");
    }

    #[test]
    fn api_errors_carry_their_code_and_message() {
        let response = Response {
            status: 403,
            set_cookies: Vec::new(),
            body: r#"{"code":"forbidden","message":"only hosts may do that"}"#.into(),
        };
        let error = answer(response, "ending").unwrap_err().to_string();
        assert_eq!(
            error,
            "ending: only hosts may do that (forbidden, HTTP 403)"
        );
    }
}
