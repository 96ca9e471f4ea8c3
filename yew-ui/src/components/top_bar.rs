//! The meeting's top bar: its name, transport, encryption and safety code, round trip,
//! reconnecting, and the layout switch (grid, speaker, pinned). On a phone it wraps, and the
//! transport and round-trip badges hide.

use yew::prelude::*;

use crate::state::{Layout, MeetingState, Phase, Shortcut};

#[derive(Properties, PartialEq)]
pub(crate) struct TopBarProps {
    pub(crate) state: MeetingState,
    pub(crate) on_layout: Callback<Layout>,
}

#[function_component(TopBar)]
pub(crate) fn top_bar(props: &TopBarProps) -> Html {
    let s = &props.state;
    let shown = s.shown_layout();
    html! {
        <header class="topbar">
            <h1 class="title">{s.meeting.clone()}</h1>
            <span id="transport" class="badge">{s.transport.map(|t| t.label()).unwrap_or("—")}</span>
            if s.encrypted == Some(true) {
                <span id="e2ee" class="badge ok" title="Media is end-to-end encrypted: the server cannot see or hear it">
                    <svg class="lock" viewBox="0 0 16 16" width="12" height="12" aria-hidden="true">
                        <path d="M5 7V5a3 3 0 0 1 6 0v2" fill="none" stroke="currentColor" stroke-width="1.8" />
                        <rect x="3" y="7" width="10" height="8" rx="1.5" fill="currentColor" />
                    </svg>
                    {"End-to-end encrypted"}
                </span>
                <span class="badge code" title="Safety code: everyone in the meeting should see the same code. A different code means someone's keys were substituted.">
                    <span class="muted">{"Safety code "}</span>
                    <span id="safety-code">{s.safety_code.clone().unwrap_or_else(|| "…".into())}</span>
                    <details id="key-holders" title="Everyone who holds your key; the safety code covers exactly this list">
                        <summary>{format!("{} key holders", s.key_holders.len())}</summary>
                        <ul>
                            { for s.key_holders.iter().map(|(user, fingerprint)| html! {
                                <li><span class="user">{user.clone()}</span>{" "}<code>{fingerprint.clone()}</code></li>
                            }) }
                        </ul>
                    </details>
                </span>
            } else if s.encrypted == Some(false) {
                <span id="e2ee" class="badge warn" title="This meeting is set to send media in clear to the server">{"Not end-to-end encrypted"}</span>
            }
            if let Some(rtt) = s.rtt_ms { <span id="rtt" class="badge muted">{format!("RTT {rtt:.0} ms")}</span> }
            if let Phase::Reconnecting(reason) = &s.phase { <span id="reconnecting" class="badge warn">{reason.clone()}</span> }
            <div class="layout-switch" role="group" aria-label="Layout">
                { for Layout::ALL.into_iter().map(|layout| {
                    let on_layout = props.on_layout.clone();
                    let pressed = shown == layout;
                    // The pinned layout comes from pinning a tile.
                    let disabled = layout == Layout::Pinned && s.pinned.is_none();
                    let title = if disabled {
                        "Pinned: pin a tile first".to_owned()
                    } else {
                        Shortcut::Layout.title(&format!("{} layout", layout.label()))
                    };
                    html! {
                        <button id={format!("layout-{}", layout.name())} class="small secondary"
                            aria-pressed={pressed.to_string()} {disabled} {title}
                            aria-keyshortcuts={Shortcut::Layout.key()}
                            onclick={Callback::from(move |_: MouseEvent| on_layout.emit(layout))}>
                            {layout.label()}
                        </button>
                    }
                }) }
            </div>
        </header>
    }
}
