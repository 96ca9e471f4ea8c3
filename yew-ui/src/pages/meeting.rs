//! `/meeting/<user>/<meeting>`: pre-join, then the meeting room.

use std::rc::Rc;

use gloo_events::{EventListener, EventListenerOptions};
use gloo_timers::callback::Interval;
use videocall_client::Command;
use videocall_types::{FinalClose, SessionId, StreamKind};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::spawn_local;
use web_sys::{HtmlElement, KeyboardEvent, MediaStream, MediaStreamTrack};
use yew::prelude::*;

use crate::app::{Route, navigate};
use crate::client::MeetingClient;
use crate::components::announcer::Announcer;
use crate::components::chat_panel::ChatPanelView;
use crate::components::controls::Controls;
use crate::components::device_panel::DevicePanel;
use crate::components::diagnostics::Diagnostics;
use crate::components::host_panel::HostPanelProps;
use crate::components::peer_list::PeerList;
use crate::components::prejoin::PreJoin;
use crate::components::self_view::SelfView;
use crate::components::tile::Tile;
use crate::components::top_bar::TopBar;
use crate::media::audio_sender::AudioSender;
use crate::media::canvas_id;
use crate::media::devices::{self, DeviceList};
use crate::state::{Action, DeviceKind, KeyPress, Layout, MeetingState, Phase, Shortcut, shortcut};

impl Reducible for MeetingState {
    type Action = Action;
    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        Rc::new((*self).clone().reduce(action))
    }
}

#[derive(Properties, PartialEq)]
pub(crate) struct MeetingProps {
    pub(crate) user: String,
    pub(crate) meeting: String,
    pub(crate) on_route: Callback<Route>,
    /// A room token from the meeting API (a protected meeting), sent with the lobby URL.
    #[prop_or_default]
    pub(crate) token: Option<String>,
    /// The host's controls, when we host a meeting made through the API.
    #[prop_or_default]
    pub(crate) host: Option<HostPanelProps>,
    /// Told when the relay connection drops (the lobby then asks the API why).
    #[prop_or_default]
    pub(crate) on_connection_lost: Option<Callback<()>>,
    /// Told when the relay ended our session for good (the lobby shows its end screen).
    #[prop_or_default]
    pub(crate) on_ended: Option<Callback<FinalClose>>,
}

fn stop(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        track.unchecked_into::<MediaStreamTrack>().stop();
    }
}

/// Where the layout chosen for `meeting` is kept (`localStorage`).
fn layout_key(meeting: &str) -> String {
    format!("videocall.layout.{meeting}")
}

/// The layout last chosen in `meeting`, if any (and storage is allowed).
fn stored_layout(meeting: &str) -> Option<Layout> {
    let storage = web_sys::window()?.local_storage().ok()??;
    let name = storage.get_item(&layout_key(meeting)).ok()??;
    Layout::from_name(&name)
}

fn store_layout(meeting: &str, layout: Layout) {
    if let Some(Ok(Some(storage))) = web_sys::window().map(|w| w.local_storage()) {
        let _ = storage.set_item(&layout_key(meeting), layout.name());
    }
}

/// Moves the keyboard focus to the element with `id`, if it is there.
fn focus(id: &str) {
    if let Some(element) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
        .and_then(|e| e.dyn_into::<HtmlElement>().ok())
    {
        let _ = element.focus();
    }
}

/// Whether keys pressed in `target` are text being typed (a field, a picker, editable text).
fn typing_in(target: Option<web_sys::EventTarget>) -> bool {
    let Some(element) = target.and_then(|t| t.dyn_into::<web_sys::Element>().ok()) else {
        return false;
    };
    let editable = element
        .dyn_ref::<HtmlElement>()
        .is_some_and(HtmlElement::is_content_editable);
    editable || matches!(element.tag_name().as_str(), "INPUT" | "TEXTAREA" | "SELECT")
}

/// The meeting's keyboard shortcuts ([`Shortcut`]), while in the meeting.
#[hook]
fn use_shortcuts(
    dispatch: UseReducerDispatcher<MeetingState>,
    command: Rc<dyn Fn(Command)>,
    hand_raised: bool,
    in_meeting: bool,
) {
    use_effect_with(
        (hand_raised, in_meeting),
        move |&(hand_raised, in_meeting)| {
            let listener = in_meeting.then(|| {
                let document = web_sys::window().and_then(|w| w.document());
                document.map(|document| {
                    // Not passive: a shortcut's key must not also be typed into the chat box that
                    // it opens and focuses.
                    let options = EventListenerOptions::enable_prevent_default();
                    EventListener::new_with_options(&document, "keydown", options, move |event| {
                        let Some(key) = event.dyn_ref::<KeyboardEvent>() else {
                            return;
                        };
                        let press = KeyPress {
                            key: &key.key(),
                            modifier: key.ctrl_key() || key.alt_key() || key.meta_key(),
                            typing: typing_in(key.target()),
                            repeat: key.repeat(),
                        };
                        let Some(shortcut) = shortcut(press) else {
                            return;
                        };
                        key.prevent_default();
                        match shortcut {
                            Shortcut::Mic => dispatch.dispatch(Action::ToggleMic),
                            Shortcut::Camera => dispatch.dispatch(Action::ToggleCamera),
                            Shortcut::Chat => dispatch.dispatch(Action::ToggleChat),
                            Shortcut::People => dispatch.dispatch(Action::TogglePeople),
                            Shortcut::Layout => dispatch.dispatch(Action::NextLayout),
                            Shortcut::Hand => command(if hand_raised {
                                Command::LowerHand
                            } else {
                                Command::RaiseHand
                            }),
                        }
                    })
                })
            });
            move || drop(listener)
        },
    );
}

#[function_component(Meeting)]
pub(crate) fn meeting(props: &MeetingProps) -> Html {
    let state = use_reducer(|| {
        let state = MeetingState::new(props.user.clone(), props.meeting.clone());
        match stored_layout(&props.meeting) {
            Some(layout) => state.reduce(Action::SetLayout(layout)),
            None => state,
        }
    });
    // The layout chosen is remembered for this meeting (in this browser), across reloads.
    {
        let meeting = props.meeting.clone();
        use_effect_with(state.layout, move |layout| store_layout(&meeting, *layout));
    }
    let stream = use_state(|| None::<MediaStream>);
    let devices = use_state(DeviceList::default);
    let camera_id = use_state(|| None::<String>);
    let microphone_id = use_state(|| None::<String>);
    let speaker_id = use_state(|| None::<String>);
    let level = use_state(|| 0.0f32);
    // Connect waits for the devices: joining before they open would publish nothing.
    let opening = use_state(|| true);
    let meter = use_mut_ref(|| None::<AudioSender>);
    let client = use_mut_ref(|| None::<MeetingClient>);

    // Open the devices (again when the user picks another one).
    {
        let (stream, devices, state, meter) = (
            stream.clone(),
            devices.clone(),
            state.clone(),
            meter.clone(),
        );
        let opening = opening.clone();
        use_effect_with(
            ((*camera_id).clone(), (*microphone_id).clone()),
            move |(camera, microphone)| {
                let (camera, microphone) = (camera.clone(), microphone.clone());
                opening.set(true);
                spawn_local(async move {
                    if let Some(old) = &*stream {
                        stop(old);
                    }
                    let (opened, notices) =
                        devices::open_camera_and_mic(camera.as_deref(), microphone.as_deref())
                            .await;
                    for notice in notices {
                        state.dispatch(Action::Notice(notice));
                    }
                    *meter.borrow_mut() = opened
                        .as_ref()
                        .and_then(|s| {
                            s.get_audio_tracks()
                                .get(0)
                                .dyn_into::<MediaStreamTrack>()
                                .ok()
                        })
                        .map(|track| AudioSender::start(track, None));
                    stream.set(opened);
                    opening.set(false);
                    devices.set(devices::list_devices().await);
                });
            },
        );
    }
    // Microphone level, ten times a second, before joining.
    {
        let (level, meter) = (level.clone(), meter.clone());
        use_effect_with((), move |_| {
            let interval = Interval::new(100, move || {
                let value = meter
                    .borrow()
                    .as_ref()
                    .map(|m| m.level.get())
                    .unwrap_or(0.0);
                level.set(value);
            });
            move || drop(interval)
        });
    }
    // The E2EE identity is generated while the user chooses devices, not when joining.
    use_effect_with((), |_| crate::e2ee::prepare());
    // The driver follows the reducer: our media as toggled, and the video of the tiles the
    // grid draws first.
    {
        let client = client.clone();
        use_effect_with(state.media(), move |want| {
            if let Some(c) = &*client.borrow() {
                c.set_media(*want);
            }
        });
    }
    {
        let client = client.clone();
        use_effect_with(state.subscription(), move |subscription| {
            if let Some(c) = &*client.borrow() {
                c.set_subscription(subscription.clone());
            }
        });
    }
    // The lobby hears of a lost connection (an ended meeting, a removal, an expired token).
    {
        let on_lost = props.on_connection_lost.clone();
        let lost = matches!(state.phase, Phase::Reconnecting(_) | Phase::Failed(_));
        use_effect_with(lost, move |lost| {
            if *lost && let Some(cb) = on_lost {
                cb.emit(());
            }
        });
    }
    // The relay ended the session: the client stops (camera, microphone, pump), and the lobby
    // hears why.
    {
        let (client, on_ended) = (client.clone(), props.on_ended.clone());
        let ended = match state.phase {
            Phase::Ended(why) => Some(why),
            _ => None,
        };
        use_effect_with(ended, move |ended| {
            if let Some(why) = *ended {
                client.borrow_mut().take();
                if let Some(cb) = on_ended {
                    cb.emit(why);
                }
            }
        });
    }
    // Leaving the page stops everything.
    {
        let (client, stream) = (client.clone(), stream.clone());
        use_effect_with((), move |_| {
            move || {
                client.borrow_mut().take();
                if let Some(s) = &*stream {
                    stop(s);
                }
            }
        });
    }

    let dispatch = {
        let d = state.dispatcher();
        Callback::from(move |a: Action| d.dispatch(a))
    };
    let on_connect = {
        let (client, stream, state, dispatch) = (
            client.clone(),
            stream.clone(),
            state.clone(),
            dispatch.clone(),
        );
        let meter = meter.clone();
        let (user, meeting) = (props.user.clone(), props.meeting.clone());
        let token = props.token.clone();
        let speaker_id = speaker_id.clone();
        Callback::from(move |_| {
            // The meeting's own encoder takes over the microphone.
            meter.borrow_mut().take();
            dispatch.emit(Action::Connect);
            match MeetingClient::start(
                &user,
                &meeting,
                token.clone(),
                (*stream).clone(),
                state.media(),
                dispatch.clone(),
            ) {
                Ok(c) => {
                    // The speaker picked before joining: remote audio plays there.
                    if let Some(id) = (*speaker_id).clone() {
                        c.use_device(DeviceKind::Speaker, id);
                    }
                    *client.borrow_mut() = Some(c);
                }
                Err(e) => dispatch.emit(Action::ConnectFailed(e)),
            }
        })
    };
    let on_retry = {
        let client = client.clone();
        let dispatch = dispatch.clone();
        Callback::from(move |_: MouseEvent| {
            dispatch.emit(Action::Connect);
            if let Some(c) = &*client.borrow() {
                c.retry();
            }
        })
    };
    let on_mic = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::ToggleMic))
    };
    let on_camera = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::ToggleCamera))
    };
    let on_share = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::Sharing(!state.sharing)))
    };
    let on_pin = {
        let state = state.clone();
        Callback::from(move |session: SessionId| state.dispatch(Action::Pin(session)))
    };
    let on_diagnostics = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::ToggleDiagnostics))
    };
    let on_devices = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::ToggleDevices))
    };
    let on_device_pick = {
        let client = client.clone();
        Callback::from(move |(kind, id): (DeviceKind, String)| {
            if let Some(c) = &*client.borrow() {
                c.use_device(kind, id);
            }
        })
    };
    let on_leave = {
        let (client, state) = (client.clone(), state.clone());
        Callback::from(move |_| {
            client.borrow_mut().take();
            state.dispatch(Action::Leave);
        })
    };
    let command = {
        let client = client.clone();
        move |command: Command| {
            if let Some(c) = &*client.borrow() {
                c.command(command);
            }
        }
    };
    let on_chat_send = {
        let command = command.clone();
        Callback::from(move |text: String| command(Command::SendChat(text)))
    };
    let on_hand = {
        let (command, raised) = (command.clone(), state.hand_raised);
        Callback::from(move |_| {
            command(if raised {
                Command::LowerHand
            } else {
                Command::RaiseHand
            })
        })
    };
    let on_react = {
        let command = command.clone();
        Callback::from(move |emoji: String| command(Command::React(emoji)))
    };
    let on_lower_hand = {
        let command = command.clone();
        Callback::from(move |user: String| command(Command::LowerHandOf(user)))
    };
    use_shortcuts(
        state.dispatcher(),
        Rc::new(command),
        state.hand_raised,
        matches!(state.phase, Phase::Joined | Phase::Reconnecting(_)),
    );
    let on_chat = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::ToggleChat))
    };
    let on_people = {
        let state = state.clone();
        Callback::from(move |_| state.dispatch(Action::TogglePeople))
    };
    let on_layout = {
        let state = state.clone();
        Callback::from(move |layout: Layout| state.dispatch(Action::SetLayout(layout)))
    };
    // Closing the chat gives the focus back to the button that opens it.
    let on_chat_close = {
        let state = state.clone();
        Callback::from(move |_| {
            state.dispatch(Action::ToggleChat);
            focus("toggle-chat");
        })
    };
    let on_home = {
        let on_route = props.on_route.clone();
        Callback::from(move |_: MouseEvent| navigate("/", &on_route))
    };

    let s = (*state).clone();
    match &s.phase {
        Phase::PreJoin | Phase::Connecting => html! {
            <PreJoin meeting={s.meeting.clone()} user={s.user.clone()} stream={(*stream).clone()}
                devices={(*devices).clone()} level={*level} mic_on={s.mic_on} camera_on={s.camera_on}
                notices={s.notices.clone()} connecting={s.phase == Phase::Connecting} opening={*opening}
                on_camera={Callback::from({ let c = camera_id.clone(); move |id: String| c.set(Some(id)) })}
                on_microphone={Callback::from({ let m = microphone_id.clone(); move |id: String| m.set(Some(id)) })}
                on_speaker={Callback::from({ let s = speaker_id.clone(); move |id: String| s.set(Some(id)) })}
                on_toggle_mic={Callback::from({ let st = state.clone(); move |_| st.dispatch(Action::ToggleMic) })}
                on_toggle_camera={Callback::from({ let st = state.clone(); move |_| st.dispatch(Action::ToggleCamera) })}
                on_connect={on_connect} />
        },
        Phase::Failed(reason) => html! {
            <main class="centered">
                <div class="card">
                    <h1>{"Could not join"}</h1>
                    <p id="error" class="error">{reason.clone()}</p>
                    <div class="row">
                        <button id="retry" onclick={on_retry}>{"Retry"}</button>
                        <button class="secondary" onclick={on_home.clone()}>{"Home"}</button>
                    </div>
                </div>
            </main>
        },
        Phase::Ended(why) => html! {
            <main class="centered">
                <div class="card" id="session-ended" data-reason={why.code().to_string()}>
                    <h1>{match why {
                        FinalClose::Removed => "You were removed from the meeting",
                        FinalClose::MeetingEnded => "The meeting has ended",
                        FinalClose::Replaced => "You joined this meeting elsewhere",
                    }}</h1>
                    <p class="muted">{match why {
                        FinalClose::Replaced => "This meeting is open in another tab or device; this page stopped so that the other one keeps it.".to_owned(),
                        other => format!("The relay says: {other}."),
                    }}</p>
                    <button onclick={on_home.clone()}>{"Home"}</button>
                </div>
            </main>
        },
        Phase::Left => html! {
            <main class="centered">
                <div class="card">
                    <h1>{"You left the meeting"}</h1>
                    <button onclick={on_home}>{"Home"}</button>
                </div>
            </main>
        },
        Phase::Joined | Phase::Reconnecting(_) => {
            let count =
                s.peers.len() + s.peers.values().filter(|p| p.has_screen_stream).count() + 1;
            let layout = s.shown_layout();
            let main = s.main_tile();
            let active = s.active_speaker();
            let active_user = active.and_then(|a| s.peers.get(&a)).map(|p| p.user.clone());
            html! {
                <div class="meeting" data-phase={if s.phase == Phase::Joined { "joined" } else { "reconnecting" }}>
                    <TopBar state={s.clone()} on_layout={on_layout} />
                    <div class="body">
                        // Every tile is a sibling in every layout (CSS puts the large one
                        // first), so a layout change never restarts a tile's canvas.
                        <main id="grid" aria-label="Participants"
                            class={classes!("grid", format!("layout-{}", layout.name()), format!("n{}", count.min(16)))}
                            data-layout={layout.name()} data-active-speaker={active_user}>
                            { for s.tiles().into_iter().filter_map(|stream| s.peers.get(&stream.session).map(|peer| html! {
                                <Tile key={canvas_id(stream)} {stream} peer={peer.clone()}
                                    pinned={stream.kind == StreamKind::Camera && s.pinned == Some(stream.session)}
                                    main={main == Some(stream)}
                                    active={stream.kind == StreamKind::Camera && active == Some(stream.session)}
                                    level={if stream.kind == StreamKind::Camera { s.speaker.level(stream.session) } else { 0.0 }}
                                    on_pin={on_pin.clone()} />
                            })) }
                            <div class="tile self" id="tile-self" role="group" aria-label="Your camera">
                                if s.camera_on { <SelfView stream={(*stream).clone()} /> } else { <div class="avatar">{"You"}</div> }
                                <div class="label"><span class="name">{format!("{} (you)", s.user)}</span></div>
                            </div>
                        </main>
                        <PeerList state={s.clone()} host={props.host.clone()} on_lower_hand={on_lower_hand}
                            on_close={on_people.clone()} />
                        if s.chat.open {
                            <ChatPanelView lines={s.chat.lines.clone()} on_send={on_chat_send} on_close={on_chat_close} />
                        }
                    </div>
                    if s.diagnostics_open { <Diagnostics state={s.clone()} /> }
                    if s.devices_open {
                        <DevicePanel devices={(*devices).clone()} in_use={s.devices_in_use.clone()}
                            on_pick={on_device_pick} on_close={on_devices.clone()} />
                    }
                    <Controls mic_on={s.mic_on} camera_on={s.camera_on} sharing={s.sharing}
                        hand_raised={s.hand_raised} chat_open={s.chat.open} unread={s.chat.unread}
                        people_open={s.people_open} people={s.peers.len() + 1} devices_open={s.devices_open}
                        on_hand={on_hand} on_chat={on_chat} on_react={on_react} on_people={on_people}
                        on_mic={on_mic} on_camera={on_camera} on_share={on_share}
                        on_diagnostics={on_diagnostics} on_devices={on_devices} on_leave={on_leave} />
                    <Announcer announcements={s.announcements.clone()} />
                </div>
            }
        }
    }
}
