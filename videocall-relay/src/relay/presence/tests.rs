use super::*;

fn user(name: &str) -> Bytes {
    Bytes::copy_from_slice(name.as_bytes())
}

fn listed(digest: &PresenceDigest) -> Vec<u64> {
    digest.entries.iter().map(|e| e.session_id).collect()
}

#[test]
fn a_heartbeat_is_new_then_the_same_until_its_state_changes() {
    let mut p = Presence::default();
    let s = SessionId::new(1, 1);
    assert_eq!(p.handle_heartbeat(s, &user("a"), 0, 10), Heard::New);
    assert_eq!(p.handle_heartbeat(s, &user("a"), 0, 10), Heard::Same);
    assert_eq!(p.handle_heartbeat(s, &user("a"), 1, 10), Heard::Changed);
    assert_eq!(p.handle_heartbeat(s, &user("a"), 1, 10), Heard::Same);
    p.forget(s);
    assert_eq!(p.len(), 0);
    assert_eq!(p.handle_heartbeat(s, &user("a"), 1, 10), Heard::New);
}

#[test]
fn a_full_table_takes_no_newcomer_but_keeps_tracking_its_members() {
    let mut p = Presence::default();
    let (a, b) = (SessionId::new(1, 1), SessionId::new(1, 2));
    assert_eq!(p.handle_heartbeat(a, &user("a"), 0, 1), Heard::New);
    assert_eq!(p.handle_heartbeat(b, &user("b"), 0, 1), Heard::Full);
    assert_eq!(p.handle_heartbeat(b, &user("b"), 0, 1), Heard::Full);
    assert!(
        Heard::Full.forwarded(),
        "what the table cannot hold goes to everyone"
    );
    assert_eq!(p.handle_heartbeat(a, &user("a"), 2, 1), Heard::Changed);
    assert_eq!(p.len(), 1);
}

#[test]
fn digests_list_everyone_in_chunks_that_rotate_in_session_order() {
    let mut p = Presence::default();
    assert!(p.next_chunk(2).is_none(), "nothing to say about nobody");
    for i in 1..=5 {
        let flags = if i == 3 { 5 } else { 0 };
        p.handle_heartbeat(SessionId::new(1, i), &user("u"), flags, 100);
    }
    let id = |i| SessionId::new(1, i).get();
    let rounds: Vec<(u32, u32, Vec<u64>)> = (0..4)
        .map(|_| {
            let d = p.next_chunk(2).unwrap();
            (d.chunk, d.chunks, listed(&d))
        })
        .collect();
    assert_eq!(
        rounds,
        [
            (0, 3, vec![id(1), id(2)]),
            (1, 3, vec![id(3), id(4)]),
            (2, 3, vec![id(5)]),
            (0, 3, vec![id(1), id(2)]),
        ]
    );
    let full = p.full(2);
    assert_eq!(full.len(), 3);
    assert_eq!(full[1].entries[0].flags, 5);
    assert_eq!(full.iter().map(|d| d.entries.len()).sum::<usize>(), 5);
}

#[test]
fn a_round_ending_exactly_at_a_chunk_boundary_or_under_a_shrinking_table_starts_again() {
    let mut p = Presence::default();
    for i in 1..=4 {
        p.handle_heartbeat(SessionId::new(1, i), &user("u"), 0, 100);
    }
    let first = p.next_chunk(2).unwrap();
    assert_eq!(first.chunk, 0);
    assert_eq!(p.next_chunk(2).unwrap().chunk, 1);
    assert_eq!(
        listed(&p.next_chunk(2).unwrap()),
        listed(&first),
        "no empty chunk"
    );
    // The sessions after the cursor leave: the next chunk starts the round again.
    p.forget(SessionId::new(1, 3));
    p.forget(SessionId::new(1, 4));
    let next = p.next_chunk(2).unwrap();
    assert_eq!((next.chunk, next.chunks), (0, 1));
    assert_eq!(next.entries.len(), 2);
}

#[test]
fn only_readable_clear_heartbeats_have_flags() {
    let beat = |metadata: Option<videocall_types::HeartbeatMetadata>, sealed: bool| -> Bytes {
        packets::encode(&MediaPacket {
            media_type: MediaType::Heartbeat as i32,
            heartbeat_metadata: metadata,
            sealed: sealed.then(Default::default),
            ..Default::default()
        })
    };
    let on = videocall_types::HeartbeatMetadata {
        video_enabled: true,
        screen_enabled: true,
        ..Default::default()
    };
    let flags_of = |data: &Bytes| heartbeat_flags(PacketType::Media, Class::Control, data);
    assert_eq!(flags_of(&beat(Some(on), false)), Some(5));
    assert_eq!(flags_of(&beat(None, false)), Some(0));
    assert_eq!(flags_of(&beat(Some(on), true)), None, "sealed");
    assert_eq!(flags_of(&Bytes::from_static(&[0xff, 0xff])), None);
    let audio = packets::encode(&MediaPacket {
        media_type: MediaType::Audio as i32,
        ..Default::default()
    });
    assert_eq!(
        heartbeat_flags(PacketType::Media, Class::Audio, &audio),
        None
    );
    assert_eq!(
        heartbeat_flags(PacketType::AesKey, Class::Control, &beat(Some(on), false)),
        None
    );
}
