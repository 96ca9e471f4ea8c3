//! Drives a client [`Session`] the way the native and browser drivers do (actions, transmits and
//! events drained after every input, timers run when due) with what a relay could send it: raw
//! bytes, wrappers of every type from the system identity or a peer, SESSION_ASSIGNED, MEETING
//! events, media (clear and sealed), key packets, and unwrap results, plus reconnects, time, and
//! the application's own calls. With E2EE the identity is external (its private key "elsewhere"),
//! so sender keys come back as unwrap requests the input answers: no RSA work per input.

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use videocall_client::e2ee::{E2ee, E2eeConfig, Identity};
use videocall_client::{Action, ClientConfig, ConnectionState, Session, Subscription};
use videocall_types::proto::{SealedMedia, SenderKeyPacket, WrappedSenderKey};
use videocall_types::{
    MediaPacket, MeetingId, MeetingPacket, PacketType, PacketWrapper, RsaPacket, SYSTEM_USER_ID,
    SessionId, SubscriptionPacket, UserId, packets,
};

use crate::input::Reader;
use crate::keys;

/// Our user id.
pub const ME: &str = "me";
/// Peer user ids inputs refer to by index (index 4: ours, 5: the system's).
pub const PEERS: [&str; 4] = ["alice", "bob", "alice", "zoë"];

/// One thing the driver can do to the session, by tag (modulo their number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `bytes…`: anything at all from the relay.
    PacketRaw,
    /// `packet_type: u8, system: u8, session: u8, user: u8, data…`.
    Packet,
    /// `session: u8`: SESSION_ASSIGNED.
    Assigned,
    /// `event: u8, system: u8, session: u8, user: u8, count: u8`: a MEETING event.
    Meeting,
    /// `session: u8, user: u8, media_type: u8, flags: u8, timestamp: u64 (f64 bits),
    /// [stream: u8, epoch: u8, counter: u16 when sealed], data…`: MEDIA.
    Media,
    /// `session: u8, user: u8, key: u8, [der…]`: RSA_PUB_KEY (key 0/1: a real key).
    PublicKey,
    /// `session: u8, user: u8, version: u8, epoch: u32, n: u8, n × (to: u8, wrapped: short)`.
    SenderKey,
    /// `how: u8, [secret…]`: answers the next unwrap request (fail, a well-formed secret of the
    /// requested epoch, or raw bytes).
    Unwrapped,
    /// `ms: u16`: time passes (×8 ms).
    Time,
    /// `up: u8`: the transport closes, or (odd) the pending connect succeeds.
    Transport,
    /// `what: u8, …`: the application sends media, asks a keyframe or sets a subscription.
    App,
}

/// The steps by tag.
pub const STEPS: [Step; 11] = [
    Step::PacketRaw,
    Step::Packet,
    Step::Assigned,
    Step::Meeting,
    Step::Media,
    Step::PublicKey,
    Step::SenderKey,
    Step::Unwrapped,
    Step::Time,
    Step::Transport,
    Step::App,
];

/// The session under test.
#[derive(Debug)]
pub struct Driver {
    session: Session,
    now: Duration,
    connecting: bool,
    /// Session ids the relay assigned us so far.
    assigned: HashSet<u64>,
}

impl Driver {
    /// Runs `data`: its first byte turns E2EE on (odd), then one action per record.
    pub fn run(data: &[u8]) {
        let mut input = Reader::new(data);
        let config = ClientConfig::new(
            UserId::new(ME).expect("valid user id"),
            MeetingId::new("m0").expect("valid meeting id"),
        );
        let session = if input.u8() & 1 == 1 {
            let identity =
                Identity::external(keys::identity(0).public_key_der()).expect("a valid public key");
            let rng = ChaCha20Rng::seed_from_u64(7);
            Session::with_e2ee(
                config,
                E2ee::with_identity(E2eeConfig::default(), ME, identity, rng),
            )
        } else {
            Session::new(config)
        };
        let mut driver = Self {
            session,
            now: Duration::ZERO,
            connecting: false,
            assigned: HashSet::new(),
        };
        driver.session.handle_start(driver.now);
        driver.drain();
        while let Some((tag, body)) = input.record() {
            driver.step(STEPS[tag as usize % STEPS.len()], body);
        }
        driver.session.leave();
        driver.drain();
        assert_eq!(driver.session.state(), ConnectionState::Closed);
        assert_eq!(driver.session.poll_timeout(), None);
    }

    fn step(&mut self, action: Step, mut r: Reader<'_>) {
        match action {
            Step::PacketRaw => self.packet(Bytes::copy_from_slice(r.rest())),
            Step::Packet => {
                let packet_type = i32::from(r.u8());
                let system = r.u8() & 1 == 1;
                let session = session_id(r.u8());
                let user = if system {
                    SYSTEM_USER_ID.as_bytes()
                } else {
                    user(r.u8())
                };
                let data = Bytes::copy_from_slice(r.rest());
                self.packet(wrapper(packet_type, user, session, data));
            }
            Step::Assigned => {
                let session = SessionId::from_wire(session_id(r.u8()));
                if let Some(session) = session {
                    self.packet(packets::encode(&packets::session_assigned(session)));
                }
            }
            Step::Meeting => {
                let event_type = i32::from(r.u8() % 9);
                let system = r.u8() & 1 == 0;
                let session = session_id(r.u8());
                let target = user(r.u8());
                let event = MeetingPacket {
                    event_type,
                    room_id: "m0".into(),
                    participant_count: i64::from(r.u8()),
                    target_user_id: Bytes::copy_from_slice(target),
                    display_name: Bytes::copy_from_slice(target),
                    session_id: session,
                    ..Default::default()
                };
                let from = if system {
                    SYSTEM_USER_ID.as_bytes()
                } else {
                    target
                };
                let data = packets::encode(&event);
                self.packet(wrapper(PacketType::Meeting as i32, from, 0, data));
            }
            Step::Media => {
                let session = session_id(r.u8());
                let from = user(r.u8());
                let media_type = i32::from(r.u8() % 8);
                let flags = r.u8();
                let timestamp = f64::from_bits(r.u64());
                let sealed = (flags & 2 != 0).then(|| SealedMedia {
                    stream_id: u32::from(r.u8()),
                    epoch: u32::from(r.u8()),
                    counter: u64::from(r.u16()),
                    ciphertext: Bytes::new(),
                });
                let data = Bytes::copy_from_slice(r.rest());
                let media = MediaPacket {
                    media_type,
                    frame_type: if flags & 1 == 1 { "key" } else { "delta" }.into(),
                    // A keyframe request names the peer it is for.
                    user_id: if flags & 4 != 0 {
                        Bytes::from_static(ME.as_bytes())
                    } else {
                        Bytes::copy_from_slice(from)
                    },
                    timestamp,
                    sealed: sealed.map(|s| SealedMedia {
                        ciphertext: data.clone(),
                        ..s
                    }),
                    data,
                    ..Default::default()
                };
                let data = packets::encode(&media);
                self.packet(wrapper(PacketType::Media as i32, from, session, data));
            }
            Step::PublicKey => {
                let session = session_id(r.u8());
                let from = user(r.u8());
                let der = match r.u8() % 3 {
                    k @ (0 | 1) => keys::identity(k as usize).public_key_der(),
                    _ => r.rest(),
                };
                let packet = RsaPacket {
                    public_key_der: Bytes::copy_from_slice(der),
                    user_id: Bytes::copy_from_slice(from),
                    // Hostile packets carry whatever signature bytes they like.
                    signature: Bytes::copy_from_slice(r.short_bytes()),
                    signing_key: Bytes::copy_from_slice(r.short_bytes()),
                };
                let data = packets::encode(&packet);
                self.packet(wrapper(PacketType::RsaPubKey as i32, from, session, data));
            }
            Step::SenderKey => {
                let session = session_id(r.u8());
                let from = user(r.u8());
                let packet = self.sender_key_packet(&mut r);
                let data = packets::encode(&packet);
                self.packet(wrapper(PacketType::AesKey as i32, from, session, data));
            }
            Step::Unwrapped => {
                let Some(request) = self.session.poll_unwrap() else {
                    return;
                };
                let how = r.u8();
                let secret = match how % 3 {
                    0 => None,
                    1 => {
                        // key ∥ salt ∥ epoch, the epoch the request is for.
                        let mut secret = r.bytes(36).to_vec();
                        secret.resize(36, 0);
                        secret.extend_from_slice(&request.epoch.to_be_bytes());
                        Some(secret)
                    }
                    _ => Some(r.rest().to_vec()),
                };
                let _ = self
                    .session
                    .handle_unwrapped(self.now, &request, secret.as_deref());
            }
            Step::Time => {
                self.now += Duration::from_millis(u64::from(r.u16()) * 8);
                while let Some(at) = self.session.poll_timeout() {
                    if at > self.now {
                        break;
                    }
                    self.session.handle_timeout(self.now);
                    self.drain();
                }
            }
            Step::Transport => {
                if r.u8() & 1 == 1 {
                    if std::mem::take(&mut self.connecting) {
                        self.session.handle_connected(self.now);
                    }
                } else {
                    self.session.handle_disconnected(self.now, "fuzz");
                }
            }
            Step::App => match r.u8() % 3 {
                0 => {
                    let media = MediaPacket {
                        media_type: i32::from(r.u8() % 8),
                        data: Bytes::copy_from_slice(r.rest()),
                        ..Default::default()
                    };
                    let _ = self.session.send_media(media);
                }
                1 => {
                    let peer = String::from_utf8_lossy(user(r.u8())).into_owned();
                    let _ = self.session.request_keyframe(self.now, &peer);
                }
                _ => {
                    let all = r.u8() & 1 == 1;
                    let ids: Vec<SessionId> = r
                        .rest()
                        .iter()
                        .filter_map(|b| SessionId::from_wire(session_id(*b)))
                        .collect();
                    let split = ids.len() / 2;
                    let subscription = if all {
                        Subscription::All
                    } else {
                        Subscription::Only {
                            video: ids[..split].to_vec(),
                            screen: ids[split..].to_vec(),
                        }
                    };
                    self.session.subscribe(&subscription);
                }
            },
        }
        self.drain();
    }

    fn sender_key_packet(&self, r: &mut Reader<'_>) -> SenderKeyPacket {
        let version = match r.u8() {
            0 => 1,
            v => u32::from(v),
        };
        let epoch = r.u32();
        let ours = self.session.session_id().map_or(0, SessionId::get);
        let keys = (0..r.u8() % 4)
            .map(|_| {
                let to = r.u8();
                WrappedSenderKey {
                    recipient_session: if to & 1 == 0 { ours } else { session_id(to) },
                    wrapped: Bytes::copy_from_slice(r.short_bytes()),
                }
            })
            .collect();
        SenderKeyPacket {
            version,
            epoch,
            keys,
            signature: Bytes::copy_from_slice(r.short_bytes()),
        }
    }

    fn packet(&mut self, bytes: Bytes) {
        // Refusals are the session rejecting hostile input, which is what it should do.
        let _ = self.session.handle_packet(self.now, bytes);
    }

    /// Drains everything the session asks for and checks it.
    fn drain(&mut self) {
        while let Some(action) = self.session.poll_action() {
            if let Action::Connect { .. } = action {
                self.connecting = true;
            }
        }
        if let Some(session) = self.session.session_id() {
            self.assigned.insert(session.get());
        }
        while let Some(bytes) = self.session.poll_transmit() {
            let packet = PacketWrapper::decode(bytes).expect("the session sends PacketWrappers");
            assert!(
                packet.session_id == 0 || self.assigned.contains(&packet.session_id),
                "sent as session {}, never assigned",
                packet.session_id
            );
            match PacketType::try_from(packet.packet_type) {
                Ok(PacketType::Subscription) => {
                    SubscriptionPacket::decode(packet.data).expect("a SubscriptionPacket");
                }
                Ok(PacketType::RsaPubKey) => {
                    RsaPacket::decode(packet.data).expect("an RsaPacket");
                }
                Ok(PacketType::AesKey) => {
                    SenderKeyPacket::decode(packet.data).expect("a SenderKeyPacket");
                }
                Ok(PacketType::Media) => {
                    MediaPacket::decode(packet.data).expect("a MediaPacket");
                }
                other => panic!("the session sent {other:?}"),
            }
        }
        while self.session.poll_event().is_some() {}
        assert_eq!(
            self.session.session_id().is_some(),
            matches!(self.session.state(), ConnectionState::Joined { .. })
        );
        if let Some(e2ee) = self.session.e2ee() {
            // The safety code is computed over whatever keys arrived; it must always work.
            let _ = e2ee.safety_code();
        }
    }
}

/// Session id number `index` of a small pool (two nodes, six sessions each), or 0.
fn session_id(index: u8) -> u64 {
    match index % 13 {
        12 => 0,
        i => SessionId::new(1 + u32::from(i) / 6, 1 + u32::from(i) % 6).get(),
    }
}

/// Peer user `index`; 4: our own user id, 5: the system's.
fn user(index: u8) -> &'static [u8] {
    match index % 6 {
        4 => ME.as_bytes(),
        5 => SYSTEM_USER_ID.as_bytes(),
        i => PEERS[i as usize].as_bytes(),
    }
}

fn wrapper(packet_type: i32, user: &[u8], session: u64, data: Bytes) -> Bytes {
    packets::encode(&PacketWrapper {
        packet_type,
        user_id: Bytes::copy_from_slice(user),
        data,
        session_id: session,
    })
}
