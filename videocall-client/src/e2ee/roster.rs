//! Who is in the meeting as E2EE sees it, and the sender keys it received from them.
//!
//! Peers enter only through the roster (`E2ee::handle_peer_joined`, fed by the relay's meeting
//! events): a public key from any other session is held aside, never wrapped for. Received
//! sender keys are kept by the sender's signing key rather than by session, so that a re-join of
//! ours (peers forgotten and announced again) does not reset their replay windows: a recorded
//! AES_KEY replayed to us installs nothing that was not already there.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::channel::ChannelKey;
use super::key_packets::PeerIdentity;
use super::sender_key::ReceivingKey;
use super::signing::SIGNING_KEY_LEN;

/// Sender keys a peer may make us unwrap before any join or leave: its first key, plus slack
/// for a rotation it did before we saw its cause and for a re-key racing a join.
pub(crate) const UNWRAP_CREDIT_INITIAL: u32 = 4;
/// Most unwrap credit a peer can hold: a long meeting with many joins and leaves does not let a
/// peer save up a burst of RSA decryptions.
pub(crate) const UNWRAP_CREDIT_MAX: u32 = 16;
/// Most public keys held for sessions not (yet) in the roster; more are refused and counted.
pub(crate) const PENDING_MAX: usize = 64;
/// Most senders whose keys are remembered; past it, those of senders no longer here go first.
pub(crate) const KEYRING_MAX: usize = 1024;

/// A peer in the roster.
#[derive(Debug)]
pub(crate) struct Peer {
    pub(crate) user: String,
    /// Its keys, once its signed RSA_PUB_KEY arrived.
    pub(crate) identity: Option<PeerIdentity>,
    /// How many more of its sender keys we will unwrap; each join or leave grants one more.
    pub(crate) unwrap_credit: u32,
    /// The newest epoch handed out for an external unwrap and not back yet.
    pub(crate) unwrapping: Option<u32>,
    /// The epoch we last asked it for (KEY_REQUEST) since its last key reached us.
    pub(crate) asked: Option<u32>,
    /// Its frames that failed to open for want of a key, since its last key or our last ask.
    pub(crate) failed: u32,
    /// Our epoch it last asked for and was answered: one answer per epoch.
    pub(crate) answered: Option<u32>,
    /// The channel key we wrap our sender keys for it with, once an RSA wrap carried it.
    pub(crate) channel_out: Option<ChannelKey>,
    /// The channel key it wraps its sender keys for us with.
    pub(crate) channel_in: Option<ChannelKey>,
    /// A channel wrap (epoch, sealed) that came while the RSA wrap carrying its channel key was
    /// still being unwrapped outside: opened once that is done.
    pub(crate) deferred: Option<(u32, Bytes)>,
}

impl Peer {
    pub(crate) fn new(user: String) -> Self {
        Self {
            user,
            identity: None,
            unwrap_credit: UNWRAP_CREDIT_INITIAL,
            unwrapping: None,
            asked: None,
            failed: 0,
            answered: None,
            channel_out: None,
            channel_in: None,
            deferred: None,
        }
    }

    pub(crate) fn signing_key(&self) -> Option<&[u8; SIGNING_KEY_LEN]> {
        self.identity.as_ref().map(|i| &i.signing_key)
    }
}

/// A sender's current key and the previous one (still opening frames in flight for a grace).
#[derive(Debug, Default)]
pub(crate) struct SenderKeys {
    pub(crate) current: Option<ReceivingKey>,
    pub(crate) previous: Option<ReceivingKey>,
}

/// Received sender keys by the sender's Ed25519 key.
#[derive(Debug, Default)]
pub(crate) struct Keyring {
    senders: BTreeMap<[u8; SIGNING_KEY_LEN], SenderKeys>,
}

impl Keyring {
    pub(crate) fn get_mut(&mut self, sender: &[u8; SIGNING_KEY_LEN]) -> Option<&mut SenderKeys> {
        self.senders.get_mut(sender)
    }

    /// The epoch of `sender`'s current key.
    pub(crate) fn epoch(&self, sender: &[u8; SIGNING_KEY_LEN]) -> Option<u32> {
        self.senders
            .get(sender)?
            .current
            .as_ref()
            .map(ReceivingKey::epoch)
    }

    /// Installs `key` as `sender`'s current one (the caller checked it is newer). When the ring
    /// is full, senders not in `present` are forgotten first.
    pub(crate) fn install(
        &mut self,
        sender: [u8; SIGNING_KEY_LEN],
        key: ReceivingKey,
        present: &BTreeSet<[u8; SIGNING_KEY_LEN]>,
    ) {
        if !self.senders.contains_key(&sender) && self.senders.len() >= KEYRING_MAX {
            self.senders.retain(|s, _| present.contains(s));
        }
        let keys = self.senders.entry(sender).or_default();
        // Frames in flight are most likely under the epoch just before the new key: the
        // sender's last ratchet of what we hold, if we had not followed it yet.
        keys.previous = keys
            .current
            .take()
            .map(|current| match key.epoch().checked_sub(1) {
                Some(last) if last > current.epoch() => current.ratcheted(last).unwrap_or(current),
                _ => current,
            });
        keys.current = Some(key);
    }
}
