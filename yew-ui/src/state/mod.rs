//! The meeting as the UI sees it: a pure reducer over [`Action`]s, unit-tested natively.
//! Media never flows through here (decoders draw straight to their canvas); only what the
//! page shows: who is there, what they have on, connection and diagnostics.

use std::collections::BTreeMap;

use videocall_types::{FinalClose, SessionId};

mod chat;
mod lobby;
mod shortcuts;
mod speaker;
mod tiles;

pub use chat::{ChatLine, ChatPanel, HAND_LOWERED_BY_HOST, MAX_CHAT_LINES, REACTION_SHOWN_MS};
pub use lobby::{LobbyAction, LobbyPhase, LobbyState};
pub use shortcuts::{KeyPress, Shortcut, shortcut};
pub use speaker::{ActiveSpeaker, SpeakerConfig};
pub use tiles::{Layout, MAX_VISIBLE_VIDEOS};

/// Announcements kept for the live region (screen readers read each new one).
pub const MAX_ANNOUNCEMENTS: usize = 5;
/// Longest chat text read out in an announcement, in characters.
const ANNOUNCED_CHAT_CHARS: usize = 140;

/// Which transport carries the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// QUIC / HTTP3.
    WebTransport,
    /// TCP fallback.
    WebSocket,
}

impl TransportKind {
    /// As shown on the page.
    pub fn label(self) -> &'static str {
        match self {
            TransportKind::WebTransport => "WebTransport",
            TransportKind::WebSocket => "WebSocket",
        }
    }
}

/// Where the meeting is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Phase {
    /// Choosing devices before joining.
    PreJoin,
    /// Connect pressed; trying transports.
    Connecting,
    /// In the meeting.
    Joined,
    /// Lost the connection; reconnecting in the background.
    Reconnecting(String),
    /// Could not connect at all: the message says why.
    Failed(String),
    /// Left.
    Left,
    /// The relay ended our session for good (removed, meeting ended, replaced by a newer
    /// connection): nothing reconnects.
    Ended(FinalClose),
}

/// One remote participant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Peer {
    /// Their user id.
    pub user: String,
    /// Camera on (from their heartbeat).
    pub video_on: bool,
    /// Microphone on.
    pub audio_on: bool,
    /// Sharing their screen.
    pub screen_on: bool,
    /// Speaking now.
    pub speaking: bool,
    /// Decoded video frames per second (diagnostics).
    pub fps: f64,
    /// Received video kilobits per second.
    pub kbps: f64,
    /// Frames waiting in their decoder.
    pub decode_queue: u32,
    /// Frames dropped (decode errors, waiting for a keyframe).
    pub dropped: u64,
    /// Whether a screen-share stream has arrived (shown as its own tile).
    pub has_screen_stream: bool,
    /// Its media cannot be shown: it does not encrypt while we do (or the reverse).
    pub unencrypted: bool,
    /// Their hand is raised.
    pub hand_raised: bool,
    /// The reaction shown on their tile now: (its number, the emoji).
    pub reaction: Option<(u64, String)>,
}

/// Everything the meeting page renders.
#[derive(Debug, Clone, PartialEq)]
pub struct MeetingState {
    /// Our user id.
    pub user: String,
    /// The meeting.
    pub meeting: String,
    /// Where we are.
    pub phase: Phase,
    /// The transport in use, once connected.
    pub transport: Option<TransportKind>,
    /// Remote participants by session id.
    pub peers: BTreeMap<SessionId, Peer>,
    /// The tile shown large, if any (session id; screen tiles use their publisher's id).
    pub pinned: Option<SessionId>,
    /// Our microphone is on.
    pub mic_on: bool,
    /// Our camera is on.
    pub camera_on: bool,
    /// We share our screen.
    pub sharing: bool,
    /// Last round trip to the relay, in ms.
    pub rtt_ms: Option<f64>,
    /// CONGESTION signals received.
    pub congestion_events: u64,
    /// What our camera sends now (adaptive quality), once it runs.
    pub send_quality: Option<SendQuality>,
    /// Device problems to show (denied permission, no camera…).
    pub notices: Vec<String>,
    /// Diagnostics panel open.
    pub diagnostics_open: bool,
    /// Media is end-to-end encrypted (None: not decided yet, before connecting).
    pub encrypted: Option<bool>,
    /// The meeting's safety code while encrypted (compare it out of band).
    pub safety_code: Option<String>,
    /// Everyone our sender key is wrapped for, ourselves first: (user, fingerprint). The code
    /// commits to exactly this list.
    pub key_holders: Vec<(String, String)>,
    /// The chat panel.
    pub chat: ChatPanel,
    /// Our hand is raised.
    pub hand_raised: bool,
    /// The layout chosen (kept for the whole meeting, across reconnects).
    pub layout: Layout,
    /// Who speaks, from the audio levels of the peers.
    pub speaker: ActiveSpeaker,
    /// The people list is open (it is a toggled panel on a narrow screen).
    pub people_open: bool,
    /// The device panel (switch camera, microphone and speaker in the call) is open.
    pub devices_open: bool,
    /// The devices in use, as the driver reports them once switched (None: the ones chosen
    /// before joining).
    pub devices_in_use: DevicesInUse,
    /// What the live region says: joins, leaves, messages, hands (numbered, newest last).
    pub announcements: Vec<(u64, String)>,
    /// Announcements made so far.
    announced: u64,
}

/// What our own media should be doing: the driver follows it (the reducer is the only place
/// these toggles live).
/// Which device a mid-call switch is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Camera,
    Microphone,
    Speaker,
}

impl DeviceKind {
    /// For messages: "camera", "microphone", "speaker".
    pub fn noun(self) -> &'static str {
        match self {
            DeviceKind::Camera => "camera",
            DeviceKind::Microphone => "microphone",
            DeviceKind::Speaker => "speaker",
        }
    }
}

/// Device ids switched to during the call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DevicesInUse {
    pub camera: Option<String>,
    pub microphone: Option<String>,
    pub speaker: Option<String>,
}

/// Our camera's place on the adaptive-quality ladder (`videocall_client::quality`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendQuality {
    /// Rung index, 0 best.
    pub rung: usize,
    /// Encoded size.
    pub width: u32,
    pub height: u32,
    /// Frames per second at most.
    pub fps: u32,
    /// Target bitrate, kbit/s.
    pub kbps: u32,
    /// Why it last changed ("congestion", "round trip rising", "link quiet", "start").
    pub reason: &'static str,
    /// Steps taken down and up so far.
    pub steps_down: u64,
    pub steps_up: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaIntent {
    /// Microphone sending (unmuted).
    pub mic: bool,
    /// Camera sending.
    pub camera: bool,
    /// Screen shared.
    pub screen: bool,
}

/// The notice shown when a host muted us.
pub const MUTED_BY_HOST: &str = "A host asked you to mute: your microphone is off.";

/// Everything that changes the page.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Connect pressed.
    Connect,
    /// A transport opened and the relay assigned a session.
    Joined(TransportKind),
    /// The connection dropped; the client retries.
    ConnectionLost(String),
    /// Neither transport could connect.
    ConnectFailed(String),
    /// The relay ended our session for good.
    Ended(FinalClose),
    /// Leave pressed.
    Leave,
    /// A participant is there.
    PeerJoined {
        /// Session.
        session: SessionId,
        /// User id.
        user: String,
    },
    /// A participant left.
    PeerLeft {
        /// Session.
        session: SessionId,
    },
    /// A participant's heartbeat.
    Heartbeat {
        /// Session.
        session: SessionId,
        /// Camera on.
        video: bool,
        /// Microphone on.
        audio: bool,
        /// Screen on.
        screen: bool,
        /// Speaking.
        speaking: bool,
    },
    /// A screen-share stream of this participant started arriving.
    ScreenStream {
        /// Session.
        session: SessionId,
    },
    /// Once-a-second statistics of a participant's video.
    PeerStats {
        /// Session.
        session: SessionId,
        /// Frames per second decoded.
        fps: f64,
        /// Kilobits per second received.
        kbps: f64,
        /// Decoder queue.
        decode_queue: u32,
        /// Frames dropped so far.
        dropped: u64,
    },
    /// Round trip measured.
    Rtt(f64),
    /// A receiver told us it drops our video.
    Congestion,
    /// Our camera's quality rung changed (adaptive quality).
    SendQuality(SendQuality),
    /// A host asked us to mute: the microphone goes off, with a notice saying why.
    MuteRequested,
    /// Microphone toggled.
    ToggleMic,
    /// Camera toggled.
    ToggleCamera,
    /// Screen share started (true) or stopped.
    Sharing(bool),
    /// Pin (or unpin, when already pinned) a tile.
    Pin(SessionId),
    /// Show a notice (device problems).
    Notice(String),
    /// Open or close diagnostics.
    ToggleDiagnostics,
    /// The device panel opened or closed.
    ToggleDevices,
    /// The driver switched a device (kind, device id), or could not (a notice says why).
    DeviceSwitched(DeviceKind, String),
    /// The meeting's media is (true) or is not end-to-end encrypted.
    Encryption(bool),
    /// The meeting's safety code changed, with the key holders it commits to.
    SafetyCode {
        /// The code as shown.
        code: String,
        /// (user, fingerprint) of every key holder, ourselves first.
        holders: Vec<(String, String)>,
    },
    /// A participant and we disagree on encryption: its media is not shown.
    PeerUnencrypted {
        /// Session.
        session: SessionId,
    },
    /// A chat message (ours once sent, or someone's).
    Chat(ChatLine),
    /// Open or close the chat panel.
    ToggleChat,
    /// Our hand went up (true) or down.
    OwnHand(bool),
    /// A host lowered our hand.
    HandLoweredByHost,
    /// A participant raised or lowered its hand.
    PeerHand {
        /// Session.
        session: SessionId,
        /// Raised.
        raised: bool,
    },
    /// A participant reacted; `seq` numbers reactions so that expiry removes only this one.
    Reaction {
        /// Session.
        session: SessionId,
        /// The emoji.
        emoji: String,
        /// Its number.
        seq: u64,
    },
    /// Reaction `seq` has been shown long enough.
    ReactionExpired {
        /// Session.
        session: SessionId,
        /// Its number.
        seq: u64,
    },
    /// Choose a layout (grid and speaker drop a pin).
    SetLayout(Layout),
    /// The next layout on the switch.
    NextLayout,
    /// The loudest level (RMS, 0..1) of each peer heard since the last report, at `at_ms`.
    AudioLevels {
        /// When, in ms.
        at_ms: f64,
        /// (session, level).
        levels: Vec<(SessionId, f32)>,
    },
    /// Open or close the people list.
    TogglePeople,
}

impl MeetingState {
    /// A meeting page before joining.
    pub fn new(user: impl Into<String>, meeting: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            meeting: meeting.into(),
            phase: Phase::PreJoin,
            transport: None,
            peers: BTreeMap::new(),
            pinned: None,
            mic_on: true,
            camera_on: true,
            sharing: false,
            rtt_ms: None,
            congestion_events: 0,
            send_quality: None,
            notices: Vec::new(),
            diagnostics_open: false,
            encrypted: None,
            safety_code: None,
            key_holders: Vec::new(),
            chat: ChatPanel::default(),
            hand_raised: false,
            layout: Layout::Grid,
            speaker: ActiveSpeaker::default(),
            people_open: false,
            devices_open: false,
            devices_in_use: DevicesInUse::default(),
            announcements: Vec::new(),
            announced: 0,
        }
    }

    /// What our microphone, camera and screen should be doing now.
    pub fn media(&self) -> MediaIntent {
        MediaIntent {
            mic: self.mic_on,
            camera: self.camera_on,
            screen: self.sharing,
        }
    }

    /// The state after `action`.
    pub fn reduce(mut self, action: Action) -> Self {
        match action {
            Action::Connect => self.phase = Phase::Connecting,
            Action::Joined(kind) => {
                self.phase = Phase::Joined;
                self.transport = Some(kind);
            }
            Action::ConnectionLost(reason) => {
                if !matches!(self.phase, Phase::Left | Phase::Ended(_)) {
                    self.phase = Phase::Reconnecting(reason);
                    self.peers.clear();
                    self.speaker.clear();
                    self.pinned = None;
                }
            }
            Action::ConnectFailed(reason) => {
                self.phase = Phase::Failed(reason);
                self.transport = None;
            }
            Action::Ended(why) => {
                self.phase = Phase::Ended(why);
                self.peers.clear();
                self.speaker.clear();
                self.pinned = None;
                self.sharing = false;
            }
            Action::Leave => {
                self.phase = Phase::Left;
                self.peers.clear();
                self.speaker.clear();
                self.pinned = None;
                self.sharing = false;
            }
            Action::PeerJoined { session, user } => {
                if !self.peers.contains_key(&session) {
                    self.announce(format!("{user} joined"));
                }
                self.peers.entry(session).or_default().user = user;
            }
            Action::PeerLeft { session } => {
                if let Some(peer) = self.peers.remove(&session) {
                    self.announce(format!("{} left", peer.user));
                }
                self.speaker.remove(session);
                if self.pinned == Some(session) {
                    self.pinned = None;
                }
            }
            Action::Heartbeat {
                session,
                video,
                audio,
                screen,
                speaking,
            } => {
                if let Some(peer) = self.peers.get_mut(&session) {
                    peer.video_on = video;
                    peer.audio_on = audio;
                    peer.screen_on = screen;
                    peer.speaking = speaking;
                    if !screen {
                        peer.has_screen_stream = false;
                    }
                }
            }
            Action::ScreenStream { session } => {
                if let Some(peer) = self.peers.get_mut(&session) {
                    peer.has_screen_stream = true;
                }
            }
            Action::PeerStats {
                session,
                fps,
                kbps,
                decode_queue,
                dropped,
            } => {
                if let Some(peer) = self.peers.get_mut(&session) {
                    peer.fps = fps;
                    peer.kbps = kbps;
                    peer.decode_queue = decode_queue;
                    peer.dropped = dropped;
                }
            }
            Action::Rtt(ms) => self.rtt_ms = Some(ms),
            Action::Congestion => self.congestion_events += 1,
            Action::SendQuality(quality) => self.send_quality = Some(quality),
            Action::ToggleMic => self.mic_on = !self.mic_on,
            Action::MuteRequested => {
                self.mic_on = false;
                let text = MUTED_BY_HOST.to_owned();
                if !self.notices.contains(&text) {
                    self.notices.push(text);
                }
            }
            Action::ToggleCamera => self.camera_on = !self.camera_on,
            Action::Sharing(on) => self.sharing = on,
            Action::Pin(session) => {
                self.pinned = if self.pinned == Some(session) {
                    None
                } else {
                    Some(session)
                };
            }
            Action::Notice(text) => {
                if !self.notices.contains(&text) {
                    self.notices.push(text);
                }
            }
            Action::ToggleDiagnostics => self.diagnostics_open = !self.diagnostics_open,
            Action::ToggleDevices => self.devices_open = !self.devices_open,
            Action::DeviceSwitched(kind, id) => {
                let slot = match kind {
                    DeviceKind::Camera => &mut self.devices_in_use.camera,
                    DeviceKind::Microphone => &mut self.devices_in_use.microphone,
                    DeviceKind::Speaker => &mut self.devices_in_use.speaker,
                };
                *slot = Some(id);
            }
            Action::Encryption(on) => {
                self.encrypted = Some(on);
                if !on {
                    self.safety_code = None;
                    self.key_holders.clear();
                }
            }
            Action::SafetyCode { code, holders } => {
                if self.encrypted == Some(true) {
                    self.safety_code = Some(code);
                    self.key_holders = holders;
                }
            }
            Action::PeerUnencrypted { session } => {
                if let Some(peer) = self.peers.get_mut(&session) {
                    peer.unencrypted = true;
                }
            }
            Action::SetLayout(layout) => {
                self.layout = layout;
                if layout != Layout::Pinned {
                    self.pinned = None;
                }
            }
            Action::NextLayout => {
                // Without a pin the pinned layout is the speaker view: skip it.
                let next = match self.shown_layout() {
                    Layout::Grid => Layout::Speaker,
                    Layout::Speaker if self.pinned.is_some() => Layout::Pinned,
                    Layout::Speaker | Layout::Pinned => Layout::Grid,
                };
                return self.reduce(Action::SetLayout(next));
            }
            Action::AudioLevels { at_ms, levels } => {
                // Only peers in the meeting: a level never invents a participant.
                let levels: Vec<_> = levels
                    .into_iter()
                    .filter(|(s, _)| self.peers.contains_key(s))
                    .collect();
                self.speaker = std::mem::take(&mut self.speaker).handle_levels(at_ms, &levels);
            }
            Action::TogglePeople => {
                self.people_open = !self.people_open;
                // On a phone the panels cover the meeting: one at a time.
                if self.people_open && self.chat.open {
                    self.chat.toggle();
                }
            }
            action => self.reduce_chat(action),
        }
        self
    }

    /// Says `text` in the live region.
    fn announce(&mut self, text: String) {
        self.announced += 1;
        self.announcements.push((self.announced, text));
        if self.announcements.len() > MAX_ANNOUNCEMENTS {
            self.announcements.remove(0);
        }
    }

    /// Chat, hands and reactions.
    fn reduce_chat(&mut self, action: Action) {
        match action {
            Action::Chat(line) => {
                if !line.mine
                    && line.via.is_none()
                    && !self.chat.lines.iter().any(|l| l.id == line.id)
                {
                    let text: String = line.text.chars().take(ANNOUNCED_CHAT_CHARS).collect();
                    self.announce(format!("Message from {}: {text}", line.from));
                }
                self.chat.push(line);
            }
            Action::ToggleChat => {
                self.chat.toggle();
                if self.chat.open {
                    self.people_open = false;
                }
            }
            Action::OwnHand(raised) => self.hand_raised = raised,
            Action::HandLoweredByHost => {
                self.hand_raised = false;
                let text = HAND_LOWERED_BY_HOST.to_owned();
                if !self.notices.contains(&text) {
                    self.notices.push(text);
                }
            }
            Action::PeerHand { session, raised } => {
                if let Some(peer) = self.peers.get_mut(&session) {
                    let newly = raised && !peer.hand_raised;
                    peer.hand_raised = raised;
                    if newly {
                        let text = format!("{} raised their hand", peer.user);
                        self.announce(text);
                    }
                }
            }
            Action::Reaction {
                session,
                emoji,
                seq,
            } => {
                if let Some(peer) = self.peers.get_mut(&session) {
                    peer.reaction = Some((seq, emoji));
                }
            }
            Action::ReactionExpired { session, seq } => {
                if let Some(peer) = self.peers.get_mut(&session)
                    && peer.reaction.as_ref().is_some_and(|(s, _)| *s == seq)
                {
                    peer.reaction = None;
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
