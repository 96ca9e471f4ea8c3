//! E2EE key packets addressed to one session (issue #16): an AES_KEY of one wrap and a
//! KEY_REQUEST reach their one target, on this node or another, and nobody else; a target
//! outside the sender's meeting is dropped and counted.

mod harness;

use harness::{Cluster, wrapper};
use prost::Message;
use videocall_relay::{DropReason, InboundError, RelayConfig};
use videocall_types::proto::{KeyRequest, SenderKeyPacket, WrappedSenderKey};
use videocall_types::{PacketType, SessionId};

fn sender_key(recipients: &[SessionId]) -> bytes::Bytes {
    let packet = SenderKeyPacket {
        version: 2,
        epoch: 3,
        keys: recipients
            .iter()
            .map(|r| WrappedSenderKey {
                recipient_session: r.get(),
                wrapped: vec![0xab; 256].into(),
            })
            .collect(),
        signature: vec![0xcd; 64].into(),
    };
    wrapper(PacketType::AesKey, packet.encode_to_vec())
}

fn keys(c: &Cluster, s: SessionId) -> usize {
    c.of_type(s, PacketType::AesKey).len() + c.of_type(s, PacketType::KeyRequest).len()
}

#[test]
fn a_wrap_for_one_session_reaches_it_alone_on_either_node() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let alice = c.join(0, "alice", "m1");
    let bob = c.join(0, "bob", "m1");
    let carol = c.join(1, "carol", "m1");
    let dave = c.join(1, "dave", "m1");

    c.send(alice, sender_key(&[carol])).unwrap();
    c.send(alice, sender_key(&[bob])).unwrap();
    let to_dave = KeyRequest {
        target_session: dave.get(),
        epoch: 3,
    };
    c.send(
        bob,
        wrapper(PacketType::KeyRequest, to_dave.encode_to_vec()),
    )
    .unwrap();

    assert_eq!(keys(&c, carol), 1);
    assert_eq!(keys(&c, bob), 1);
    assert_eq!(keys(&c, dave), 1);
    assert_eq!(keys(&c, alice), 0);
    // Stamped with the sender's real identity, like every packet.
    let got = &c.of_type(carol, PacketType::AesKey)[0];
    assert_eq!(got.wrapper.session_id, alice.get());
    assert_eq!(&got.wrapper.user_id[..], b"alice");
    let asked = &c.of_type(dave, PacketType::KeyRequest)[0];
    assert_eq!(asked.wrapper.session_id, bob.get());
}

#[test]
fn a_packet_of_several_wraps_still_goes_to_everyone() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let alice = c.join(0, "alice", "m1");
    let bob = c.join(0, "bob", "m1");
    let carol = c.join(1, "carol", "m1");
    c.send(alice, sender_key(&[bob, carol])).unwrap();
    assert_eq!((keys(&c, bob), keys(&c, carol)), (1, 1));
}

#[test]
fn a_key_for_a_session_of_another_meeting_is_dropped_and_counted() {
    let mut c = Cluster::new(2, RelayConfig::default());
    let alice = c.join(0, "alice", "m1");
    let _bob = c.join(0, "bob", "m1");
    let stranger = c.join(0, "eve", "m2");
    let far_stranger = c.join(1, "frank", "m3");
    for target in [stranger, far_stranger] {
        assert_eq!(
            c.send(alice, sender_key(&[target])),
            Err(InboundError::KeyTargetUnknown(target.get()))
        );
    }
    let nobody = SessionId::from_wire(0xdead_beef).unwrap();
    assert!(c.send(alice, sender_key(&[nobody])).is_err());
    assert!(c.send(alice, sender_key(&[alice])).is_err());
    assert_eq!(keys(&c, stranger) + keys(&c, far_stranger), 0);
    assert_eq!(c.nodes[0].metrics().drops(DropReason::KeyTargetUnknown), 4);
}
