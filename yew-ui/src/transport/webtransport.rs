//! WebTransport: we send one packet per unidirectional stream. We ask the relay (`?framed=1`)
//! to send on one long-lived stream of length-prefixed packets (first byte 0, then per packet a
//! 4-byte big-endian length and the packet); a relay that does not know the query sends one
//! packet per stream, which we read to its end and deliver in stream order.

use std::cell::Cell;
use std::rc::Rc;

use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::spawn_local;
use web_sys::{
    ReadableStream, ReadableStreamDefaultReader, WebTransport, WebTransportHash,
    WebTransportOptions, WritableStream,
};

use videocall_types::framing::UniStreamReader;

use super::{OnClose, OnPacket, await_promise, js_error};

pub(crate) struct WtTransport {
    transport: WebTransport,
    closed: Rc<Cell<bool>>,
}

impl WtTransport {
    pub(crate) async fn connect(
        url: &str,
        certificate_hash: Option<&[u8]>,
        on_packet: OnPacket,
        on_close: OnClose,
    ) -> Result<Self, String> {
        let options = WebTransportOptions::new();
        if let Some(hash) = certificate_hash {
            let entry = WebTransportHash::new();
            entry.set_algorithm("sha-256");
            entry.set_value_u8_array(&Uint8Array::from(hash));
            options.set_server_certificate_hashes(&[entry]);
        }
        let url = format!("{url}{}framed=1", if url.contains('?') { '&' } else { '?' });
        let transport = WebTransport::new_with_options(&url, &options).map_err(|e| js_error(&e))?;
        // Giving up before it is ready (a timeout drops this future) closes the attempt.
        let mut pending = CloseOnDrop(Some(transport.clone()));
        await_promise(transport.ready().unchecked_into()).await?;
        pending.0 = None;
        let closed = Rc::new(Cell::new(false));
        {
            let (transport, closed, on_close) =
                (transport.clone(), closed.clone(), on_close.clone());
            spawn_local(async move {
                // Closed with a session close (WebTransportCloseInfo): its code and reason. A
                // QUIC connection the server closed rejects instead, without the code; the
                // relay's in-band MEETING events then say what a removal or an end is.
                let (code, reason) = match await_promise(transport.closed().unchecked_into()).await
                {
                    Ok(info) => (
                        Reflect::get(&info, &"closeCode".into())
                            .ok()
                            .and_then(|c| c.as_f64())
                            .map(|c| c as u32),
                        Reflect::get(&info, &"reason".into())
                            .ok()
                            .and_then(|r| r.as_string())
                            .filter(|r| !r.is_empty())
                            .unwrap_or_else(|| "connection closed".into()),
                    ),
                    Err(e) => (None, e),
                };
                if !closed.replace(true) {
                    on_close(code, reason);
                }
            });
        }
        let incoming = transport.incoming_unidirectional_streams();
        spawn_local(accept_streams(incoming, on_packet));
        Ok(Self { transport, closed })
    }

    pub(crate) fn send(&self, packet: &[u8]) {
        if self.closed.get() {
            return;
        }
        let transport = self.transport.clone();
        let bytes = Uint8Array::from(packet);
        spawn_local(async move {
            let Ok(stream) =
                await_promise(transport.create_unidirectional_stream().unchecked_into()).await
            else {
                return;
            };
            let stream: WritableStream = stream.unchecked_into();
            let Ok(writer) = stream.get_writer() else {
                return;
            };
            let _ = await_promise(writer.write_with_chunk(&bytes).unchecked_into()).await;
            let _ = await_promise(writer.close().unchecked_into()).await;
        });
    }

    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.transport.close();
    }
}

struct CloseOnDrop(Option<WebTransport>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.close();
        }
    }
}

/// Reads incoming streams side by side and delivers their packets in stream order: the relay
/// opens one stream per packet in the order it sends, and video decoders need that order.
async fn accept_streams(incoming: ReadableStream, on_packet: OnPacket) {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesOrdered;
    let Ok(reader) = incoming
        .get_reader()
        .dyn_into::<ReadableStreamDefaultReader>()
    else {
        return;
    };
    let mut reads = FuturesOrdered::new();
    // The pending `read()` of the next stream survives loop turns: dropping it would lose the
    // stream its promise resolves with.
    let next = |reader: ReadableStreamDefaultReader| Box::pin(async move { read(&reader).await });
    let mut next_stream = Some(next(reader.clone()));
    loop {
        let outcome = {
            let next_packet = std::pin::pin!(async {
                if reads.is_empty() {
                    std::future::pending().await
                } else {
                    reads.next().await
                }
            });
            match next_stream.as_mut() {
                Some(stream) => match futures_util::future::select(stream, next_packet).await {
                    futures_util::future::Either::Left((stream, _)) => Ok(stream),
                    futures_util::future::Either::Right((packet, _)) => Err(packet),
                },
                None => Err(next_packet.await),
            }
        };
        match outcome {
            Ok(Some(stream)) => {
                reads.push_back(read_stream(stream.unchecked_into()));
                next_stream = Some(next(reader.clone()));
            }
            Ok(None) => next_stream = None,
            Err(Some(Incoming::Packet(packet))) => on_packet(packet),
            // The relay sends everything on it from here on.
            Err(Some(Incoming::Framed(reader, rest))) => {
                spawn_local(read_framed(reader, rest, on_packet.clone()));
            }
            Err(Some(Incoming::Broken) | None) => {}
        }
        if next_stream.is_none() && reads.is_empty() {
            return;
        }
    }
}

/// What an incoming unidirectional stream turned out to be.
enum Incoming {
    /// A stream holding one packet, read to its end.
    Packet(Vec<u8>),
    /// The framed stream, with what was read of it.
    Framed(ReadableStreamDefaultReader, UniStreamReader),
    /// A stream that could not be read.
    Broken,
}

async fn read_stream(stream: ReadableStream) -> Incoming {
    let Ok(reader) = stream
        .get_reader()
        .dyn_into::<ReadableStreamDefaultReader>()
    else {
        return Incoming::Broken;
    };
    // The framings are parsed by the reader every client shares.
    let mut stream = UniStreamReader::default();
    while let Some(chunk) = read(&reader).await {
        if stream
            .handle_chunk(&chunk.unchecked_into::<Uint8Array>().to_vec())
            .is_err()
        {
            return Incoming::Broken;
        }
        if stream.is_framed() {
            return Incoming::Framed(reader, stream);
        }
    }
    stream.handle_end();
    match stream.poll_packet() {
        Ok(Some(packet)) => Incoming::Packet(packet.to_vec()),
        _ => Incoming::Broken,
    }
}

/// Delivers the packets of the framed stream until it ends (or carries an impossible frame).
async fn read_framed(
    reader: ReadableStreamDefaultReader,
    mut frames: UniStreamReader,
    on_packet: OnPacket,
) {
    loop {
        loop {
            match frames.poll_packet() {
                Ok(Some(packet)) => on_packet(packet.to_vec()),
                Ok(None) => break,
                Err(_) => return,
            }
        }
        let Some(chunk) = read(&reader).await else {
            return;
        };
        if frames
            .handle_chunk(&chunk.unchecked_into::<Uint8Array>().to_vec())
            .is_err()
        {
            return;
        }
    }
}

/// The next chunk of a stream, `None` at its end or on error.
pub(crate) async fn read(reader: &ReadableStreamDefaultReader) -> Option<JsValue> {
    let result = await_promise(reader.read()).await.ok()?;
    let done = Reflect::get(&result, &"done".into())
        .ok()?
        .as_bool()
        .unwrap_or(true);
    if done {
        return None;
    }
    Reflect::get(&result, &"value".into()).ok()
}
