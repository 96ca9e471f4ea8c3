use super::*;

const SECRET: &[u8] = b"a-test-secret-of-32-bytes-length";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

fn claims(exp: i64) -> RoomClaims {
    RoomClaims::new(
        &UserId::new("alice").unwrap(),
        &MeetingId::new("standup").unwrap(),
        "Alice",
        Grants {
            publish: true,
            subscribe: true,
            host: false,
        },
        true,
        exp,
    )
}

#[test]
fn a_signed_token_verifies_with_its_grants() {
    let key = TokenKey::new(SECRET).unwrap();
    let token = key
        .verify(&key.sign(&claims(now() + 60)), Some("standup"))
        .unwrap();
    assert_eq!(token.user.as_str(), "alice");
    assert_eq!(token.meeting.as_str(), "standup");
    assert!(token.grants.publish && token.grants.subscribe && !token.grants.host);
}

#[test]
fn bad_tokens_are_refused_with_their_reason() {
    let key = TokenKey::new(SECRET).unwrap();
    let other = TokenKey::new(b"another-secret-of-enough-length").unwrap();
    let good = key.sign(&claims(now() + 60));
    assert_eq!(
        key.verify(&good, Some("other")),
        Err(TokenError::WrongMeeting)
    );
    assert_eq!(
        key.verify(&other.sign(&claims(now() + 60)), None),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        key.verify(&key.sign(&claims(now() - 60)), None),
        Err(TokenError::Expired)
    );
    let mut no_join = claims(now() + 60);
    no_join.room_join = false;
    assert_eq!(
        key.verify(&key.sign(&no_join), None),
        Err(TokenError::MissingGrant)
    );
    let mut session = claims(now() + 60);
    session.typ = Some("session".into());
    assert!(matches!(
        key.verify(&key.sign(&session), None),
        Err(TokenError::WrongType(_))
    ));
    let mut bad_id = claims(now() + 60);
    bad_id.sub = "a\u{0}b".into();
    assert!(matches!(
        key.verify(&key.sign(&bad_id), None),
        Err(TokenError::InvalidId(_))
    ));
    assert!(matches!(
        key.verify("not.a.jwt", None),
        Err(TokenError::Malformed(_))
    ));
    assert!(matches!(
        key.verify(&"x".repeat(MAX_TOKEN_LEN + 1), None),
        Err(TokenError::Malformed(_))
    ));
    // alg=none, the classic downgrade: header {"alg":"none"} with the good payload, no signature.
    let payload = good.split('.').nth(1).unwrap();
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert!(key.verify(&none, None).is_err());
}

#[test]
fn the_original_backends_claim_set_is_accepted_without_an_e2ee_setting() {
    let key = TokenKey::new(SECRET).unwrap();
    // Exactly what the original videocall-rs meeting backend signs: no `typ`, no `observer`,
    // no `e2ee`.
    let original = serde_json::json!({
        "sub": "bob@example.com", "room": "room-1", "room_join": true, "is_host": true,
        "display_name": "Bob", "exp": now() + 60, "iss": "videocall-meeting-backend",
    });
    let secret = jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &original, &secret).unwrap();
    let token = key.verify(&token, Some("room-1")).unwrap();
    assert!(token.grants.host && token.grants.publish);
    assert!(token.claims.end_on_host_leave);
    assert_eq!(
        token.claims.e2ee, None,
        "no setting: the relay enforces none"
    );
}

#[test]
fn the_e2ee_claim_is_signed() {
    let key = TokenKey::new(SECRET).unwrap();
    // The claim round-trips, and flipping or removing it in transit breaks the signature.
    let signed = key.sign(&claims(now() + 60));
    assert_eq!(key.verify(&signed, None).unwrap().claims.e2ee, Some(true));
    for setting in [Some(false), None] {
        let mut changed = claims(now() + 60);
        changed.e2ee = setting;
        let changed = key.sign(&changed);
        let (signed, changed): (Vec<&str>, Vec<&str>) =
            (signed.split('.').collect(), changed.split('.').collect());
        // alice's signed token with another payload: what a meddler in transit can make.
        let tampered = format!("{}.{}.{}", signed[0], changed[1], signed[2]);
        assert_eq!(RoomClaims::peek(&tampered).unwrap().e2ee, setting);
        assert_eq!(key.verify(&tampered, None), Err(TokenError::BadSignature));
    }
}

#[test]
fn observers_may_not_publish_and_weak_secrets_are_refused() {
    let mut c = claims(now() + 60);
    c.observer = true;
    assert!(!c.grants().publish && c.grants().subscribe);
    assert_eq!(TokenKey::new(b"short").unwrap_err(), WeakSecret(5));
}

#[test]
fn a_client_can_peek_at_its_own_tokens_user_and_meeting() {
    let key = TokenKey::new(SECRET).unwrap();
    let token = key.sign(&claims(now() + 60));
    let peeked = RoomClaims::peek(&token).unwrap();
    assert_eq!(
        (peeked.sub.as_str(), peeked.room.as_str()),
        ("alice", "standup")
    );
    assert!(matches!(
        RoomClaims::peek("junk"),
        Err(TokenError::Malformed(_))
    ));
}
