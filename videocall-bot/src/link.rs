//! A participant's connection to its relay, read and written by the participant's own task:
//! WebSocket through [`crate::ws`], or WebTransport (wtransport) reading the relay's framed
//! stream (`?framed=1`) in place. No reader task, no channel per received packet.
//!
//! WebTransport sends as the client driver does, one unidirectional stream per packet, from a
//! writer task (opening a stream awaits the relay's credit, which must not hold up reading).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use videocall_client::TransportError;
use videocall_client::native::{NativeConfig, spawn_stream_writer};
use videocall_types::framing::UniStreamReader;
use videocall_types::lobby::LobbyPath;
use wtransport::error::ConnectionError;
use wtransport::{Connection, RecvStream};

use crate::ws::{self, WsConn, WsEnd};
use videocall_bot::wire::{OutMedia, encode_media};

/// How long a leave waits for queued bytes and the close to go out.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a link stopped.
#[derive(Debug)]
pub(crate) enum LinkEnd {
    /// The relay closed it with this code (WebSocket close code or WebTransport error code).
    Closed(u32, String),
    /// It broke or ended without a code.
    Lost(String),
}

/// An open connection.
#[derive(Debug)]
pub(crate) enum Link {
    Ws(WsConn),
    Wt(Box<WtConn>),
}

/// An open WebTransport session.
#[derive(Debug)]
pub(crate) struct WtConn {
    connection: Arc<Connection>,
    outgoing: mpsc::UnboundedSender<Bytes>,
    writer: tokio::task::JoinHandle<()>,
    /// The relay's framed stream, once accepted.
    stream: Option<RecvStream>,
    reader: UniStreamReader,
    chunk: Vec<u8>,
    /// Bytes of the last read, not yet handed to the reader.
    read: usize,
}

impl Link {
    /// Opens relay 0 of `native` at `path`: WebTransport when it has a WebTransport URL,
    /// WebSocket otherwise.
    pub(crate) async fn connect(
        native: &NativeConfig,
        path: &LobbyPath,
    ) -> Result<Self, TransportError> {
        let Some(urls) = native.relays.first() else {
            return Err(TransportError::Config("no relay".into()));
        };
        if let Some(base) = &urls.webtransport_url {
            let framed = path.clone().with_query("framed", "1");
            let url = format!("{}{framed}", base.trim_end_matches('/'));
            return Ok(Self::Wt(Box::new(open_webtransport(native, &url).await?)));
        }
        let Some(base) = &urls.websocket_url else {
            return Err(TransportError::Config("no relay URL".into()));
        };
        let base = base.trim_end_matches('/');
        let rest = base.split_once("://").map_or(base, |(_, rest)| rest);
        Ok(Self::Ws(ws::connect(&format!("ws://{rest}{path}")).await?))
    }

    /// Waits for bytes from the relay (writing queued bytes meanwhile) and reads them.
    /// Cancel-safe. An error: the link is gone.
    pub(crate) async fn io(&mut self) -> Result<(), LinkEnd> {
        match self {
            Self::Ws(ws) => match ws.io().await {
                Ok(0) => Err(LinkEnd::Lost("the relay closed the socket".into())),
                Ok(_) => Ok(()),
                Err(e) => Err(LinkEnd::Lost(e.to_string())),
            },
            Self::Wt(wt) => wt.io().await,
        }
    }

    /// Hands every complete packet received so far to `on_packet`.
    pub(crate) fn packets(&mut self, mut on_packet: impl FnMut(&[u8])) -> Result<(), LinkEnd> {
        match self {
            Self::Ws(ws) => ws.messages(on_packet).map_err(|end| match end {
                WsEnd::Closed(code, reason) => LinkEnd::Closed(u32::from(code), reason),
                WsEnd::Error(e) => LinkEnd::Lost(e),
            }),
            Self::Wt(wt) => {
                if wt.read > 0 {
                    let n = std::mem::take(&mut wt.read);
                    wt.reader
                        .handle_chunk(&wt.chunk[..n])
                        .map_err(|e| LinkEnd::Lost(e.to_string()))?;
                }
                while let Some(packet) = wt
                    .reader
                    .poll_packet()
                    .map_err(|e| LinkEnd::Lost(e.to_string()))?
                {
                    on_packet(&packet);
                }
                Ok(())
            }
        }
    }

    /// Sends one encoded packet (written by [`Link::flush`] or the next [`Link::io`]).
    pub(crate) fn send(&mut self, packet: &[u8]) {
        match self {
            Self::Ws(ws) => {
                if ws.has_room(packet.len()) {
                    ws.queue_binary(packet);
                }
            }
            Self::Wt(wt) => {
                let _ = wt.outgoing.send(Bytes::copy_from_slice(packet));
            }
        }
    }

    /// Sends a clear media frame, encoded in place; false if it was dropped (the relay has not
    /// read what was queued before).
    pub(crate) fn send_media(&mut self, media: &OutMedia<'_>) -> bool {
        let len = media.encoded_len();
        match self {
            Self::Ws(ws) => {
                if !ws.has_room(len) {
                    return false;
                }
                ws.queue_binary_with(len, |out| encode_media(out, media));
                true
            }
            Self::Wt(wt) => {
                let mut packet = Vec::with_capacity(len);
                encode_media(&mut packet, media);
                wt.outgoing.send(Bytes::from(packet)).is_ok()
            }
        }
    }

    /// Writes what the socket takes now.
    pub(crate) fn flush(&mut self) -> Result<(), LinkEnd> {
        match self {
            Self::Ws(ws) => ws.flush().map_err(|e| LinkEnd::Lost(e.to_string())),
            Self::Wt(_) => Ok(()),
        }
    }

    /// Sends what is queued and closes.
    pub(crate) async fn close(self) {
        match self {
            Self::Ws(ws) => ws.close(CLOSE_WAIT).await,
            Self::Wt(wt) => {
                let WtConn {
                    outgoing, writer, ..
                } = *wt;
                drop(outgoing);
                let _ = tokio::time::timeout(CLOSE_WAIT * 2, writer).await;
            }
        }
    }
}

impl WtConn {
    async fn io(&mut self) -> Result<(), LinkEnd> {
        if self.read > 0 {
            // Not handed to the reader yet (the caller did not call `packets`).
            return Ok(());
        }
        let result = match &mut self.stream {
            Some(stream) => stream.read(&mut self.chunk).await,
            None => {
                let stream = self
                    .connection
                    .accept_uni()
                    .await
                    .map_err(|e| connection_end(&e))?;
                self.stream = Some(stream);
                return Ok(());
            }
        };
        match result {
            Ok(Some(n)) => {
                self.read = n;
                if !self.reader.is_framed() && n > 0 && self.chunk[0] != 0 {
                    return Err(LinkEnd::Lost(
                        "the relay does not send a framed stream (?framed=1)".into(),
                    ));
                }
                Ok(())
            }
            Ok(None) => Err(LinkEnd::Lost("the relay ended its stream".into())),
            Err(e) => {
                // A stream read fails when the relay closes the connection: its close code (a
                // removal, an end, a replacement) is on the connection.
                let _ = e;
                match futures_util::FutureExt::now_or_never(self.connection.closed()) {
                    Some(closed) => Err(connection_end(&closed)),
                    None => Err(LinkEnd::Lost("the framed stream broke".into())),
                }
            }
        }
    }
}

fn connection_end(error: &ConnectionError) -> LinkEnd {
    match error {
        ConnectionError::ApplicationClosed(close) => LinkEnd::Closed(
            u32::try_from(close.code().into_inner()).unwrap_or(u32::MAX),
            String::from_utf8_lossy(close.reason()).into_owned(),
        ),
        other => LinkEnd::Lost(other.to_string()),
    }
}

async fn open_webtransport(native: &NativeConfig, url: &str) -> Result<WtConn, TransportError> {
    let connection = videocall_client::native::connect_webtransport(native, url).await?;
    let connection = Arc::new(connection);
    let (outgoing, writer) = spawn_stream_writer(connection.clone(), CLOSE_WAIT);
    Ok(WtConn {
        connection,
        outgoing,
        writer,
        stream: None,
        reader: UniStreamReader::default(),
        chunk: vec![0; 64 * 1024],
        read: 0,
    })
}
