//! The client session state machine.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use prost::Message;
use videocall_types::{
    FinalClose, HeartbeatMetadata, MediaPacket, MediaType, MeetingEventType, MeetingPacket,
    PacketType, PacketWrapper, RelayNotice, SYSTEM_USER_ID, SessionId, SubscriptionPacket, UserId,
    packets,
};

use crate::e2ee::{
    E2ee, E2eeConfig, E2eeError, Identity, KeyHolder, OsRng, SafetyCode, UnwrapRequest,
};

mod chat;
mod config;
mod end;
mod event;
mod presence;
mod reconnect;
mod subscription;

pub use chat::Command;
pub use config::ClientConfig;

pub use event::{Action, ConnectionState, Event, MediaFrom, SessionError};
pub use presence::MAX_DIGEST_ENTRIES;
pub use subscription::Subscription;

/// Waits before reconnect attempts 1, 2, 3 and every later one.
pub const RECONNECT_BACKOFF: [Duration; 4] = [
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(10),
    Duration::from_secs(30),
];

/// Least time between two keyframe requests to the same peer.
const KEYFRAME_REQUEST_SPACING: Duration = Duration::from_millis(500);
/// Departed peer sessions remembered so that their late media is not taken for a newcomer.
const RETIRED_CAP: usize = 256;

/// The client protocol of one participant.
#[derive(Debug)]
pub struct Session {
    config: ClientConfig,
    state: ConnectionState,
    transport_open: bool,
    connect_deadline: Option<Duration>,
    next_heartbeat: Duration,
    next_rtt: Duration,
    heartbeat: HeartbeatMetadata,
    subscription: Option<SubscriptionPacket>,
    /// The relay's reconnect secret for our session (MEETING `RECONNECT_SECRET`), presented
    /// when we reconnect so the relay lets us replace our old session (no takeover otherwise).
    reconnect_secret: Option<String>,
    peers: HashMap<SessionId, UserId>,
    /// Peers' last known heartbeat state (only for sessions in `peers`).
    peer_states: HashMap<SessionId, HeartbeatMetadata>,
    keyframe_asked: HashMap<String, Duration>,
    transmit: VecDeque<Bytes>,
    events: VecDeque<Event>,
    actions: VecDeque<Action>,
    e2ee: Option<E2ee>,
    /// The last safety code told to the application.
    safety_code: Option<SafetyCode>,
    /// Peers or keys changed since the safety code was last computed.
    keys_changed: bool,
    /// Peer sessions already reported in an [`Event::E2eeMismatch`].
    mismatched: HashSet<SessionId>,
    /// Peer sessions that left or were replaced, newest last (at most [`RETIRED_CAP`]): media
    /// still in flight from them (a node that was draining, another node's bus) must not bring
    /// them back as peers.
    retired: VecDeque<SessionId>,
    /// Media dropped because of an E2EE mismatch (clear media while we encrypt, or sealed
    /// media while we do not).
    mismatch_drops: u64,
    /// Why the relay ended the session for good, once it has.
    ended: Option<FinalClose>,
    /// Chat history, raised hand, history owed to newcomers (issue #18).
    chat: chat::ChatState,
}

impl Session {
    /// A session that does nothing until [`Session::handle_start`].
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            state: ConnectionState::Idle,
            transport_open: false,
            connect_deadline: None,
            next_heartbeat: Duration::ZERO,
            next_rtt: Duration::ZERO,
            heartbeat: HeartbeatMetadata::default(),
            subscription: None,
            reconnect_secret: None,
            peers: HashMap::new(),
            peer_states: HashMap::new(),
            keyframe_asked: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            e2ee: None,
            safety_code: None,
            keys_changed: false,
            mismatched: HashSet::new(),
            retired: VecDeque::new(),
            mismatch_drops: 0,
            ended: None,
            chat: chat::ChatState::default(),
        }
    }

    /// A session that end-to-end encrypts under `identity`, or sends in clear (`None`): the one
    /// constructor every driver (native, browser, bot) uses, so they encrypt alike.
    pub fn with_identity(config: ClientConfig, identity: Option<Identity>) -> Self {
        match identity {
            Some(identity) => {
                let user = config.user_id.as_str().to_owned();
                let e2ee = E2ee::with_identity(E2eeConfig::default(), user, identity, OsRng);
                Self::with_e2ee(config, e2ee)
            }
            None => Self::new(config),
        }
    }

    /// A session whose media is end-to-end encrypted by `e2ee`: key packets are exchanged by
    /// the session itself, video, audio and screen frames are sealed in [`Session::send_media`]
    /// and opened before [`Event::Media`]; frames that do not open are dropped and counted
    /// (`e2ee().stats()`), and clear media from peers is refused ([`Event::E2eeMismatch`]).
    /// Heartbeats, RTT probes and keyframe requests stay in clear (the relay reads the last two).
    pub fn with_e2ee(config: ClientConfig, mut e2ee: E2ee) -> Self {
        // Key packets are signed for this meeting: packets of any other are refused.
        e2ee.set_meeting(config.meeting_id.as_str());
        Self {
            e2ee: Some(e2ee),
            ..Self::new(config)
        }
    }

    /// The E2EE state (safety code, counters), when the session encrypts.
    pub fn e2ee(&self) -> Option<&E2ee> {
        self.e2ee.as_ref()
    }

    /// The next sender key for the driver to unwrap with a private key held outside
    /// (`Identity::external`, e.g. a non-extractable WebCrypto key); the result goes to
    /// [`Session::handle_unwrapped`].
    pub fn poll_unwrap(&mut self) -> Option<UnwrapRequest> {
        self.e2ee.as_mut()?.poll_unwrap()
    }

    /// The result of an [`UnwrapRequest`] (`None`: the unwrap failed).
    pub fn handle_unwrapped(
        &mut self,
        now: Duration,
        request: &UnwrapRequest,
        secret: Option<&[u8]>,
    ) -> Result<(), SessionError> {
        let user = SessionId::from_wire(request.from).and_then(|s| self.peers.get(&s).cloned());
        let result = self.key_change(now, request.from, user, |e2ee| {
            e2ee.handle_unwrapped(request, secret)
        });
        self.flush_keys();
        result
    }

    /// Everyone our sender key is wrapped for, ourselves first (E2EE on): what the safety code
    /// commits to, to show next to it.
    pub fn key_holders(&self) -> Vec<KeyHolder> {
        self.e2ee
            .as_ref()
            .map(E2ee::key_holders)
            .unwrap_or_default()
    }

    /// The meeting's safety code as last told in [`Event::SafetyCode`] (E2EE on, joined).
    pub fn safety_code(&self) -> Option<SafetyCode> {
        self.safety_code
    }

    /// Media dropped because a peer and we disagree on encryption.
    pub fn mismatch_drops(&self) -> u64 {
        self.mismatch_drops
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Where the session is.
    pub fn state(&self) -> ConnectionState {
        self.state
    }

    /// Our session id while joined.
    pub fn session_id(&self) -> Option<SessionId> {
        match self.state {
            ConnectionState::Joined { session } => Some(session),
            _ => None,
        }
    }

    /// Peers known now: session → user id.
    pub fn peers(&self) -> &HashMap<SessionId, UserId> {
        &self.peers
    }

    /// Starts connecting.
    pub fn handle_start(&mut self, now: Duration) {
        if self.state == ConnectionState::Idle {
            self.connect(now, 1);
        }
    }

    /// The transport is open; the relay's SESSION_ASSIGNED completes the join.
    pub fn handle_connected(&mut self, _now: Duration) {
        if matches!(self.state, ConnectionState::Connecting { .. }) {
            self.transport_open = true;
        }
    }

    /// The transport failed or closed.
    pub fn handle_disconnected(&mut self, now: Duration, reason: impl Into<String>) {
        let attempt = match self.state {
            ConnectionState::Closed | ConnectionState::Idle | ConnectionState::Backoff { .. } => {
                return;
            }
            ConnectionState::Connecting { attempt } => attempt + 1,
            ConnectionState::Joined { .. } => 1,
        };
        let retry_in = self.config.reconnect.then(|| {
            let index = (attempt as usize)
                .saturating_sub(1)
                .min(RECONNECT_BACKOFF.len() - 1);
            RECONNECT_BACKOFF[index]
        });
        self.lose_connection(now, reason.into(), attempt, retry_in);
    }

    /// The connection is gone: peers are forgotten (the relay tells them again after the
    /// reconnect), the application is told, and attempt `attempt` comes after `retry_in`.
    fn lose_connection(
        &mut self,
        now: Duration,
        reason: String,
        attempt: u32,
        retry_in: Option<Duration>,
    ) {
        self.transport_open = false;
        self.connect_deadline = None;
        self.peer_states.clear();
        for (session, user) in std::mem::take(&mut self.peers) {
            self.events.push_back(Event::PeerLeft { session, user });
        }
        self.events
            .push_back(Event::Disconnected { reason, retry_in });
        self.state = match retry_in {
            Some(wait) => ConnectionState::Backoff {
                attempt,
                until: now + wait,
            },
            None => ConnectionState::Closed,
        };
    }

    /// One message from the relay (one encoded `PacketWrapper`).
    pub fn handle_packet(&mut self, now: Duration, bytes: Bytes) -> Result<(), SessionError> {
        let wrapper =
            PacketWrapper::decode(bytes).map_err(|e| SessionError::Malformed(e.to_string()))?;
        let from_system = wrapper.user_id == SYSTEM_USER_ID.as_bytes();
        match PacketType::try_from(wrapper.packet_type) {
            Ok(PacketType::SessionAssigned) if from_system => {
                if let Some(session) = SessionId::from_wire(wrapper.session_id) {
                    self.joined(now, session);
                }
            }
            Ok(PacketType::Meeting) if from_system => {
                let event = MeetingPacket::decode(wrapper.data)
                    .map_err(|e| SessionError::Malformed(e.to_string()))?;
                self.meeting_event(now, event);
            }
            Ok(PacketType::Congestion) => {
                if let Some(receiver) = UserId::from_wire(&wrapper.user_id) {
                    self.events.push_back(Event::Congestion { receiver });
                }
            }
            Ok(PacketType::RelayNotice) if from_system => {
                let notice = RelayNotice::decode(wrapper.data)
                    .map_err(|e| SessionError::Malformed(e.to_string()))?;
                self.events.push_back(Event::RelayNotice(notice));
            }
            Ok(PacketType::Presence) if from_system => self.presence_digest(wrapper.data)?,
            Ok(PacketType::Media) => self.media(now, wrapper),
            Ok(PacketType::Chat) => self.handle_chat(wrapper),
            Ok(PacketType::Reaction) => self.handle_reaction(wrapper),
            Ok(PacketType::RsaPubKey | PacketType::AesKey | PacketType::KeyRequest)
                if self.e2ee.is_some() =>
            {
                // The relay stamped the sender's identity.
                let user = UserId::from_wire(&wrapper.user_id);
                let result = self.key_change(now, wrapper.session_id, user, |e2ee| {
                    e2ee.handle_key_packet(&wrapper)
                });
                self.flush_keys();
                return result;
            }
            _ => self.events.push_back(Event::Other(wrapper)),
        }
        self.flush_keys();
        Ok(())
    }

    /// Runs the timers due at `now`: heartbeat, RTT probe, connect timeout, reconnect.
    pub fn handle_timeout(&mut self, now: Duration) {
        match self.state {
            ConnectionState::Backoff { attempt, until } if now >= until => {
                self.connect(now, attempt);
            }
            ConnectionState::Connecting { .. }
                if self.connect_deadline.is_some_and(|d| now >= d) =>
            {
                self.actions.push_back(Action::Close);
                self.handle_disconnected(now, "connection timed out");
            }
            ConnectionState::Joined { .. } => {
                if now >= self.next_heartbeat {
                    self.next_heartbeat = now + self.config.heartbeat_interval;
                    let media = MediaPacket {
                        media_type: MediaType::Heartbeat as i32,
                        user_id: self.user_bytes(),
                        timestamp: millis(now),
                        heartbeat_metadata: Some(self.heartbeat),
                        ..Default::default()
                    };
                    self.queue_media(&media);
                }
                if now >= self.next_rtt {
                    self.next_rtt = now + self.config.rtt_interval;
                    let media = MediaPacket {
                        media_type: MediaType::Rtt as i32,
                        user_id: self.user_bytes(),
                        timestamp: millis(now),
                        ..Default::default()
                    };
                    self.queue_media(&media);
                }
            }
            _ => {}
        }
    }

    /// When [`Session::handle_timeout`] should next run.
    pub fn poll_timeout(&self) -> Option<Duration> {
        match self.state {
            ConnectionState::Backoff { until, .. } => Some(until),
            ConnectionState::Connecting { .. } => self.connect_deadline,
            ConnectionState::Joined { .. } => Some(self.next_heartbeat.min(self.next_rtt)),
            ConnectionState::Idle | ConnectionState::Closed => None,
        }
    }

    /// Leaves the meeting for good.
    pub fn leave(&mut self) {
        if self.state != ConnectionState::Closed {
            self.state = ConnectionState::Closed;
            self.transmit.clear();
            self.actions.push_back(Action::Close);
        }
    }

    /// What we tell peers in heartbeats (camera/mic/screen on, speaking). A changed camera,
    /// mic or screen goes out at the next [`Session::handle_timeout`] rather than with the next
    /// periodic heartbeat, so peers see it at once; speaking waits for the period (it may flip
    /// many times a second).
    pub fn set_heartbeat(&mut self, heartbeat: HeartbeatMetadata) {
        let was = self.heartbeat;
        self.heartbeat = heartbeat;
        let media = |h: HeartbeatMetadata| (h.video_enabled, h.audio_enabled, h.screen_enabled);
        if media(was) != media(heartbeat) {
            self.next_heartbeat = Duration::ZERO;
        }
    }

    /// Sends a media packet (video, audio, screen). Its identity fields are ours.
    pub fn send_media(&mut self, mut media: MediaPacket) -> Result<(), SessionError> {
        if self.session_id().is_none() {
            return Err(SessionError::NotJoined(self.state));
        }
        media.user_id = self.user_bytes();
        if self.e2ee.is_some() && is_private(media.media_type) {
            // Peers must hold our key before frames sealed under it.
            self.flush_keys();
            let envelope = self
                .e2ee
                .as_mut()
                .expect("checked on the line above")
                .seal(&media)?;
            return self.send_packet(PacketType::Media, envelope);
        }
        self.queue_media(&media);
        Ok(())
    }

    /// Sends any other packet type (keys, diagnostics) with our identity.
    pub fn send_packet(
        &mut self,
        packet_type: PacketType,
        data: Bytes,
    ) -> Result<(), SessionError> {
        let Some(session) = self.session_id() else {
            return Err(SessionError::NotJoined(self.state));
        };
        let wrapper = PacketWrapper {
            packet_type: packet_type as i32,
            user_id: self.user_bytes(),
            data,
            session_id: session.get(),
        };
        self.transmit.push_back(packets::encode(&wrapper));
        Ok(())
    }

    /// Asks `peer_user` for a keyframe (at most one request per peer every 500 ms).
    pub fn request_keyframe(&mut self, now: Duration, peer_user: &str) -> Result<(), SessionError> {
        if let Some(at) = self.keyframe_asked.get(peer_user)
            && now < *at + KEYFRAME_REQUEST_SPACING
        {
            return Ok(());
        }
        let media = MediaPacket {
            media_type: MediaType::KeyframeRequest as i32,
            ..Default::default()
        };
        let packet = PacketWrapper {
            packet_type: PacketType::Media as i32,
            data: packets::encode(&MediaPacket {
                user_id: Bytes::copy_from_slice(peer_user.as_bytes()),
                ..media
            }),
            ..Default::default()
        };
        if self.session_id().is_none() {
            return Err(SessionError::NotJoined(self.state));
        }
        self.keyframe_asked.insert(peer_user.to_owned(), now);
        self.transmit.push_back(packets::encode(&packet));
        Ok(())
    }

    /// Receives video only from these streams (subscribe on demand), or from everyone. Kept
    /// and re-sent after a reconnect.
    pub fn subscribe(&mut self, subscription: &Subscription) {
        self.subscription = Some(subscription.to_packet());
        self.send_subscription();
    }

    /// The next packet to write to the transport.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.transmit.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The next thing to do to the transport.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    fn connect(&mut self, now: Duration, attempt: u32) {
        self.connect_to(now, attempt, false);
    }

    fn connect_to(&mut self, now: Duration, attempt: u32, elsewhere: bool) {
        self.state = ConnectionState::Connecting { attempt };
        self.transport_open = false;
        self.connect_deadline = Some(now + self.config.connect_timeout);
        self.transmit.clear();
        self.actions
            .push_back(Action::Connect { attempt, elsewhere });
    }

    fn joined(&mut self, now: Duration, session: SessionId) {
        self.state = ConnectionState::Joined { session };
        self.connect_deadline = None;
        self.next_heartbeat = now;
        self.next_rtt = now;
        self.events.push_back(Event::Joined { session });
        self.mismatched.clear();
        self.chat_joined();
        if let Some(e2ee) = &mut self.e2ee {
            e2ee.handle_joined(session.get());
            self.keys_changed = true;
            self.flush_keys();
        }
        self.send_subscription();
        // Tell peers our state right away rather than a second later.
        self.handle_timeout(now);
    }

    fn send_subscription(&mut self) {
        if let (Some(packet), Some(_)) = (&self.subscription, self.session_id()) {
            let data = packets::encode(packet);
            let _ = self.send_packet(PacketType::Subscription, data);
        }
    }

    fn meeting_event(&mut self, now: Duration, event: MeetingPacket) {
        let user = UserId::from_wire(&event.target_user_id);
        match MeetingEventType::try_from(event.event_type) {
            Ok(MeetingEventType::ReconnectSecret) => {
                if Some(event.session_id) == self.session_id().map(SessionId::get) {
                    self.chat_roster_done();
                }
                self.keep_reconnect_secret(event);
            }
            Ok(MeetingEventType::LowerHandRequested)
                if event.target_user_id == self.config.user_id.as_bytes() =>
            {
                self.host_lowered_hand();
            }
            Ok(MeetingEventType::NodeDraining) => self.move_elsewhere(now, &event.message),
            Ok(MeetingEventType::MuteRequested) => self.events.push_back(Event::MuteRequested),
            // The relay closes us right after these; they end the session even when the close
            // code does not reach us.
            Ok(MeetingEventType::ParticipantRemoved)
                if event.target_user_id == self.config.user_id.as_bytes() =>
            {
                self.end(FinalClose::Removed);
            }
            Ok(MeetingEventType::MeetingEnded) => self.end(FinalClose::MeetingEnded),
            Ok(MeetingEventType::SessionReplaced)
                if Some(event.session_id) == self.session_id().map(SessionId::get) =>
            {
                self.end(FinalClose::Replaced);
            }
            Ok(MeetingEventType::ParticipantJoined) => {
                if Some(event.session_id) == self.session_id().map(SessionId::get) {
                    return;
                }
                // A JOINED names a session (0 is none: nothing to learn) and a valid user.
                let (Some(joined), Some(user)) = (SessionId::from_wire(event.session_id), user)
                else {
                    return;
                };
                // A JOINED for a user already present with another session is a reconnect:
                // the new session replaces the old one.
                let replaced: Vec<SessionId> = self
                    .peers
                    .iter()
                    .filter(|(s, u)| **u == user && **s != joined)
                    .map(|(s, _)| *s)
                    .collect();
                self.retired.retain(|s| *s != joined);
                for session in replaced {
                    self.retire(session);
                    self.peers.remove(&session);
                    self.peer_states.remove(&session);
                    self.e2ee_peer_left(session);
                    self.events.push_back(Event::PeerLeft {
                        session,
                        user: user.clone(),
                    });
                }
                if !self.peers.contains_key(&joined) {
                    self.peer_joined(joined, &user);
                    self.chat_peer_joined(joined);
                }
            }
            Ok(MeetingEventType::ParticipantLeft) => {
                let Some(left) = SessionId::from_wire(event.session_id) else {
                    return;
                };
                if let Some(user) = self.peers.remove(&left) {
                    self.peer_states.remove(&left);
                    self.retire(left);
                    self.e2ee_peer_left(left);
                    self.events.push_back(Event::PeerLeft {
                        session: left,
                        user,
                    });
                }
            }
            _ => {}
        }
    }

    fn media(&mut self, now: Duration, wrapper: PacketWrapper) {
        let Ok(media) = MediaPacket::decode(wrapper.data.clone()) else {
            self.events.push_back(Event::Other(wrapper));
            return;
        };
        let ours = Some(wrapper.session_id) == self.session_id().map(SessionId::get);
        match MediaType::try_from(media.media_type) {
            Ok(MediaType::Rtt) if ours => {
                // The echo carries what we sent, but it comes off the wire: a timestamp that is
                // no time (negative, NaN, past `Duration`'s range) is ignored, not a panic.
                if let Ok(sent) = Duration::try_from_secs_f64(media.timestamp / 1000.0) {
                    self.events.push_back(Event::Rtt(now.saturating_sub(sent)));
                }
            }
            Ok(MediaType::Rtt) => {}
            Ok(MediaType::KeyframeRequest) => {
                if media.user_id == self.config.user_id.as_bytes() {
                    self.events.push_back(Event::KeyframeRequested);
                }
            }
            _ => {
                // The relay stamps every packet with its sender's session; 0 is none.
                let Some(from) = SessionId::from_wire(wrapper.session_id) else {
                    return;
                };
                if self.retired.contains(&from) {
                    return;
                }
                // Stamped by the relay; anything else is not a participant's media.
                let Some(user) = UserId::from_wire(&wrapper.user_id) else {
                    return;
                };
                if !self.peers.contains_key(&from) && !ours {
                    self.peer_joined(from, &user);
                }
                let Some(packet) = self.open(from, &user, media) else {
                    return;
                };
                if packet.media_type == MediaType::Heartbeat as i32 && !ours {
                    self.apply_peer_state(from, packet.heartbeat_metadata.unwrap_or_default());
                }
                self.events.push_back(Event::Media(MediaFrom {
                    session: from,
                    user,
                    packet,
                }));
            }
        }
    }

    /// E2EE on a media packet from a peer: opens sealed frames, refuses clear private media
    /// while we encrypt and sealed media while we do not. `None`: dropped (and counted).
    fn open(
        &mut self,
        session: SessionId,
        user: &UserId,
        media: MediaPacket,
    ) -> Option<MediaPacket> {
        let sealed = media.sealed.is_some();
        match &mut self.e2ee {
            // Failures are counted by the E2EE core; a missing key is on its way (a keyframe
            // is asked for once it is installed).
            Some(e2ee) if sealed => e2ee.open_envelope(session.get(), &media).ok(),
            Some(_) if is_private(media.media_type) => {
                self.mismatch(session, user, false);
                None
            }
            None if sealed => {
                self.mismatch(session, user, true);
                None
            }
            _ => Some(media),
        }
    }

    fn mismatch(&mut self, session: SessionId, user: &UserId, peer_encrypts: bool) {
        self.mismatch_drops += 1;
        if self.mismatched.insert(session) {
            self.events.push_back(Event::E2eeMismatch {
                session,
                user: user.clone(),
                peer_encrypts,
            });
        }
    }

    /// Applies a key packet or an unwrap result from session `from` (user `user`, E2EE on); once
    /// its first key is in, asks it for a keyframe: frames that came before the key were dropped.
    fn key_change(
        &mut self,
        now: Duration,
        from: u64,
        user: Option<UserId>,
        change: impl FnOnce(&mut E2ee) -> Result<(), E2eeError>,
    ) -> Result<(), SessionError> {
        let Some(e2ee) = &mut self.e2ee else {
            return Ok(());
        };
        let had_key = e2ee.has_key_from(from);
        let result = change(e2ee);
        let keyed = !had_key && e2ee.has_key_from(from);
        self.keys_changed = true;
        if keyed && let Some(user) = user {
            let _ = self.request_keyframe(now, user.as_str());
        }
        result.map_err(SessionError::from)
    }

    /// Remembers that `session` left (see `retired`).
    fn retire(&mut self, session: SessionId) {
        if self.retired.len() == RETIRED_CAP {
            self.retired.pop_front();
        }
        self.retired.push_back(session);
    }

    /// A peer we did not know is in the meeting (an event, its traffic, a digest).
    fn peer_joined(&mut self, session: SessionId, user: &UserId) {
        self.peers.insert(session, user.clone());
        self.e2ee_peer_joined(session, user);
        self.events.push_back(Event::PeerJoined {
            session,
            user: user.clone(),
        });
    }

    fn e2ee_peer_joined(&mut self, session: SessionId, user: &UserId) {
        if let Some(e2ee) = &mut self.e2ee {
            e2ee.handle_peer_joined(session.get(), user.as_str());
            self.keys_changed = true;
        }
    }

    fn e2ee_peer_left(&mut self, session: SessionId) {
        self.mismatched.remove(&session);
        self.chat_peer_left(session);
        if let Some(e2ee) = &mut self.e2ee {
            e2ee.handle_peer_left(session.get());
            self.keys_changed = true;
        }
    }

    /// Queues the key packets E2EE has for peers, and tells a changed safety code.
    fn flush_keys(&mut self) {
        if self.session_id().is_none() {
            return;
        }
        let mut keyed = false;
        while let Some(key) = self.e2ee.as_mut().and_then(E2ee::poll_transmit) {
            keyed |= key.packet_type == PacketType::AesKey;
            // AES_KEY and KEY_REQUEST name their one recipient inside; the relay routes them.
            let _ = self.send_packet(key.packet_type, key.data);
            if key.packet_type == PacketType::AesKey
                && let Some(to) = key.to
            {
                // History owed to a newcomer goes right after the key that opens it.
                self.chat_key_sent(to);
            }
        }
        self.retry_held_chat();
        if keyed {
            // Someone can now open our frames (a newcomer, or everyone after a rotation):
            // a keyframe lets them start decoding without first asking for one.
            self.events.push_back(Event::KeyframeRequested);
        }
        if let Some(e2ee) = &self.e2ee
            && std::mem::take(&mut self.keys_changed)
        {
            let code = e2ee.safety_code();
            if self.safety_code != Some(code) {
                self.safety_code = Some(code);
                self.events.push_back(Event::SafetyCode(code));
            }
        }
    }

    fn queue_media(&mut self, media: &MediaPacket) {
        let session = self.session_id().map(SessionId::get).unwrap_or_default();
        let wrapper = PacketWrapper {
            packet_type: PacketType::Media as i32,
            user_id: self.user_bytes(),
            data: packets::encode(media),
            session_id: session,
        };
        self.transmit.push_back(packets::encode(&wrapper));
    }

    fn user_bytes(&self) -> Bytes {
        Bytes::copy_from_slice(self.config.user_id.as_bytes())
    }
}

/// Media that E2EE seals: what people see and hear.
fn is_private(media_type: i32) -> bool {
    matches!(
        MediaType::try_from(media_type),
        Ok(MediaType::Video | MediaType::Audio | MediaType::Screen)
    )
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
