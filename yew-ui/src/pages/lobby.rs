//! `/m/<meeting>`: a meeting made through the meeting API. Log in as a guest if needed, ask to
//! join, wait in the waiting room (asking again every two seconds) until a host admits or
//! rejects us, then the meeting page with the room token; hosts get their controls there. The
//! meeting's state is checked every two seconds, so "meeting ended" shows for everyone; a lost
//! connection is explained (token expired, removed) by asking the API. All state is the
//! [`LobbyState`] reducer.

use std::rc::Rc;

use gloo_timers::callback::Interval;
use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api::fetch::{self, HostAction};
use crate::app::{Route, navigate};
use crate::components::host_panel::HostPanelProps;
use crate::pages::meeting::Meeting;
use crate::state::{LobbyAction, LobbyPhase, LobbyState};

/// How often the waiting room, the meeting's state and the host's list are asked.
const POLL_MS: u32 = 2000;

impl Reducible for LobbyState {
    type Action = LobbyAction;
    fn reduce(self: Rc<Self>, action: LobbyAction) -> Rc<Self> {
        Rc::new((*self).clone().reduce(action))
    }
}

#[derive(Properties, PartialEq)]
pub(crate) struct LobbyProps {
    pub(crate) meeting: String,
    pub(crate) on_route: Callback<Route>,
}

fn now_secs() -> i64 {
    (js_sys::Date::now() / 1000.0) as i64
}

/// What the page polls, keyed so that the interval restarts only when this changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poll {
    None,
    Join,
    Meeting { host: bool },
}

#[function_component(Lobby)]
pub(crate) fn lobby(props: &LobbyProps) -> Html {
    let state = use_reducer(|| LobbyState::new(props.meeting.clone()));
    let name = use_state(String::new);
    let meeting = props.meeting.clone();

    // Who are we?
    {
        let dispatcher = state.dispatcher();
        use_effect_with((), move |_| {
            spawn_local(async move {
                dispatcher.dispatch(match fetch::me().await {
                    Ok(user) => LobbyAction::LoggedIn(user),
                    Err(e) if e.code == "login_required" => LobbyAction::LoggedOut,
                    Err(e) => LobbyAction::LoginFailed(e),
                });
            });
        });
    }
    // Ask to join once logged in.
    {
        let dispatcher = state.dispatcher();
        let (meeting, me) = (meeting.clone(), state.me.clone());
        use_effect_with(state.phase == LobbyPhase::Joining, move |joining| {
            if let (true, Some(me)) = (*joining, me) {
                spawn_local(async move {
                    dispatcher.dispatch(match fetch::join(&meeting, &me.display_name).await {
                        Ok(answer) => LobbyAction::Joined(answer),
                        Err(e) => LobbyAction::JoinFailed(e),
                    });
                });
            }
        });
    }
    // Polling: the join while waiting; the meeting's state (and the waiting room, for hosts)
    // while in the meeting.
    {
        let poll = if state.polls_join() {
            Poll::Join
        } else if matches!(state.phase, LobbyPhase::InMeeting { .. }) {
            Poll::Meeting {
                host: state.polls_waiting_room(),
            }
        } else {
            Poll::None
        };
        let dispatcher = state.dispatcher();
        let (meeting, display_name) = (
            meeting.clone(),
            state.me.as_ref().map(|m| m.display_name.clone()),
        );
        use_effect_with(poll, move |poll| {
            let poll = *poll;
            let interval = (poll != Poll::None).then(|| {
                Interval::new(POLL_MS, move || {
                    let (dispatcher, meeting) = (dispatcher.clone(), meeting.clone());
                    let display_name = display_name.clone().unwrap_or_default();
                    spawn_local(async move {
                        if let Ok(view) = fetch::meeting(&meeting).await {
                            dispatcher.dispatch(LobbyAction::MeetingChecked(view));
                        }
                        match poll {
                            Poll::Join => dispatcher.dispatch(
                                match fetch::join(&meeting, &display_name).await {
                                    Ok(answer) => LobbyAction::Joined(answer),
                                    Err(e) => LobbyAction::JoinFailed(e),
                                },
                            ),
                            Poll::Meeting { host: true } => match fetch::waiting(&meeting).await {
                                Ok(list) => dispatcher.dispatch(LobbyAction::WaitingList(list)),
                                Err(e) => dispatcher.dispatch(LobbyAction::HostActionFailed(e)),
                            },
                            Poll::Meeting { host: false } | Poll::None => {}
                        }
                    });
                })
            });
            move || drop(interval)
        });
    }

    let on_home = {
        let on_route = props.on_route.clone();
        Callback::from(move |_: MouseEvent| navigate("/", &on_route))
    };
    let home_button = html! { <button id="home" onclick={on_home.clone()}>{"Home"}</button> };
    let screen = |id: &'static str, title: &'static str, text: String| {
        html! {
            <main class="centered">
                <div class="card" id={id}>
                    <h1>{title}</h1>
                    <p class="muted">{text}</p>
                    {home_button.clone()}
                </div>
            </main>
        }
    };

    let s = (*state).clone();
    match &s.phase {
        LobbyPhase::Starting | LobbyPhase::Joining => html! {
            <main class="centered"><div class="card" id="lobby-joining"><p class="muted">{"Joining…"}</p></div></main>
        },
        LobbyPhase::SignIn => {
            let on_name = {
                let name = name.clone();
                Callback::from(move |e: InputEvent| {
                    name.set(e.target_unchecked_into::<HtmlInputElement>().value())
                })
            };
            let on_submit = {
                let (name, dispatcher) = (name.clone(), state.dispatcher());
                Callback::from(move |e: SubmitEvent| {
                    e.prevent_default();
                    let (display_name, dispatcher) = (name.trim().to_owned(), dispatcher.clone());
                    spawn_local(async move {
                        dispatcher.dispatch(match fetch::login_guest(&display_name).await {
                            Ok(user) => LobbyAction::LoggedIn(user),
                            Err(e) => LobbyAction::LoginFailed(e),
                        });
                    });
                })
            };
            html! {
                <main class="centered">
                    <form class="card" id="sign-in" onsubmit={on_submit}>
                        <h1>{format!("Join {}", s.meeting)}</h1>
                        <label>{"Your name"}
                            <input id="lobby-name" value={(*name).clone()} oninput={on_name} placeholder="Ada" autofocus=true />
                        </label>
                        if let Some(error) = &s.error { <p class="error" id="lobby-error">{error.clone()}</p> }
                        <button type="submit" id="lobby-join">{"Ask to join"}</button>
                    </form>
                </main>
            }
        }
        LobbyPhase::Waiting => {
            let on_leave = {
                let (meeting, on_route) = (meeting.clone(), props.on_route.clone());
                Callback::from(move |_: MouseEvent| {
                    let (meeting, on_route) = (meeting.clone(), on_route.clone());
                    spawn_local(async move {
                        // Leaving the waiting room is a courtesy: going home happens anyway.
                        let _ = fetch::leave(&meeting).await;
                        navigate("/", &on_route);
                    });
                })
            };
            html! {
                <main class="centered">
                    <div class="card" id="waiting-room">
                        <h1>{"Waiting to be let in"}</h1>
                        <p class="muted">{format!("A host of {} will let you in soon.", s.meeting)}</p>
                        <button class="secondary" onclick={on_leave}>{"Leave"}</button>
                    </div>
                </main>
            }
        }
        LobbyPhase::InMeeting { token, .. } => {
            let me = s.me.clone().expect("admitted only after logging in");
            let host = s.host.then(|| host_controls(&state, &meeting));
            let on_connection_lost = {
                let (dispatcher, meeting) = (state.dispatcher(), meeting.clone());
                Callback::from(move |()| {
                    dispatcher.dispatch(LobbyAction::ConnectionLost { now: now_secs() });
                    let (dispatcher, meeting) = (dispatcher.clone(), meeting.clone());
                    spawn_local(async move {
                        if let Ok(view) = fetch::meeting(&meeting).await {
                            dispatcher.dispatch(LobbyAction::MeetingChecked(view));
                        }
                        if let Err(e) = fetch::participants(&meeting).await
                            && e.status == 403
                        {
                            dispatcher.dispatch(LobbyAction::NotAdmitted);
                        }
                    });
                })
            };
            let on_ended = {
                let dispatcher = state.dispatcher();
                Callback::from(move |why| dispatcher.dispatch(LobbyAction::SessionEnded(why)))
            };
            html! {
                <Meeting key={meeting.clone()} user={me.id} meeting={meeting.clone()}
                    on_route={props.on_route.clone()} token={Some(token.clone())} {host}
                    on_connection_lost={Some(on_connection_lost)} on_ended={Some(on_ended)} />
            }
        }
        LobbyPhase::Rejected => screen(
            "lobby-rejected",
            "You were not let in",
            "A host of this meeting turned you away.".into(),
        ),
        LobbyPhase::Ended => screen(
            "lobby-ended",
            "The meeting has ended",
            "A host ended this meeting for everyone.".into(),
        ),
        LobbyPhase::Removed => screen(
            "lobby-removed",
            "You were removed from the meeting",
            "A host removed you; you cannot join it again.".into(),
        ),
        LobbyPhase::TokenExpired => screen(
            "lobby-token-expired",
            "Your access to the meeting expired",
            "Your room token expired. Join the meeting again to continue.".into(),
        ),
        LobbyPhase::Failed(message) => screen("lobby-failed", "Could not join", message.clone()),
    }
}

/// The host's controls over the meeting API; what fails is shown in the panel.
fn host_controls(state: &UseReducerHandle<LobbyState>, meeting: &str) -> HostPanelProps {
    let on_action = {
        let (dispatcher, meeting) = (state.dispatcher(), meeting.to_owned());
        Callback::from(move |(user, action): (String, HostAction)| {
            let (dispatcher, meeting) = (dispatcher.clone(), meeting.clone());
            spawn_local(async move {
                if let Err(e) = fetch::host_action(&meeting, &user, action).await {
                    dispatcher.dispatch(LobbyAction::HostActionFailed(e));
                } else if let Ok(list) = fetch::waiting(&meeting).await {
                    dispatcher.dispatch(LobbyAction::WaitingList(list));
                }
            });
        })
    };
    let on_admit_all = {
        let (dispatcher, meeting) = (state.dispatcher(), meeting.to_owned());
        Callback::from(move |()| {
            let (dispatcher, meeting) = (dispatcher.clone(), meeting.clone());
            spawn_local(async move {
                match fetch::admit_all(&meeting).await {
                    Err(e) => dispatcher.dispatch(LobbyAction::HostActionFailed(e)),
                    Ok(()) => dispatcher.dispatch(LobbyAction::WaitingList(Vec::new())),
                }
            });
        })
    };
    let on_end = {
        let (dispatcher, meeting) = (state.dispatcher(), meeting.to_owned());
        Callback::from(move |()| {
            let (dispatcher, meeting) = (dispatcher.clone(), meeting.clone());
            spawn_local(async move {
                dispatcher.dispatch(match fetch::end(&meeting).await {
                    Ok(()) => LobbyAction::EndedByUs,
                    Err(e) => LobbyAction::HostActionFailed(e),
                });
            });
        })
    };
    HostPanelProps {
        waiting: state.waiting.clone(),
        error: state.error.clone(),
        on_action,
        on_admit_all,
        on_end,
    }
}
