//! Input from local sessions: decoding, limits, identity stamping, subscriptions and keyframe
//! requests. Every refusal is counted, and the sender is told why in a RELAY_NOTICE.

use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use videocall_types::{
    MediaPacket, NoticeReason, PacketType, PacketWrapper, RelayNotice, SessionId,
    SubscriptionPacket, chat_limits, packets,
};

use super::host::HostAction;
use super::presence::heartbeat_flags;
use super::{CloseReason, Relay, SECOND};
use crate::classify::{Class, classify, directed_target, is_clear_chat, is_clear_media};
use crate::config::max_subscription_bytes;
use crate::error::InboundError;
use crate::metrics::DropReason;
use crate::subscription::Subscription;

impl Relay {
    /// One message from local session `session`: `data` must be one encoded `PacketWrapper`.
    /// Errors are counted; the packet is then discarded and the session stays open.
    pub fn handle_inbound(
        &mut self,
        now: Instant,
        session: SessionId,
        data: Bytes,
    ) -> Result<(), InboundError> {
        let Some(s) = self.sessions.get_mut(&session) else {
            return Err(InboundError::UnknownSession);
        };
        let max = self.config.max_frame_bytes;
        let len = data.len();
        if len > max {
            self.metrics.drop(DropReason::Oversize);
            let message = format!("packet of {len} bytes exceeds the {max}-byte limit");
            self.notify(
                now,
                session,
                packets::notice(NoticeReason::Oversize, 0, len, max, message),
            );
            return Err(InboundError::Oversize { len, max });
        }
        if !s.inbound_packets.take(now, 1) || !s.inbound_bytes.take(now, len as u64) {
            self.metrics.drop(DropReason::RateLimited);
            self.over_limit(now, session);
            return Err(InboundError::RateLimited);
        }
        let mut wrapper = match PacketWrapper::decode(data) {
            Ok(w) => w,
            Err(e) => {
                self.metrics.drop(DropReason::Malformed);
                return Err(InboundError::Malformed(e.to_string()));
            }
        };
        let packet_type = match PacketType::try_from(wrapper.packet_type) {
            Ok(PacketType::Unknown) | Err(_) => {
                self.metrics.drop(DropReason::UnknownType);
                return Err(InboundError::UnknownPacketType(wrapper.packet_type));
            }
            Ok(t) => t,
        };
        // Only a well-formed packet keeps a session alive: garbage every few seconds does not.
        if let Some(s) = self.sessions.get_mut(&session) {
            s.last_inbound = now;
        }
        match packet_type {
            PacketType::Meeting => return self.host_request(now, session, &wrapper.data, len),
            PacketType::SessionAssigned
            | PacketType::Congestion
            | PacketType::RelayNotice
            | PacketType::Presence => {
                self.metrics.drop(DropReason::ServerOnly);
                return Err(InboundError::ServerOnly(packet_type));
            }
            // HEALTH reports are for the server's own statistics; CONNECTION is the original's
            // join message, whose meeting already came with the connection path.
            PacketType::Health | PacketType::Connection => {
                self.count_in(len);
                return Ok(());
            }
            PacketType::Subscription => return self.subscribe(now, session, wrapper.data, len),
            PacketType::Chat | PacketType::Reaction => {
                self.check_chat(now, session, packet_type, &wrapper.data)?;
            }
            _ => {}
        }
        let class = classify(packet_type, &wrapper.data);
        let s = self
            .sessions
            .get_mut(&session)
            .expect("looked up at the top; nothing removed it since");
        match class {
            Class::Rtt => {
                // Probes come straight back so the client can time the round trip.
                self.count_in(len);
                let echo = wrapper.encode_to_vec().into();
                self.send_to(session, echo);
                return Ok(());
            }
            Class::KeyframeRequest => {
                if !s.keyframe_requests.allow(now, SECOND) {
                    self.metrics.drop(DropReason::KeyframeRequestThrottled);
                    return Err(InboundError::KeyframeRequestThrottled);
                }
                self.count_in(len);
                return self.forward_keyframe_request(now, session, &wrapper.data);
            }
            Class::Video { .. } | Class::Audio | Class::Opaque if !s.grants.publish => {
                // An observer: its keys, heartbeats and requests flow, its media does not.
                self.metrics.drop(DropReason::ObserverMedia);
                return Err(InboundError::NotPublisher);
            }
            Class::Video { .. } | Class::Audio
                if self.meetings.get(&s.meeting).is_some_and(|m| m.e2ee)
                    && is_clear_media(packet_type, &wrapper.data) =>
            {
                // Never let media in clear into an encrypted meeting (issue #16, downgrade).
                self.metrics.drop(DropReason::CleartextInE2eeMeeting);
                return Err(InboundError::CleartextInE2eeMeeting);
            }
            Class::Control if !s.inbound_control.take(now, len as u64) => {
                self.metrics.drop(DropReason::ControlRateLimited);
                self.over_limit(now, session);
                return Err(InboundError::RateLimited);
            }
            _ => {}
        }
        // Identity stamping: whatever the client claimed, the packet carries its real identity.
        wrapper.user_id = s.user_bytes.clone();
        wrapper.session_id = session.get();
        let packet: Bytes = wrapper.encode_to_vec().into();
        // A packet larger than a receiver's whole queue for its kind could never be delivered
        // (and a keyframe would be asked for forever): refuse it here, once.
        let budget = match class {
            Class::Video { .. } | Class::Opaque => self.config.queue_video_bytes,
            Class::Audio => self.config.queue_video_bytes + self.config.queue_audio_headroom_bytes,
            _ => self.config.queue_control_bytes,
        };
        if packet.len() > budget {
            self.metrics.drop(DropReason::FrameTooLarge);
            let message = format!(
                "frame of {} bytes exceeds the {budget}-byte queue of its receivers",
                packet.len()
            );
            let t = packet_type as i32;
            self.notify(
                now,
                session,
                packets::notice(
                    NoticeReason::FrameTooLarge,
                    t,
                    packet.len(),
                    budget,
                    message,
                ),
            );
            return Err(InboundError::FrameTooLarge {
                len: packet.len(),
                max: budget,
            });
        }
        if let Some(target) = directed_target(packet_type, &wrapper.data) {
            let is_chat = packet_type == PacketType::Chat;
            return self.send_key(session, target, packet, len, is_chat);
        }
        let (meeting, subject, user) = (s.meeting.clone(), s.subject.clone(), s.user_bytes.clone());
        self.count_in(len);
        let heartbeat = heartbeat_flags(packet_type, class, &wrapper.data);
        self.fan_out_with_presence(now, &meeting, session, &packet, class, &user, heartbeat);
        self.publish(subject, packet);
        Ok(())
    }

    /// A CHAT or REACTION (issue #18): over its size cap it is dropped, counted and the sender
    /// told (RELAY_NOTICE); a CHAT in clear in an encrypted meeting is dropped and counted (the
    /// relay must never carry chat text there). Rate: the session's control budget, as other
    /// control traffic.
    fn check_chat(
        &mut self,
        now: Instant,
        session: SessionId,
        packet_type: PacketType,
        data: &Bytes,
    ) -> Result<(), InboundError> {
        let max = match packet_type {
            PacketType::Chat => chat_limits::MAX_CHAT_PACKET_BYTES,
            _ => chat_limits::MAX_REACTION_PACKET_BYTES,
        };
        if data.len() > max {
            self.metrics.drop(DropReason::ChatTooLarge);
            let message = format!(
                "{} of {} bytes exceeds the {max}-byte limit",
                packet_type.as_str_name(),
                data.len()
            );
            let notice = packets::notice(
                NoticeReason::Oversize,
                packet_type as i32,
                data.len(),
                max,
                message,
            );
            self.notify(now, session, notice);
            return Err(InboundError::ChatTooLarge {
                kind: packet_type,
                len: data.len(),
                max,
            });
        }
        let meeting = &self.sessions[&session].meeting;
        let e2ee = self.meetings.get(meeting).is_some_and(|m| m.e2ee);
        if e2ee && is_clear_chat(packet_type, data) {
            self.metrics.drop(DropReason::CleartextInE2eeMeeting);
            return Err(InboundError::CleartextInE2eeMeeting);
        }
        Ok(())
    }

    /// A packet for one session — an E2EE key packet (issue #16) or chat history (issue #18):
    /// delivered to it alone, here or over the bus; a target outside the sender's meeting is
    /// dropped and counted.
    fn send_key(
        &mut self,
        session: SessionId,
        target: u64,
        packet: Bytes,
        len: usize,
        is_chat: bool,
    ) -> Result<(), InboundError> {
        let meeting = self.sessions[&session].meeting.clone();
        let target_id = SessionId::from_wire(target).filter(|t| {
            *t != session
                && (self.sessions.get(t).is_some_and(|s| s.meeting == meeting)
                    || self
                        .meetings
                        .get(&meeting)
                        .is_some_and(|m| m.remote.contains_key(t)))
        });
        let Some(target_id) = target_id else {
            if is_chat {
                self.metrics.drop(DropReason::ChatTargetUnknown);
                return Err(InboundError::ChatTargetUnknown(target));
            }
            self.metrics.drop(DropReason::KeyTargetUnknown);
            return Err(InboundError::KeyTargetUnknown(target));
        };
        self.count_in(len);
        self.send_directed(&meeting, session, target_id, packet);
        Ok(())
    }

    /// A MEETING packet from a client: a host's remove / mute / end request is carried out (and
    /// published to the other nodes); from a session without the host grant it is dropped and
    /// counted. Any other meeting event is the server's to send.
    fn host_request(
        &mut self,
        now: Instant,
        session: SessionId,
        data: &Bytes,
        len: usize,
    ) -> Result<(), InboundError> {
        let Some(action) = HostAction::from_event(data) else {
            self.metrics.drop(DropReason::ServerOnly);
            return Err(InboundError::ServerOnly(PacketType::Meeting));
        };
        let s = &self.sessions[&session];
        if !s.grants.host {
            self.metrics.drop(DropReason::NotHost);
            return Err(InboundError::NotHost);
        }
        let meeting = s.meeting.clone();
        self.count_in(len);
        self.host_action(now, &meeting, action);
        Ok(())
    }

    /// A packet over the rate limit: the session is closed once it has stayed over the limit
    /// (no second without a refusal) for `rate_limit_grace`.
    pub(super) fn over_limit(&mut self, now: Instant, session: SessionId) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        let continuing = s
            .last_over_limit
            .is_some_and(|at| now.saturating_duration_since(at) < SECOND);
        if !continuing {
            s.over_limit_since = Some(now);
        }
        s.last_over_limit = Some(now);
        let since = s.over_limit_since.unwrap_or(now);
        if now.saturating_duration_since(since) >= self.config.rate_limit_grace {
            let message = "closed: over the inbound rate limit for too long";
            self.notify(
                now,
                session,
                packets::notice(NoticeReason::CutOffRate, 0, 0, 0, message),
            );
            self.close(now, session, CloseReason::RateLimited);
        } else {
            let limit = self.config.max_inbound_bytes_per_sec as usize;
            let message = "over the inbound rate limit: packets are being dropped";
            self.notify(
                now,
                session,
                packets::notice(NoticeReason::RateLimited, 0, 0, limit, message),
            );
        }
    }

    /// Tells `session` why its input was refused, at most [`NOTICES_PER_SEC`] a second. The
    /// notice bypasses the queue budgets (it is rare and small) but not the session's limit.
    pub(super) fn notify(&mut self, now: Instant, session: SessionId, notice: RelayNotice) {
        let Some(s) = self.sessions.get_mut(&session) else {
            return;
        };
        if !s.notices.allow(now, SECOND) {
            return;
        }
        let packet = packets::encode(&packets::relay_notice(session, &notice));
        self.metrics.notices_sent += 1;
        self.send_to(session, packet);
    }

    /// A SUBSCRIPTION from `session`: refused before decoding when larger than the meeting's
    /// size allows; ids of nobody in the meeting are ignored.
    pub(super) fn subscribe(
        &mut self,
        now: Instant,
        session: SessionId,
        data: Bytes,
        len: usize,
    ) -> Result<(), InboundError> {
        let meeting_id = &self.sessions[&session].meeting;
        let participants = self
            .meetings
            .get(meeting_id)
            .map_or(0, |m| m.participant_count() as usize);
        // A little slack for a subscription racing a join it has already heard of.
        let max = max_subscription_bytes(participants + 16);
        if data.len() > max {
            self.metrics.drop(DropReason::SubscriptionTooLarge);
            let message = format!(
                "subscription of {} bytes names more sessions than the meeting's {participants}",
                data.len()
            );
            let t = PacketType::Subscription as i32;
            self.notify(
                now,
                session,
                packets::notice(NoticeReason::Oversize, t, data.len(), max, message),
            );
            return Err(InboundError::SubscriptionTooLarge {
                len: data.len(),
                max,
            });
        }
        let sub = SubscriptionPacket::decode(data).map_err(|e| {
            self.metrics.drop(DropReason::Malformed);
            InboundError::Malformed(e.to_string())
        })?;
        self.count_in(len);
        self.set_subscription(now, session, sub);
        Ok(())
    }

    /// A receiver's KEYFRAME_REQUEST (the `MediaPacket` names the publisher's user): goes to
    /// that publisher only, and at most once per [`crate::KEYFRAME_FORWARD_INTERVAL`] per
    /// publisher
    /// however many receivers ask.
    pub(super) fn forward_keyframe_request(
        &mut self,
        now: Instant,
        session: SessionId,
        media: &Bytes,
    ) -> Result<(), InboundError> {
        let meeting_id = self.sessions[&session].meeting.clone();
        let target_user = MediaPacket::decode(media.clone())
            .map(|m| m.user_id)
            .unwrap_or_default();
        let publisher = self
            .meetings
            .get(&meeting_id)
            .and_then(|m| m.by_user.get(&target_user).copied())
            .filter(|p| *p != session);
        let Some(publisher) = publisher else {
            self.metrics.drop(DropReason::KeyframeRequestUnknownTarget);
            return Ok(());
        };
        if !self.feedback.keyframe_due(now, publisher) {
            self.metrics.drop(DropReason::KeyframeRequestAggregated);
            return Ok(());
        }
        let packet = packets::encode(&packets::keyframe_request(target_user, publisher));
        self.send_directed(&meeting_id, session, publisher, packet);
        Ok(())
    }

    pub(super) fn set_subscription(
        &mut self,
        now: Instant,
        session: SessionId,
        sub: SubscriptionPacket,
    ) {
        let meeting_id = self.sessions[&session].meeting.clone();
        let (sessions, meetings) = (&self.sessions, &self.meetings);
        let is_member = |id: SessionId| {
            id != session
                && (sessions.get(&id).is_some_and(|s| s.meeting == meeting_id)
                    || meetings
                        .get(&meeting_id)
                        .is_some_and(|m| m.remote.contains_key(&id)))
        };
        let (new, ignored) = Subscription::from_packet(sub, is_member);
        self.metrics.subscription_ids_ignored += ignored;
        let s = self
            .sessions
            .get_mut(&session)
            .expect("callers pass a session they just looked up");
        // A stream newly subscribed to starts at a keyframe: deltas without their reference
        // would only show as corruption.
        let fresh = new
            .as_ref()
            .map(|new| new.newly_wanted(s.subscription.as_ref()))
            .unwrap_or_default();
        s.subscription = new;
        for stream in &fresh {
            s.queue.skip(*stream);
        }
        for stream in fresh {
            self.request_keyframe(now, &meeting_id, session, stream.session, None);
        }
    }
}
