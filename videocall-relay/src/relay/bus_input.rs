//! Input from the bus: other nodes' packets, what the roster learns from them, directed packets
//! for our sessions, and host actions carried out elsewhere.

use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use videocall_types::{
    MeetingEventType, MeetingPacket, PacketType, PacketWrapper, SYSTEM_USER_ID, SessionId,
};

use super::Relay;
use super::admission::display_name;
use super::host::HostAction;
use super::presence::heartbeat_flags;
use super::roster::participant_event;
use super::timer::Timer;
use crate::classify::{Class, classify, is_clear_chat, is_clear_media};
use crate::metrics::DropReason;
use crate::subject;

impl Relay {
    /// One message from the bus, delivered on a subscription the relay asked for.
    pub fn handle_bus(&mut self, now: Instant, subject: &str, payload: Bytes) {
        self.metrics.bus_received += 1;
        let Some(parsed) = subject::parse(subject) else {
            self.metrics.drop(DropReason::BusMalformed);
            return;
        };
        if parsed.origin.node() == self.config.node_id & ((1 << SessionId::NODE_BITS) - 1) {
            return; // our own publication echoed back
        }
        let Some(meeting_id) = self.meetings.get(parsed.meeting).map(|m| m.id.clone()) else {
            return; // a meeting this node no longer serves
        };
        let Ok(wrapper) = PacketWrapper::decode(payload.clone()) else {
            self.metrics.drop(DropReason::BusMalformed);
            return;
        };
        let packet_type = PacketType::try_from(wrapper.packet_type).unwrap_or(PacketType::Unknown);
        let from_system = wrapper.user_id == SYSTEM_USER_ID.as_bytes();
        if from_system
            && packet_type == PacketType::Meeting
            && let Some(action) = HostAction::from_event(&wrapper.data)
        {
            // Another node (or the meeting API's) carried out a host action: ours are local.
            self.apply_host_action(now, &meeting_id, &action);
            return;
        }
        let meeting = self
            .meetings
            .get_mut(&meeting_id)
            .expect("looked up above; nothing removed it since");
        let origin = parsed.origin;
        let e2ee = meeting.e2ee;
        // Whether this message taught us a participant we did not know.
        let mut learned = false;
        let mut joined_event = false;
        // Leaves waiting here that this message showed were moves to another node.
        let mut moved_here = 0;
        let room = meeting.has_room_for(origin, self.config.max_remote_per_meeting);
        if from_system && packet_type == PacketType::Meeting {
            if let Ok(event) = MeetingPacket::decode(wrapper.data.clone()) {
                match MeetingEventType::try_from(event.event_type) {
                    Ok(MeetingEventType::ParticipantJoined) if !room => {
                        self.metrics.drop(DropReason::RemotePeersFull);
                        return;
                    }
                    Ok(MeetingEventType::ParticipantJoined) => {
                        let user = event.target_user_id;
                        let name = display_name(&event.display_name, &user);
                        // The user's session on yet another node that this one replaces.
                        let replaced = if meeting.remote.contains_key(&origin) {
                            None // a roster reply repeating a session we know
                        } else {
                            meeting.replace_remote(&user, Some(origin))
                        };
                        learned = meeting.learn_joined(now, origin, user.clone(), name);
                        if learned {
                            // Back through another node within the reconnect grace (a node
                            // drained, or this connection dropped): the user never left.
                            moved_here = meeting.cancel_leaves_of(&user);
                        }
                        if let Some(old) = replaced {
                            self.feedback.forget(old);
                        }
                        joined_event = true;
                    }
                    Ok(MeetingEventType::ParticipantLeft) => {
                        meeting.remote_left(origin);
                        self.feedback.forget(origin);
                    }
                    _ => {}
                }
            }
        } else if !from_system {
            // Nodes also learn the roster from traffic: clients send a heartbeat every second.
            if !room {
                self.metrics.drop(DropReason::RemotePeersFull);
                return;
            }
            learned = meeting.heard_from(now, origin, &wrapper.user_id);
        }
        if moved_here > 0 {
            self.metrics.leaves_replaced += moved_here as u64;
            if meeting.local.is_empty() && meeting.pending_leaves.is_empty() {
                // Whoever was here has moved on: nothing left to serve (a drain's last step).
                self.forget_meeting_if_unused(&meeting_id);
                return;
            }
        }
        if meeting.arm_remote_expiry() {
            let at = now + self.config.idle_timeout;
            self.timers
                .push(at, Timer::RemoteExpiry(meeting_id.clone()));
        }
        if e2ee && is_clear_chat(packet_type, &wrapper.data) {
            // Chat text in clear never reaches a session of an encrypted meeting (issue #18).
            self.metrics.drop(DropReason::CleartextInE2eeMeeting);
            return;
        }
        if let Some(target) = parsed.target {
            if joined_event {
                // A roster reply to a newcomer of ours (see below). Every session here hears of
                // a participant the node learns, whichever session the reply was meant for.
                if learned {
                    self.fan_out(
                        now,
                        &meeting_id,
                        origin,
                        &payload,
                        Class::Control,
                        &wrapper.user_id,
                    );
                }
            } else if self
                .sessions
                .get(&target)
                .is_some_and(|s| s.meeting == meeting_id)
            {
                // CONGESTION, a relay's KEYFRAME_REQUEST for one of our publishers, or a
                // session's key packet or chat history for one of ours; keyframe
                // requests from every node together reach it at most once per interval.
                let keyframe = classify(packet_type, &wrapper.data) == Class::KeyframeRequest;
                if keyframe && !self.feedback.keyframe_due(now, target) {
                    self.metrics.drop(DropReason::KeyframeRequestAggregated);
                    return;
                }
                self.send_to(target, payload);
            }
            return;
        }
        if learned && joined_event {
            // A participant on another node joined: tell its node who is here. Without this a
            // node that starts serving a meeting late would not know who joined before it
            // subscribed.
            let count = meeting.participant_count();
            let here: Vec<(SessionId, (Bytes, Bytes))> = meeting
                .local
                .iter()
                .filter_map(|s| {
                    let x = self.sessions.get(s)?;
                    // Not a session its user has replaced (one moving to the newcomer's node,
                    // whose connection here has not closed yet): announced again, it would
                    // replace the new session in every client.
                    (meeting.by_user.get(&x.user_bytes) == Some(s))
                        .then(|| (*s, (x.user_bytes.clone(), x.display_name.clone())))
                })
                .collect();
            for (session, who) in here {
                let event = participant_event(
                    MeetingEventType::ParticipantJoined,
                    &meeting_id,
                    count,
                    who,
                    session,
                );
                self.publish(
                    subject::directed_subject(&meeting_id, session, origin),
                    event,
                );
            }
        } else if learned {
            // Traffic from someone whose join we never saw (their node was cut off from the bus
            // when they joined): announce them here.
            let count = meeting.participant_count();
            let event = participant_event(
                MeetingEventType::ParticipantJoined,
                &meeting_id,
                count,
                (wrapper.user_id.clone(), wrapper.user_id.clone()),
                origin,
            );
            self.fan_out(
                now,
                &meeting_id,
                origin,
                &event,
                Class::Control,
                &wrapper.user_id,
            );
        }
        let class = match classify(packet_type, &wrapper.data) {
            Class::Rtt => return, // probes are answered by the sender's own node
            Class::Video { .. } | Class::Audio
                if e2ee && is_clear_media(packet_type, &wrapper.data) =>
            {
                // Published by a node that did not know the meeting is encrypted, or by
                // anyone else on the bus: not for our sessions.
                self.metrics.drop(DropReason::CleartextInE2eeMeeting);
                return;
            }
            class => class,
        };
        // Every node sees every heartbeat (O(N) per node) and decides for its own sessions.
        let heartbeat = heartbeat_flags(packet_type, class, &wrapper.data);
        self.fan_out_with_presence(
            now,
            &meeting_id,
            origin,
            &payload,
            class,
            &wrapper.user_id,
            heartbeat,
        );
    }
}
