//! The E2EE state machine of one participant: keys in, key packets out, frames sealed and opened.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use bytes::Bytes;
use prost::Message;
use rand_core::CryptoRngCore;
use videocall_types::proto::SealedMedia;
use videocall_types::{MediaPacket, PacketType, PacketWrapper, packets};

use super::channel::{self, ChannelKey, WrapContext};
use super::error::E2eeError;
use super::identity::Identity;
use super::key_packets::{self, PeerIdentity, SENDER_KEY_CHANNEL_VERSION, SENDER_KEY_VERSION};
use super::roster::{Keyring, Peer, UNWRAP_CREDIT_MAX};
use super::safety_code::{self, SafetyCode};
use super::sender_key::{FrameHeader, KeyMaterial, SendingKey};
use super::signing::Signer;
pub use super::types::{E2eeConfig, E2eeStats, KeyHolder, KeyPacket, UnwrapRequest};

mod keys_in;

/// A receiver holding a sender's key asks for its next one once this many of its frames failed
/// to open (a fresh key's wrap, sent before those frames, normally overtakes them: the
/// receiver gets the wrap without asking; the rare miss is repaired after a few frames).
pub(crate) const KEY_ASK_FRAMES: u32 = 3;
/// A receiver asks again for a key it asked for once this many of the sender's frames failed to
/// open since (the request or its answer was lost), and asks a sender it holds no key from at
/// all only then (its first wrap is on its way: a newcomer's peers wrap for it as soon as its
/// public key arrives, while their frames reach it at once).
const KEY_REASK_FRAMES: u32 = 64;

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
/// Event::Other(w) (RSA_PUB_KEY, AES_KEY, KEY_REQUEST) -> e2ee.handle_key_packet(&w)
/// Event::Media(m) with m.packet.sealed -> e2ee.open_envelope(m.session, &m.packet)
/// while let Some(k) = e2ee.poll_transmit() { send k.data as k.packet_type, to k.to }
/// outgoing media                     -> session.send_packet(PacketType::Media, e2ee.seal(&media)?)
/// ```
///
/// Our sender key is wrapped only for peers in the roster whose signed public key arrived, and
/// it rotates (new random key, next epoch) whenever someone joins or leaves: a joiner cannot
/// open what was sealed before it came, a leaver what is sealed after it left.
///
/// Seal VIDEO, AUDIO and SCREEN (and HEARTBEAT if its flags should be private). RTT probes and
/// KEYFRAME_REQUEST stay in clear: the relay echoes the former and routes the latter by the
/// `user_id` inside, and `Session` interprets both.
pub struct E2ee {
    config: E2eeConfig,
    rng: Box<dyn CryptoRngCore + Send>,
    identity: Identity,
    signer: Signer,
    user: String,
    meeting: String,
    session: Option<u64>,
    sending: SendingKey,
    /// The roster: peers the relay announced, by session.
    peers: BTreeMap<u64, Peer>,
    /// Verified public keys of sessions not (yet) in the roster, at most [`PENDING_MAX`].
    pending: BTreeMap<u64, (String, PeerIdentity)>,
    keyring: Keyring,
    announce: bool,
    /// Peers that need our current sender key wrapped for them.
    unwrapped_for: BTreeSet<u64>,
    /// Peers to send a KEY_REQUEST, with the epoch we saw.
    requests: BTreeMap<u64, u32>,
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

    /// A participant `user` with an identity made elsewhere (imported, or shared by tests); its
    /// Ed25519 signing key is drawn here, for the life of this value.
    pub fn with_identity(
        config: E2eeConfig,
        user: impl Into<String>,
        identity: Identity,
        mut rng: impl CryptoRngCore + Send + 'static,
    ) -> Self {
        let sending = SendingKey::new(KeyMaterial::random(&mut rng, 0));
        let signer = Signer::random(&mut rng);
        Self {
            config,
            rng: Box::new(rng),
            identity,
            signer,
            user: user.into(),
            meeting: String::new(),
            session: None,
            sending,
            peers: BTreeMap::new(),
            pending: BTreeMap::new(),
            keyring: Keyring::default(),
            announce: false,
            unwrapped_for: BTreeSet::new(),
            requests: BTreeMap::new(),
            unwraps: VecDeque::new(),
            stats: E2eeStats::default(),
        }
    }

    /// The meeting every key packet is signed for (and checked against). `Session` sets it
    /// from its configuration; key packets of another meeting are refused.
    pub fn set_meeting(&mut self, meeting: impl Into<String>) {
        self.meeting = meeting.into();
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
            .and_then(Peer::signing_key)
            .and_then(|k| self.keyring.epoch(k))
            .is_some()
    }

    /// The relay assigned us `session` (first join or reconnect): peers are forgotten (they
    /// will be announced again), a new sender key is drawn and our public key announced.
    /// Received keys are kept by sender, so replay windows survive.
    pub fn handle_joined(&mut self, session: u64) {
        if self.session.is_some() {
            self.rotate();
        }
        self.session = Some(session);
        self.peers.clear();
        self.pending.clear();
        self.unwrapped_for.clear();
        self.requests.clear();
        self.unwraps.clear();
        self.announce = true;
    }

    /// A peer is in the meeting (the roster): it needs our public key, and we rotate so that it
    /// cannot open what was sealed before it came. A public key it announced before the relay
    /// told us of it is taken now.
    pub fn handle_peer_joined(&mut self, session: u64, user: &str) {
        if Some(session) == self.session {
            return;
        }
        let known = self.peers.get(&session).is_some_and(|p| p.user == user);
        if !known {
            let mut peer = Peer::new(user.to_owned());
            if let Some((announced, identity)) = self.pending.remove(&session)
                && announced == user
            {
                peer.identity = Some(identity);
            }
            if peer.identity.is_some() {
                self.unwrapped_for.insert(session);
            }
            self.peers.insert(session, peer);
            self.grant_unwrap_credit();
            self.ratchet();
        }
        self.announce = true;
    }

    /// A peer left: forget it and rotate our key, so that it cannot open what we seal next;
    /// the new key is wrapped for everyone still here.
    pub fn handle_peer_left(&mut self, session: u64) {
        self.pending.remove(&session);
        if self.peers.remove(&session).is_some() {
            self.unwrapped_for.remove(&session);
            self.requests.remove(&session);
            self.grant_unwrap_credit();
            self.rotate();
        }
    }

    /// An RSA_PUB_KEY, AES_KEY or KEY_REQUEST packet as the relay delivered it (identity
    /// stamped).
    ///
    /// Refusals are errors and counted; the packet is then ignored. A key packet never makes us
    /// send anything but our own sender key to a peer of the roster.
    pub fn handle_key_packet(&mut self, wrapper: &PacketWrapper) -> Result<(), E2eeError> {
        let result = match PacketType::try_from(wrapper.packet_type) {
            Ok(PacketType::RsaPubKey) => self.public_key_packet(wrapper),
            Ok(PacketType::AesKey) => self.sender_key_packet(wrapper),
            Ok(PacketType::KeyRequest) => self.key_request_packet(wrapper),
            _ => Err(E2eeError::NotAKeyPacket(wrapper.packet_type)),
        };
        if let Err(e) = &result {
            self.stats.key_packets_refused += 1;
            match e {
                E2eeError::BadSignature(_) | E2eeError::NoIdentity(_) => {
                    self.stats.unauthenticated_key_packets += 1;
                }
                E2eeError::StaleKey { .. } => self.stats.stale_key_packets += 1,
                E2eeError::OutsideRoster(_) => self.stats.outside_roster += 1,
                _ => {}
            }
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

    /// Opens an envelope already decoded (as `Session` delivers it in `Event::Media`). A frame
    /// under an epoch we hold no key for makes us ask its sender for the key (KEY_REQUEST).
    pub fn open_envelope(
        &mut self,
        from: u64,
        envelope: &MediaPacket,
    ) -> Result<MediaPacket, E2eeError> {
        let result = self.open_inner(from, envelope);
        self.counted(result)
    }

    /// Seals `plaintext` as the payload of a `packet_type` packet (CHAT, issue #18) under our
    /// sender key exactly as a frame — same key, same counter sequence — with the packet type
    /// bound as associated data (media type 0, frame type "", stream 0), so a sealed chat
    /// message never opens as media nor the other way round.
    pub fn seal_payload(
        &mut self,
        packet_type: PacketType,
        plaintext: &[u8],
    ) -> Result<SealedMedia, E2eeError> {
        let counter = self.sending.next_counter()?;
        let header = FrameHeader::payload(packet_type, 0, self.sending.epoch(), counter);
        let ciphertext = self.sending.seal(&header, plaintext)?;
        self.stats.sealed += 1;
        Ok(SealedMedia {
            stream_id: 0,
            epoch: header.epoch,
            counter,
            ciphertext: ciphertext.into(),
        })
    }

    /// Opens what [`E2ee::seal_payload`] sealed in session `from`'s `packet_type` packet.
    /// Counted like frames; a missing key is asked for (KEY_REQUEST).
    pub fn open_payload(
        &mut self,
        from: u64,
        packet_type: PacketType,
        sealed: &SealedMedia,
    ) -> Result<Vec<u8>, E2eeError> {
        let header =
            FrameHeader::payload(packet_type, sealed.stream_id, sealed.epoch, sealed.counter);
        let result = self.open_sealed(from, &header, &sealed.ciphertext);
        self.counted(result)
    }

    /// Counts an opening: opened, or dropped by reason (a missing key is asked for).
    fn counted<T>(&mut self, result: Result<T, E2eeError>) -> Result<T, E2eeError> {
        match &result {
            Ok(_) => self.stats.opened += 1,
            Err(e) => {
                self.stats.dropped.count(e.drop_reason());
                if let E2eeError::NoKey { from, epoch } = e {
                    self.missing_key(*from, *epoch);
                }
            }
        }
        result
    }

    /// The next key packet to send (to [`KeyPacket::to`] only, when it is set).
    pub fn poll_transmit(&mut self) -> Option<KeyPacket> {
        // Packets can only be sent once joined; what is pending waits until then.
        let ours = self.session?;
        if std::mem::take(&mut self.announce) {
            let data = key_packets::announce(
                &self.signer,
                &self.identity,
                &self.meeting,
                ours,
                &self.user,
            );
            return Some(KeyPacket {
                packet_type: PacketType::RsaPubKey,
                data,
                to: None,
            });
        }
        while let Some(session) = self.unwrapped_for.pop_first() {
            let Some(peer) = self.peers.get_mut(&session) else {
                continue;
            };
            let Some(identity) = &peer.identity else {
                continue;
            };
            let secret = self.sending.material().to_secret();
            let epoch = self.sending.epoch();
            // Under the pair's channel key once an RSA wrap carried one; else RSA, with a new one.
            let (version, wrapped) = match &peer.channel_out {
                Some(channel) => {
                    let context = WrapContext {
                        meeting: &self.meeting,
                        from: ours,
                        to: session,
                        epoch,
                    };
                    let sealed = channel.seal(&mut self.rng, context, &secret);
                    (SENDER_KEY_CHANNEL_VERSION, sealed)
                }
                None => {
                    let channel = ChannelKey::random(&mut self.rng);
                    let plain = channel::rsa_plaintext(&secret, &channel);
                    // Wrapping under a parsed public key fails only for an over-long secret.
                    let Ok(wrapped) = identity.public_key.wrap(&mut self.rng, &plain) else {
                        continue;
                    };
                    peer.channel_out = Some(channel);
                    (SENDER_KEY_VERSION, wrapped)
                }
            };
            let data = key_packets::sender_key(
                &self.signer,
                &self.meeting,
                ours,
                version,
                epoch,
                session,
                wrapped,
            );
            return Some(KeyPacket {
                packet_type: PacketType::AesKey,
                data,
                to: Some(session),
            });
        }
        if let Some((session, epoch)) = self.requests.pop_first() {
            self.stats.key_requests_sent += 1;
            return Some(KeyPacket {
                packet_type: PacketType::KeyRequest,
                data: key_packets::key_request(session, epoch),
                to: Some(session),
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
        let deferred = peer.deferred.take();
        let mut result = match secret {
            Some(secret) => self.install(request.from, request.epoch, secret),
            None => Err(E2eeError::Unwrap),
        };
        if let (Some((epoch, sealed)), Some(ours)) = (deferred, self.session) {
            result = result.and(self.channel_wrap(request.from, ours, epoch, sealed));
        }
        if result.is_err() {
            self.stats.key_packets_refused += 1;
        }
        result
    }

    /// Everyone our sender key is wrapped for (peers of the roster whose signed public key we
    /// hold), ourselves first: what the safety code commits to.
    pub fn key_holders(&self) -> Vec<KeyHolder> {
        let us = KeyHolder {
            session: self.session.unwrap_or_default(),
            user: self.user.clone(),
            fingerprint: safety_code::fingerprint(&self.our_identity()),
        };
        let peers = self.peers.iter().filter_map(|(session, p)| {
            p.identity.as_ref().map(|i| KeyHolder {
                session: *session,
                user: p.user.clone(),
                fingerprint: safety_code::fingerprint(&i.encoded()),
            })
        });
        std::iter::once(us).chain(peers).collect()
    }

    /// The meeting's safety code: SHA-256 over the sorted set of key holders' (user, RSA key,
    /// signing key), ourselves included.
    pub fn safety_code(&self) -> SafetyCode {
        let ours = self.our_identity();
        let peers: Vec<(&str, Vec<u8>)> = self
            .peers
            .values()
            .filter_map(|p| p.identity.as_ref().map(|i| (p.user.as_str(), i.encoded())))
            .collect();
        SafetyCode::compute(
            std::iter::once((self.user.as_str(), ours.as_slice()))
                .chain(peers.iter().map(|(u, i)| (*u, i.as_slice()))),
        )
    }

    /// Rotates with nobody joining or leaving, as a misbehaving client could.
    #[cfg(test)]
    pub(crate) fn rotate_for_test(&mut self) {
        self.rotate();
    }

    /// Forgets the channel keys peers wrap for us with, as if their RSA wraps had been lost.
    #[cfg(test)]
    pub(crate) fn forget_received_channels_for_test(&mut self) {
        for peer in self.peers.values_mut() {
            peer.channel_in = None;
        }
    }

    /// Forgets the channel keys we wrap for, so that the next wraps are RSA again.
    #[cfg(test)]
    pub(crate) fn forget_channels_for_test(&mut self) {
        for peer in self.peers.values_mut() {
            peer.channel_out = None;
        }
    }

    fn our_identity(&self) -> Vec<u8> {
        key_packets::encode_identity(self.identity.public_key_der(), &self.signer.public())
    }

    fn grant_unwrap_credit(&mut self) {
        for peer in self.peers.values_mut() {
            peer.unwrap_credit = (peer.unwrap_credit + 1).min(UNWRAP_CREDIT_MAX);
        }
    }

    /// A new random sender key under the next epoch, wrapped for every keyed peer. Epochs only
    /// go up: at the last one (never in practice) the current key stays.
    fn rotate(&mut self) {
        let Some(epoch) = self.sending.epoch().checked_add(1) else {
            return;
        };
        self.sending = SendingKey::new(KeyMaterial::random(&mut self.rng, epoch));
        self.stats.rotations += 1;
        self.unwrapped_for = self
            .peers
            .iter()
            .filter(|(_, p)| p.identity.is_some())
            .map(|(s, _)| *s)
            .collect();
    }

    /// Someone joined: our key moves one epoch forward by the one-way ratchet, so the joiner
    /// (wrapped the new key) cannot open what we sealed before, while peers holding the previous
    /// key derive the new one themselves: a join costs one wrap, not one per peer.
    fn ratchet(&mut self) {
        let Some(epoch) = self.sending.epoch().checked_add(1) else {
            return;
        };
        let Some(material) = self.sending.material().ratchet(epoch) else {
            return;
        };
        self.sending = SendingKey::new(material);
        self.stats.ratchets += 1;
    }

    /// A frame of `from` under `epoch` found no key: ask once per epoch, again after
    /// [`KEY_REASK_FRAMES`] more such frames.
    fn missing_key(&mut self, from: u64, epoch: u32) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        if peer.identity.is_none() {
            return;
        }
        peer.failed += 1;
        let holds_a_key = peer
            .signing_key()
            .and_then(|k| self.keyring.epoch(k))
            .is_some();
        let due = if peer.asked.is_none() && holds_a_key {
            KEY_ASK_FRAMES
        } else {
            KEY_REASK_FRAMES
        };
        if peer.failed >= due {
            self.ask(from, epoch);
        }
    }

    /// Sends `from` a KEY_REQUEST for its key (we saw `epoch`), at most once per epoch until a
    /// key arrives; its answer is an RSA wrap, which the request pays for (unwrap credit).
    pub(super) fn ask(&mut self, from: u64, epoch: u32) {
        let Some(peer) = self.peers.get_mut(&from) else {
            return;
        };
        peer.failed = 0;
        if self.requests.get(&from) == Some(&epoch) {
            return;
        }
        peer.asked = Some(epoch);
        peer.unwrap_credit = (peer.unwrap_credit + 1).min(UNWRAP_CREDIT_MAX);
        self.requests.insert(from, epoch);
    }

    fn open_inner(&mut self, from: u64, envelope: &MediaPacket) -> Result<MediaPacket, E2eeError> {
        let sealed = envelope.sealed.as_ref().ok_or(E2eeError::NotSealed)?;
        let header = FrameHeader {
            packet_type: PacketType::Media as i32,
            media_type: envelope.media_type,
            frame_type: &envelope.frame_type,
            stream_id: sealed.stream_id,
            epoch: sealed.epoch,
            counter: sealed.counter,
        };
        let plaintext = self.open_sealed(from, &header, &sealed.ciphertext)?;
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

    /// Opens `ciphertext` from session `from` under the key its `header` names.
    fn open_sealed(
        &mut self,
        from: u64,
        header: &FrameHeader<'_>,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, E2eeError> {
        let peer = self
            .peers
            .get(&from)
            .ok_or(E2eeError::UnknownSender(from))?;
        let epoch = header.epoch;
        let no_key = E2eeError::NoKey { from, epoch };
        let Some(keys) = peer.signing_key().and_then(|k| self.keyring.get_mut(k)) else {
            return Err(no_key);
        };
        let grace = self.config.previous_epoch_grace_frames;
        let plaintext = match (&mut keys.current, &mut keys.previous) {
            (Some(current), _) if current.epoch() == epoch => {
                let plaintext = current.open(header, ciphertext)?;
                if current.opened >= grace {
                    keys.previous = None;
                }
                plaintext
            }
            (_, Some(previous)) if previous.epoch() == epoch => {
                previous.open(header, ciphertext)?
            }
            (Some(current), _) if epoch < current.epoch() => {
                return Err(E2eeError::StaleEpoch { from, epoch });
            }
            (Some(current), _) => {
                // A later epoch: the sender's ratchet (someone joined) if the derived key opens
                // it; else a fresh key (someone left) whose wrap is on its way.
                let Some(mut next) = current.ratcheted(epoch) else {
                    return Err(no_key);
                };
                let Ok(plaintext) = next.open(header, ciphertext) else {
                    return Err(no_key);
                };
                keys.previous = keys.current.replace(next);
                self.stats.ratchets_followed += 1;
                plaintext
            }
            _ => return Err(no_key),
        };
        Ok(plaintext)
    }
}
