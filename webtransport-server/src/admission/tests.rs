use std::time::{SystemTime, UNIX_EPOCH};

use videocall_auth::{AllowOpen, Grants, RoomClaims, TokensOnly};
use videocall_types::{MeetingId, UserId};

use super::*;

const SECRET: &[u8] = b"a-test-secret-of-32-bytes-length";

fn token(user: &str, meeting: &str, grants: Grants, exp_in: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let claims = RoomClaims::new(
        &UserId::new(user).unwrap(),
        &MeetingId::new(meeting).unwrap(),
        "Alice A.",
        grants,
        false,
        now + exp_in,
    );
    TokenKey::new(SECRET).unwrap().sign(&claims)
}

const ALL: Grants = Grants {
    publish: true,
    subscribe: true,
    host: false,
};

fn keeper(gate: Arc<dyn MeetingGate>) -> Gatekeeper {
    Gatekeeper::new(Some(TokenKey::new(SECRET).unwrap()), gate)
}

#[tokio::test]
async fn a_token_join_takes_user_name_and_grants_from_the_token_never_the_url() {
    let k = keeper(Arc::new(TokensOnly));
    let t = token("alice", "m1", ALL, 60);
    let join = k.admit(&format!("/lobby?token={t}")).await.unwrap();
    assert_eq!((join.user.as_str(), join.meeting.as_str()), ("alice", "m1"));
    assert_eq!(
        (join.display_name.as_str(), join.proof),
        ("Alice A.", Proof::Token)
    );
    assert!(
        !join.presence,
        "the original's clients do not ask for presence digests"
    );
    // The path form must agree with the token.
    let join = k
        .admit(&format!("/lobby/alice/m1?token={t}&framed=1&presence=1"))
        .await
        .unwrap();
    assert!(join.presence);
    let wrong_user = k
        .admit(&format!("/lobby/bob/m1?token={t}"))
        .await
        .unwrap_err();
    assert_eq!(
        (wrong_user.status, wrong_user.code),
        (403, "token_wrong_user")
    );
    let wrong_meeting = k
        .admit(&format!("/lobby/alice/m2?token={t}"))
        .await
        .unwrap_err();
    assert_eq!(
        (wrong_meeting.status, wrong_meeting.code),
        (403, "token_wrong_meeting")
    );
}

#[tokio::test]
async fn bad_tokens_are_refused_with_their_status_and_counted() {
    let k = keeper(Arc::new(AllowOpen));
    let expired = token("alice", "m1", ALL, -60);
    let other = TokenKey::new(b"another-secret-of-enough-length").unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let forged = other.sign(&RoomClaims::new(
        &UserId::new("alice").unwrap(),
        &MeetingId::new("m1").unwrap(),
        "A",
        ALL,
        false,
        now + 60,
    ));
    let mut no_join = RoomClaims::new(
        &UserId::new("alice").unwrap(),
        &MeetingId::new("m1").unwrap(),
        "A",
        ALL,
        false,
        now + 60,
    );
    no_join.room_join = false;
    let no_join = TokenKey::new(SECRET).unwrap().sign(&no_join);
    for (target, status, code) in [
        (format!("/lobby?token={expired}"), 401, "token_expired"),
        (format!("/lobby?token={forged}"), 401, "token_bad_signature"),
        (
            format!("/lobby?token={no_join}"),
            403,
            "token_missing_grant",
        ),
        ("/lobby?token=junk".to_owned(), 401, "token_malformed"),
        ("/lobby".to_owned(), 401, "token_missing"),
        ("/lobby/a/b/c".to_owned(), 400, "bad_path"),
        (
            format!("/lobby?{}", "x".repeat(MAX_QUERY_LEN + 1)),
            400,
            "bad_path",
        ),
    ] {
        let refusal = k.admit(&target).await.unwrap_err();
        assert_eq!(
            (refusal.status, refusal.code),
            (status, code),
            "{target:.60}"
        );
        assert!(k.refused(code) >= 1);
    }
    let mut text = String::new();
    k.render(&mut text);
    assert!(text.contains("videocall_join_refused_total{reason=\"token_expired\"} 1\n"));
}

#[tokio::test]
async fn plain_joins_ask_the_gate_and_carry_the_reconnect_secret() {
    let open = keeper(Arc::new(AllowOpen));
    let join = open.admit("/lobby/alice/m1?reconnect=1.ab").await.unwrap();
    assert_eq!(join.proof, Proof::Reconnect("1.ab".into()));
    assert!(join.grants.publish && !join.grants.host);
    assert!(!join.presence);
    let plain = open.admit("/lobby/alice/m1").await.unwrap();
    assert_eq!(plain.proof, Proof::None);
    let ours = open.admit("/lobby/alice/m1?presence=1").await.unwrap();
    assert!(ours.presence && !plain.presence);
    assert!(
        !open
            .admit("/lobby/alice/m1?presence=0")
            .await
            .unwrap()
            .presence
    );
    let closed = keeper(Arc::new(TokensOnly));
    let refusal = closed.admit("/lobby/alice/m1").await.unwrap_err();
    assert_eq!((refusal.status, refusal.code), (403, "token_required"));
    let no_key = Gatekeeper::new(None, Arc::new(AllowOpen));
    let t = token("alice", "m1", ALL, 60);
    let refusal = no_key
        .admit(&format!("/lobby?token={t}"))
        .await
        .unwrap_err();
    assert_eq!((refusal.status, refusal.code), (401, "token_unsupported"));
}
