//! Routes: `/` (home), `/meeting/<username>/<meeting-id>` (an open meeting) and `/m/<meeting-id>`
//! (a meeting made through the meeting API: login, waiting room, room token). Navigation uses the History API;
//! the server answers every client route with this app.

use yew::prelude::*;

use crate::pages::home::Home;
use crate::pages::lobby::Lobby;
use crate::pages::meeting::Meeting;

/// A parsed route.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Route {
    Home,
    Meeting { user: String, meeting: String },
    Lobby { meeting: String },
}

impl Route {
    pub(crate) fn parse(path: &str) -> Self {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let decode = |s: &str| {
            js_sys::decode_uri_component(s)
                .ok()
                .and_then(|v| v.as_string())
                .unwrap_or_else(|| s.to_owned())
        };
        match parts.as_slice() {
            ["m", meeting] if !meeting.is_empty() => Route::Lobby {
                meeting: decode(meeting),
            },
            ["meeting", user, meeting] if !user.is_empty() && !meeting.is_empty() => {
                Route::Meeting {
                    user: decode(user),
                    meeting: decode(meeting),
                }
            }
            _ => Route::Home,
        }
    }

    fn current() -> Self {
        let path = web_sys::window()
            .and_then(|w| w.location().pathname().ok())
            .unwrap_or_default();
        Self::parse(&path)
    }
}

/// Navigates to `path` without reloading.
pub(crate) fn navigate(path: &str, on_route: &Callback<Route>) {
    if let Some(history) = web_sys::window().and_then(|w| w.history().ok()) {
        let _ = history.push_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(path));
    }
    on_route.emit(Route::parse(path));
}

#[function_component(App)]
pub(crate) fn app() -> Html {
    let route = use_state(Route::current);
    {
        // Back/forward buttons.
        let route = route.clone();
        use_effect_with((), move |_| {
            let listener = gloo_events::EventListener::new(
                &web_sys::window().expect("a window"),
                "popstate",
                move |_| route.set(Route::current()),
            );
            move || drop(listener)
        });
    }
    let on_route = {
        let route = route.clone();
        Callback::from(move |r: Route| route.set(r))
    };
    match (*route).clone() {
        Route::Home => html! { <Home on_route={on_route} /> },
        Route::Meeting { user, meeting } => {
            let key = format!("{user}/{meeting}");
            html! { <Meeting {key} {user} {meeting} {on_route} /> }
        }
        Route::Lobby { meeting } => {
            let key = meeting.clone();
            html! { <Lobby {key} {meeting} {on_route} /> }
        }
    }
}
