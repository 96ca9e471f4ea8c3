//! Drives the E2EE machine ([`E2ee`]) with key packets: RSA_PUB_KEY carrying real keys, our own
//! key or any DER; AES_KEY as raw bytes or built (any version and epoch, wraps for us or others
//! that are garbage or real RSA-OAEP wraps of a secret the input chooses); peers joining and
//! leaving; and a real peer machine that exchanges keys with us and seals frames (some altered in
//! transit) for us to open.
//!
//! Our identity has its private key, so a sender key addressed to us costs an RSA decryption
//! (milliseconds, more with coverage instrumentation): at most [`MAX_UNWRAPS`] AES_KEY packets
//! addressed to us are delivered per input, the rest are skipped, so the fuzzer explores the
//! machine instead of spending its time in RSA.

use bytes::Bytes;
use prost::Message;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use videocall_client::e2ee::{E2ee, E2eeConfig, E2eeStats, SENDER_KEY_VERSION};
use videocall_types::proto::{SenderKeyPacket, WrappedSenderKey};
use videocall_types::{MediaPacket, PacketType, PacketWrapper, RsaPacket, SessionId};

use crate::input::Reader;
use crate::keys;

/// AES_KEY packets addressed to us delivered per input (each may cost an RSA decryption).
pub const MAX_UNWRAPS: usize = 4;
/// Our user id.
const ME: &str = "me";
/// The real peer machine's user id.
const PEER: &str = "peer";

/// One thing the driver can do, by tag (modulo their number).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `session: u8`: the relay assigned us a session.
    Joined,
    /// `session: u8, user: u8`.
    PeerJoined,
    /// `session: u8`.
    PeerLeft,
    /// `session: u8, user: u8, key: u8, [der…]`: key 0 is ours, 1 the peer machine's.
    PublicKey,
    /// `session: u8, user: u8, data…`: AES_KEY data as it comes.
    SenderKeyRaw,
    /// `session: u8, user: u8, version: u8, epoch: u32, n: u8, n × (to: u8, how: u8, …)`.
    SenderKey,
    /// `what: u8, …`: the peer machine learns our key and sends its own; seals a frame for us
    /// (optionally altered); or rotates.
    PeerMachine,
    /// `session: u8, envelope…`: a frame to open.
    Open,
}

/// The steps by tag.
pub const STEPS: [Step; 8] = [
    Step::Joined,
    Step::PeerJoined,
    Step::PeerLeft,
    Step::PublicKey,
    Step::SenderKeyRaw,
    Step::SenderKey,
    Step::PeerMachine,
    Step::Open,
];

/// The machines under test.
pub struct Driver {
    us: E2ee,
    /// A real peer with identity 1, session [`Driver::PEER_SESSION`].
    peer: E2ee,
    rng: ChaCha20Rng,
    unwraps_left: usize,
    /// Our session, once assigned (E2ee does not expose it).
    us_session: Option<u64>,
    /// Our last signed RSA_PUB_KEY (only we can sign it), for the peer machine.
    our_announce: Option<Bytes>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("us", &self.us)
            .finish_non_exhaustive()
    }
}

impl Driver {
    const PEER_SESSION: u64 = (2 << 32) | 1;

    /// Runs every record of `data`; returns our machine's counters.
    pub fn run(data: &[u8]) -> E2eeStats {
        let config = E2eeConfig {
            previous_epoch_grace_frames: 4,
            ..E2eeConfig::default()
        };
        let mut driver = Self {
            us: E2ee::with_identity(
                config.clone(),
                ME,
                keys::identity(0).clone(),
                ChaCha20Rng::seed_from_u64(1),
            ),
            peer: E2ee::with_identity(
                config,
                PEER,
                keys::identity(1).clone(),
                ChaCha20Rng::seed_from_u64(2),
            ),
            rng: ChaCha20Rng::seed_from_u64(3),
            unwraps_left: MAX_UNWRAPS,
            us_session: None,
            our_announce: None,
        };
        driver.peer.handle_joined(Self::PEER_SESSION);
        let mut input = Reader::new(data);
        while let Some((tag, body)) = input.record() {
            driver.step(STEPS[tag as usize % STEPS.len()], body);
        }
        *driver.us.stats()
    }

    fn step(&mut self, step: Step, mut r: Reader<'_>) {
        match step {
            Step::Joined => {
                let session = session_id(r.u8());
                self.us.handle_joined(session);
                self.us_session = Some(session);
            }
            Step::PeerJoined => {
                let (session, user) = (session_id(r.u8()), user(r.u8()));
                self.us.handle_peer_joined(session, user);
            }
            Step::PeerLeft => self.us.handle_peer_left(session_id(r.u8())),
            Step::PublicKey => {
                let (session, user) = (session_id(r.u8()), user(r.u8()));
                let der = match r.u8() % 3 {
                    k @ (0 | 1) => keys::identity(k as usize).public_key_der(),
                    _ => r.rest(),
                };
                // Unsigned: refused (BadSignature) before the key is parsed.
                let packet = RsaPacket {
                    public_key_der: Bytes::copy_from_slice(der),
                    user_id: Bytes::from_static(b"claimed"),
                    ..Default::default()
                };
                let data = packet.encode_to_vec().into();
                self.deliver(PacketType::RsaPubKey, session, user, data);
            }
            Step::SenderKeyRaw => {
                let (session, user) = (session_id(r.u8()), user(r.u8()));
                self.deliver(
                    PacketType::AesKey,
                    session,
                    user,
                    Bytes::copy_from_slice(r.rest()),
                );
            }
            Step::SenderKey => {
                let (session, user) = (session_id(r.u8()), user(r.u8()));
                let packet = self.sender_key_packet(&mut r);
                self.deliver(
                    PacketType::AesKey,
                    session,
                    user,
                    packet.encode_to_vec().into(),
                );
            }
            Step::PeerMachine => match r.u8() % 3 {
                0 => self.exchange_with_peer(),
                1 => {
                    let media = MediaPacket {
                        media_type: i32::from(r.u8() % 8),
                        frame_type: if r.u8() & 1 == 1 { "key" } else { "delta" }.into(),
                        ..Default::default()
                    };
                    let flip = r.u16();
                    let media = MediaPacket {
                        data: Bytes::copy_from_slice(r.rest()),
                        ..media
                    };
                    let Ok(mut envelope) = self.peer.seal(&media).map(Vec::from) else {
                        return;
                    };
                    // An altered frame (high bit set) must not open: AES-GCM and the bound
                    // routing hints see to it.
                    let altered = flip & 0x8000 != 0 && !envelope.is_empty();
                    if altered {
                        let at = (flip & 0x7fff) as usize % envelope.len();
                        envelope[at] ^= 1 + (flip >> 8) as u8 % 255;
                    }
                    let opened = self.us.open(Self::PEER_SESSION, &envelope);
                    // What opens is exactly what was sealed (an alteration that decodes to the
                    // same envelope may open).
                    if let Ok(got) = opened {
                        assert_eq!(got, media, "a frame opened changed (altered: {altered})");
                    }
                }
                _ => {
                    // A participant comes and goes: the peer rotates its sender key.
                    let other = session_id(r.u8());
                    self.peer.handle_peer_joined(other, "x");
                    self.peer.handle_peer_left(other);
                    self.exchange_with_peer();
                }
            },
            Step::Open => {
                let session = session_id(r.u8());
                let _ = self.us.open(session, r.rest());
            }
        }
        self.drain();
    }

    /// The peer hears our public key (as the relay delivers it) and sends us its key packets.
    fn exchange_with_peer(&mut self) {
        let Some(ours) = self.our_session() else {
            return;
        };
        self.peer.handle_peer_joined(ours, ME);
        let Some(our_key) = self.our_announce.clone() else {
            return;
        };
        let _ = self.peer.handle_key_packet(&PacketWrapper {
            packet_type: PacketType::RsaPubKey as i32,
            user_id: Bytes::from_static(ME.as_bytes()),
            data: our_key,
            session_id: ours,
        });
        while let Some(packet) = self.peer.poll_transmit() {
            self.deliver(packet.packet_type, Self::PEER_SESSION, PEER, packet.data);
        }
    }

    fn sender_key_packet(&mut self, r: &mut Reader<'_>) -> SenderKeyPacket {
        let version = match r.u8() {
            0 => SENDER_KEY_VERSION,
            v => u32::from(v),
        };
        let epoch = r.u32();
        let ours = self.our_session().unwrap_or(0);
        let keys = (0..r.u8() % 4)
            .map(|_| {
                let to = r.u8();
                let recipient_session = if to & 1 == 0 { ours } else { session_id(to) };
                let wrapped = if r.u8() & 1 == 1 {
                    // A real wrap under our public key of a secret the input picks (40 bytes:
                    // key, salt, epoch; or any length).
                    let mut secret = r.bytes(36).to_vec();
                    secret.resize(36, 0);
                    if to & 2 == 0 {
                        secret.extend_from_slice(&epoch.to_be_bytes());
                    }
                    keys::identity(0)
                        .public_key()
                        .wrap(&mut self.rng, &secret)
                        .expect("a 36 or 40-byte secret fits a 2048-bit wrap")
                } else {
                    r.short_bytes().to_vec()
                };
                WrappedSenderKey {
                    recipient_session,
                    wrapped: wrapped.into(),
                }
            })
            .collect();
        // Unsigned (the input cannot sign as the peer): refused before any unwrap.
        SenderKeyPacket {
            version,
            epoch,
            keys,
            ..Default::default()
        }
    }

    /// A key packet as the relay delivers it (identity stamped), within the unwrap budget.
    fn deliver(&mut self, packet_type: PacketType, session: u64, user: &str, data: Bytes) {
        if packet_type == PacketType::AesKey {
            let ours = self.our_session();
            let for_us = SenderKeyPacket::decode(data.clone())
                .is_ok_and(|p| p.keys.iter().any(|k| Some(k.recipient_session) == ours));
            if for_us {
                if self.unwraps_left == 0 {
                    return;
                }
                self.unwraps_left -= 1;
            }
        }
        let refused_before = self.us.stats().key_packets_refused;
        let result = self.us.handle_key_packet(&PacketWrapper {
            packet_type: packet_type as i32,
            user_id: Bytes::copy_from_slice(user.as_bytes()),
            data,
            session_id: session,
        });
        // Every refusal is counted.
        assert_eq!(
            self.us.stats().key_packets_refused,
            refused_before + u64::from(result.is_err())
        );
    }

    fn our_session(&self) -> Option<u64> {
        self.us_session
    }

    /// Sends what we have to send and checks its shape.
    fn drain(&mut self) {
        while let Some(packet) = self.us.poll_transmit() {
            match packet.packet_type {
                PacketType::RsaPubKey => {
                    self.our_announce = Some(packet.data.clone());
                    let key = RsaPacket::decode(packet.data).expect("an RsaPacket");
                    assert_eq!(&key.public_key_der[..], keys::identity(0).public_key_der());
                }
                PacketType::AesKey => {
                    let key = SenderKeyPacket::decode(packet.data).expect("a SenderKeyPacket");
                    // One wrap per packet: the relay delivers it to that recipient only.
                    assert_eq!(key.keys.len(), 1, "{} wraps", key.keys.len());
                    assert_eq!(packet.to, Some(key.keys[0].recipient_session));
                }
                PacketType::KeyRequest => assert!(packet.to.is_some()),
                other => panic!("E2EE sent {other:?}"),
            }
        }
        let _ = self.us.safety_code();
    }
}

/// Session id number `index` of a small pool (the peer machine's is index 0), never 0.
fn session_id(index: u8) -> u64 {
    SessionId::new(2 + u32::from(index % 12) / 6, 1 + u32::from(index % 12) % 6).get()
}

fn user(index: u8) -> &'static str {
    ["alice", "bob", PEER, ME][index as usize % 4]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exchange_seed_installs_the_peer_key_and_opens_its_frame() {
        let stats = Driver::run(include_bytes!("../corpus/e2ee_key_packets/exchange"));
        assert!(stats.keys_installed >= 1, "{stats:?}");
        assert!(stats.opened >= 1, "{stats:?}");
        assert!(stats.rotations >= 1, "{stats:?}");
    }

    #[test]
    fn the_keys_seed_no_longer_installs_an_unsigned_chosen_secret() {
        let stats = Driver::run(include_bytes!("../corpus/e2ee_key_packets/keys"));
        assert_eq!(stats.keys_installed, 0, "{stats:?}");
        assert!(stats.key_packets_refused >= 1, "{stats:?}");
    }
}
