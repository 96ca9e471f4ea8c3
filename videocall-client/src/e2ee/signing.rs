//! Signed key packets: an Ed25519 key per participant signs its RSA_PUB_KEY and every AES_KEY.
//!
//! Why Ed25519 and not RSA-PSS with the RSA identity: in the browser the RSA private key is a
//! non-extractable WebCrypto RSA-OAEP key, and WebCrypto binds a key to one algorithm, so it
//! cannot sign; RSA-PSS would need a second RSA key (seconds of key generation in wasm) or an
//! asynchronous round trip through WebCrypto for every key packet. An Ed25519 key is drawn in
//! microseconds, signs synchronously inside this sans-IO core, and its 32-byte public key is
//! bound to the RSA key by the signed announcement and committed to by the safety code.
//!
//! Every signed message is a canonical encoding: a domain string, then fixed-width integers and
//! length-prefixed byte strings, so no two different messages encode alike.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::error::E2eeError;

/// Length of an Ed25519 public key.
pub(crate) const SIGNING_KEY_LEN: usize = 32;

const ANNOUNCE_DOMAIN: &[u8] = b"videocall-e2ee-v2 announce";
const SENDER_KEY_DOMAIN: &[u8] = b"videocall-e2ee-v2 sender key";

/// Our Ed25519 signing key. Its `Debug` shows nothing secret.
#[derive(Clone)]
pub(crate) struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer").finish_non_exhaustive()
    }
}

impl Signer {
    /// A fresh key from `rng`.
    pub(crate) fn random<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self {
            key: SigningKey::from_bytes(&seed),
        }
    }

    /// The public key peers verify with.
    pub(crate) fn public(&self) -> [u8; SIGNING_KEY_LEN] {
        self.key.verifying_key().to_bytes()
    }

    pub(crate) fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.key.sign(message).to_bytes()
    }
}

/// Checks `signature` over `message` by `public` (strict: no malleable or small-order keys).
pub(crate) fn verify(public: &[u8], message: &[u8], signature: &[u8]) -> Result<(), E2eeError> {
    let public: &[u8; SIGNING_KEY_LEN] = public
        .try_into()
        .map_err(|_| E2eeError::BadSignature("signing key is not 32 bytes".into()))?;
    let key = VerifyingKey::from_bytes(public)
        .map_err(|_| E2eeError::BadSignature("invalid signing key".into()))?;
    let signature = Signature::from_slice(signature)
        .map_err(|_| E2eeError::BadSignature("signature is not 64 bytes".into()))?;
    key.verify_strict(message, &signature)
        .map_err(|_| E2eeError::BadSignature("signature does not verify".into()))
}

/// A canonical message under construction.
struct Canonical(Vec<u8>);

impl Canonical {
    fn new(domain: &[u8]) -> Self {
        let mut c = Self(Vec::with_capacity(256));
        c.bytes(domain);
        c
    }

    fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(&(b.len() as u32).to_be_bytes());
        self.0.extend_from_slice(b);
        self
    }

    fn u64(&mut self, n: u64) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }

    fn u32(&mut self, n: u32) -> &mut Self {
        self.0.extend_from_slice(&n.to_be_bytes());
        self
    }
}

/// What an RSA_PUB_KEY signs: who announces which keys, in which meeting, as which session.
pub(crate) fn announce_message(
    meeting: &str,
    session: u64,
    user: &str,
    public_key_der: &[u8],
    signing_key: &[u8],
) -> Vec<u8> {
    let mut c = Canonical::new(ANNOUNCE_DOMAIN);
    c.bytes(meeting.as_bytes())
        .u64(session)
        .bytes(user.as_bytes())
        .bytes(public_key_der)
        .bytes(signing_key);
    c.0
}

/// What an AES_KEY signs: meeting, sender session, version, epoch and every (recipient, wrap).
pub(crate) fn sender_key_message<'a>(
    meeting: &str,
    session: u64,
    version: u32,
    epoch: u32,
    wraps: impl ExactSizeIterator<Item = (u64, &'a [u8])>,
) -> Vec<u8> {
    let mut c = Canonical::new(SENDER_KEY_DOMAIN);
    c.bytes(meeting.as_bytes())
        .u64(session)
        .u32(version)
        .u32(epoch)
        .u32(wraps.len() as u32);
    for (recipient, wrapped) in wraps {
        c.u64(recipient).bytes(wrapped);
    }
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2ee::test_keys;

    #[test]
    fn a_signature_verifies_only_for_its_message_and_key() {
        let alice = Signer::random(&mut test_keys::rng(1));
        let mallory = Signer::random(&mut test_keys::rng(2));
        let message = announce_message("m", 1, "alice", b"spki", &alice.public());
        let signature = alice.sign(&message);
        assert_eq!(verify(&alice.public(), &message, &signature), Ok(()));
        assert!(verify(&mallory.public(), &message, &signature).is_err());
        let other = announce_message("m2", 1, "alice", b"spki", &alice.public());
        assert!(verify(&alice.public(), &other, &signature).is_err());
        assert!(verify(&alice.public(), &message, &signature[..63]).is_err());
        assert!(verify(&[0; 31], &message, &signature).is_err());
    }

    #[test]
    fn moving_bytes_between_fields_changes_the_message() {
        assert_ne!(
            announce_message("ab", 1, "c", b"", b""),
            announce_message("a", 1, "bc", b"", b"")
        );
        let one = sender_key_message("m", 1, 2, 3, [(4, &b"ab"[..]), (5, &b"c"[..])].into_iter());
        let two = sender_key_message("m", 1, 2, 3, [(4, &b"a"[..]), (5, &b"bc"[..])].into_iter());
        assert_ne!(one, two);
    }
}
