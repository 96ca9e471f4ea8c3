//! Who is in the meeting.

use yew::prelude::*;

use crate::state::MeetingState;

#[derive(Properties, PartialEq)]
pub(crate) struct PeerListProps {
    pub(crate) state: MeetingState,
}

#[function_component(PeerList)]
pub(crate) fn peer_list(props: &PeerListProps) -> Html {
    let s = &props.state;
    html! {
        <aside class="peers">
            <h2>{format!("People ({})", s.peers.len() + 1)}</h2>
            <ul id="peer-list">
                <li class="me">{format!("{} (you)", s.user)}</li>
                { for s.peers.iter().map(|(session, peer)| html! {
                    <li key={session.get()} data-session={session.to_string()}>
                        <span class={classes!("dot", peer.speaking.then_some("speaking"))} />
                        {peer.user.clone()}
                        if !peer.audio_on { <span class="muted">{" (muted)"}</span> }
                    </li>
                }) }
            </ul>
        </aside>
    }
}
