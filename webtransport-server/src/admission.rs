//! Who may open a session, decided once for both relay transports (the WebSocket one in
//! `actix-api` calls this module too).
//!
//! - `/lobby?token=<JWT>` (the original videocall-rs clients' form) and
//!   `/lobby/{user}/{meeting}?token=<JWT>`: the token is verified with the node's
//!   [`TokenKey`] (`JWT_SECRET`); user id, display name and grants come from it, never from the
//!   URL (a path naming another user or meeting is refused).
//! - `/lobby/{user}/{meeting}` (optionally `?reconnect=<secret>`): the [`MeetingGate`] decides
//!   (the meeting store; [`AllowOpen`](videocall_auth::AllowOpen) without one,
//!   [`TokensOnly`](videocall_auth::TokensOnly) with `--require-tokens`).
//!
//! A `presence=1` parameter marks a client that understands PRESENCE digests ([`Join::presence`]).
//!
//! Every refusal is a [`Refusal`] with the HTTP status to answer, a short reason and a label
//! counted in `videocall_join_refused_total{reason}`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tracing::debug;
use videocall_auth::{MeetingGate, OpenJoin, TokenError, TokenKey};
use videocall_relay::exposition::Exposition;
use videocall_relay::{Join, JoinError, Proof};
use videocall_types::lobby::{parse_lobby_path, percent_decode};

/// How long the meeting gate (a database) may take to answer before the join is refused (503).
pub const GATE_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest query string looked at; a longer one is refused (a token is at most 4 KiB).
const MAX_QUERY_LEN: usize = 8 * 1024;

/// A refused join: answer `status` with `message`; `code` is the counter label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// HTTP status: 400 bad path, 401 bad token, 403 not allowed, 404 no such meeting,
    /// 409 the user is present (no takeover), 503 the meeting store is down.
    pub status: u16,
    /// Counter label.
    pub code: &'static str,
    /// Short reason for the client.
    pub message: String,
}

impl Refusal {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn token(e: &TokenError) -> Self {
        let status = match e {
            TokenError::WrongMeeting | TokenError::MissingGrant => 403,
            _ => 401,
        };
        Self::new(status, e.code(), e.to_string())
    }

    /// The refusal of a join the relay core turned down.
    pub fn join(e: &JoinError) -> Self {
        Self::new(e.http_status(), e.code(), e.to_string())
    }
}

/// Admits sessions: verifies tokens, asks the meeting gate, counts refusals. One per process,
/// shared by both transports.
pub struct Gatekeeper {
    key: Option<TokenKey>,
    gate: Arc<dyn MeetingGate>,
    refused: Mutex<BTreeMap<&'static str, u64>>,
}

impl std::fmt::Debug for Gatekeeper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gatekeeper")
            .field("tokens", &self.key.is_some())
            .field("gate", &self.gate)
            .finish()
    }
}

impl Gatekeeper {
    /// Tokens verified with `key` (none: token joins are refused), plain joins decided by
    /// `gate`.
    pub fn new(key: Option<TokenKey>, gate: Arc<dyn MeetingGate>) -> Self {
        Self {
            key,
            gate,
            refused: Mutex::new(BTreeMap::new()),
        }
    }

    /// Decides a session request for `target` (`/lobby…` path with its query). A refusal is
    /// counted.
    pub async fn admit(&self, target: &str) -> Result<Join, Refusal> {
        let result = self.decide(target).await;
        if let Err(refusal) = &result {
            self.count(refusal);
        }
        result
    }

    /// Counts a refusal decided elsewhere (the relay core's, see [`Refusal::join`]).
    pub fn count(&self, refusal: &Refusal) {
        debug!(status = refusal.status, "join refused: {}", refusal.message);
        let mut refused = self.refused.lock().expect("counter lock is never poisoned");
        *refused.entry(refusal.code).or_default() += 1;
    }

    /// Refusals counted for `code`.
    pub fn refused(&self, code: &str) -> u64 {
        let refused = self.refused.lock().expect("counter lock is never poisoned");
        refused.get(code).copied().unwrap_or_default()
    }

    /// Appends `videocall_join_refused_total{reason}` in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let mut e = Exposition::new();
        let refused = self.refused.lock().expect("counter lock is never poisoned");
        e.counters(
            "videocall_join_refused_total",
            "Sessions refused before joining, by reason.",
            "reason",
            refused.iter().map(|(code, n)| (*code, *n)),
        );
        drop(refused);
        e.render(out);
    }

    async fn decide(&self, target: &str) -> Result<Join, Refusal> {
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        if query.len() > MAX_QUERY_LEN {
            return Err(Refusal::new(400, "bad_path", "query string too long"));
        }
        let param = |name: &str| {
            query.split('&').find_map(|pair| {
                let (k, v) = pair.split_once('=')?;
                (k == name).then(|| percent_decode(v)).flatten()
            })
        };
        let token = param("token");
        let (key, value) = videocall_types::presence::PRESENCE_QUERY;
        let presence = param(key).is_some_and(|v| v == value);
        let ids = if path.trim_end_matches('/') == "/lobby" {
            None
        } else {
            let ids =
                parse_lobby_path(path).map_err(|e| Refusal::new(400, "bad_path", e.to_string()))?;
            Some(ids)
        };
        match (token, ids) {
            (Some(token), ids) => {
                let Some(key) = &self.key else {
                    return Err(Refusal::new(
                        401,
                        "token_unsupported",
                        "this relay has no JWT_SECRET and cannot verify room tokens",
                    ));
                };
                let meeting = ids.as_ref().map(|(_, m)| m.as_str());
                let token = key
                    .verify(&token, meeting)
                    .map_err(|e| Refusal::token(&e))?;
                if ids.is_some_and(|(user, _)| user != token.user) {
                    return Err(Refusal::new(
                        403,
                        "token_wrong_user",
                        "the token is for another user than the path names",
                    ));
                }
                Ok(Join {
                    display_name: token.claims.display_name.clone(),
                    user: token.user,
                    meeting: token.meeting,
                    grants: token.grants,
                    // The original backend's tokens say nothing: no setting to enforce.
                    e2ee: token.claims.e2ee.unwrap_or(false),
                    proof: Proof::Token,
                    presence,
                })
            }
            (None, None) => Err(Refusal::new(
                401,
                "token_missing",
                "/lobby needs ?token=<room token>",
            )),
            (None, Some((user, meeting))) => {
                let answer =
                    tokio::time::timeout(GATE_TIMEOUT, self.gate.open_join(&meeting, &user))
                        .await
                        .map_err(|_| {
                            Refusal::new(503, "gate_unavailable", "meeting store timed out")
                        })?
                        .map_err(|e| Refusal::new(503, "gate_unavailable", e.to_string()))?;
                match answer {
                    OpenJoin::Allowed {
                        grants,
                        display_name,
                        e2ee,
                    } => Ok(Join {
                        user,
                        meeting,
                        display_name,
                        grants,
                        e2ee,
                        proof: param("reconnect").map_or(Proof::None, Proof::Reconnect),
                        presence,
                    }),
                    OpenJoin::TokenRequired => Err(Refusal::new(
                        403,
                        "token_required",
                        "this meeting needs a room token (/lobby?token=…)",
                    )),
                    OpenJoin::NotFound => {
                        Err(Refusal::new(404, "meeting_not_found", "no such meeting"))
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
