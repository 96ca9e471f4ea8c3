//! A participant's RSA-OAEP identity: the key pair sender keys are wrapped to.
//!
//! Public keys travel as SPKI DER (what WebCrypto's `exportKey("spki")` produces) in RSA_PUB_KEY
//! packets. Wraps are RSA-OAEP with SHA-256 (hash and MGF1) and a fixed label that separates them
//! from any other use of the key. Decryption is blinded; see the README on RUSTSEC-2023-0071.

use rand_core::CryptoRngCore;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{Oaep, RsaPrivateKey, RsaPublicKey};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::error::E2eeError;

/// Least RSA modulus accepted from a peer or generated.
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted from a peer (bounds the work a peer can make us do).
pub const MAX_RSA_BITS: usize = 4096;

/// OAEP label of sender-key wraps (an external unwrap, e.g. WebCrypto's `decrypt`, must use it).
pub const WRAP_LABEL: &str = "videocall-e2ee-v1 sender key";

fn oaep() -> Oaep {
    Oaep::new_with_label::<Sha256, _>(WRAP_LABEL)
}

fn check_size(bits: usize) -> Result<(), E2eeError> {
    if (MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
        Ok(())
    } else {
        Err(E2eeError::KeySize {
            bits,
            min: MIN_RSA_BITS,
            max: MAX_RSA_BITS,
        })
    }
}

/// Our key pair, or only its public half when the private key is held elsewhere
/// ([`Identity::external`]). Its `Debug` shows only the public key's size.
#[derive(Clone)]
pub struct Identity {
    private: Option<RsaPrivateKey>,
    public: PeerKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("bits", &self.public.key.n().bits())
            .field("external", &self.is_external())
            .finish_non_exhaustive()
    }
}

impl Identity {
    /// Generates a key pair of `bits` (≥ [`MIN_RSA_BITS`]); hundreds of ms natively for 2048.
    pub fn generate<R: CryptoRngCore + ?Sized>(
        rng: &mut R,
        bits: usize,
    ) -> Result<Self, E2eeError> {
        check_size(bits)?;
        let private = RsaPrivateKey::new(rng, bits).map_err(|e| E2eeError::Rsa(e.to_string()))?;
        Self::from_private(private)
    }

    /// A key pair imported as PKCS#8 DER (e.g. exported from WebCrypto).
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, E2eeError> {
        let private =
            RsaPrivateKey::from_pkcs8_der(der).map_err(|e| E2eeError::Rsa(e.to_string()))?;
        Self::from_private(private)
    }

    /// An identity whose private key lives outside this crate (a non-extractable WebCrypto
    /// key): only its public key (SPKI DER) is here. Sender keys wrapped for it are handed out
    /// by `E2ee::poll_unwrap` and come back with `E2ee::handle_unwrapped`.
    pub fn external(public_key_der: &[u8]) -> Result<Self, E2eeError> {
        Ok(Self {
            private: None,
            public: PeerKey::from_der(public_key_der)?,
        })
    }

    fn from_private(private: RsaPrivateKey) -> Result<Self, E2eeError> {
        check_size(private.n().bits())?;
        let der = private
            .to_public_key()
            .to_public_key_der()
            .map_err(|e| E2eeError::Rsa(e.to_string()))?
            .into_vec();
        Ok(Self {
            public: PeerKey {
                key: private.to_public_key(),
                der,
            },
            private: Some(private),
        })
    }

    /// Whether the private key is held elsewhere ([`Identity::external`]).
    pub fn is_external(&self) -> bool {
        self.private.is_none()
    }

    /// Our public key, SPKI DER.
    pub fn public_key_der(&self) -> &[u8] {
        &self.public.der
    }

    /// Our public key.
    pub fn public_key(&self) -> PeerKey {
        self.public.clone()
    }

    /// Unwraps what a peer wrapped for us with [`PeerKey::wrap`] (blinded RSA-OAEP decryption).
    pub fn unwrap<R: CryptoRngCore>(
        &self,
        rng: &mut R,
        wrapped: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, E2eeError> {
        self.private
            .as_ref()
            .ok_or(E2eeError::ExternalKey)?
            .decrypt_blinded(rng, oaep(), wrapped)
            .map(Zeroizing::new)
            .map_err(|_| E2eeError::Unwrap)
    }
}

/// A peer's public key, as it announced it.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerKey {
    key: RsaPublicKey,
    der: Vec<u8>,
}

impl std::fmt::Debug for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerKey")
            .field("bits", &self.key.n().bits())
            .finish_non_exhaustive()
    }
}

impl PeerKey {
    /// Parses an SPKI DER public key and checks its size.
    pub fn from_der(der: &[u8]) -> Result<Self, E2eeError> {
        let key = RsaPublicKey::from_public_key_der(der)
            .map_err(|e| E2eeError::InvalidPublicKey(e.to_string()))?;
        check_size(key.n().bits())?;
        Ok(Self {
            key,
            der: der.to_vec(),
        })
    }

    /// The key as announced, SPKI DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Wraps `secret` (at most 190 bytes for 2048 bits) for the holder of this key.
    pub fn wrap<R: CryptoRngCore>(&self, rng: &mut R, secret: &[u8]) -> Result<Vec<u8>, E2eeError> {
        self.key
            .encrypt(rng, oaep(), secret)
            .map_err(|e| E2eeError::Rsa(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::e2ee::test_keys;

    #[test]
    fn a_wrap_unwraps_only_with_the_matching_identity() {
        let mut rng = test_keys::rng(1);
        let alice = test_keys::identity(0);
        let bob = test_keys::identity(1);
        let wrapped = alice.public_key().wrap(&mut rng, b"sender key").unwrap();
        assert_eq!(
            alice.unwrap(&mut rng, &wrapped).unwrap().as_slice(),
            b"sender key"
        );
        assert_eq!(bob.unwrap(&mut rng, &wrapped), Err(E2eeError::Unwrap));
    }

    #[test]
    fn a_public_key_round_trips_through_der() {
        let alice = test_keys::identity(0);
        let parsed = PeerKey::from_der(alice.public_key_der()).unwrap();
        assert_eq!(parsed, alice.public_key());
    }

    #[test]
    fn keys_below_2048_bits_and_garbage_are_refused() {
        let mut rng = test_keys::rng(2);
        assert!(matches!(
            Identity::generate(&mut rng, 1024),
            Err(E2eeError::KeySize { bits: 1024, .. })
        ));
        let small = RsaPrivateKey::new(&mut rng, 1024).unwrap();
        let der = small.to_public_key().to_public_key_der().unwrap();
        assert!(matches!(
            PeerKey::from_der(der.as_bytes()),
            Err(E2eeError::KeySize { bits: 1024, .. })
        ));
        assert!(matches!(
            PeerKey::from_der(&[0x30, 0x03, 0x02, 0x01]),
            Err(E2eeError::InvalidPublicKey(_))
        ));
    }
}
