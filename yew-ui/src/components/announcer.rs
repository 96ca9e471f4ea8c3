//! The live region: screen readers read out who joined or left, messages from others and
//! raised hands as they happen. Visually hidden; the reducer keeps the last few.

use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(crate) struct AnnouncerProps {
    /// (number, text), newest last.
    pub(crate) announcements: Vec<(u64, String)>,
}

#[function_component(Announcer)]
pub(crate) fn announcer(props: &AnnouncerProps) -> Html {
    html! {
        <div id="announcer" class="sr-only" role="log" aria-live="polite" aria-relevant="additions">
            { for props.announcements.iter().map(|(n, text)| html! {
                <p key={*n}>{text.clone()}</p>
            }) }
        </div>
    }
}
