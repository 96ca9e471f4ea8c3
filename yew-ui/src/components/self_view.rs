//! Our own camera, mirrored, never played back (muted).

use web_sys::{HtmlVideoElement, MediaStream};
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub(crate) struct SelfViewProps {
    pub(crate) stream: Option<MediaStream>,
    #[prop_or_default]
    pub(crate) class: Classes,
}

#[function_component(SelfView)]
pub(crate) fn self_view(props: &SelfViewProps) -> Html {
    let video = use_node_ref();
    {
        let video = video.clone();
        use_effect_with(props.stream.clone(), move |stream| {
            if let Some(element) = video.cast::<HtmlVideoElement>() {
                element.set_src_object(stream.as_ref());
                crate::media::autoplay::play_muted(&element);
            }
        });
    }
    html! {
        <video ref={video} id="self-view" class={classes!("self-view", props.class.clone())}
            autoplay=true muted=true playsinline=true />
    }
}
