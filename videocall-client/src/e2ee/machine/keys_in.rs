//! Key packets in: a peer's signed public key, its sender keys (RSA-wrapped or under our channel
//! key) and its requests for ours, and installing what unwraps.

use bytes::Bytes;

use super::E2ee;
use crate::e2ee::channel::{self, WrapContext};
use crate::e2ee::error::E2eeError;
use crate::e2ee::key_packets::{self, SENDER_KEY_CHANNEL_VERSION, SENDER_KEY_VERSION};
use crate::e2ee::roster::{PENDING_MAX, Peer};
use crate::e2ee::sender_key::{KeyMaterial, ReceivingKey};
use crate::e2ee::types::UnwrapRequest;
use videocall_types::PacketWrapper;

impl E2ee {
    pub(super) fn public_key_packet(&mut self, wrapper: &PacketWrapper) -> Result<(), E2eeError> {
        let from = wrapper.session_id;
        if Some(from) == self.session {
            return Ok(());
        }
        // The announce we already verified, again (every member announces again when someone
        // joins, for the joiner): same session, user and keys, so the same signed message.
        if let Some(peer) = self.peers.get(&from)
            && let Some(known) = &peer.identity
            && key_packets::is_known_announce(wrapper, &peer.user, known)
        {
            return Ok(());
        }
        let (user, identity) = key_packets::check_announce(&self.meeting, wrapper)?;
        let Some(peer) = self.peers.get_mut(&from).filter(|p| p.user == user) else {
            // Not in the roster: held until the relay announces it, never wrapped for.
            if self.pending.len() >= PENDING_MAX && !self.pending.contains_key(&from) {
                return Err(E2eeError::OutsideRoster(from));
            }
            self.pending.insert(from, (user, identity));
            self.stats.outside_roster += 1;
            return Ok(());
        };
        match &peer.identity {
            Some(known) if *known == identity => Ok(()),
            Some(_) => Err(E2eeError::KeyChanged(from)),
            None => {
                peer.identity = Some(identity);
                self.unwrapped_for.insert(from);
                Ok(())
            }
        }
    }

    pub(super) fn sender_key_packet(&mut self, wrapper: &PacketWrapper) -> Result<(), E2eeError> {
        let from = wrapper.session_id;
        let packet = key_packets::decode_sender_key(wrapper)?;
        let Some(ours) = self.session else {
            return Ok(());
        };
        let Some(entry) = packet.keys.iter().find(|k| k.recipient_session == ours) else {
            // Addressed to others.
            return Ok(());
        };
        let Some((peer, sender)) = self
            .peers
            .get_mut(&from)
            .and_then(|p| p.identity.clone().map(|i| (p, i)))
        else {
            return Err(E2eeError::NoIdentity(from));
        };
        key_packets::check_sender_key(&self.meeting, from, &packet, &sender)?;
        // Only newer epochs are unwrapped: a peer (or relay) cannot make us decrypt the same or
        // an old epoch again, which bounds the RSA decryptions it can trigger and keeps every
        // installed key's replay window.
        // One exception: the RSA answer to our request, older than a key we derived meanwhile
        // by the ratchet, still brings the channel key later wraps travel under.
        let answer = packet.version == SENDER_KEY_VERSION && peer.asked.is_some();
        if let Some(current) = self.keyring.epoch(&sender.signing_key)
            && packet.epoch <= current
            && !answer
        {
            return Err(E2eeError::StaleKey {
                from,
                epoch: packet.epoch,
            });
        }
        if packet.version == SENDER_KEY_CHANNEL_VERSION {
            return self.channel_wrap(from, ours, packet.epoch, entry.wrapped.clone());
        }
        if peer.unwrapping.is_some_and(|e| packet.epoch <= e) {
            return Ok(());
        }
        if peer.unwrap_credit == 0 {
            return Err(E2eeError::TooManyKeys(from));
        }
        // Spent whether or not the unwrap succeeds: failures are what an attacker would send.
        peer.unwrap_credit -= 1;
        if self.identity.is_external() {
            peer.unwrapping = Some(packet.epoch);
            self.unwraps.push_back(UnwrapRequest {
                from,
                epoch: packet.epoch,
                wrapped: entry.wrapped.clone(),
            });
            return Ok(());
        }
        let secret = self.identity.unwrap(&mut self.rng, &entry.wrapped)?;
        self.install(from, packet.epoch, &secret)
    }

    /// A sender key `from` sealed for us (`ours`) under its channel key. Without that key: held
    /// while the RSA wrap carrying it is being unwrapped outside, else asked for (KEY_REQUEST,
    /// answered with a new RSA wrap).
    pub(super) fn channel_wrap(
        &mut self,
        from: u64,
        ours: u64,
        epoch: u32,
        sealed: Bytes,
    ) -> Result<(), E2eeError> {
        let Some(peer) = self.peers.get_mut(&from) else {
            return Ok(());
        };
        let Some(channel) = peer.channel_in.clone() else {
            if peer.unwrapping.is_some() {
                peer.deferred = Some((epoch, sealed));
                return Ok(());
            }
            self.ask(from, epoch);
            return Err(E2eeError::NoChannel(from));
        };
        let context = WrapContext {
            meeting: &self.meeting,
            from,
            to: ours,
            epoch,
        };
        let Ok(secret) = channel.open(context, &sealed) else {
            // Sealed under a channel key we do not hold: the RSA wrap that carried the current
            // one was refused or lost.
            self.ask(from, epoch);
            return Err(E2eeError::NoChannel(from));
        };
        self.stats.channel_unwraps += 1;
        self.install(from, epoch, &secret)
    }

    /// A peer of the roster asks for our current key: wrapped for it alone, once per epoch.
    pub(super) fn key_request_packet(&mut self, wrapper: &PacketWrapper) -> Result<(), E2eeError> {
        let from = wrapper.session_id;
        let request = key_packets::decode_key_request(wrapper)?;
        if Some(request.target_session) != self.session {
            return Ok(());
        }
        let epoch = self.sending.epoch();
        let peer = self
            .peers
            .get_mut(&from)
            .ok_or(E2eeError::OutsideRoster(from))?;
        if peer.identity.is_none() || peer.answered == Some(epoch) {
            return Ok(());
        }
        peer.answered = Some(epoch);
        // It may have missed the RSA wrap that carried our channel key: answer with a new one.
        peer.channel_out = None;
        self.stats.key_requests_answered += 1;
        self.unwrapped_for.insert(from);
        Ok(())
    }

    /// Installs `from`'s unwrapped sender key of `epoch`, unless we hold a newer one.
    pub(super) fn install(
        &mut self,
        from: u64,
        epoch: u32,
        secret: &[u8],
    ) -> Result<(), E2eeError> {
        let (secret, channel) = channel::split_rsa_plaintext(secret);
        let material = KeyMaterial::from_secret(secret)?;
        if let Some(peer) = self.peers.get_mut(&from) {
            // Its key (or the answer to our request) is here: no more asking for now.
            peer.asked = None;
            peer.failed = 0;
            if let Some(channel) = channel {
                peer.channel_in = Some(channel);
            }
        }
        if material.epoch != epoch {
            return Err(E2eeError::Malformed(format!(
                "wrapped epoch {} in a packet of epoch {epoch}",
                material.epoch
            )));
        }
        let Some(sender) = self.peers.get(&from).and_then(Peer::signing_key).copied() else {
            return Ok(());
        };
        // An external unwrap may come back after a newer key was installed.
        if self.keyring.epoch(&sender).is_some_and(|e| e >= epoch) {
            return Ok(());
        }
        let present = self
            .peers
            .values()
            .filter_map(Peer::signing_key)
            .copied()
            .collect();
        self.keyring
            .install(sender, ReceivingKey::new(&material), &present);
        self.stats.keys_installed += 1;
        Ok(())
    }
}
