//! One remote participant's camera (or screen) tile: a canvas the decoder draws into, the name,
//! mic/camera state and a speaking ring. Decoded-frame and audio counts appear as `data-frames`
//! (canvas), `data-audio-packets`, `data-audio-decoded` and `data-level` (tile) for tests and
//! diagnostics.

use yew::prelude::*;

use videocall_types::{SessionId, StreamKey, StreamKind};

use crate::media::canvas_id;
use crate::state::Peer;

#[derive(Properties, PartialEq)]
pub(crate) struct TileProps {
    /// Whose camera or screen.
    pub(crate) stream: StreamKey,
    pub(crate) peer: Peer,
    #[prop_or_default]
    pub(crate) pinned: bool,
    /// Shown large (the speaker or pinned layout).
    #[prop_or_default]
    pub(crate) main: bool,
    /// The active speaker.
    #[prop_or_default]
    pub(crate) active: bool,
    /// Their audio level envelope (0..1), as the active speaker is chosen from it.
    #[prop_or_default]
    pub(crate) level: f32,
    pub(crate) on_pin: Callback<SessionId>,
}

#[function_component(Tile)]
pub(crate) fn tile(props: &TileProps) -> Html {
    let peer = &props.peer;
    let session = props.stream.session;
    let screen = props.stream.kind == StreamKind::Screen;
    let on_click = {
        let on_pin = props.on_pin.clone();
        Callback::from(move |_| on_pin.emit(session))
    };
    let id = if screen {
        format!("tile-screen-{session}")
    } else {
        format!("tile-{session}")
    };
    let class = classes!(
        "tile",
        screen.then_some("screen"),
        props.pinned.then_some("pinned"),
        props.main.then_some("main"),
        props.active.then_some("active-speaker"),
        (peer.speaking && !screen).then_some("speaking"),
    );
    let name = if screen {
        format!("{} (screen)", peer.user)
    } else {
        peer.user.clone()
    };
    html! {
        <div {id} {class} data-user={peer.user.clone()} data-session={session.to_string()}
            data-kind={if screen { "screen" } else { "camera" }} ondblclick={on_click.clone()}
            data-level={format!("{:.3}", props.level)}
            role="group" aria-label={if props.active { format!("{name}, speaking") } else { name.clone() }}>
            <canvas id={canvas_id(props.stream)} class="video" />
            if peer.unencrypted {
                <div class="notice unencrypted">{"Not end-to-end encrypted: not shown"}</div>
            } else if !screen && !peer.video_on {
                <div class="avatar">{peer.user.chars().next().unwrap_or('?').to_uppercase().to_string()}</div>
            }
            if !screen {
                if let Some((_, emoji)) = &peer.reaction { <div class="reaction" aria-live="polite">{emoji.clone()}</div> }
            }
            <div class="label">
                if peer.hand_raised && !screen { <span class="hand" title="hand raised" aria-label="hand raised">{"✋"}</span> }
                <span class="name">{name.clone()}</span>
                if !screen {
                    <span class={classes!("mic", (!peer.audio_on).then_some("off"))} title={if peer.audio_on { "microphone on" } else { "muted" }}
                        aria-label={if peer.audio_on { "microphone on" } else { "muted" }}>{ if peer.audio_on { "mic" } else { "muted" } }</span>
                }
                <button class="pin" title={if props.pinned { "Unpin" } else { "Pin" }} onclick={on_click}
                    aria-pressed={props.pinned.to_string()} aria-label={format!("Pin {name}")}>{ if props.pinned { "unpin" } else { "pin" } }</button>
            </div>
        </div>
    }
}
