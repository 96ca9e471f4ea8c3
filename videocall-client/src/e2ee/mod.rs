//! End-to-end encryption of media: sender keys (AES-256-GCM) wrapped with RSA-OAEP, signed key
//! packets, rotation when someone joins or leaves, replay protection, and a safety code.
//!
//! Each participant has an RSA-OAEP [`Identity`] (≥ 2048 bits) and an Ed25519 signing key, and
//! announces both in a signed RSA_PUB_KEY. Each sender draws a random AES-256-GCM sender key with
//! a 32-bit salt and wraps it for every peer *of the roster* (AES_KEY, one signed
//! `SenderKeyPacket` per recipient, which the relay delivers to that session only); the first
//! RSA wrap for a peer carries a pairwise channel key, under which later rotations for it are
//! sealed with AES-GCM (no RSA per rotation). A receiver missing a key asks for it (KEY_REQUEST).
//! Frames are
//! sealed with nonce salt ∥ 64-bit counter into a `MediaPacket` envelope whose routing hints
//! (media type, key/delta, stream id) stay in clear for the relay but are bound as associated
//! data. Receivers refuse replayed and too old counters and count every frame they drop. When a
//! peer joins or leaves, every sender rotates to a new key (next epoch) for those present; the
//! previous epoch still opens frames in flight for a short grace. [`SafetyCode`] commits to every
//! key holder, so people comparing it learn that nobody substituted or added one. [`E2ee`] is the sans-IO state machine (see its run loop); it has no
//! clock, no socket, and takes its randomness from an injected `CryptoRngCore`, so it builds for
//! `wasm32-unknown-unknown`.

mod channel;
mod error;
mod identity;
mod key_packets;
mod machine;
mod replay;
mod roster;
mod safety_code;
mod sender_key;
mod signing;
mod types;

pub use error::{DropCounts, DropReason, E2eeError};
pub use identity::{Identity, MAX_RSA_BITS, MIN_RSA_BITS, PeerKey, WRAP_LABEL};
pub use key_packets::{SENDER_KEY_CHANNEL_VERSION, SENDER_KEY_VERSION};
pub use machine::{E2ee, E2eeConfig, E2eeStats, KeyHolder, KeyPacket, UnwrapRequest};
pub use safety_code::{SAFETY_CODE_DIGITS, SafetyCode};

/// The RNG trait `E2ee` takes, and the system RNG (getrandom; `crypto.getRandomValues` on wasm32).
pub use rand_core::{CryptoRngCore, OsRng};

#[cfg(test)]
mod attack_tests;
#[cfg(test)]
mod tests;

/// Deterministic RNGs and identities for tests: RSA keys are generated once per test binary.
#[cfg(test)]
pub(crate) mod test_keys {
    use std::sync::OnceLock;

    use rand_chacha::ChaCha20Rng;
    use rand_core::SeedableRng;

    use super::Identity;

    /// A seeded RNG.
    pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(seed)
    }

    /// Identity number `n` (0..4), 2048 bits, the same in every test of this binary.
    pub(crate) fn identity(n: usize) -> Identity {
        static KEYS: OnceLock<Vec<Identity>> = OnceLock::new();
        KEYS.get_or_init(|| {
            (0..4)
                .map(|i| {
                    Identity::generate(&mut rng(1000 + i), 2048)
                        .expect("2048 bits is an accepted size")
                })
                .collect()
        })[n]
            .clone()
    }
}
