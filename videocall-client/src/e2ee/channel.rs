//! Pairwise channel keys: what makes a rotation cheap.
//!
//! The first time a sender wraps its sender key for a peer it uses RSA-OAEP, and the wrap carries
//! a fresh random 32-byte *channel key* for that pair and direction beside the sender key. Later
//! rotations for that peer (every join and leave) are wrapped with AES-256-GCM under the channel
//! key instead: microseconds instead of an RSA private-key operation per sender at every
//! receiver, so a leave in a 60-person meeting costs each receiver 58 AES-GCM opens rather than
//! 58 RSA decryptions. Olm-based systems (Jitsi) do the same with pairwise ratchets.
//!
//! Only the sender and the holder of the recipient's RSA private key know a channel key, so a
//! channel wrap that opens is as authentic as the RSA wrap that delivered it (and the packet is
//! signed as well). A receiver that cannot open one (it never got the channel key: the RSA wrap
//! was lost or refused) asks with a KEY_REQUEST, which is always answered with a new RSA wrap and
//! a new channel key.
//!
//! Sealed wrap: nonce (12, random) ∥ AES-256-GCM(channel key, key ∥ salt ∥ epoch) ∥ tag (16),
//! associated data `"videocall-e2ee-v3 channel wrap"` ∥ meeting length (4) ∥ meeting ∥ sender
//! session (8) ∥ recipient session (8) ∥ epoch (4), integers big-endian.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

use super::error::E2eeError;
use super::sender_key::WRAPPED_SECRET_LEN;

/// Channel key length.
pub(crate) const CHANNEL_KEY_LEN: usize = 32;
/// What an RSA wrap carries with a channel key: sender key secret ∥ channel key.
pub(crate) const WRAPPED_WITH_CHANNEL_LEN: usize = WRAPPED_SECRET_LEN + CHANNEL_KEY_LEN;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Length of a sealed wrap.
pub(crate) const SEALED_WRAP_LEN: usize = NONCE_LEN + WRAPPED_SECRET_LEN + TAG_LEN;
const AD_PREFIX: &[u8] = b"videocall-e2ee-v3 channel wrap";

/// The pairwise key one sender wraps its sender keys for one recipient with.
#[derive(Clone)]
pub(crate) struct ChannelKey(Zeroizing<[u8; CHANNEL_KEY_LEN]>);

impl std::fmt::Debug for ChannelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChannelKey(..)")
    }
}

/// Who a wrap is from and for, and of which epoch: bound as associated data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WrapContext<'a> {
    pub(crate) meeting: &'a str,
    pub(crate) from: u64,
    pub(crate) to: u64,
    pub(crate) epoch: u32,
}

impl WrapContext<'_> {
    fn associated_data(&self) -> Vec<u8> {
        let mut ad = Vec::with_capacity(AD_PREFIX.len() + 4 + self.meeting.len() + 20);
        ad.extend_from_slice(AD_PREFIX);
        ad.extend_from_slice(&(self.meeting.len() as u32).to_be_bytes());
        ad.extend_from_slice(self.meeting.as_bytes());
        ad.extend_from_slice(&self.from.to_be_bytes());
        ad.extend_from_slice(&self.to.to_be_bytes());
        ad.extend_from_slice(&self.epoch.to_be_bytes());
        ad
    }
}

impl ChannelKey {
    /// A fresh random key.
    pub(crate) fn random(rng: &mut impl CryptoRngCore) -> Self {
        let mut key = Zeroizing::new([0; CHANNEL_KEY_LEN]);
        rng.fill_bytes(key.as_mut());
        Self(key)
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.0.as_ref()
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.0.as_ref()))
    }

    /// Seals a sender key `secret` (key ∥ salt ∥ epoch) for `context`.
    pub(crate) fn seal(
        &self,
        rng: &mut impl CryptoRngCore,
        context: WrapContext<'_>,
        secret: &[u8],
    ) -> Vec<u8> {
        let mut nonce = [0; NONCE_LEN];
        rng.fill_bytes(&mut nonce);
        let aad = context.associated_data();
        let sealed = self
            .cipher()
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: secret,
                    aad: &aad,
                },
            )
            .expect("AES-GCM seals 40 bytes");
        let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a sealed wrap made for `context`: the sender key secret.
    pub(crate) fn open(
        &self,
        context: WrapContext<'_>,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, E2eeError> {
        if sealed.len() != SEALED_WRAP_LEN {
            return Err(E2eeError::Malformed(format!(
                "channel wrap of {} bytes, expected {SEALED_WRAP_LEN}",
                sealed.len()
            )));
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let aad = context.associated_data();
        self.cipher()
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| E2eeError::Unwrap)
    }
}

/// The plaintext of an RSA wrap: the sender key secret, then the channel key.
pub(crate) fn rsa_plaintext(secret: &[u8], channel: &ChannelKey) -> Zeroizing<Vec<u8>> {
    let mut plain = Zeroizing::new(Vec::with_capacity(WRAPPED_WITH_CHANNEL_LEN));
    plain.extend_from_slice(secret);
    plain.extend_from_slice(channel.as_bytes());
    plain
}

/// Splits what an RSA wrap carried: the sender key secret and, when present, a channel key.
pub(crate) fn split_rsa_plaintext(plain: &[u8]) -> (&[u8], Option<ChannelKey>) {
    if plain.len() != WRAPPED_WITH_CHANNEL_LEN {
        return (plain, None);
    }
    let (secret, channel) = plain.split_at(WRAPPED_SECRET_LEN);
    let mut key = Zeroizing::new([0; CHANNEL_KEY_LEN]);
    key.copy_from_slice(channel);
    (secret, Some(ChannelKey(key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2ee::test_keys;

    fn context(epoch: u32) -> WrapContext<'static> {
        WrapContext {
            meeting: "m",
            from: 1,
            to: 2,
            epoch,
        }
    }

    #[test]
    fn a_sealed_wrap_opens_only_for_its_key_and_context() {
        let mut rng = test_keys::rng(7);
        let key = ChannelKey::random(&mut rng);
        let other = ChannelKey::random(&mut rng);
        let secret = [9u8; WRAPPED_SECRET_LEN];
        let sealed = key.seal(&mut rng, context(3), &secret);
        assert_eq!(sealed.len(), SEALED_WRAP_LEN);
        assert_eq!(key.open(context(3), &sealed).unwrap().as_slice(), &secret);
        assert_eq!(other.open(context(3), &sealed), Err(E2eeError::Unwrap));
        assert_eq!(key.open(context(4), &sealed), Err(E2eeError::Unwrap));
        let swapped = WrapContext {
            from: 2,
            to: 1,
            ..context(3)
        };
        assert_eq!(key.open(swapped, &sealed), Err(E2eeError::Unwrap));
        let mut tampered = sealed.clone();
        tampered[20] ^= 1;
        assert_eq!(key.open(context(3), &tampered), Err(E2eeError::Unwrap));
        assert!(matches!(
            key.open(context(3), &sealed[1..]),
            Err(E2eeError::Malformed(_))
        ));
    }

    #[test]
    fn rsa_plaintext_splits_back_and_old_wraps_carry_no_channel() {
        let key = ChannelKey::random(&mut test_keys::rng(8));
        let secret = [5u8; WRAPPED_SECRET_LEN];
        let plain = rsa_plaintext(&secret, &key);
        let (s, channel) = split_rsa_plaintext(&plain);
        assert_eq!(s, &secret);
        assert_eq!(channel.unwrap().as_bytes(), key.as_bytes());
        let (s, channel) = split_rsa_plaintext(&secret);
        assert_eq!(s, &secret);
        assert!(channel.is_none());
    }
}
