//! The three key packets on the wire, built signed and checked on arrival: RSA_PUB_KEY (who we
//! are), AES_KEY (our sender key wrapped for one recipient) and KEY_REQUEST (send me your key).
//!
//! Identity comes from what the relay stamped (`PacketWrapper::user_id`, `session_id`), and the
//! signatures bind it: a packet signed for another meeting, session or user does not verify.

use bytes::Bytes;
use prost::Message;
use videocall_types::proto::{KeyRequest, SenderKeyPacket, WrappedSenderKey};
use videocall_types::{PacketWrapper, RsaPacket, packets};

use super::error::E2eeError;
use super::identity::{Identity, PeerKey};
use super::signing::{self, SIGNING_KEY_LEN, Signer};

/// Version of the AES_KEY data whose wraps are RSA-OAEP ([`SenderKeyPacket::version`]): 2 is
/// signed.
pub const SENDER_KEY_VERSION: u32 = 2;
/// Version of the AES_KEY data whose wraps are sealed under the pair's channel key (see
/// `channel`); signed like version 2.
pub const SENDER_KEY_CHANNEL_VERSION: u32 = 3;

/// A peer's long-term keys as it announced them: RSA-OAEP (wraps) and Ed25519 (signatures).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PeerIdentity {
    pub(crate) public_key: PeerKey,
    pub(crate) signing_key: [u8; SIGNING_KEY_LEN],
}

impl PeerIdentity {
    /// The bytes the safety code and the fingerprint commit to: both public keys.
    pub(crate) fn encoded(&self) -> Vec<u8> {
        encode_identity(self.public_key.der(), &self.signing_key)
    }
}

/// Canonical encoding of an identity (length-prefixed SPKI, then the 32-byte Ed25519 key).
pub(crate) fn encode_identity(public_key_der: &[u8], signing_key: &[u8]) -> Vec<u8> {
    let mut e = Vec::with_capacity(4 + public_key_der.len() + signing_key.len());
    e.extend_from_slice(&(public_key_der.len() as u32).to_be_bytes());
    e.extend_from_slice(public_key_der);
    e.extend_from_slice(signing_key);
    e
}

/// Our RSA_PUB_KEY: both public keys, signed for this meeting, session and user.
pub(crate) fn announce(
    signer: &Signer,
    identity: &Identity,
    meeting: &str,
    session: u64,
    user: &str,
) -> Bytes {
    let signing_key = signer.public();
    let message = signing::announce_message(
        meeting,
        session,
        user,
        identity.public_key_der(),
        &signing_key,
    );
    packets::encode(&RsaPacket {
        public_key_der: Bytes::copy_from_slice(identity.public_key_der()),
        user_id: Bytes::copy_from_slice(user.as_bytes()),
        signing_key: Bytes::copy_from_slice(&signing_key),
        signature: Bytes::copy_from_slice(&signer.sign(&message)),
    })
}

/// A peer's RSA_PUB_KEY, checked: parsed keys, and a signature for this meeting and for the
/// session and user the relay stamped.
pub(crate) fn check_announce(
    meeting: &str,
    wrapper: &PacketWrapper,
) -> Result<(String, PeerIdentity), E2eeError> {
    let packet =
        RsaPacket::decode(wrapper.data.clone()).map_err(|e| E2eeError::Malformed(e.to_string()))?;
    let user = String::from_utf8_lossy(&wrapper.user_id).into_owned();
    let signing_key: [u8; SIGNING_KEY_LEN] = packet
        .signing_key
        .as_ref()
        .try_into()
        .map_err(|_| E2eeError::BadSignature("no Ed25519 signing key".into()))?;
    let message = signing::announce_message(
        meeting,
        wrapper.session_id,
        &user,
        &packet.public_key_der,
        &signing_key,
    );
    // Verified before the RSA key is parsed: a forged packet costs one Ed25519 check.
    signing::verify(&signing_key, &message, &packet.signature)?;
    let public_key = PeerKey::from_der(&packet.public_key_der)?;
    Ok((
        user,
        PeerIdentity {
            public_key,
            signing_key,
        },
    ))
}

/// Whether `wrapper` is the RSA_PUB_KEY of `user` announcing exactly `known`: its signature was
/// checked when `known` was taken from this session, and would verify the same message again.
pub(crate) fn is_known_announce(wrapper: &PacketWrapper, user: &str, known: &PeerIdentity) -> bool {
    wrapper.user_id == user.as_bytes()
        && RsaPacket::decode(wrapper.data.clone()).is_ok_and(|p| {
            p.public_key_der == known.public_key.der() && p.signing_key == known.signing_key[..]
        })
}

/// Our AES_KEY for one recipient: the relay delivers a packet of one wrap to that session only.
/// `version`: [`SENDER_KEY_VERSION`] for an RSA wrap, [`SENDER_KEY_CHANNEL_VERSION`] for a
/// channel wrap.
pub(crate) fn sender_key(
    signer: &Signer,
    meeting: &str,
    session: u64,
    version: u32,
    epoch: u32,
    recipient: u64,
    wrapped: Vec<u8>,
) -> Bytes {
    let message = signing::sender_key_message(
        meeting,
        session,
        version,
        epoch,
        std::iter::once((recipient, wrapped.as_slice())),
    );
    packets::encode(&SenderKeyPacket {
        version,
        epoch,
        keys: vec![WrappedSenderKey {
            recipient_session: recipient,
            wrapped: wrapped.into(),
        }],
        signature: Bytes::copy_from_slice(&signer.sign(&message)),
    })
}

/// Decodes an AES_KEY and checks its version (before any signature work).
pub(crate) fn decode_sender_key(wrapper: &PacketWrapper) -> Result<SenderKeyPacket, E2eeError> {
    let packet = SenderKeyPacket::decode(wrapper.data.clone())
        .map_err(|e| E2eeError::Malformed(e.to_string()))?;
    if packet.version != SENDER_KEY_VERSION && packet.version != SENDER_KEY_CHANNEL_VERSION {
        return Err(E2eeError::UnsupportedVersion(packet.version));
    }
    Ok(packet)
}

/// Checks an AES_KEY's signature by its sender's announced signing key, for this meeting and
/// the session the relay stamped.
pub(crate) fn check_sender_key(
    meeting: &str,
    from: u64,
    packet: &SenderKeyPacket,
    sender: &PeerIdentity,
) -> Result<(), E2eeError> {
    let message = signing::sender_key_message(
        meeting,
        from,
        packet.version,
        packet.epoch,
        packet
            .keys
            .iter()
            .map(|k| (k.recipient_session, k.wrapped.as_ref())),
    );
    signing::verify(&sender.signing_key, &message, &packet.signature)
}

/// A KEY_REQUEST to `target` for its key (we saw `epoch` and could not open it).
pub(crate) fn key_request(target: u64, epoch: u32) -> Bytes {
    packets::encode(&KeyRequest {
        target_session: target,
        epoch,
    })
}

/// A KEY_REQUEST, decoded.
pub(crate) fn decode_key_request(wrapper: &PacketWrapper) -> Result<KeyRequest, E2eeError> {
    KeyRequest::decode(wrapper.data.clone()).map_err(|e| E2eeError::Malformed(e.to_string()))
}
