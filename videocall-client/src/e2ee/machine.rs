//! The E2EE state machine of one participant: keys in, key packets out, frames sealed and opened.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use prost::Message;
use rand_core::CryptoRngCore;
use videocall_types::proto::{SealedMedia, SenderKeyPacket, WrappedSenderKey};
use videocall_types::{MediaPacket, PacketType, PacketWrapper, RsaPacket, packets};

use super::error::{DropCounts, E2eeError};
use super::identity::{Identity, PeerKey};
use super::safety_code::SafetyCode;
use super::sender_key::{FrameHeader, KeyMaterial, ReceivingKey, SendingKey};

/// Sender keys a peer may make us unwrap before any leave: its first key, plus slack for a leave
/// it saw before we did and for a re-key racing a join.
const UNWRAP_CREDIT_INITIAL: u32 = 4;
/// Most unwrap credit a peer can hold: a long meeting with many leaves does not let a peer save up
/// a burst of RSA decryptions.
const UNWRAP_CREDIT_MAX: u32 = 16;

/// Version of the AES_KEY data this core speaks ([`SenderKeyPacket::version`]).
pub const SENDER_KEY_VERSION: u32 = 1;

/// The settings of [`E2ee`].
#[derive(Debug, Clone)]
pub struct E2eeConfig {
    /// RSA modulus size of a generated identity (≥ 2048).
    pub rsa_bits: usize,
    /// After a peer's new epoch arrives, its previous key still opens frames in flight until
    /// this many frames opened under the new one (then it is forgotten).
    pub previous_epoch_grace_frames: u64,
    /// Most wraps in one AES_KEY packet (each is ~256 bytes for 2048-bit keys).
    pub max_wraps_per_packet: usize,
}

impl Default for E2eeConfig {
    /// 2048-bit RSA, 256 frames of grace (a few seconds of audio and video), 32 wraps a packet.
    fn default() -> Self {
        Self {
            rsa_bits: 2048,
            previous_epoch_grace_frames: 256,
            max_wraps_per_packet: 32,
        }
    }
}

/// A key packet for the driver to send: `session.send_packet(packet_type, data)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPacket {
    /// RSA_PUB_KEY or AES_KEY.
    pub packet_type: PacketType,
    /// The packet's data (an `RsaPacket` or a `SenderKeyPacket`).
    pub data: Bytes,
}

/// A sender key wrapped for an [`Identity::external`]: unwrap `wrapped` with the private key
/// (RSA-OAEP, SHA-256, label [`super::WRAP_LABEL`]) and give the result to
/// [`E2ee::handle_unwrapped`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwrapRequest {
    /// The sender's session.
    pub from: u64,
    /// The sender key's epoch.
    pub epoch: u32,
    /// The wrapped key.
    pub wrapped: Bytes,
}

/// What happened so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct E2eeStats {
    /// Frames sealed.
    pub sealed: u64,
    /// Frames opened.
    pub opened: u64,
    /// Frames refused by `open`, by reason.
    pub dropped: DropCounts,
    /// Our sender key rotations (a peer left, or we re-joined).
    pub rotations: u64,
    /// Peer sender keys installed.
    pub keys_installed: u64,
    /// Key packets refused (bad key, changed key, undecodable, wrong version, failed unwrap).
    pub key_packets_refused: u64,
}

#[derive(Debug)]
struct Peer {
    user: String,
    public_key: Option<PeerKey>,
    current: Option<ReceivingKey>,
    previous: Option<ReceivingKey>,
    /// How many more of its sender keys we will unwrap. A legitimate sender rotates once per
    /// leave, so each leave we see grants one more.
    unwrap_credit: u32,
    /// The newest epoch handed out for an external unwrap and not back yet.
    unwrapping: Option<u32>,
}

impl Peer {
    fn new(user: String) -> Self {
        Self {
            user,
            public_key: None,
            current: None,
            previous: None,
            unwrap_credit: UNWRAP_CREDIT_INITIAL,
            unwrapping: None,
        }
    }
}

/// End-to-end encryption of one participant, sans-IO.
///
/// It never touches a socket or a clock; randomness comes from the RNG it was given. The
/// driver feeds it the session's events and sends what [`E2ee::poll_transmit`] yields *before*
/// sending sealed media, so that peers hold a key before the frames it seals:
///
/// ```text
/// Event::Joined { session }         -> e2ee.handle_joined(session)
/// Event::PeerJoined { session, user } -> e2ee.handle_peer_joined(session, &user)
/// Event::PeerLeft { session, .. }   -> e2ee.handle_peer_left(session)
/// Event::Other(w) (RSA_PUB_KEY, AES_KEY) -> e2ee.handle_key_packet(&w)
/// Event::Media(m) with m.packet.sealed -> e2ee.open_envelope(m.session, &m.packet)
/// while let Some(k) = e2ee.poll_transmit() { session.send_packet(k.packet_type, k.data) }
/// outgoing media                     -> session.send_packet(PacketType::Media, e2ee.seal(&media)?)
/// ```
///
/// Seal VIDEO, AUDIO and SCREEN (and HEARTBEAT if its flags should be private). RTT probes and
/// KEYFRAME_REQUEST stay in clear: the relay echoes the former and routes the latter by the
/// `user_id` inside, and `Session` interprets both.
pub struct E2ee {
    config: E2eeConfig,
    rng: Box<dyn CryptoRngCore + Send>,
    identity: Identity,
    user: String,
    session: Option<u64>,
    sending: SendingKey,
    peers: BTreeMap<u64, Peer>,
    announce: bool,
    /// Peers that need our current sender key wrapped for them.
    unwrapped_for: BTreeSet<u64>,
    /// Sender keys for an external identity to unwrap.
    unwraps: VecDeque<UnwrapRequest>,
    stats: E2eeStats,
}

impl std::fmt::Debug for E2ee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("E2ee")
            .field("user", &self.user)
            .field("session", &self.session)
            .field("epoch", &self.sending.epoch())
            .field("peers", &self.peers.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl E2ee {
    /// A participant `user` with a freshly generated identity (RSA keygen: hundreds of ms).
    pub fn new(
        config: E2eeConfig,
        user: impl Into<String>,
        mut rng: impl CryptoRngCore + Send + 'static,
    ) -> Result<Self, E2eeError> {
        let identity = Identity::generate(&mut rng, config.rsa_bits)?;
        Ok(Self::with_identity(config, user, identity, rng))
    }

    /// A participant `user` with an identity made elsewhere (imported, or shared by tests).
    pub fn with_identity(
        config: E2eeConfig,
        user: impl Into<String>,
        identity: Identity,
        mut rng: impl CryptoRngCore + Send + 'static,
    ) -> Self {
        let sending = SendingKey::new(KeyMaterial::random(&mut rng, 0));
        Self {
            config,
            rng: Box::new(rng),
            identity,
            user: user.into(),
            session: None,
            sending,
            peers: BTreeMap::new(),
            announce: false,
            unwrapped_for: BTreeSet::new(),
            unwraps: VecDeque::new(),
            stats: E2eeStats::default(),
        }
    }

    /// Our identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The epoch of our current sender key.
    pub fn epoch(&self) -> u32 {
        self.sending.epoch()
    }

    /// Counters.
    pub fn stats(&self) -> &E2eeStats {
        &self.stats
    }

    /// Whether we hold a sender key from `session` (its frames can open).
    pub fn has_key_from(&self, session: u64) -> bool {
        self.peers
            .get(&session)
            .is_some_and(|p| p.current.is_some())
    }

    /// The relay assigned us `session` (first join or reconnect): peers are forgotten (they
    /// will be announced again), a new sender key is drawn and our public key announced.
    pub fn handle_joined(&mut self, session: u64) {
        if self.session.is_some() {
            self.rotate();
        }
        self.session = Some(session);
        self.peers.clear();
        self.unwrapped_for.clear();
        self.unwraps.clear();
        self.announce = true;
    }

    /// A peer is in the meeting: it needs our public key (re-announced, once per poll).
    pub fn handle_peer_joined(&mut self, session: u64, user: &str) {
        if Some(session) == self.session {
            return;
        }
        let known = self.peers.get(&session).is_some_and(|p| p.user == user);
        if !known {
            self.peers.insert(session, Peer::new(user.to_owned()));
            self.unwrapped_for.remove(&session);
        }
        self.announce = true;
    }

    /// A peer left: forget its keys and rotate ours, so that it cannot open what we seal next;
    /// the new key is wrapped for everyone still here.
    pub fn handle_peer_left(&mut self, session: u64) {
        if self.peers.remove(&session).is_some() {
            self.unwrapped_for.remove(&session);
            for peer in self.peers.values_mut() {
                peer.unwrap_credit = (peer.unwrap_credit + 1).min(UNWRAP_CREDIT_MAX);
            }
            self.rotate();
        }
    }

    /// An RSA_PUB_KEY or AES_KEY packet as the relay delivered it (identity stamped).
    ///
    /// Refusals are errors and counted; the packet is then ignored. A key packet never makes us
    /// send anything but our own sender key to a newly keyed peer.
    pub fn handle_key_packet(&mut self, wrapper: &PacketWrapper) -> Result<(), E2eeError> {
        let result = match PacketType::try_from(wrapper.packet_type) {
            Ok(PacketType::RsaPubKey) => self.public_key_packet(wrapper),
            Ok(PacketType::AesKey) => self.sender_key_packet(wrapper),
            _ => Err(E2eeError::NotAKeyPacket(wrapper.packet_type)),
        };
        if result.is_err() {
            self.stats.key_packets_refused += 1;
        }
        result
    }

    /// Seals `media` (stream 0) and returns the envelope, an encoded `MediaPacket`, to send as
    /// the data of a MEDIA packet.
    pub fn seal(&mut self, media: &MediaPacket) -> Result<Bytes, E2eeError> {
        self.seal_envelope(media, 0).map(|e| packets::encode(&e))
    }

    /// Seals `media` of sender stream `stream_id` into an envelope `MediaPacket`: only
    /// `media_type`, `frame_type` and `sealed` are set; everything else is inside.
    pub fn seal_envelope(
        &mut self,
        media: &MediaPacket,
        stream_id: u32,
    ) -> Result<MediaPacket, E2eeError> {
        let inner = MediaPacket {
            sealed: None,
            ..media.clone()
        };
        let counter = self.sending.next_counter()?;
        let header = FrameHeader {
            packet_type: PacketType::Media as i32,
            media_type: media.media_type,
            frame_type: &media.frame_type,
            stream_id,
            epoch: self.sending.epoch(),
            counter,
        };
        let ciphertext = self.sending.seal(&header, &inner.encode_to_vec())?;
        self.stats.sealed += 1;
        Ok(MediaPacket {
            media_type: media.media_type,
            frame_type: media.frame_type.clone(),
            sealed: Some(SealedMedia {
                stream_id,
                epoch: header.epoch,
                counter,
                ciphertext: ciphertext.into(),
            }),
            ..Default::default()
        })
    }

    /// Opens an envelope (encoded `MediaPacket`) from session `from`. A frame that does not
    /// open is dropped: it is counted and only its error is returned.
    pub fn open(&mut self, from: u64, envelope: &[u8]) -> Result<MediaPacket, E2eeError> {
        match MediaPacket::decode(envelope) {
            Ok(packet) => self.open_envelope(from, &packet),
            Err(e) => {
                let error = E2eeError::Malformed(e.to_string());
                self.stats.dropped.count(error.drop_reason());
                Err(error)
            }
        }
    }

    /// Opens an envelope already decoded (as `Session` delivers it in `Event::Media`).
    pub fn open_envelope(
        &mut self,
        from: u64,
        envelope: &MediaPacket,
    ) -> Result<MediaPacket, E2eeError> {
        let result = self.open_inner(from, envelope);
        match &result {
            Ok(_) => self.stats.opened += 1,
            Err(e) => self.stats.dropped.count(e.drop_reason()),
        }
        result
    }

    /// The next key packet to send.
    pub fn poll_transmit(&mut self) -> Option<KeyPacket> {
        // Packets can only be sent once joined; what is pending waits until then.
        self.session?;
        if std::mem::take(&mut self.announce) {
            let packet = RsaPacket {
                public_key_der: Bytes::copy_from_slice(self.identity.public_key_der()),
                user_id: Bytes::copy_from_slice(self.user.as_bytes()),
            };
            return Some(KeyPacket {
                packet_type: PacketType::RsaPubKey,
                data: packets::encode(&packet),
            });
        }
        while !self.unwrapped_for.is_empty() {
            let batch: Vec<u64> = self
                .unwrapped_for
                .iter()
                .take(self.config.max_wraps_per_packet.max(1))
                .copied()
                .collect();
            let secret = self.sending.material().to_secret();
            let mut keys = Vec::with_capacity(batch.len());
            for session in batch {
                self.unwrapped_for.remove(&session);
                let Some(public_key) = self.peers.get(&session).and_then(|p| p.public_key.as_ref())
                else {
                    continue;
                };
                // Wrapping under a parsed public key fails only for an over-long secret.
                if let Ok(wrapped) = public_key.wrap(&mut self.rng, &secret) {
                    keys.push(WrappedSenderKey {
                        recipient_session: session,
                        wrapped: wrapped.into(),
                    });
                }
            }
            if keys.is_empty() {
                continue;
            }
            let packet = SenderKeyPacket {
                version: SENDER_KEY_VERSION,
                epoch: self.sending.epoch(),
                keys,
            };
            return Some(KeyPacket {
                packet_type: PacketType::AesKey,
                data: packets::encode(&packet),
            });
        }
        None
    }

    /// The next sender key to unwrap outside (only with an [`Identity::external`]).
    pub fn poll_unwrap(&mut self) -> Option<UnwrapRequest> {
        self.unwraps.pop_front()
    }

    /// The result of an [`UnwrapRequest`]: the unwrapped secret, or `None` when the unwrap
    /// failed. Installs the sender key if its peer is still here and it is newer than what we
    /// hold; a refusal is an error and counted.
    pub fn handle_unwrapped(
        &mut self,
        request: &UnwrapRequest,
        secret: Option<&[u8]>,
    ) -> Result<(), E2eeError> {
        let Some(peer) = self.peers.get_mut(&request.from) else {
            // Left (or we re-joined) meanwhile.
            return Ok(());
        };
        if peer.unwrapping == Some(request.epoch) {
            peer.unwrapping = None;
        }
        let result = match secret {
            Some(secret) => self.install(request.from, request.epoch, secret),
            None => Err(E2eeError::Unwrap),
        };
        if result.is_err() {
            self.stats.key_packets_refused += 1;
        }
        result
    }

    /// The meeting's safety code over ourselves and every peer whose public key we hold.
    pub fn safety_code(&self) -> SafetyCode {
        let us = (self.user.as_str(), self.identity.public_key_der());
        SafetyCode::compute(
            std::iter::once(us).chain(
                self.peers
                    .values()
                    .filter_map(|p| p.public_key.as_ref().map(|k| (p.user.as_str(), k.der()))),
            ),
        )
    }

    /// Rotates with nobody leaving, as a misbehaving client could.
    #[cfg(test)]
    pub(crate) fn rotate_for_test(&mut self) {
        self.rotate();
    }

    fn rotate(&mut self) {
        let epoch = self.sending.epoch().wrapping_add(1);
        self.sending = SendingKey::new(KeyMaterial::random(&mut self.rng, epoch));
        self.stats.rotations += 1;
        self.unwrapped_for = self
            .peers
            .iter()
            .filter(|(_, p)| p.public_key.is_some())
            .map(|(s, _)| *s)
            .collect();
    }

    fn public_key_packet(&mut self, wrapper: &PacketWrapper) -> Result<(), E2eeError> {
        let from = wrapper.session_id;
        if Some(from) == self.session {
            return Ok(());
        }
        let packet = RsaPacket::decode(wrapper.data.clone())
            .map_err(|e| E2eeError::Malformed(e.to_string()))?;
        let key = PeerKey::from_der(&packet.public_key_der)?;
        // Identity is what the relay stamped, not what the packet claims.
        let user = String::from_utf8_lossy(&wrapper.user_id).into_owned();
        let peer = match self.peers.get_mut(&from) {
            Some(peer) if peer.user == user => peer,
            _ => {
                self.peers.insert(from, Peer::new(user.clone()));
                self.peers
                    .get_mut(&from)
                    .expect("inserted on the line above")
            }
        };
        match &peer.public_key {
            Some(known) if *known == key => Ok(()),
            Some(_) => Err(E2eeError::KeyChanged(from)),
            None => {
                peer.public_key = Some(key);
                self.unwrapped_for.insert(from);
                Ok(())
            }
        }
    }

    fn sender_key_packet(&mut self, wrapper: &PacketWrapper) -> Result<(), E2eeError> {
        let from = wrapper.session_id;
        let packet = SenderKeyPacket::decode(wrapper.data.clone())
            .map_err(|e| E2eeError::Malformed(e.to_string()))?;
        if packet.version != SENDER_KEY_VERSION {
            return Err(E2eeError::UnsupportedVersion(packet.version));
        }
        let Some(ours) = self.session else {
            return Ok(());
        };
        let Some(entry) = packet.keys.iter().find(|k| k.recipient_session == ours) else {
            // Addressed to others.
            return Ok(());
        };
        let user = String::from_utf8_lossy(&wrapper.user_id).into_owned();
        let peer = self.peers.entry(from).or_insert_with(|| Peer::new(user));
        // Only newer epochs are unwrapped: a peer (or relay) cannot make us decrypt the same or
        // an old epoch again, which bounds the RSA decryptions it can trigger.
        if let Some(current) = &peer.current
            && packet.epoch <= current.epoch()
        {
            return Ok(());
        }
        if peer.unwrapping.is_some_and(|e| packet.epoch <= e) {
            return Ok(());
        }
        if peer.unwrap_credit == 0 {
            return Err(E2eeError::TooManyKeys(from));
        }
        // Spent whether or not the unwrap succeeds: failures are what an attacker would send.
        peer.unwrap_credit -= 1;
        if self.identity.is_external() {
            peer.unwrapping = Some(packet.epoch);
            self.unwraps.push_back(UnwrapRequest {
                from,
                epoch: packet.epoch,
                wrapped: entry.wrapped.clone(),
            });
            return Ok(());
        }
        let secret = self.identity.unwrap(&mut self.rng, &entry.wrapped)?;
        self.install(from, packet.epoch, &secret)
    }

    /// Installs `from`'s unwrapped sender key of `epoch`, unless we hold a newer one.
    fn install(&mut self, from: u64, epoch: u32, secret: &[u8]) -> Result<(), E2eeError> {
        let material = KeyMaterial::from_secret(secret)?;
        if material.epoch != epoch {
            return Err(E2eeError::Malformed(format!(
                "wrapped epoch {} in a packet of epoch {epoch}",
                material.epoch
            )));
        }
        let Some(peer) = self.peers.get_mut(&from) else {
            return Ok(());
        };
        // An external unwrap may come back after a newer key was installed.
        if peer.current.as_ref().is_some_and(|c| c.epoch() >= epoch) {
            return Ok(());
        }
        peer.previous = peer.current.take();
        peer.current = Some(ReceivingKey::new(&material));
        self.stats.keys_installed += 1;
        Ok(())
    }

    fn open_inner(&mut self, from: u64, envelope: &MediaPacket) -> Result<MediaPacket, E2eeError> {
        let sealed = envelope.sealed.as_ref().ok_or(E2eeError::NotSealed)?;
        let peer = self
            .peers
            .get_mut(&from)
            .ok_or(E2eeError::UnknownSender(from))?;
        let header = FrameHeader {
            packet_type: PacketType::Media as i32,
            media_type: envelope.media_type,
            frame_type: &envelope.frame_type,
            stream_id: sealed.stream_id,
            epoch: sealed.epoch,
            counter: sealed.counter,
        };
        let grace = self.config.previous_epoch_grace_frames;
        let plaintext = match (&mut peer.current, &mut peer.previous) {
            (Some(current), _) if current.epoch() == sealed.epoch => {
                let plaintext = current.open(&header, &sealed.ciphertext)?;
                if current.opened >= grace {
                    peer.previous = None;
                }
                plaintext
            }
            (_, Some(previous)) if previous.epoch() == sealed.epoch => {
                previous.open(&header, &sealed.ciphertext)?
            }
            (Some(current), _) if sealed.epoch < current.epoch() => {
                return Err(E2eeError::StaleEpoch {
                    from,
                    epoch: sealed.epoch,
                });
            }
            _ => {
                return Err(E2eeError::NoKey {
                    from,
                    epoch: sealed.epoch,
                });
            }
        };
        let inner = MediaPacket::decode(plaintext.as_slice())
            .map_err(|e| E2eeError::Malformed(e.to_string()))?;
        // The routing hints were authenticated; the sender must not say otherwise inside.
        if inner.media_type != envelope.media_type
            || inner.frame_type != envelope.frame_type
            || inner.sealed.is_some()
        {
            return Err(E2eeError::Malformed(
                "sealed frame disagrees with its routing hints".into(),
            ));
        }
        Ok(inner)
    }
}
