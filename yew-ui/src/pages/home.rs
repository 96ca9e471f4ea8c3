//! `/`: enter a name and a meeting id (or make a random one), then go to the open meeting; or
//! make a protected meeting you host (optionally with a waiting room), or ask to join one,
//! through the meeting API (`/m/<meeting>`).

use wasm_bindgen_futures::spawn_local;
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::api::NewMeeting;
use crate::api::fetch;
use crate::app::{Route, navigate};

#[derive(Properties, PartialEq)]
pub(crate) struct HomeProps {
    pub(crate) on_route: Callback<Route>,
}

fn random_meeting_id() -> String {
    let n = (js_sys::Math::random() * 1e9) as u64;
    format!("meet-{n:09}")
}

fn valid_meeting(id: &str) -> bool {
    videocall_types::MeetingId::new(id).is_ok()
}

/// Logs in as a guest named `name`, creates a meeting we host when `create` says so (else asks
/// to join `meeting`), and goes to its lobby; failures are the API's message.
async fn through_api(
    name: String,
    meeting: String,
    create: Option<NewMeeting>,
) -> Result<String, String> {
    fetch::login_guest(&name).await.map_err(|e| e.message)?;
    match create {
        Some(settings) => fetch::create_meeting(&settings)
            .await
            .map(|view| view.meeting_id)
            .map_err(|e| e.message),
        None => Ok(meeting),
    }
}

#[function_component(Home)]
pub(crate) fn home(props: &HomeProps) -> Html {
    let name = use_state(String::new);
    let meeting = use_state(random_meeting_id);
    let waiting_room = use_state(|| true);
    let busy = use_state(|| false);
    let error = use_state(|| None::<String>);
    let on_name = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| {
            name.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_meeting = {
        let meeting = meeting.clone();
        Callback::from(move |e: InputEvent| {
            meeting.set(e.target_unchecked_into::<HtmlInputElement>().value())
        })
    };
    let on_random = {
        let meeting = meeting.clone();
        Callback::from(move |_| meeting.set(random_meeting_id()))
    };
    let on_waiting_room = {
        let waiting_room = waiting_room.clone();
        Callback::from(move |e: Event| {
            waiting_room.set(e.target_unchecked_into::<HtmlInputElement>().checked())
        })
    };
    let check = {
        let (name, meeting, error) = (name.clone(), meeting.clone(), error.clone());
        move |need_meeting: bool| -> Option<(String, String)> {
            let user = name.trim().to_owned();
            if videocall_types::UserId::new(user.clone()).is_err() {
                error.set(Some("Enter your name.".into()));
                return None;
            }
            if need_meeting && !valid_meeting(&meeting) {
                error.set(Some(
                    "Meeting ids are 1–64 letters, digits, '-' or '_'.".into(),
                ));
                return None;
            }
            Some((user, (*meeting).clone()))
        }
    };
    let on_submit = {
        let (check, on_route) = (check.clone(), props.on_route.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let Some((user, meeting)) = check(true) else {
                return;
            };
            let path = format!(
                "/meeting/{}/{}",
                js_sys::encode_uri_component(&user),
                meeting
            );
            navigate(&path, &on_route);
        })
    };
    let api_button = |create: bool| {
        let (check, on_route) = (check.clone(), props.on_route.clone());
        let (busy, error, waiting_room) = (busy.clone(), error.clone(), waiting_room.clone());
        Callback::from(move |_: MouseEvent| {
            let Some((user, meeting)) = check(!create) else {
                return;
            };
            let settings = create.then(|| NewMeeting {
                waiting_room: *waiting_room,
            });
            let (busy, error, on_route) = (busy.clone(), error.clone(), on_route.clone());
            busy.set(true);
            spawn_local(async move {
                match through_api(user, meeting, settings).await {
                    Ok(id) => navigate(&format!("/m/{id}"), &on_route),
                    Err(message) => {
                        error.set(Some(message));
                        busy.set(false);
                    }
                }
            });
        })
    };
    html! {
        <main class="home">
            <form class="card" onsubmit={on_submit}>
                <h1>{"videocall"}</h1>
                <p class="muted">{"Fast, simple, end-to-end meetings."}</p>
                <label>{"Your name"}
                    <input id="name" value={(*name).clone()} oninput={on_name} placeholder="Ada" autofocus=true />
                </label>
                <label>{"Meeting id"}
                    <div class="row">
                        <input id="meeting" value={(*meeting).clone()} oninput={on_meeting} />
                        <button type="button" class="secondary" onclick={on_random}>{"Random"}</button>
                    </div>
                </label>
                if let Some(text) = &*error { <p class="error" id="home-error">{text}</p> }
                <button type="submit" id="start">{"Start or join"}</button>
                <hr />
                <p class="muted">{"Or a protected meeting: only those you let in can join."}</p>
                <label class="check">
                    <input type="checkbox" id="waiting-room-setting" checked={*waiting_room} onchange={on_waiting_room} />
                    {" Waiting room (you admit each person)"}
                </label>
                <div class="row">
                    <button type="button" id="create" disabled={*busy} onclick={api_button(true)}>{"New meeting (you host)"}</button>
                    <button type="button" id="ask-to-join" class="secondary" disabled={*busy} onclick={api_button(false)}>{"Ask to join this meeting"}</button>
                </div>
            </form>
        </main>
    }
}
