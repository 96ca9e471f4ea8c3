//! Keyboard shortcuts of the meeting page: single keys without modifiers, so they never clash
//! with the browser's own (Ctrl+D, Ctrl+E…), and never taken while the user types (the chat
//! box, any text field).

/// What a shortcut does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortcut {
    /// Mute or unmute the microphone.
    Mic,
    /// Start or stop the camera.
    Camera,
    /// Open or close the chat.
    Chat,
    /// Raise or lower our hand.
    Hand,
    /// Open or close the people list.
    People,
    /// The next layout (grid, speaker, pinned).
    Layout,
}

impl Shortcut {
    /// Every shortcut, as the README lists them.
    pub const ALL: [Shortcut; 6] = [
        Shortcut::Mic,
        Shortcut::Camera,
        Shortcut::Chat,
        Shortcut::Hand,
        Shortcut::People,
        Shortcut::Layout,
    ];

    /// Its key, as `KeyboardEvent.key` gives it (lower case) and `aria-keyshortcuts` names it.
    pub fn key(self) -> &'static str {
        match self {
            Shortcut::Mic => "m",
            Shortcut::Camera => "v",
            Shortcut::Chat => "c",
            Shortcut::Hand => "h",
            Shortcut::People => "p",
            Shortcut::Layout => "l",
        }
    }

    /// `label` with the key, for a button's title: "Mute (M)".
    pub fn title(self, label: &str) -> String {
        format!("{label} ({})", self.key().to_uppercase())
    }
}

/// A key pressed on the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KeyPress<'a> {
    /// `KeyboardEvent.key`.
    pub key: &'a str,
    /// Ctrl, Alt or Meta held (Shift is allowed: Caps Lock and "M" are the same key).
    pub modifier: bool,
    /// The focus is in something that takes text (input, textarea, select, contenteditable).
    pub typing: bool,
    /// The key repeats (held down): toggling on each repeat would flap.
    pub repeat: bool,
}

/// The shortcut `press` triggers, if any.
pub fn shortcut(press: KeyPress<'_>) -> Option<Shortcut> {
    if press.modifier || press.typing || press.repeat {
        return None;
    }
    let key = press.key.to_lowercase();
    Shortcut::ALL.into_iter().find(|s| s.key() == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(key: &str) -> KeyPress<'_> {
        KeyPress {
            key,
            ..KeyPress::default()
        }
    }

    #[test]
    fn each_key_has_one_shortcut_and_upper_case_counts() {
        for s in Shortcut::ALL {
            assert_eq!(shortcut(key(s.key())), Some(s));
            assert_eq!(shortcut(key(&s.key().to_uppercase())), Some(s));
        }
        assert_eq!(shortcut(key("x")), None);
        assert_eq!(shortcut(key("Enter")), None);
        assert_eq!(Shortcut::Mic.title("Mute"), "Mute (M)");
    }

    #[test]
    fn typing_modifiers_and_repeats_are_never_shortcuts() {
        let typing = KeyPress {
            typing: true,
            ..key("m")
        };
        let ctrl = KeyPress {
            modifier: true,
            ..key("c")
        };
        let held = KeyPress {
            repeat: true,
            ..key("v")
        };
        assert_eq!(shortcut(typing), None, "an m typed in the chat is a letter");
        assert_eq!(shortcut(ctrl), None, "Ctrl+C copies");
        assert_eq!(shortcut(held), None);
    }
}
