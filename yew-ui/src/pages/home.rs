//! `/`: enter a name and a meeting id (or make a random one), then go to the meeting.

use web_sys::HtmlInputElement;
use yew::prelude::*;

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

#[function_component(Home)]
pub(crate) fn home(props: &HomeProps) -> Html {
    let name = use_state(String::new);
    let meeting = use_state(random_meeting_id);
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
    let on_submit = {
        let (name, meeting, error, on_route) = (
            name.clone(),
            meeting.clone(),
            error.clone(),
            props.on_route.clone(),
        );
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let user = name.trim().to_owned();
            if videocall_types::UserId::new(user.clone()).is_err() {
                error.set(Some("Enter your name.".into()));
                return;
            }
            if !valid_meeting(&meeting) {
                error.set(Some(
                    "Meeting ids are 1–64 letters, digits, '-' or '_'.".into(),
                ));
                return;
            }
            let path = format!(
                "/meeting/{}/{}",
                js_sys::encode_uri_component(&user),
                *meeting
            );
            navigate(&path, &on_route);
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
                if let Some(text) = &*error { <p class="error">{text}</p> }
                <button type="submit" id="start">{"Start or join"}</button>
            </form>
        </main>
    }
}
