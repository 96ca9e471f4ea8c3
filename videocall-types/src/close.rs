//! The close codes that end a session for good. The relays close a connection with them
//! (WebSocket close code, WebTransport application error code: the same numbers on both), and
//! clients read them to tell "do not reconnect" from a failure worth a retry.

/// Why the relay closed a session for good: the client must not reconnect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FinalClose {
    /// A host removed the participant (4010); the relay refuses its later joins.
    Removed,
    /// A host ended the meeting (4011).
    MeetingEnded,
    /// The same participant connected again, elsewhere (4012): reconnecting would take the
    /// meeting back from the newer connection, which would then do the same.
    Replaced,
}

impl FinalClose {
    /// Every final close, in code order.
    pub const ALL: [FinalClose; 3] = [
        FinalClose::Removed,
        FinalClose::MeetingEnded,
        FinalClose::Replaced,
    ];

    /// The close code (WebSocket close code and WebTransport application error code).
    pub const fn code(self) -> u16 {
        match self {
            FinalClose::Removed => 4010,
            FinalClose::MeetingEnded => 4011,
            FinalClose::Replaced => 4012,
        }
    }

    /// The final close a code means, if it is one (any other code is not final).
    pub fn from_code(code: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|c| u32::from(c.code()) == code)
    }

    /// Text for people (a close frame's reason, an end screen).
    pub const fn as_str(self) -> &'static str {
        match self {
            FinalClose::Removed => "removed from the meeting by a host",
            FinalClose::MeetingEnded => "the meeting has ended",
            FinalClose::Replaced => "replaced by a new connection of the same participant",
        }
    }
}

impl std::fmt::Display for FinalClose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_codes_map_both_ways_and_other_codes_are_not_final() {
        for close in FinalClose::ALL {
            assert_eq!(FinalClose::from_code(close.code().into()), Some(close));
        }
        for code in [0, 1000, 1001, 1008, 4001, 4009, 4013, 4010 + (1 << 16)] {
            assert_eq!(FinalClose::from_code(code), None, "{code}");
        }
    }
}
