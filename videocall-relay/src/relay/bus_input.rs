//! Input from the bus: other nodes' packets, the roster learnt from them, and participants whose
//! node went quiet.

use std::cmp::Reverse;
use std::time::Instant;

use bytes::Bytes;
use prost::Message;
use videocall_types::{
    MeetingEventType, MeetingId, MeetingPacket, PacketType, PacketWrapper, SYSTEM_USER_ID,
    SessionId,
};

use super::admission::display_name;
use super::host::HostAction;
use super::{Relay, RemotePeer, Timer, participant_event};
use crate::classify::{Class, classify};
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
        // Whether this message taught us a participant we did not know.
        let mut learned = false;
        let mut joined_event = false;
        // Leaves waiting here that this message showed were moves to another node.
        let mut moved_here = 0;
        // The user's session on yet another node that this JOINED replaces.
        let mut replaced = None;
        let full = meeting.remote.len() >= self.config.max_remote_per_meeting
            && !meeting.remote.contains_key(&origin);
        if from_system && packet_type == PacketType::Meeting {
            if let Ok(event) = MeetingPacket::decode(wrapper.data.clone()) {
                match MeetingEventType::try_from(event.event_type) {
                    Ok(MeetingEventType::ParticipantJoined) if full => {
                        self.metrics.drop(DropReason::RemotePeersFull);
                        return;
                    }
                    Ok(MeetingEventType::ParticipantJoined) => {
                        let user = event.target_user_id;
                        let peer = RemotePeer {
                            display_name: display_name(&event.display_name, &user),
                            user: user.clone(),
                            last_seen: now,
                        };
                        learned = meeting.remote.insert(origin, peer).is_none();
                        // A roster reply repeating a session we know must not make an older
                        // session of the user its latest again.
                        if learned {
                            // Back through another node within the reconnect grace (a node
                            // drained, or this connection dropped): the user never left.
                            let waiting = meeting.pending_leaves.len();
                            meeting.pending_leaves.retain(|p| p.user != user);
                            moved_here = waiting - meeting.pending_leaves.len();
                            replaced = meeting.replace_remote(&user, Some(origin));
                            meeting.by_user.insert(user, origin);
                        }
                        joined_event = true;
                    }
                    Ok(MeetingEventType::ParticipantLeft) => {
                        if let Some(peer) = meeting.remote.remove(&origin) {
                            meeting.forget_user(&peer.user, origin);
                        }
                        self.congestion_sent.remove(&origin);
                        self.keyframe_forwarded.remove(&origin);
                    }
                    _ => {}
                }
            }
        } else if !from_system {
            // Nodes also learn the roster from traffic: clients send a heartbeat every second.
            match meeting.remote.get_mut(&origin) {
                Some(peer) => peer.last_seen = now,
                None if full => {
                    self.metrics.drop(DropReason::RemotePeersFull);
                    return;
                }
                None => {
                    learned = true;
                    let peer = RemotePeer {
                        user: wrapper.user_id.clone(),
                        display_name: wrapper.user_id.clone(),
                        last_seen: now,
                    };
                    meeting.by_user.insert(wrapper.user_id.clone(), origin);
                    meeting.remote.insert(origin, peer);
                }
            }
        }
        if let Some(old) = replaced {
            // Fields, not `forget_remote_session`: `meeting` is still borrowed.
            self.congestion_sent.remove(&old);
            self.keyframe_forwarded.remove(&old);
        }
        if moved_here > 0 {
            self.metrics.leaves_replaced += moved_here as u64;
            if meeting.local.is_empty() && meeting.pending_leaves.is_empty() {
                // Whoever was here has moved on: nothing left to serve (a drain's last step).
                self.forget_meeting_if_empty(&meeting_id);
                return;
            }
        }
        if !meeting.remote_timer_armed && !meeting.remote.is_empty() {
            meeting.remote_timer_armed = true;
            self.timers.push(Reverse((
                now + self.config.idle_timeout,
                Timer::RemoteExpiry,
                Some(meeting_id.clone()),
            )));
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
                // CONGESTION or a relay's KEYFRAME_REQUEST for one of our publishers; keyframe
                // requests from every node together reach it at most once per interval.
                let keyframe = classify(packet_type, &wrapper.data) == Class::KeyframeRequest;
                if keyframe && !self.keyframe_due(now, target) {
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
            class => class,
        };
        self.fan_out(now, &meeting_id, origin, &payload, class, &wrapper.user_id);
    }

    pub(super) fn expire_remote(&mut self, now: Instant, meeting_id: &MeetingId) {
        let idle = self.config.idle_timeout;
        let Some(meeting) = self.meetings.get_mut(meeting_id) else {
            return;
        };
        meeting.remote_timer_armed = false;
        let gone: Vec<(SessionId, Bytes)> = meeting
            .remote
            .iter()
            .filter(|(_, p)| p.last_seen + idle <= now)
            .map(|(s, p)| (*s, p.user.clone()))
            .collect();
        for (session, user) in &gone {
            meeting.remote.remove(session);
            meeting.forget_user(user, *session);
        }
        if let Some(next) = meeting.remote.values().map(|p| p.last_seen + idle).min() {
            meeting.remote_timer_armed = true;
            self.timers.push(Reverse((
                next,
                Timer::RemoteExpiry,
                Some(meeting_id.clone()),
            )));
        }
        // Their node went quiet without saying goodbye (crashed or cut off): tell our sessions.
        for (session, user) in gone {
            self.congestion_sent.remove(&session);
            self.keyframe_forwarded.remove(&session);
            let count = self.meetings[meeting_id].participant_count();
            let event = participant_event(
                MeetingEventType::ParticipantLeft,
                meeting_id,
                count,
                (user.clone(), user.clone()),
                session,
            );
            self.fan_out(now, meeting_id, session, &event, Class::Control, &user);
        }
    }
}
