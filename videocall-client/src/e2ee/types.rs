//! The values the E2EE state machine takes and gives: its settings, counters, key packets to
//! send, unwraps to do outside, and key holders.

use bytes::Bytes;
use videocall_types::PacketType;

use super::error::DropCounts;

/// The settings of [`crate::e2ee::E2ee`].
#[derive(Debug, Clone)]
pub struct E2eeConfig {
    /// RSA modulus size of a generated identity (≥ 2048).
    pub rsa_bits: usize,
    /// After a peer's new epoch arrives, its previous key still opens frames in flight until
    /// this many frames opened under the new one (then it is forgotten).
    pub previous_epoch_grace_frames: u64,
}

impl Default for E2eeConfig {
    /// 2048-bit RSA, 256 frames of grace (a few seconds of audio and video).
    fn default() -> Self {
        Self {
            rsa_bits: 2048,
            previous_epoch_grace_frames: 256,
        }
    }
}

/// A key packet for the driver to send: `session.send_packet(packet_type, data)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPacket {
    /// RSA_PUB_KEY, AES_KEY or KEY_REQUEST.
    pub packet_type: PacketType,
    /// The packet's data (an `RsaPacket`, a `SenderKeyPacket` or a `KeyRequest`).
    pub data: Bytes,
    /// The one session this packet is for (AES_KEY, KEY_REQUEST; the relay delivers it there
    /// only), or `None` for everyone (RSA_PUB_KEY).
    pub to: Option<u64>,
}

/// A sender key wrapped for an [`crate::e2ee::Identity::external`]: unwrap `wrapped` with the private key
/// (RSA-OAEP, SHA-256, label [`super::WRAP_LABEL`]) and give the result to
/// [`crate::e2ee::E2ee::handle_unwrapped`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnwrapRequest {
    /// The sender's session.
    pub from: u64,
    /// The sender key's epoch.
    pub epoch: u32,
    /// The wrapped key.
    pub wrapped: Bytes,
}

/// A peer that holds our sender key: who it is and the fingerprint of its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyHolder {
    /// Its session.
    pub session: u64,
    /// Its user id, as the relay stamped it.
    pub user: String,
    /// Hex of the first 16 bytes of SHA-256 over its identity, in groups of 4.
    pub fingerprint: String,
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
    /// Our sender key ratcheted forward (someone joined): no key packet but the joiner's.
    pub ratchets: u64,
    /// Peer keys of a later epoch derived by their ratchet (a frame under it opened).
    pub ratchets_followed: u64,
    /// Peer sender keys installed.
    pub keys_installed: u64,
    /// Of those, sender keys that came sealed under a channel key (no RSA decryption).
    pub channel_unwraps: u64,
    /// Key packets refused (bad key, changed key, undecodable, wrong version, failed unwrap,
    /// and all of `unauthenticated_key_packets` and `stale_key_packets`).
    pub key_packets_refused: u64,
    /// Key packets refused for a missing or wrong signature: forged, unsigned, signed for
    /// another meeting, session or user, or from a sender whose identity we do not hold.
    pub unauthenticated_key_packets: u64,
    /// Signed sender keys of an epoch not newer than the one we hold (replayed or late).
    pub stale_key_packets: u64,
    /// Public keys of sessions outside the roster (held aside, never wrapped for).
    pub outside_roster: u64,
    /// KEY_REQUESTs we sent, and those we answered.
    pub key_requests_sent: u64,
    /// KEY_REQUESTs answered with a wrap.
    pub key_requests_answered: u64,
}
