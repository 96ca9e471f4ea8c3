//! The session pump: one task owns the sans-IO `videocall_client::Session` and the media
//! pipeline, the same loop as the native driver (`videocall_client::native`): feed it what
//! arrived (transport opened, packets, closed; the page's wishes; encoded media; unwrapped keys)
//! and a 100 ms timer, then carry out what it asks (connect, close, packets to write, events).
//!
//! Everything that answers later (a connection attempt, a WebCrypto unwrap, the screen prompt,
//! each transport packet) comes back as an [`Input`] on the one channel, so nothing else holds
//! the session: no shared cells, no re-entrancy. Connection attempts carry a generation; what
//! an abandoned attempt or a closed transport still reports is ignored.

use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use futures_channel::mpsc::{UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use gloo_timers::future::TimeoutFuture;
use videocall_client::e2ee::{Identity, UnwrapRequest};
use videocall_client::{
    Action as SessionAction, ClientConfig, Command, Event, Session, Subscription,
};
use videocall_types::{MediaPacket, MediaType, SessionId, StreamKey};
use wasm_bindgen_futures::spawn_local;
use web_sys::MediaStream;
use yew::Callback;

use super::endpoints;
use super::media::MediaPipeline;
use crate::media::{PacketSink, log, now_ms};
use crate::state::{Action, ChatLine, DeviceKind, MediaIntent, REACTION_SHOWN_MS, TransportKind};
use crate::transport::{Endpoints, Transport};

/// How often heartbeat state, session timers and statistics are looked at.
const TICK_MS: u32 = 100;

/// Everything the pump reacts to.
pub(crate) enum Input {
    /// The reducer's wish for our own media.
    Media(MediaIntent),
    /// The reducer's choice of whose video to receive.
    Subscription(Subscription),
    /// Retry pressed after a failed join.
    Retry,
    /// The page left (or went away).
    Leave,
    /// The meeting's settings are known: where the relay is, and whether to encrypt (under
    /// this identity) or not; or why this page cannot join.
    Ready {
        endpoints: Endpoints,
        // Boxed: an identity is large and every media packet moves through this enum.
        identity: Box<Result<Option<Identity>, String>>,
    },
    /// A packet from one of our encoders.
    Encoded(MediaPacket),
    /// From connection attempt `generation`.
    Link { generation: u64, event: LinkEvent },
    /// WebCrypto answered an unwrap (`None`: it did not unwrap).
    Unwrapped {
        request: UnwrapRequest,
        secret: Option<Vec<u8>>,
    },
    /// The browser answered the screen-share prompt.
    ScreenOpened(Result<MediaStream, String>),
    /// Chat, hand or reaction from the page.
    Command(Command),
    /// The user picked another camera, microphone or speaker in the call.
    UseDevice(DeviceKind, String),
    /// The browser opened (or refused) the camera or microphone picked.
    DeviceOpened(DeviceKind, String, Result<MediaStream, String>),
}

/// What happened to a connection attempt or its transport.
pub(crate) enum LinkEvent {
    Opened(Transport, Endpoints),
    Failed(String, Endpoints),
    Packet(Vec<u8>),
    /// The server's close code, when it gave one, and the reason.
    Closed(Option<u32>, String),
}

/// Time for the session: since the page loaded.
fn now() -> Duration {
    Duration::from_secs_f64(now_ms() / 1000.0)
}

/// Sends into the pump; a pump that is gone drops it.
fn send(inputs: &UnboundedSender<Input>, input: Input) {
    if let Err(e) = inputs.unbounded_send(input)
        && let Input::Link {
            event: LinkEvent::Opened(transport, _),
            ..
        } = e.into_inner()
    {
        transport.close();
    }
}

/// Learns where the relay is and the meeting's settings (and waits for our key pair when it is
/// encrypted), then answers [`Input::Ready`].
fn prepare(config: ClientConfig, inputs: UnboundedSender<Input>) {
    spawn_local(async move {
        let endpoints = endpoints::fetch_endpoints().await;
        // A room token's signed claim decides; a token that does not say (the relay refuses
        // it anyway) means encrypted. Only a token-less join asks the node.
        let encrypted = match config.token.as_deref() {
            Some(token) => endpoints::token_e2ee(token).unwrap_or(true),
            None => endpoints::meeting_is_encrypted(&config.meeting_id).await,
        };
        let identity = if encrypted {
            let started = now_ms();
            match crate::e2ee::identity().await {
                Ok(identity) => {
                    // Usually generated while the user was choosing devices.
                    crate::e2ee::set_body_attribute(
                        "data-e2ee-join-wait-ms",
                        &format!("{:.1}", now_ms() - started),
                    );
                    Ok(Some(identity))
                }
                Err(why) => Err(format!(
                    "This meeting is end-to-end encrypted, and this browser cannot encrypt \
                     here: {why}."
                )),
            }
        } else {
            Ok(None)
        };
        send(
            &inputs,
            Input::Ready {
                endpoints,
                identity: Box::new(identity),
            },
        );
    });
}

/// The state of the task that drives one meeting page.
pub(crate) struct Pump {
    session: Session,
    /// Set once the meeting's settings are known; `None` until then (or when they refused).
    identity: Option<Option<Identity>>,
    endpoints: Option<Endpoints>,
    link: Option<Transport>,
    link_kind: Option<TransportKind>,
    generation: u64,
    ever_joined: bool,
    media: MediaPipeline,
    dispatch: Callback<Action>,
    inputs: UnboundedSender<Input>,
    last_rtt_report: f64,
    /// Reactions shown so far (each one's number, for its expiry).
    reactions: u64,
}

impl Pump {
    /// A pump for `config`, joining with `token` (a room token from the meeting API: a
    /// protected meeting) or by the open path (`None`); `inputs` is the sending side of the
    /// channel [`run`](Self::run) reads.
    pub(crate) fn new(
        mut config: ClientConfig,
        token: Option<String>,
        local: Option<MediaStream>,
        want: MediaIntent,
        dispatch: Callback<Action>,
        inputs: UnboundedSender<Input>,
    ) -> Self {
        let sink: PacketSink = {
            let inputs = inputs.clone();
            Rc::new(move |packet| send(&inputs, Input::Encoded(packet)))
        };
        let on_screen = {
            let inputs = inputs.clone();
            Rc::new(move |result| send(&inputs, Input::ScreenOpened(result)))
        };
        config.token = token;
        Self {
            session: Session::new(config),
            identity: None,
            endpoints: None,
            link: None,
            link_kind: None,
            generation: 0,
            ever_joined: false,
            media: MediaPipeline::new(local, want, sink, on_screen),
            dispatch,
            inputs,
            last_rtt_report: 0.0,
            reactions: 0,
        }
    }

    /// The loop, until the page leaves.
    pub(crate) async fn run(mut self, mut inputs: UnboundedReceiver<Input>) {
        prepare(self.session.config().clone(), self.inputs.clone());
        let mut tick = TimeoutFuture::new(TICK_MS);
        loop {
            self.flush();
            match select(inputs.next(), &mut tick).await {
                Either::Left((Some(Input::Leave) | None, _)) => break,
                Either::Left((Some(input), _)) => self.handle_input(input),
                Either::Right(((), _)) => {
                    self.handle_tick();
                    tick = TimeoutFuture::new(TICK_MS);
                }
            }
        }
        self.session.leave();
        self.flush();
        self.close_link();
    }

    fn handle_input(&mut self, input: Input) {
        match input {
            Input::Media(want) => {
                let joined = self.session.session_id().is_some();
                self.media.apply(want, joined);
            }
            Input::Subscription(subscription) => self.session.subscribe(&subscription),
            Input::Retry => match &self.identity {
                Some(identity) => {
                    self.session =
                        Session::with_identity(self.session.config().clone(), identity.clone());
                    self.session.handle_start(now());
                }
                // The settings refused (or are still coming): ask again.
                None => prepare(self.session.config().clone(), self.inputs.clone()),
            },
            Input::Leave => {}
            Input::Ready {
                endpoints,
                identity,
            } => match *identity {
                Ok(identity) => {
                    // The first attempt goes where the page learnt the relay is.
                    self.endpoints = Some(endpoints);
                    self.dispatch.emit(Action::Encryption(identity.is_some()));
                    self.session =
                        Session::with_identity(self.session.config().clone(), identity.clone());
                    self.identity = Some(identity);
                    self.session.handle_start(now());
                }
                Err(why) => self.dispatch.emit(Action::ConnectFailed(why)),
            },
            Input::Encoded(packet) => {
                // Before the join (or while reconnecting) there is no one to send to.
                let _ = self.session.send_media(packet);
            }
            Input::Link { generation, event } => self.handle_link(generation, event),
            Input::Unwrapped { request, secret } => {
                if let Err(e) = self
                    .session
                    .handle_unwrapped(now(), &request, secret.as_deref())
                {
                    log(&format!(
                        "sender key of session {} refused: {e}",
                        request.from
                    ));
                }
            }
            Input::ScreenOpened(result) => {
                for action in self.media.handle_screen_opened(result) {
                    self.dispatch.emit(action);
                }
            }
            Input::Command(command) => self.command(command),
            Input::UseDevice(kind, id) => self.use_device(kind, id),
            Input::DeviceOpened(kind, id, opened) => match opened {
                Ok(stream) => {
                    if self.media.replace_device(kind, stream) {
                        log(&format!("switched the {} to {id}", kind.noun()));
                        self.dispatch.emit(Action::DeviceSwitched(kind, id));
                    } else {
                        let text = format!("That {} gave no track to send.", kind.noun());
                        self.dispatch.emit(Action::Notice(text));
                    }
                }
                Err(e) => {
                    let text = format!("Cannot switch to that {}: {e}", kind.noun());
                    self.dispatch.emit(Action::Notice(text));
                }
            },
        }
    }

    /// Switches a device mid-call: a speaker at once (where the browser can choose one), a
    /// camera or microphone once the browser opens it.
    fn use_device(&mut self, kind: DeviceKind, id: String) {
        let dispatch = self.dispatch.clone();
        if kind == DeviceKind::Speaker {
            let Some(chosen) = self.media.set_speaker(&id) else {
                let text = "This browser cannot choose where sound plays (no setSinkId).";
                dispatch.emit(Action::Notice(text.to_owned()));
                return;
            };
            spawn_local(async move {
                match crate::transport::await_promise(chosen).await {
                    Ok(_) => dispatch.emit(Action::DeviceSwitched(kind, id)),
                    Err(e) => dispatch.emit(Action::Notice(format!(
                        "Cannot play sound on that speaker: {e}"
                    ))),
                }
            });
            return;
        }
        let inputs = self.inputs.clone();
        spawn_local(async move {
            let opened = crate::media::devices::open_device(kind, &id).await;
            send(&inputs, Input::DeviceOpened(kind, id, opened));
        });
    }

    /// Carries out a chat, hand or reaction command; what the page shows follows its outcome.
    fn command(&mut self, command: Command) {
        let chat = matches!(command, Command::SendChat(_));
        let hand = match command {
            Command::RaiseHand => Some(true),
            Command::LowerHand => Some(false),
            _ => None,
        };
        let wall_ms = js_sys::Date::now() as u64;
        if let Err(e) = self.session.handle_command(wall_ms, command) {
            self.dispatch.emit(Action::Notice(e.to_string()));
            return;
        }
        if let Some(raised) = hand {
            self.dispatch.emit(Action::OwnHand(raised));
        }
        if chat && let Some(entry) = self.session.chat_history().last() {
            self.dispatch.emit(Action::Chat(ChatLine {
                id: entry.id.clone(),
                from: entry.from.to_string(),
                text: entry.text.clone(),
                at_ms: entry.at_ms,
                mine: true,
                via: None,
            }));
        }
    }

    fn handle_tick(&mut self) {
        self.session.set_heartbeat(self.media.heartbeat());
        self.session.handle_timeout(now());
        for action in self.media.tick() {
            self.dispatch.emit(action);
        }
    }

    /// Carries out what the session asks for until it has nothing more: transport actions,
    /// packets to write, events, sender keys to unwrap.
    fn flush(&mut self) {
        loop {
            let mut busy = false;
            while let Some(action) = self.session.poll_action() {
                busy = true;
                match action {
                    // One origin: behind a load balancer it reaches another node when ours drains.
                    SessionAction::Connect { attempt, .. } => self.connect(attempt),
                    SessionAction::Close => self.close_link(),
                }
            }
            while let Some(packet) = self.session.poll_transmit() {
                if let Some(link) = &self.link {
                    link.send(&packet);
                }
            }
            while let Some(event) = self.session.poll_event() {
                busy = true;
                self.handle_event(event);
            }
            // Sender keys wrapped for us: our private key is in WebCrypto, which unwraps them.
            while let Some(request) = self.session.poll_unwrap() {
                let inputs = self.inputs.clone();
                spawn_local(async move {
                    let secret = crate::e2ee::unwrap(&request.wrapped).await;
                    send(&inputs, Input::Unwrapped { request, secret });
                });
            }
            if !busy {
                break;
            }
        }
    }

    fn close_link(&mut self) {
        if let Some(link) = self.link.take() {
            link.close();
        }
        // What the closed transport (or an attempt in flight) still says is not for us.
        self.generation += 1;
    }

    fn connect(&mut self, attempt: u32) {
        self.close_link();
        let generation = self.generation;
        let on_packet = {
            let inputs = self.inputs.clone();
            Rc::new(move |packet: Vec<u8>| {
                let event = LinkEvent::Packet(packet);
                send(&inputs, Input::Link { generation, event });
            })
        };
        let on_close = {
            let inputs = self.inputs.clone();
            Rc::new(move |code: Option<u32>, reason: String| {
                let event = LinkEvent::Closed(code, reason);
                send(&inputs, Input::Link { generation, event });
            })
        };
        // Ask again where the relay is on every attempt but the first: a restarted node has a
        // new development certificate (and may have moved WebTransport).
        let known = if attempt == 1 && !self.ever_joined {
            self.endpoints.clone()
        } else {
            None
        };
        // The relay's reconnect secret (or the room token), once the session holds one: it lets
        // us replace our own earlier session (the relay refuses a second connection otherwise).
        let lobby = self.session.lobby_path().to_string();
        let inputs = self.inputs.clone();
        spawn_local(async move {
            log(&format!("connecting (attempt {attempt})"));
            let (result, endpoints) = endpoints::connect(&lobby, known, on_packet, on_close).await;
            let event = match result {
                Ok(transport) => LinkEvent::Opened(transport, endpoints),
                Err(reason) => LinkEvent::Failed(reason, endpoints),
            };
            send(&inputs, Input::Link { generation, event });
        });
    }

    fn handle_link(&mut self, generation: u64, event: LinkEvent) {
        if generation != self.generation {
            if let LinkEvent::Opened(transport, _) = event {
                transport.close();
            }
            return;
        }
        match event {
            LinkEvent::Opened(transport, endpoints) => {
                self.endpoints = Some(endpoints);
                self.link_kind = Some(transport.kind());
                self.link = Some(transport);
                self.session.handle_connected(now());
            }
            LinkEvent::Failed(reason, endpoints) => {
                self.endpoints = Some(endpoints);
                self.session.handle_disconnected(now(), reason.clone());
                if !self.ever_joined {
                    // Never a silent "joined": say it, and let the user retry.
                    self.session.leave();
                    self.dispatch.emit(Action::ConnectFailed(reason));
                }
            }
            LinkEvent::Packet(packet) => {
                if let Err(e) = self.session.handle_packet(now(), Bytes::from(packet)) {
                    log(&format!("bad packet from the relay: {e}"));
                }
            }
            LinkEvent::Closed(code, reason) => {
                self.link = None;
                match code {
                    Some(code) => self.session.handle_closed(now(), code, reason),
                    None => self.session.handle_disconnected(now(), reason),
                }
            }
        }
    }

    fn handle_event(&mut self, event: Event) {
        let dispatch = &self.dispatch;
        match event {
            Event::Joined { .. } => {
                let kind = self.link_kind.unwrap_or(TransportKind::WebSocket);
                self.ever_joined = true;
                log(&format!("joined over {kind:?}"));
                dispatch.emit(Action::Joined(kind));
                self.media.handle_joined();
            }
            Event::PeerJoined { session, user } => {
                let user = user.to_string();
                dispatch.emit(Action::PeerJoined { session, user });
                // A newcomer needs a keyframe to start decoding us.
                self.media.request_camera_keyframe();
            }
            Event::PeerLeft { session, .. } => {
                self.media.remove_peer(session);
                dispatch.emit(Action::PeerLeft { session });
            }
            Event::Media(media) => {
                self.handle_media(media.session, media.user.as_str(), media.packet);
            }
            // From a peer's heartbeat or the relay's presence digest, only when it changed.
            Event::PeerState { session, state, .. } => dispatch.emit(Action::Heartbeat {
                session,
                video: state.video_enabled,
                audio: state.audio_enabled,
                screen: state.screen_enabled,
                speaking: state.is_speaking,
            }),
            Event::KeyframeRequested => self.media.request_keyframes(),
            Event::Congestion { .. } => {
                self.media.handle_congestion();
                dispatch.emit(Action::Congestion);
            }
            Event::MuteRequested => dispatch.emit(Action::MuteRequested),
            Event::Chat(entry) => dispatch.emit(Action::Chat(ChatLine {
                id: entry.id,
                from: entry.from.to_string(),
                text: entry.text,
                at_ms: entry.at_ms,
                mine: false,
                via: entry.via.map(|v| v.to_string()),
            })),
            Event::Hand {
                session, raised, ..
            } => dispatch.emit(Action::PeerHand { session, raised }),
            Event::HandLoweredByHost => dispatch.emit(Action::HandLoweredByHost),
            Event::Reaction { session, emoji, .. } => {
                self.reactions += 1;
                let seq = self.reactions;
                dispatch.emit(Action::Reaction {
                    session,
                    emoji,
                    seq,
                });
                let dispatch = dispatch.clone();
                spawn_local(async move {
                    TimeoutFuture::new(REACTION_SHOWN_MS).await;
                    dispatch.emit(Action::ReactionExpired { session, seq });
                });
            }
            Event::SafetyCode(code) => {
                log(&format!("e2ee: safety code {code}"));
                let holders = self
                    .session
                    .key_holders()
                    .into_iter()
                    .map(|h| (h.user, h.fingerprint))
                    .collect();
                dispatch.emit(Action::SafetyCode {
                    code: code.to_string(),
                    holders,
                });
            }
            Event::E2eeMismatch {
                session,
                user,
                peer_encrypts,
            } => {
                log(&format!(
                    "e2ee: not showing {user}: {}",
                    if peer_encrypts {
                        "it encrypts and this meeting does not"
                    } else {
                        "it does not encrypt"
                    }
                ));
                dispatch.emit(Action::PeerUnencrypted { session });
            }
            Event::Rtt(rtt) => {
                self.media.handle_rtt(rtt);
                let t = now_ms();
                if t - self.last_rtt_report >= 1000.0 {
                    self.last_rtt_report = t;
                    dispatch.emit(Action::Rtt(rtt.as_secs_f64() * 1000.0));
                }
            }
            Event::Ended(why) => {
                log(&format!("the relay ended the session: {why}"));
                self.media.clear_receivers();
                dispatch.emit(Action::Ended(why));
            }
            Event::Disconnected { reason, retry_in } => {
                self.media.clear_receivers();
                if self.ever_joined {
                    let text = match retry_in {
                        Some(wait) => {
                            format!("{reason}; reconnecting in {:.1} s", wait.as_secs_f64())
                        }
                        None => reason,
                    };
                    dispatch.emit(Action::ConnectionLost(text));
                }
            }
            _ => {}
        }
    }

    fn handle_media(&mut self, session: SessionId, user: &str, packet: MediaPacket) {
        match MediaType::try_from(packet.media_type).unwrap_or(MediaType::Unknown) {
            media_type @ (MediaType::Video | MediaType::Screen) => {
                let stream = if media_type == MediaType::Screen {
                    StreamKey::screen(session)
                } else {
                    StreamKey::camera(session)
                };
                let outcome = self.media.handle_video(stream, packet);
                if outcome.need_keyframe {
                    let _ = self.session.request_keyframe(now(), user);
                }
                if outcome.new_stream && media_type == MediaType::Screen {
                    self.dispatch.emit(Action::ScreenStream { session });
                }
            }
            MediaType::Audio => self.media.handle_audio(session, &packet),
            _ => {}
        }
    }
}
