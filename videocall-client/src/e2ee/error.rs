//! What can go wrong in E2EE, and the drop counters it feeds.

/// Why a frame could not be opened, a key packet was refused, or a call failed.
///
/// Everything a peer or the relay sends that we cannot accept is one of these; none of it
/// panics. Frames that fail to open are dropped (never returned) and counted in
/// [`DropCounts`] under [`E2eeError::drop_reason`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum E2eeError {
    /// Bytes that do not decode as the expected message, or an inconsistent message.
    #[error("malformed E2EE message: {0}")]
    Malformed(String),
    /// A media packet without a sealed envelope reached `open`.
    #[error("media packet is not sealed")]
    NotSealed,
    /// A sealed frame from a session we know nothing of.
    #[error("sealed frame from unknown session {0}")]
    UnknownSender(u64),
    /// A sealed frame under an epoch whose key we have not (yet) received.
    #[error("no key from session {from} for epoch {epoch}")]
    NoKey {
        /// The sender's session.
        from: u64,
        /// The frame's epoch.
        epoch: u32,
    },
    /// A sealed frame under an epoch we have already retired.
    #[error("epoch {epoch} of session {from} is retired")]
    StaleEpoch {
        /// The sender's session.
        from: u64,
        /// The frame's epoch.
        epoch: u32,
    },
    /// A frame counter we have already opened.
    #[error("replayed frame counter {0}")]
    Replayed(u64),
    /// A frame counter below the replay window.
    #[error("frame counter {0} is older than the replay window")]
    TooOld(u64),
    /// AES-GCM refused the frame: ciphertext, tag or associated data were altered, or the key
    /// is not the one that sealed it.
    #[error("frame failed authentication")]
    Authentication,
    /// A public key shorter than the minimum (or longer than the maximum) size.
    #[error("RSA key of {bits} bits refused (accepted: {min}..={max})")]
    KeySize {
        /// Its modulus size.
        bits: usize,
        /// Least accepted.
        min: usize,
        /// Most accepted.
        max: usize,
    },
    /// A public key that does not parse (SPKI DER expected).
    #[error("invalid RSA public key: {0}")]
    InvalidPublicKey(String),
    /// A session announced a second, different public key: refused (the first one stays).
    #[error("session {0} announced a different public key")]
    KeyChanged(u64),
    /// A key packet of a version we do not speak (0: the original's AesPacket).
    #[error("unsupported key packet version {0}")]
    UnsupportedVersion(u32),
    /// `handle_key_packet` got a packet type other than RSA_PUB_KEY or AES_KEY.
    #[error("packet type {0} is not a key packet")]
    NotAKeyPacket(i32),
    /// A wrapped key that does not unwrap with our private key.
    #[error("wrapped sender key does not unwrap")]
    Unwrap,
    /// Our private key is held outside ([`crate::e2ee::Identity::external`]): unwrap there.
    #[error("the private key is held outside this core")]
    ExternalKey,
    /// The frame counter of our sender key ran out (2^64 frames): never in practice.
    #[error("frame counter exhausted")]
    CounterExhausted,
    /// RSA key generation or wrapping failed.
    #[error("RSA: {0}")]
    Rsa(String),
    /// A key packet without a valid Ed25519 signature by its sender for this meeting, session
    /// and user: forged, unsigned, or signed for somewhere else.
    #[error("key packet not authenticated: {0}")]
    BadSignature(String),
    /// A sender key from a session whose signed public key we do not hold (yet): it cannot be
    /// authenticated. A KEY_REQUEST repairs it once the public key is in.
    #[error("sender key from session {0} before its signed public key")]
    NoIdentity(u64),
    /// A signed sender key of an epoch not newer than the one we hold: replayed or late.
    #[error("sender key epoch {epoch} of session {from} is not newer than the installed one")]
    StaleKey {
        /// The sender's session.
        from: u64,
        /// The packet's epoch.
        epoch: u32,
    },
    /// A key packet from a session that is not in the roster (too many held aside, or a key
    /// request from a stranger).
    #[error("session {0} is not in the roster")]
    OutsideRoster(u64),
    /// A peer sent more new sender keys than leaves in the meeting justify: refused without
    /// decrypting (bounds the RSA work, and the timing samples, a participant can cause).
    #[error("session {0} sent more sender keys than rotations justify")]
    TooManyKeys(u64),
    /// A sender key sealed under a channel key we do not hold (its RSA wrap was lost or
    /// refused): a KEY_REQUEST asks for a new RSA wrap.
    #[error("sender key from session {0} under a channel key we do not hold")]
    NoChannel(u64),
}

/// Under which counter a refused frame is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// [`E2eeError::Malformed`], [`E2eeError::NotSealed`].
    Malformed,
    /// [`E2eeError::UnknownSender`].
    UnknownSender,
    /// [`E2eeError::NoKey`].
    NoKey,
    /// [`E2eeError::StaleEpoch`].
    StaleEpoch,
    /// [`E2eeError::Replayed`].
    Replayed,
    /// [`E2eeError::TooOld`].
    TooOld,
    /// [`E2eeError::Authentication`].
    Authentication,
}

impl E2eeError {
    /// The drop counter a frame refused with this error goes to.
    pub fn drop_reason(&self) -> DropReason {
        match self {
            E2eeError::UnknownSender(_) => DropReason::UnknownSender,
            E2eeError::NoKey { .. } => DropReason::NoKey,
            E2eeError::StaleEpoch { .. } => DropReason::StaleEpoch,
            E2eeError::Replayed(_) => DropReason::Replayed,
            E2eeError::TooOld(_) => DropReason::TooOld,
            E2eeError::Authentication => DropReason::Authentication,
            _ => DropReason::Malformed,
        }
    }
}

/// Frames dropped by [`crate::e2ee::E2ee::open`], by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    /// Undecodable, unsealed or inconsistent envelopes.
    pub malformed: u64,
    /// From sessions we do not know.
    pub unknown_sender: u64,
    /// Under an epoch whose key has not arrived (request a keyframe).
    pub no_key: u64,
    /// Under a retired epoch.
    pub stale_epoch: u64,
    /// Counters already opened.
    pub replayed: u64,
    /// Counters below the replay window.
    pub too_old: u64,
    /// Tampered, or sealed under another key.
    pub authentication: u64,
}

impl DropCounts {
    /// Counts one drop.
    pub(crate) fn count(&mut self, reason: DropReason) {
        let counter = match reason {
            DropReason::Malformed => &mut self.malformed,
            DropReason::UnknownSender => &mut self.unknown_sender,
            DropReason::NoKey => &mut self.no_key,
            DropReason::StaleEpoch => &mut self.stale_epoch,
            DropReason::Replayed => &mut self.replayed,
            DropReason::TooOld => &mut self.too_old,
            DropReason::Authentication => &mut self.authentication,
        };
        *counter += 1;
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.malformed
            + self.unknown_sender
            + self.no_key
            + self.stale_epoch
            + self.replayed
            + self.too_old
            + self.authentication
    }
}
