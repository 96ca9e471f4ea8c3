//! The chat panel: messages (text is always rendered as text — Yew escapes it — and only
//! `http(s)` links become anchors, with `rel="noopener noreferrer"`), and a box to write in.

use videocall_client::chat::{Segment, segments};
use web_sys::HtmlInputElement;
use yew::prelude::*;

use crate::state::ChatLine;

#[derive(Properties, PartialEq)]
pub(crate) struct ChatPanelProps {
    pub(crate) lines: Vec<ChatLine>,
    pub(crate) on_send: Callback<String>,
    pub(crate) on_close: Callback<()>,
}

/// One message's text, with its links.
fn text(text: &str) -> Html {
    html! {
        { for segments(text).into_iter().map(|segment| match segment {
            Segment::Text(t) => html! { {t.to_owned()} },
            Segment::Link(url) => html! {
                <a href={url.to_owned()} target="_blank" rel="noopener noreferrer">{url.to_owned()}</a>
            },
        }) }
    }
}

#[function_component(ChatPanelView)]
pub(crate) fn chat_panel(props: &ChatPanelProps) -> Html {
    let input = use_node_ref();
    let on_submit = {
        let (input, on_send) = (input.clone(), props.on_send.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            if let Some(field) = input.cast::<HtmlInputElement>() {
                let value = field.value();
                if !value.trim().is_empty() {
                    on_send.emit(value);
                    field.set_value("");
                }
            }
        })
    };
    let on_close = {
        let on_close = props.on_close.clone();
        Callback::from(move |_: MouseEvent| on_close.emit(()))
    };
    // Escape closes the panel (the page then focuses the Chat button again).
    let on_key = {
        let on_close = props.on_close.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Escape" {
                on_close.emit(());
            }
        })
    };
    // Opened: the box to write in takes the focus.
    {
        let input = input.clone();
        use_effect_with((), move |_| {
            if let Some(field) = input.cast::<HtmlInputElement>() {
                let _ = field.focus();
            }
        });
    }
    html! {
        <aside id="chat-panel" class="chat" aria-label="Chat" onkeydown={on_key}>
            <header>
                <h2>{"Chat"}</h2>
                <span class="muted small" title="Messages are end-to-end encrypted when the meeting is">{"only people in the meeting can read it"}</span>
                <button class="small secondary" onclick={on_close} aria-label="Close chat">{"×"}</button>
            </header>
            <ul id="chat-messages" aria-label="Messages">
                { for props.lines.iter().map(|line| html! {
                    <li key={line.id.clone()} class={classes!("chat-line", line.mine.then_some("mine"))}
                        data-from={line.from.clone()}>
                        <span class="from">{if line.mine { "You".to_owned() } else { line.from.clone() }}</span>
                        if let Some(via) = &line.via {
                            <span class="via muted" title={format!("from before you joined, passed on by {via}")}>{" (earlier)"}</span>
                        }
                        <span class="text">{text(&line.text)}</span>
                    </li>
                }) }
            </ul>
            <form class="chat-form" onsubmit={on_submit}>
                <input id="chat-input" ref={input} type="text" maxlength="4096" autocomplete="off"
                    placeholder="Message everyone" aria-label="Message" />
                <button id="chat-send" type="submit">{"Send"}</button>
            </form>
        </aside>
    }
}
