//! Chat history, dedupe and text rules (issue #18), shared by the session and the browser.
//!
//! A [`ChatLog`] keeps the recent messages a member re-sends to a newcomer (at most
//! [`HISTORY_MESSAGES`] messages and [`HISTORY_TEXT_BYTES`] bytes of text) and the ids it has
//! shown (at most [`SEEN_IDS`]), so a message that arrives twice — live, then again in a
//! newcomer's history — is shown once. [`segments`] splits a message into text and links for a
//! renderer that must never interpret user text as markup.

use std::collections::{HashSet, VecDeque};

use videocall_types::UserId;
use videocall_types::chat_limits::{ALLOWED_EMOJI, MAX_TEXT_BYTES};

/// Most messages kept for late joiners.
pub const HISTORY_MESSAGES: usize = 100;
/// Most bytes of text kept for late joiners.
pub const HISTORY_TEXT_BYTES: usize = 64 * 1024;
/// Most message ids remembered for dedupe (oldest forgotten first).
pub const SEEN_IDS: usize = 1024;
/// Length of the random id a sender gives each message.
pub const ID_BYTES: usize = 16;
/// Most bytes of an author's user id carried in history.
pub const MAX_AUTHOR_BYTES: usize = 128;

/// One chat message as shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatEntry {
    /// Its id (hex of the sender's random bytes).
    pub id: String,
    /// Its author's user id.
    pub from: UserId,
    /// The text (plain: render it as text, never as markup).
    pub text: String,
    /// When its author sent it, Unix milliseconds on the author's clock.
    pub at_ms: u64,
    /// History only: the member who re-sent it (the relay vouches for this one, not for
    /// `from`).
    pub via: Option<UserId>,
}

/// Why a message or reaction is refused before it is sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChatError {
    /// Nothing but white space.
    #[error("empty message")]
    Empty,
    /// Over [`MAX_TEXT_BYTES`].
    #[error("message of {0} bytes exceeds the 4096-byte limit")]
    TooLong(usize),
    /// Not one of [`ALLOWED_EMOJI`].
    #[error("reaction {0:?} is not one of the allowed emoji")]
    EmojiNotAllowed(String),
}

/// The text to send for `text`: trimmed of surrounding white space, not empty, within the cap.
pub fn check_text(text: &str) -> Result<&str, ChatError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ChatError::Empty);
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(ChatError::TooLong(text.len()));
    }
    Ok(text)
}

/// Whether `emoji` may be sent as a reaction.
pub fn emoji_allowed(emoji: &str) -> bool {
    ALLOWED_EMOJI.contains(&emoji)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Recent messages and the ids already shown.
#[derive(Debug, Default, Clone)]
pub struct ChatLog {
    history: VecDeque<ChatEntry>,
    text_bytes: usize,
    seen: HashSet<String>,
    seen_order: VecDeque<String>,
}

impl ChatLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes `entry` unless its id was seen: true when it is new (show it). It is kept for
    /// late joiners; the oldest messages go once a cap is passed.
    pub fn accept(&mut self, entry: ChatEntry) -> bool {
        if self.seen.contains(&entry.id) {
            return false;
        }
        if self.seen_order.len() == SEEN_IDS
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.seen.insert(entry.id.clone());
        self.seen_order.push_back(entry.id.clone());
        self.text_bytes += entry.text.len();
        self.history.push_back(entry);
        while self.history.len() > HISTORY_MESSAGES || self.text_bytes > HISTORY_TEXT_BYTES {
            let Some(old) = self.history.pop_front() else {
                break;
            };
            self.text_bytes -= old.text.len();
        }
        true
    }

    /// The messages kept, oldest first.
    pub fn history(&self) -> impl Iterator<Item = &ChatEntry> {
        self.history.iter()
    }

    /// How many messages are kept.
    pub fn len(&self) -> usize {
        self.history.len()
    }

    /// Whether no message is kept.
    pub fn is_empty(&self) -> bool {
        self.history.is_empty()
    }
}

/// A piece of a message: text, or a link to show as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment<'a> {
    /// Plain text.
    Text(&'a str),
    /// An `http://` or `https://` URL (no other scheme is ever a link).
    Link(&'a str),
}

/// Splits `text` into plain text and http(s) links. A link runs from its scheme to the next
/// white space; trailing punctuation (`.,;:!?)]'"`) stays text.
pub fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(start) = find_link(rest) {
        let end = rest[start..]
            .find(char::is_whitespace)
            .map_or(rest.len(), |e| start + e);
        let link = rest[start..end].trim_end_matches(|c| ".,;:!?)]'\"".contains(c));
        let link_end = start + link.len();
        let scheme = if link.to_ascii_lowercase().starts_with("https://") {
            "https://".len()
        } else {
            "http://".len()
        };
        if link.len() <= scheme {
            // A bare scheme is no link.
            out.push(Segment::Text(&rest[..link_end]));
        } else {
            if start > 0 {
                out.push(Segment::Text(&rest[..start]));
            }
            out.push(Segment::Link(link));
        }
        rest = &rest[link_end..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    out
}

/// Where the first `http://` or `https://` (any case) starts.
fn find_link(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    let http = lower.find("http://");
    let https = lower.find("https://");
    match (http, https) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str, text: &str) -> ChatEntry {
        ChatEntry {
            id: id.into(),
            from: UserId::new("alice").unwrap(),
            text: text.into(),
            at_ms: 1,
            via: None,
        }
    }

    #[test]
    fn a_message_seen_twice_is_shown_once() {
        let mut log = ChatLog::new();
        assert!(log.accept(entry("a", "hi")));
        assert!(!log.accept(entry("a", "hi again, same id")));
        assert!(log.accept(entry("b", "there")));
        assert_eq!(log.len(), 2);
    }

    #[test]
    fn history_keeps_the_newest_within_both_caps() {
        let mut log = ChatLog::new();
        for i in 0..(HISTORY_MESSAGES + 20) {
            log.accept(entry(&i.to_string(), "x"));
        }
        assert_eq!(log.len(), HISTORY_MESSAGES);
        assert_eq!(log.history().next().unwrap().id, "20");
        let big = "y".repeat(MAX_TEXT_BYTES);
        for i in 0..40 {
            log.accept(entry(&format!("big{i}"), &big));
        }
        let bytes: usize = log.history().map(|e| e.text.len()).sum();
        assert!(bytes <= HISTORY_TEXT_BYTES, "{bytes}");
        assert_eq!(log.len(), HISTORY_TEXT_BYTES / MAX_TEXT_BYTES);
        assert_eq!(log.history().last().unwrap().id, "big39");
    }

    #[test]
    fn remembered_ids_are_capped() {
        let mut log = ChatLog::new();
        for i in 0..(SEEN_IDS + 5) {
            log.accept(entry(&i.to_string(), ""));
        }
        assert_eq!(log.seen.len(), SEEN_IDS);
        // The oldest ids were forgotten; the newest are still refused.
        assert!(log.accept(entry("0", "")));
        assert!(!log.accept(entry(&(SEEN_IDS + 4).to_string(), "")));
    }

    #[test]
    fn text_is_trimmed_and_capped() {
        assert_eq!(check_text("  hi \n"), Ok("hi"));
        assert_eq!(check_text(" \n\t"), Err(ChatError::Empty));
        let long = "é".repeat(MAX_TEXT_BYTES / 2 + 1);
        assert_eq!(check_text(&long), Err(ChatError::TooLong(long.len())));
        assert!(check_text(&"a".repeat(MAX_TEXT_BYTES)).is_ok());
    }

    #[test]
    fn only_http_and_https_become_links() {
        use Segment::*;
        assert_eq!(
            segments("see https://example.org/a?b=1, or HTTP://x.y."),
            vec![
                Text("see "),
                Link("https://example.org/a?b=1"),
                Text(", or "),
                Link("HTTP://x.y"),
                Text("."),
            ]
        );
        assert_eq!(
            segments("javascript:alert(1) ftp://x <b>"),
            vec![Text("javascript:alert(1) ftp://x <b>")]
        );
        assert_eq!(
            segments("https:// alone"),
            vec![Text("https://"), Text(" alone")]
        );
        assert_eq!(segments(""), Vec::<Segment<'_>>::new());
    }

    #[test]
    fn only_the_allowed_emoji_pass() {
        assert!(emoji_allowed("👍"));
        assert!(!emoji_allowed("💩"));
        assert!(!emoji_allowed("<img src=x>"));
    }
}
