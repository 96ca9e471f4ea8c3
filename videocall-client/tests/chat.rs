//! Chat, hands and reactions (issue #18) through the real relay core, in memory: sealed chat
//! in an encrypted meeting (the relay forwards no plaintext), history for a late joiner (sent
//! once, by one member, shown once), clear chat refused in an encrypted meeting, hands told to
//! newcomers and lowered by a host, and the caps.

mod harness;

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use harness::{Conditions, Net};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;
use videocall_client::chat::ChatEntry;
use videocall_client::e2ee::{E2ee, E2eeConfig, Identity};
use videocall_client::{ClientConfig, Command, Event, Session, SessionError};
use videocall_relay::DropReason;
use videocall_types::{
    ChatMessage, ChatPacket, MeetingId, PacketType, UserId, chat_limits, packets,
};

/// RSA identity `i` (0..3), generated once for all tests of this binary.
fn identity(i: usize) -> Identity {
    static KEYS: OnceLock<Vec<Identity>> = OnceLock::new();
    KEYS.get_or_init(|| {
        (0..3)
            .map(|i| {
                Identity::generate(&mut ChaCha20Rng::seed_from_u64(300 + i), 2048)
                    .expect("valid size")
            })
            .collect()
    })[i]
        .clone()
}

fn session(user: &str, encrypt: Option<usize>) -> Session {
    let config = ClientConfig::new(UserId::new(user).unwrap(), MeetingId::new("m1").unwrap());
    match encrypt {
        Some(i) => {
            let rng = ChaCha20Rng::seed_from_u64(i as u64);
            Session::with_e2ee(
                config,
                E2ee::with_identity(E2eeConfig::default(), user, identity(i), rng),
            )
        }
        None => Session::new(config),
    }
}

fn chats(net: &Net, i: usize) -> Vec<ChatEntry> {
    net.events[i]
        .iter()
        .filter_map(|e| match e {
            Event::Chat(entry) => Some(entry.clone()),
            _ => None,
        })
        .collect()
}

fn say(net: &mut Net, i: usize, text: &str) {
    net.clients[i]
        .handle_command(1_700_000_000_000, Command::SendChat(text.into()))
        .expect("joined, and the text is within the rules");
    net.run_for(Duration::from_millis(50));
}

/// Whether any packet the relay forwarded holds `needle`.
fn forwarded_contains(net: &Net, needle: &[u8]) -> bool {
    net.forwarded
        .iter()
        .any(|p| p.windows(needle.len()).any(|w| w == needle))
}

/// An encrypted meeting of `users`, each joined and keyed.
fn encrypted(users: &[&str]) -> Net {
    let mut net = Net::new(Conditions::default(), 1);
    net.e2ee_meeting = true;
    for (i, user) in users.iter().enumerate() {
        net.add(session(user, Some(i)));
        net.run_for(Duration::from_millis(100));
    }
    net
}

#[test]
fn chat_in_an_encrypted_meeting_is_sealed_and_the_relay_forwards_no_plaintext() {
    let mut net = encrypted(&["alice", "bob"]);
    say(&mut net, 0, "the launch code is swordfish-4711");
    let got = chats(&net, 1);
    assert_eq!(got.len(), 1, "{:?}", net.events[1]);
    assert_eq!(got[0].from, "alice");
    assert_eq!(got[0].text, "the launch code is swordfish-4711");
    assert_eq!(got[0].at_ms, 1_700_000_000_000);
    assert_eq!(got[0].via, None);
    assert!(chats(&net, 0).is_empty(), "the sender is not echoed");
    assert!(!net.forwarded.is_empty());
    assert!(!forwarded_contains(&net, b"swordfish"));
    assert_eq!(
        net.relay
            .metrics()
            .drops(DropReason::CleartextInE2eeMeeting),
        0
    );
}

#[test]
fn a_late_joiner_gets_the_history_once_from_the_lowest_member_sealed() {
    let mut net = encrypted(&["alice", "bob"]);
    say(&mut net, 0, "first from alice");
    say(&mut net, 1, "then bob-secret-42");
    say(&mut net, 0, "and alice again");
    net.add(session("carol", Some(2)));
    net.run_for(Duration::from_secs(1));

    let got = chats(&net, 2);
    let texts: Vec<&str> = got.iter().map(|e| e.text.as_str()).collect();
    assert_eq!(
        texts,
        ["first from alice", "then bob-secret-42", "and alice again"]
    );
    let authors: Vec<&str> = got.iter().map(|e| e.from.as_str()).collect();
    assert_eq!(authors, ["alice", "bob", "alice"]);
    // Exactly one member (the lowest session id) sent it, whoever that was.
    let via: Vec<_> = got.iter().map(|e| e.via.clone().unwrap()).collect();
    assert!(via.iter().all(|v| *v == via[0]), "{via:?}");
    assert!(via[0] == "alice" || via[0] == "bob");
    // The others were not sent it again, and nobody saw a message twice.
    assert_eq!(chats(&net, 0).len(), 1);
    assert_eq!(chats(&net, 1).len(), 2);
    assert!(!forwarded_contains(&net, b"bob-secret-42"));

    // A live message after the hand-off reaches carol once, not as history.
    say(&mut net, 1, "welcome carol");
    let got = chats(&net, 2);
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].via, None);
}

#[test]
fn history_in_a_clear_meeting_travels_in_clear_and_is_deduplicated() {
    let mut net = Net::new(Conditions::default(), 2);
    net.add(session("alice", None));
    net.add(session("bob", None));
    net.run_for(Duration::from_millis(100));
    say(&mut net, 0, "hello in clear");
    assert!(forwarded_contains(&net, b"hello in clear"));
    net.add(session("carol", None));
    net.run_for(Duration::from_millis(200));
    let got = chats(&net, 2);
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].from.as_str(), got[0].text.as_str()),
        ("alice", "hello in clear")
    );
    assert!(got[0].via.is_some());
    // Reconnecting replays nothing twice: carol's history arrives again, she shows it once.
    net.drop_all();
    net.run_for(Duration::from_secs(3));
    assert_eq!(chats(&net, 2).len(), 1);
}

#[test]
fn the_relay_drops_clear_chat_in_an_encrypted_meeting() {
    let mut net = Net::new(Conditions::default(), 3);
    net.e2ee_meeting = true;
    // Mallory's client does not encrypt; the meeting is encrypted by its token.
    net.add(session("mallory", None));
    net.add(session("bob", Some(1)));
    net.run_for(Duration::from_millis(100));
    net.clients[0]
        .handle_command(1, Command::SendChat("leaked-text".into()))
        .unwrap();
    net.run_for(Duration::from_millis(100));
    assert!(chats(&net, 1).is_empty());
    assert!(!forwarded_contains(&net, b"leaked-text"));
    assert_eq!(
        net.relay
            .metrics()
            .drops(DropReason::CleartextInE2eeMeeting),
        1
    );
}

#[test]
fn oversize_chat_is_dropped_by_the_relay_and_the_sender_told() {
    let mut net = Net::new(Conditions::default(), 4);
    net.add(session("alice", None));
    net.add(session("bob", None));
    net.run_for(Duration::from_millis(100));
    // A client that ignores the cap: 8 KiB of text in one packet.
    let packet = ChatPacket {
        message: Some(ChatMessage {
            id: Bytes::from_static(&[1; 16]),
            text: "x".repeat(8 * 1024),
            ..Default::default()
        }),
        ..Default::default()
    };
    net.clients[0]
        .send_packet(PacketType::Chat, packets::encode(&packet))
        .unwrap();
    net.run_for(Duration::from_millis(100));
    assert!(chats(&net, 1).is_empty());
    assert_eq!(net.relay.metrics().drops(DropReason::ChatTooLarge), 1);
    assert!(net.events[0].iter().any(|e| matches!(
        e,
        Event::RelayNotice(n) if n.packet_type == PacketType::Chat as i32
            && n.limit == chat_limits::MAX_CHAT_PACKET_BYTES as u64
    )));
    // The session refuses it before the wire, too.
    let long = "y".repeat(chat_limits::MAX_TEXT_BYTES + 1);
    assert!(matches!(
        net.clients[0].handle_command(1, Command::SendChat(long)),
        Err(SessionError::Chat(_))
    ));
    assert!(matches!(
        net.clients[0].handle_command(1, Command::SendChat("  ".into())),
        Err(SessionError::Chat(_))
    ));
}

#[test]
fn a_raised_hand_is_seen_by_newcomers_and_a_host_lowers_it() {
    let mut net = encrypted(&[]);
    net.hosts.push("hilda".into());
    net.add(session("alice", Some(0)));
    net.add(session("hilda", Some(1)));
    net.run_for(Duration::from_millis(100));
    net.clients[0]
        .handle_command(1, Command::RaiseHand)
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let hand = |net: &Net, i: usize| -> Vec<(String, bool)> {
        net.events[i]
            .iter()
            .filter_map(|e| match e {
                Event::Hand { user, raised, .. } => Some((user.to_string(), *raised)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(hand(&net, 1), [("alice".to_owned(), true)]);
    net.add(session("carol", Some(2)));
    net.run_for(Duration::from_millis(200));
    assert_eq!(hand(&net, 2), [("alice".to_owned(), true)]);

    // Carol may not lower it (no host grant): the relay drops her request.
    net.clients[2]
        .handle_command(1, Command::LowerHandOf("alice".into()))
        .unwrap();
    net.run_for(Duration::from_millis(50));
    assert!(net.clients[0].hand_raised());
    assert_eq!(net.relay.metrics().drops(DropReason::NotHost), 1);

    net.clients[1]
        .handle_command(1, Command::LowerHandOf("alice".into()))
        .unwrap();
    net.run_for(Duration::from_millis(50));
    assert!(!net.clients[0].hand_raised());
    assert!(net.events[0].contains(&Event::HandLoweredByHost));
    assert_eq!(
        hand(&net, 2),
        [("alice".to_owned(), true), ("alice".to_owned(), false)]
    );
}

#[test]
fn reactions_are_limited_to_the_allowed_emoji() {
    let mut net = Net::new(Conditions::default(), 5);
    net.add(session("alice", None));
    net.add(session("bob", None));
    net.run_for(Duration::from_millis(100));
    net.clients[0]
        .handle_command(1, Command::React("🎉".into()))
        .unwrap();
    assert!(matches!(
        net.clients[0].handle_command(1, Command::React("<b>".into())),
        Err(SessionError::Chat(_))
    ));
    // A client that sends one anyway: bob drops it.
    let bad = videocall_types::ReactionPacket {
        kind: videocall_types::ReactionKind::Emoji as i32,
        emoji: "💩".into(),
    };
    net.clients[0]
        .send_packet(PacketType::Reaction, packets::encode(&bad))
        .unwrap();
    net.run_for(Duration::from_millis(50));
    let reactions: Vec<&str> = net.events[1]
        .iter()
        .filter_map(|e| match e {
            Event::Reaction { user, emoji, .. } if user == "alice" => Some(emoji.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reactions, ["🎉"]);
    assert_eq!(net.clients[1].chat_drops(), 1);
}
