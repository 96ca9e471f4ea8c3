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
fn the_original_backends_claim_set_without_typ_is_accepted_with_e2ee() {
    // The payload the original videocall-rs meeting backend signs (no `typ`, observer absent),
    // plus the `e2ee` claim every token must now carry.
    let json = format!(
        r#"{{"sub":"bob@example.com","room":"room-1","room_join":true,"is_host":true,
            "display_name":"Bob","exp":{},"iss":"videocall-meeting-backend","e2ee":false}}"#,
        now() + 60
    );
    let original: RoomClaims = serde_json::from_str(&json).unwrap();
    let key = TokenKey::new(SECRET).unwrap();
    let token = key.verify(&key.sign(&original), Some("room-1")).unwrap();
    assert!(token.grants.host && token.grants.publish);
    assert!(token.claims.end_on_host_leave);
}

#[test]
fn a_token_without_the_e2ee_claim_is_refused_and_the_claim_is_signed() {
    let key = TokenKey::new(SECRET).unwrap();
    // Exactly what the original backend signs: no `e2ee`.
    let original = serde_json::json!({
        "sub": "bob", "room": "room-1", "room_join": true, "is_host": false,
        "display_name": "Bob", "exp": now() + 60, "iss": ISSUER,
    });
    let secret = jsonwebtoken::EncodingKey::from_secret(SECRET).unwrap();
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &original, &secret).unwrap();
    assert!(matches!(
        key.verify(&token, Some("room-1")),
        Err(TokenError::Malformed(m)) if m.contains("e2ee")
    ));
    // The claim round-trips, and flipping it in transit breaks the signature.
    let signed = key.sign(&claims(now() + 60));
    assert!(key.verify(&signed, None).unwrap().claims.e2ee);
    let mut clear = claims(now() + 60);
    clear.e2ee = false;
    let clear = key.sign(&clear);
    let (signed, clear): (Vec<&str>, Vec<&str>) =
        (signed.split('.').collect(), clear.split('.').collect());
    // alice's signed token with the payload of a clear one: what a meddler in transit can make.
    let tampered = format!("{}.{}.{}", signed[0], clear[1], signed[2]);
    assert!(!RoomClaims::peek(&tampered).unwrap().e2ee);
    assert_eq!(key.verify(&tampered, None), Err(TokenError::BadSignature));
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
