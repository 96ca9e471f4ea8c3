//! Who is in the meeting; hosts also get remove and ask-to-mute per participant, and their
//! waiting room.

use yew::prelude::*;

use crate::api::fetch::HostAction;
use crate::components::host_panel::{HostPanel, HostPanelProps};
use crate::state::MeetingState;

#[derive(Properties, PartialEq)]
pub(crate) struct PeerListProps {
    pub(crate) state: MeetingState,
    /// Present when we host the meeting (made through the meeting API).
    #[prop_or_default]
    pub(crate) host: Option<HostPanelProps>,
    /// A host lowers this user's hand.
    #[prop_or_default]
    pub(crate) on_lower_hand: Callback<String>,
    /// Closes the list (a toggled panel on a narrow screen).
    #[prop_or_default]
    pub(crate) on_close: Callback<()>,
}

#[function_component(PeerList)]
pub(crate) fn peer_list(props: &PeerListProps) -> Html {
    let s = &props.state;
    let controls = |user: &str| -> Html {
        let Some(host) = &props.host else {
            return html! {};
        };
        let button = |action: HostAction, label: &'static str, class: &'static str| {
            let (user, on_action) = (user.to_owned(), host.on_action.clone());
            let onclick =
                Callback::from(move |_: MouseEvent| on_action.emit((user.clone(), action)));
            html! { <button class={classes!("small", class)} {onclick}>{label}</button> }
        };
        html! {
            <span class="host-controls">
                {button(HostAction::Mute, "Ask to mute", "mute")}
                {button(HostAction::Remove, "Remove", "remove")}
            </span>
        }
    };
    let on_close = {
        let cb = props.on_close.clone();
        Callback::from(move |_: MouseEvent| cb.emit(()))
    };
    html! {
        <aside id="people-panel" class={classes!("peers", s.people_open.then_some("open"))} aria-label="People">
            <header>
                <h2>{format!("People ({})", s.peers.len() + 1)}</h2>
                <button class="small secondary close" onclick={on_close} aria-label="Close people list">{"×"}</button>
            </header>
            <ul id="peer-list">
                <li class="me">
                    if s.hand_raised { <span class="hand" title="your hand is raised" aria-label="hand raised">{"✋"}</span> }
                    {format!("{} (you)", s.user)}
                </li>
                { for s.peers.iter().map(|(session, peer)| html! {
                    <li key={session.get()} data-session={session.to_string()} data-user={peer.user.clone()}>
                        <span class={classes!("dot", peer.speaking.then_some("speaking"))} />
                        if peer.hand_raised { <span class="hand" title="hand raised" aria-label="hand raised">{"✋"}</span> }
                        {peer.user.clone()}
                        if !peer.audio_on { <span class="muted">{" (muted)"}</span> }
                        if peer.hand_raised && props.host.is_some() {
                            <button class="small lower-hand" onclick={{
                                let (user, cb) = (peer.user.clone(), props.on_lower_hand.clone());
                                Callback::from(move |_: MouseEvent| cb.emit(user.clone()))
                            }}>{"Lower hand"}</button>
                        }
                        {controls(&peer.user)}
                    </li>
                }) }
            </ul>
            if let Some(host) = &props.host { <HostPanel ..host.clone() /> }
        </aside>
    }
}
