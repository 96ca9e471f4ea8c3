//! Sender keys: the AES-256-GCM key each participant seals its frames with.
//!
//! One key per sender and epoch, drawn at random, with a random 32-bit salt. Frame `n` under it
//! is sealed with nonce `salt ∥ n` (n as 64-bit big-endian): unique as long as the counter never
//! repeats, which [`SendingKey`] guarantees by construction (it only counts up, and a new epoch
//! brings a new key). The routing fields the relay reads in clear are bound as associated data.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::E2eeError;
use super::replay::ReplayWindow;

/// AES-256 key length.
pub(crate) const KEY_LEN: usize = 32;
/// Per-key nonce salt length.
pub(crate) const SALT_LEN: usize = 4;
/// What a wrap carries: key ∥ salt ∥ epoch (big-endian).
pub(crate) const WRAPPED_SECRET_LEN: usize = KEY_LEN + SALT_LEN + 4;

/// Most ratchet steps a receiver follows from a sender's current key (one per join it did not
/// hear of by key); further, it asks for the key.
pub(crate) const RATCHET_MAX_STEPS: u32 = 64;
const RATCHET_INFO: &[u8] = b"videocall-e2ee-v3 ratchet";

/// Domain separation of the associated data.
const AD_PREFIX: &[u8] = b"videocall-e2ee-v1 frame";

/// The routing fields of a sealed frame, in clear on the wire and bound as associated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FrameHeader<'a> {
    pub(crate) packet_type: i32,
    pub(crate) media_type: i32,
    pub(crate) frame_type: &'a str,
    pub(crate) stream_id: u32,
    pub(crate) epoch: u32,
    pub(crate) counter: u64,
}

impl FrameHeader<'_> {
    /// The header of a sealed non-media payload (CHAT, issue #18): no media or frame type.
    pub(crate) fn payload(
        packet_type: videocall_types::PacketType,
        stream_id: u32,
        epoch: u32,
        counter: u64,
    ) -> FrameHeader<'static> {
        FrameHeader {
            packet_type: packet_type as i32,
            media_type: 0,
            frame_type: "",
            stream_id,
            epoch,
            counter,
        }
    }

    /// Canonical encoding: prefix ∥ packet type (4) ∥ media type (4) ∥ frame type length (4) ∥
    /// frame type ∥ stream id (4) ∥ epoch (4) ∥ counter (8), integers big-endian.
    pub(crate) fn associated_data(&self) -> Vec<u8> {
        let mut ad = Vec::with_capacity(AD_PREFIX.len() + 28 + self.frame_type.len());
        ad.extend_from_slice(AD_PREFIX);
        ad.extend_from_slice(&self.packet_type.to_be_bytes());
        ad.extend_from_slice(&self.media_type.to_be_bytes());
        ad.extend_from_slice(&(self.frame_type.len() as u32).to_be_bytes());
        ad.extend_from_slice(self.frame_type.as_bytes());
        ad.extend_from_slice(&self.stream_id.to_be_bytes());
        ad.extend_from_slice(&self.epoch.to_be_bytes());
        ad.extend_from_slice(&self.counter.to_be_bytes());
        ad
    }
}

/// The 96-bit nonce of frame `counter` under a key with `salt`.
pub(crate) fn nonce(salt: [u8; SALT_LEN], counter: u64) -> [u8; 12] {
    let mut nonce = [0; 12];
    nonce[..SALT_LEN].copy_from_slice(&salt);
    nonce[SALT_LEN..].copy_from_slice(&counter.to_be_bytes());
    nonce
}

/// Key, salt and epoch: what a wrap carries.
#[derive(Clone)]
pub(crate) struct KeyMaterial {
    pub(crate) key: Zeroizing<[u8; KEY_LEN]>,
    pub(crate) salt: [u8; SALT_LEN],
    pub(crate) epoch: u32,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// A fresh random key and salt for `epoch`.
    pub(crate) fn random<R: CryptoRngCore + ?Sized>(rng: &mut R, epoch: u32) -> Self {
        let mut key = Zeroizing::new([0; KEY_LEN]);
        rng.fill_bytes(key.as_mut());
        let mut salt = [0; SALT_LEN];
        rng.fill_bytes(&mut salt);
        Self { key, salt, epoch }
    }

    /// The key of `epoch` that follows from this one by the one-way ratchet (each step: HKDF-SHA-256
    /// of the key, info `"videocall-e2ee-v3 ratchet"` ∥ next epoch (4, BE), giving key ∥ salt).
    /// `None` unless `epoch` is 1 to [`RATCHET_MAX_STEPS`] steps ahead.
    pub(crate) fn ratchet(&self, epoch: u32) -> Option<Self> {
        let steps = epoch.checked_sub(self.epoch)?;
        if steps == 0 || steps > RATCHET_MAX_STEPS {
            return None;
        }
        let mut material = self.clone();
        for _ in 0..steps {
            let next = material.epoch + 1;
            let mut info = Vec::with_capacity(RATCHET_INFO.len() + 4);
            info.extend_from_slice(RATCHET_INFO);
            info.extend_from_slice(&next.to_be_bytes());
            let mut okm = Zeroizing::new([0; KEY_LEN + SALT_LEN]);
            Hkdf::<Sha256>::new(None, material.key.as_ref())
                .expand(&info, okm.as_mut())
                .expect("36 bytes is a valid HKDF-SHA-256 length");
            material.key.copy_from_slice(&okm[..KEY_LEN]);
            material.salt.copy_from_slice(&okm[KEY_LEN..]);
            material.epoch = next;
        }
        Some(material)
    }

    /// key ∥ salt ∥ epoch, the plaintext of a wrap.
    pub(crate) fn to_secret(&self) -> Zeroizing<Vec<u8>> {
        let mut secret = Zeroizing::new(Vec::with_capacity(WRAPPED_SECRET_LEN));
        secret.extend_from_slice(self.key.as_ref());
        secret.extend_from_slice(&self.salt);
        secret.extend_from_slice(&self.epoch.to_be_bytes());
        secret
    }

    /// Parses an unwrapped secret.
    pub(crate) fn from_secret(secret: &[u8]) -> Result<Self, E2eeError> {
        if secret.len() != WRAPPED_SECRET_LEN {
            return Err(E2eeError::Malformed(format!(
                "unwrapped sender key of {} bytes, expected {WRAPPED_SECRET_LEN}",
                secret.len()
            )));
        }
        let mut key = Zeroizing::new([0; KEY_LEN]);
        key.copy_from_slice(&secret[..KEY_LEN]);
        let mut salt = [0; SALT_LEN];
        salt.copy_from_slice(&secret[KEY_LEN..KEY_LEN + SALT_LEN]);
        let mut epoch = [0; 4];
        epoch.copy_from_slice(&secret[KEY_LEN + SALT_LEN..]);
        Ok(Self {
            key,
            salt,
            epoch: u32::from_be_bytes(epoch),
        })
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(self.key.as_ref()))
    }
}

/// Our own sender key: seals frames with strictly increasing counters.
#[derive(Clone)]
pub(crate) struct SendingKey {
    material: KeyMaterial,
    cipher: Aes256Gcm,
    next_counter: u64,
}

impl std::fmt::Debug for SendingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendingKey")
            .field("epoch", &self.material.epoch)
            .field("next_counter", &self.next_counter)
            .finish_non_exhaustive()
    }
}

impl SendingKey {
    pub(crate) fn new(material: KeyMaterial) -> Self {
        Self {
            cipher: material.cipher(),
            material,
            next_counter: 0,
        }
    }

    pub(crate) fn material(&self) -> &KeyMaterial {
        &self.material
    }

    pub(crate) fn epoch(&self) -> u32 {
        self.material.epoch
    }

    /// Takes the next counter: it is never handed out twice.
    pub(crate) fn next_counter(&mut self) -> Result<u64, E2eeError> {
        let counter = self.next_counter;
        self.next_counter = counter.checked_add(1).ok_or(E2eeError::CounterExhausted)?;
        Ok(counter)
    }

    /// Seals `plaintext` under `header`, whose epoch and counter must come from this key
    /// ([`SendingKey::next_counter`]). Returns ciphertext ∥ tag.
    pub(crate) fn seal(
        &self,
        header: &FrameHeader<'_>,
        plaintext: &[u8],
    ) -> Result<Vec<u8>, E2eeError> {
        debug_assert_eq!(header.epoch, self.material.epoch);
        debug_assert!(header.counter < self.next_counter);
        let nonce = nonce(self.material.salt, header.counter);
        let aad = header.associated_data();
        self.cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            // AES-GCM fails only past 2^36 bytes of plaintext.
            .map_err(|_| E2eeError::Malformed("plaintext too long to seal".into()))
    }
}

/// A peer's sender key for one epoch: opens its frames, each counter once.
#[derive(Clone)]
pub(crate) struct ReceivingKey {
    /// Kept to follow the sender's ratchet.
    material: KeyMaterial,
    cipher: Aes256Gcm,
    window: ReplayWindow,
    /// Frames opened under this key.
    pub(crate) opened: u64,
}

impl std::fmt::Debug for ReceivingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivingKey")
            .field("epoch", &self.material.epoch)
            .field("opened", &self.opened)
            .finish_non_exhaustive()
    }
}

impl ReceivingKey {
    pub(crate) fn new(material: &KeyMaterial) -> Self {
        Self {
            material: material.clone(),
            cipher: material.cipher(),
            window: ReplayWindow::default(),
            opened: 0,
        }
    }

    pub(crate) fn epoch(&self) -> u32 {
        self.material.epoch
    }

    /// The sender's key of a later `epoch`, if it follows from this one by the ratchet.
    pub(crate) fn ratcheted(&self, epoch: u32) -> Option<Self> {
        self.material.ratchet(epoch).map(|m| Self::new(&m))
    }

    /// Opens a frame: refuses replayed and too old counters before decrypting, and records the
    /// counter only once the frame authenticated.
    pub(crate) fn open(
        &mut self,
        header: &FrameHeader<'_>,
        ciphertext: &[u8],
    ) -> Result<Vec<u8>, E2eeError> {
        self.window.check(header.counter)?;
        let nonce = nonce(self.material.salt, header.counter);
        let aad = header.associated_data();
        let plaintext = self
            .cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| E2eeError::Authentication)?;
        self.window.mark(header.counter);
        self.opened += 1;
        Ok(plaintext)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2ee::test_keys;

    fn header(counter: u64) -> FrameHeader<'static> {
        FrameHeader {
            packet_type: 3,
            media_type: 1,
            frame_type: "key",
            stream_id: 0,
            epoch: 7,
            counter,
        }
    }

    fn pair(seed: u64) -> (SendingKey, ReceivingKey) {
        let material = KeyMaterial::random(&mut test_keys::rng(seed), 7);
        (
            SendingKey::new(material.clone()),
            ReceivingKey::new(&material),
        )
    }

    #[test]
    fn the_nonce_is_salt_then_big_endian_counter() {
        assert_eq!(
            nonce([1, 2, 3, 4], 0x0102_0304_0506_0708),
            [1, 2, 3, 4, 1, 2, 3, 4, 5, 6, 7, 8]
        );
    }

    #[test]
    fn key_material_round_trips_through_its_secret() {
        let material = KeyMaterial::random(&mut test_keys::rng(3), 42);
        let parsed = KeyMaterial::from_secret(&material.to_secret()).unwrap();
        assert_eq!(*parsed.key, *material.key);
        assert_eq!(parsed.salt, material.salt);
        assert_eq!(parsed.epoch, 42);
        assert!(KeyMaterial::from_secret(&[0; 39]).is_err());
    }

    #[test]
    fn every_header_field_changes_the_associated_data() {
        let base = header(9);
        let variants = [
            FrameHeader {
                packet_type: 2,
                ..base.clone()
            },
            FrameHeader {
                media_type: 3,
                ..base.clone()
            },
            FrameHeader {
                frame_type: "delta",
                ..base.clone()
            },
            FrameHeader {
                stream_id: 1,
                ..base.clone()
            },
            FrameHeader {
                epoch: 8,
                ..base.clone()
            },
            FrameHeader {
                counter: 10,
                ..base.clone()
            },
        ];
        for variant in variants {
            assert_ne!(
                variant.associated_data(),
                base.associated_data(),
                "{variant:?}"
            );
        }
    }

    #[test]
    fn a_frame_opens_once_under_its_header() {
        let (mut tx, mut rx) = pair(4);
        let h = header(tx.next_counter().unwrap());
        let sealed = tx.seal(&h, b"frame").unwrap();
        assert_eq!(rx.open(&h, &sealed).unwrap(), b"frame");
        assert_eq!(rx.open(&h, &sealed), Err(E2eeError::Replayed(0)));
    }

    #[test]
    fn a_forged_frame_does_not_move_the_replay_window() {
        let (mut tx, mut rx) = pair(5);
        let h0 = header(tx.next_counter().unwrap());
        let sealed = tx.seal(&h0, b"frame").unwrap();
        // A forged frame claiming a far counter fails and must not make counter 0 "too old".
        assert_eq!(
            rx.open(&header(1 << 40), &sealed),
            Err(E2eeError::Authentication)
        );
        assert_eq!(rx.open(&h0, &sealed).unwrap(), b"frame");
    }
}
