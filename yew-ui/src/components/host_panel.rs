//! What only hosts see in the meeting: the waiting room (admit, reject, admit all), ending the
//! meeting for everyone, and why the last host action failed.

use yew::prelude::*;

use crate::api::Participant;
use crate::api::fetch::HostAction;

/// The host's controls; the page carries out what they ask through the meeting API.
#[derive(Properties, PartialEq, Clone)]
pub(crate) struct HostPanelProps {
    /// Those waiting, first come first.
    pub(crate) waiting: Vec<Participant>,
    /// The last failed host action, as the API said it.
    pub(crate) error: Option<String>,
    /// Admit, reject, remove or ask to mute one user (by user id).
    pub(crate) on_action: Callback<(String, HostAction)>,
    /// Admit everyone waiting.
    pub(crate) on_admit_all: Callback<()>,
    /// End the meeting for everyone.
    pub(crate) on_end: Callback<()>,
}

#[function_component(HostPanel)]
pub(crate) fn host_panel(props: &HostPanelProps) -> Html {
    let button = |user: &str, action: HostAction, label: &'static str, id: &'static str| {
        let (user, on_action) = (user.to_owned(), props.on_action.clone());
        let onclick = Callback::from(move |_: MouseEvent| on_action.emit((user.clone(), action)));
        html! { <button class={classes!("small", id)} {onclick}>{label}</button> }
    };
    let on_admit_all = {
        let cb = props.on_admit_all.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    let on_end = {
        let cb = props.on_end.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    html! {
        <section class="host-panel" id="host-panel">
            <h2>{format!("Waiting ({})", props.waiting.len())}</h2>
            <ul id="waiting-list">
                { for props.waiting.iter().map(|p| html! {
                    <li key={p.user_id.clone()} data-user={p.user_id.clone()}>
                        <span class="name">{p.display_name.clone()}</span>
                        {button(&p.user_id, HostAction::Admit, "Admit", "admit")}
                        {button(&p.user_id, HostAction::Reject, "Reject", "reject")}
                    </li>
                }) }
            </ul>
            if props.waiting.len() > 1 {
                <button id="admit-all" class="secondary" onclick={on_admit_all}>{"Admit all"}</button>
            }
            if let Some(error) = &props.error { <p id="host-error" class="error">{error.clone()}</p> }
            <button id="end-meeting" class="danger" onclick={on_end}>{"End for all"}</button>
        </section>
    }
}
