//! Wire types of videocall.
//!
//! The protobuf messages in `protobuf/` are compiled at build time (protox + prost, no `protoc`)
//! into [`proto`]. Their field numbers are those of the original videocall-rs project, so clients
//! and relays of either can talk to each other; `tests/wire_vectors.rs` pins the exact encodings.
//!
//! On top of the generated types this crate adds validated id newtypes ([`MeetingId`],
//! [`UserId`], [`SessionId`]), constructors for the packets the server sends ([`packets`]), the
//! WebTransport framed stream ([`framing`]), the session path parser ([`lobby`]), presence
//! state bits ([`presence`]) and the close codes that end a session for good ([`FinalClose`]).
//! It has no I/O and builds for `wasm32-unknown-unknown`.

mod close;
pub mod framing;
mod ids;
pub mod lobby;
pub mod packets;
pub mod presence;

pub use close::FinalClose;
pub use ids::{IdError, MeetingId, SessionId, StreamKey, StreamKind, UserId};

/// Generated protobuf types (package `videocall`).
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    missing_debug_implementations
)]
pub mod proto {
    include!(concat!(env!("OUT_DIR"), "/videocall.rs"));
}

pub use proto::{
    AesPacket, AudioMetadata, ChatMessage, ChatPacket, ConnectionPacket, HeartbeatMetadata,
    MediaPacket, MeetingPacket, PacketWrapper, PresenceDigest, PresenceEntry, ReactionPacket,
    RelayNotice, RsaPacket, SubscriptionPacket, VideoMetadata, media_packet::MediaType,
    meeting_packet::MeetingEventType, packet_wrapper::PacketType,
    reaction_packet::Kind as ReactionKind, relay_notice::Reason as NoticeReason,
    video_metadata::VideoCodec,
};

/// Chat limits shared by clients and relays (issue #18).
pub mod chat_limits {
    /// Most bytes of UTF-8 text in one chat message.
    pub const MAX_TEXT_BYTES: usize = 4096;
    /// Most bytes of a CHAT packet's data (a `ChatPacket`): the text plus its id, time, author
    /// and the sealing overhead, with room to spare. Larger ones are dropped by the relay.
    pub const MAX_CHAT_PACKET_BYTES: usize = 6 * 1024;
    /// Most bytes of a REACTION packet's data (a `ReactionPacket`).
    pub const MAX_REACTION_PACKET_BYTES: usize = 64;
    /// The emoji a reaction may carry; clients drop any other.
    pub const ALLOWED_EMOJI: [&str; 6] = ["👍", "👏", "❤️", "😂", "😮", "🎉"];
}

/// The user id the server puts on every packet it originates (SESSION_ASSIGNED, meeting events).
/// Clients of the original project recognise server packets by it.
pub const SYSTEM_USER_ID: &str = "system-&^%$#@!";
