//! The store's rules on both backends: every test body runs on a throwaway PostgreSQL cluster
//! and on an SQLite file.

use videocall_auth::{MeetingGate, OpenJoin};
use videocall_meetings::{
    Access, Joined, MeetingError, MeetingState, NewMeeting, ParticipantStatus, Role, SettingsPatch,
    Store, StoreConfig, StoreError, User,
};
use videocall_testkit::postgres::TestDatabase;
use videocall_types::{MeetingId, UserId};

#[derive(Debug, Clone, Copy)]
enum Kind {
    Postgres,
    Sqlite,
}

async fn store(kind: Kind, config: StoreConfig) -> (Store, TestDatabase) {
    let db = match kind {
        Kind::Postgres => TestDatabase::postgres(),
        Kind::Sqlite => TestDatabase::sqlite(),
    };
    let store = Store::open(&db.url(), config).await.expect("store opens");
    (store, db)
}

/// Runs each named test body on PostgreSQL and on SQLite.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_postgres() {
                super::$name(super::Kind::Postgres).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn on_sqlite() {
                super::$name(super::Kind::Sqlite).await;
            }
        }
    )+};
}

on_both_backends!(
    a_meeting_lives_from_creation_to_its_end,
    a_waiting_joiner_is_admitted_or_rejected_by_a_host_only,
    a_meeting_of_fifty_admits_exactly_fifty_of_a_hundred_concurrent_joiners,
    plain_relay_joins_follow_the_meetings_access,
    login_sessions_end_at_logout,
);

fn mid(id: &str) -> MeetingId {
    MeetingId::new(id).expect("valid meeting id")
}

async fn a_meeting_lives_from_creation_to_its_end(kind: Kind) {
    let (store, _db) = store(kind, StoreConfig::default()).await;
    let owner = store.create_guest("Ada").await.unwrap();
    let guest = store.create_guest("  Grace  ").await.unwrap();
    assert_eq!(guest.display_name, "Grace", "names are trimmed");
    let meeting = store
        .create_meeting(
            &owner,
            NewMeeting {
                id: Some(mid("standup")),
                ..NewMeeting::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(meeting.state, MeetingState::Idle);
    assert_eq!(meeting.access, Access::Protected);
    assert!(meeting.is_owner(&owner.id));
    let again = store
        .create_meeting(
            &guest,
            NewMeeting {
                id: Some(mid("standup")),
                ..NewMeeting::default()
            },
        )
        .await;
    assert!(matches!(again, Err(MeetingError::AlreadyExists)));

    let Joined::Admitted(host) = store
        .join(&owner, &mid("standup"), None, false)
        .await
        .unwrap()
    else {
        panic!("the owner is admitted")
    };
    assert_eq!(host.role, Role::Host);
    let Joined::Admitted(p) = store
        .join(&guest, &mid("standup"), Some("Grace H."), true)
        .await
        .unwrap()
    else {
        panic!("no waiting room: admitted")
    };
    assert_eq!(
        (p.role, p.display_name.as_str()),
        (Role::Observer, "Grace H.")
    );
    let m = store.meeting("standup").await.unwrap().unwrap();
    assert_eq!(m.state, MeetingState::Active);
    assert!(m.started_at.is_some());

    let forbidden = store
        .update_settings(&guest.id, &mid("standup"), SettingsPatch::default())
        .await;
    assert!(matches!(forbidden, Err(MeetingError::Forbidden(_))));
    let below = store
        .update_settings(
            &owner.id,
            &mid("standup"),
            SettingsPatch {
                max_participants: Some(1),
                ..SettingsPatch::default()
            },
        )
        .await;
    assert!(matches!(below, Err(MeetingError::Invalid(_))), "{below:?}");
    let changed = store
        .update_settings(
            &owner.id,
            &mid("standup"),
            SettingsPatch {
                waiting_room: Some(true),
                max_participants: Some(10),
                ..SettingsPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(changed.waiting_room);
    assert_eq!(changed.max_participants, 10);

    let list = store
        .participants(&guest.id, &mid("standup"))
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    let left = store.leave(&guest.id, &mid("standup")).await.unwrap();
    assert_eq!(left.status, ParticipantStatus::Left);
    assert!(matches!(
        store.participants(&guest.id, &mid("standup")).await,
        Err(MeetingError::Forbidden(_))
    ));
    assert!(matches!(
        store.end_meeting(&guest.id, &mid("standup")).await,
        Err(MeetingError::Forbidden(_))
    ));
    let ended = store.end_meeting(&owner.id, &mid("standup")).await.unwrap();
    assert_eq!(ended.state, MeetingState::Ended);
    assert!(matches!(
        store.join(&guest, &mid("standup"), None, false).await,
        Err(MeetingError::Ended)
    ));
    assert!(matches!(store.meeting("nothing-here").await, Ok(None)));
}

async fn a_waiting_joiner_is_admitted_or_rejected_by_a_host_only(kind: Kind) {
    let (store, _db) = store(kind, StoreConfig::default()).await;
    let owner = store.create_guest("Host").await.unwrap();
    let a = store.create_guest("A").await.unwrap();
    let b = store.create_guest("B").await.unwrap();
    let c = store.create_guest("C").await.unwrap();
    let id = store
        .create_meeting(
            &owner,
            NewMeeting {
                waiting_room: true,
                max_participants: 2,
                ..NewMeeting::default()
            },
        )
        .await
        .unwrap()
        .id;
    let id = mid(&id);
    for user in [&a, &b, &c] {
        assert!(matches!(
            store.join(user, &id, None, false).await.unwrap(),
            Joined::Waiting(_)
        ));
    }
    // Asking again while waiting is still waiting, not a second place in the queue.
    assert!(matches!(
        store.join(&a, &id, None, false).await.unwrap(),
        Joined::Waiting(_)
    ));
    assert!(matches!(
        store.admit(&a.id, &id, &b.id).await,
        Err(MeetingError::Forbidden(_))
    ));
    assert!(matches!(
        store.waiting(&a.id, &id).await,
        Err(MeetingError::Forbidden(_))
    ));
    let waiting = store.waiting(&owner.id, &id).await.unwrap();
    assert_eq!(waiting.len(), 3);

    let admitted = store.admit(&owner.id, &id, &a.id).await.unwrap();
    assert_eq!(admitted.status, ParticipantStatus::Admitted);
    assert!(matches!(
        store.join(&a, &id, None, false).await.unwrap(),
        Joined::Admitted(_)
    ));
    let rejected = store.reject(&owner.id, &id, &b.id).await.unwrap();
    assert_eq!(rejected.status, ParticipantStatus::Rejected);
    assert!(matches!(
        store.join(&b, &id, None, false).await,
        Err(MeetingError::Rejected)
    ));
    assert!(matches!(
        store.admit(&owner.id, &id, &b.id).await,
        Err(MeetingError::NotFound(_))
    ));
    // The owner takes the second of two places; C cannot be admitted any more.
    store.join(&owner, &id, None, false).await.unwrap();
    let all = store.admit_all(&owner.id, &id).await.unwrap();
    assert_eq!((all.admitted.len(), all.still_waiting), (0, 1));
    assert!(matches!(
        store.admit(&owner.id, &id, &c.id).await,
        Err(MeetingError::Full(2))
    ));
    let removed = store.remove(&owner.id, &id, &a.id).await.unwrap();
    assert_eq!(removed.status, ParticipantStatus::Rejected);
    assert!(matches!(
        store.join(&a, &id, None, false).await,
        Err(MeetingError::Rejected)
    ));
    assert!(matches!(
        store.remove(&owner.id, &id, &owner.id).await,
        Err(MeetingError::Forbidden(_))
    ));
    let all = store.admit_all(&owner.id, &id).await.unwrap();
    assert_eq!((all.admitted.len(), all.still_waiting), (1, 0));
    assert_eq!(all.admitted[0].user_id, c.id);
    assert_eq!(
        store
            .ask_to_mute(&owner.id, &id, &c.id)
            .await
            .unwrap()
            .user_id,
        c.id
    );
    assert!(matches!(
        store.ask_to_mute(&c.id, &id, &owner.id).await,
        Err(MeetingError::Forbidden(_))
    ));
}

async fn a_meeting_of_fifty_admits_exactly_fifty_of_a_hundred_concurrent_joiners(kind: Kind) {
    let (store, _db) = store(kind, StoreConfig::default()).await;
    let owner = store.create_guest("Host").await.unwrap();
    let id = store
        .create_meeting(
            &owner,
            NewMeeting {
                max_participants: 50,
                ..NewMeeting::default()
            },
        )
        .await
        .unwrap()
        .id;
    let mut users = Vec::new();
    for i in 0..100 {
        users.push(store.create_guest(&format!("joiner {i}")).await.unwrap());
    }
    let joins = users.into_iter().map(|user| {
        let store = store.clone();
        let id = mid(&id);
        tokio::spawn(async move { store.join(&user, &id, None, false).await })
    });
    let (mut admitted, mut full) = (0, 0);
    for join in futures_join(joins).await {
        match join {
            Ok(Joined::Admitted(_)) => admitted += 1,
            Err(MeetingError::Full(50)) => full += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!((admitted, full), (50, 50));
    let list = store.participants(&owner.id, &mid(&id)).await.unwrap();
    assert_eq!(list.len(), 50);
}

async fn futures_join<T: Send + 'static>(
    handles: impl Iterator<Item = tokio::task::JoinHandle<T>>,
) -> Vec<T> {
    let handles: Vec<_> = handles.collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.expect("join task does not panic"));
    }
    out
}

async fn plain_relay_joins_follow_the_meetings_access(kind: Kind) {
    let (store, _db) = store(kind, StoreConfig::default()).await;
    let owner = store.create_guest("Host").await.unwrap();
    let user = UserId::new("visitor").unwrap();
    let protected = store
        .create_meeting(&owner, NewMeeting::default())
        .await
        .unwrap();
    assert_eq!(
        store.open_join(&mid(&protected.id), &user).await.unwrap(),
        OpenJoin::TokenRequired
    );
    let open = store
        .create_meeting(
            &owner,
            NewMeeting {
                access: Access::Open,
                ..NewMeeting::default()
            },
        )
        .await
        .unwrap();
    let OpenJoin::Allowed {
        grants,
        display_name,
        e2ee,
    } = store.open_join(&mid(&open.id), &user).await.unwrap()
    else {
        panic!("an open meeting lets a plain join in")
    };
    assert!(grants.publish && grants.subscribe && !grants.host);
    assert!(
        e2ee,
        "created encrypted (the default) through the API: enforced"
    );
    assert_eq!(display_name, "visitor");
    store.end_meeting(&owner.id, &mid(&open.id)).await.unwrap();
    assert_eq!(
        store.open_join(&mid(&open.id), &user).await.unwrap(),
        OpenJoin::NotFound
    );
    // Unknown meetings are created open on a plain join when the node allows open meetings.
    assert!(matches!(
        store.open_join(&mid("hallway"), &user).await.unwrap(),
        OpenJoin::Allowed { e2ee: false, .. }
    ));
    let created = store.meeting("hallway").await.unwrap().unwrap();
    assert_eq!((created.access, created.owner_id), (Access::Open, None));

    let strict = Store::open(
        &_db.url(),
        StoreConfig {
            allow_open: false,
            ..StoreConfig::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        strict.open_join(&mid("elsewhere"), &user).await.unwrap(),
        OpenJoin::NotFound
    );
    assert!(strict.meeting("elsewhere").await.unwrap().is_none());
    let refused = strict
        .create_meeting(
            &owner,
            NewMeeting {
                access: Access::Open,
                ..NewMeeting::default()
            },
        )
        .await;
    assert!(matches!(refused, Err(MeetingError::Invalid(_))));
}

async fn login_sessions_end_at_logout(kind: Kind) {
    let (store, _db) = store(kind, StoreConfig::default()).await;
    let user: User = store.create_guest("Lin").await.unwrap();
    let session = store.create_login_session(&user, 60_000).await.unwrap();
    let found = store.login_session(&session.id).await.unwrap().unwrap();
    assert_eq!(found.user, user);
    store.end_login_session(&session.id).await.unwrap();
    assert!(store.login_session(&session.id).await.unwrap().is_none());
    let expired = store.create_login_session(&user, -1).await.unwrap();
    assert!(store.login_session(&expired.id).await.unwrap().is_none());
    let oidc = store
        .upsert_oidc_user("abc", "Old Name", None)
        .await
        .unwrap();
    let again = store
        .upsert_oidc_user("abc", "New Name", Some("n@example.org"))
        .await
        .unwrap();
    assert_eq!(oidc.id, again.id);
    assert_eq!(again.display_name, "New Name");
    assert!(matches!(
        store.create_guest("\u{7}bell").await,
        Err(MeetingError::Invalid(_))
    ));
}

#[tokio::test]
async fn an_unreachable_database_is_one_clear_error_without_the_password() {
    let port = videocall_testkit::free_tcp_port();
    let url = format!("postgres://app:hunter2-secret@127.0.0.1:{port}/meet");
    let err = Store::open(&url, StoreConfig::default()).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(text.contains(&format!("127.0.0.1:{port}/meet")), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    let err = Store::open("mysql://x", StoreConfig::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::UnsupportedUrl(_)), "{err:?}");
}
