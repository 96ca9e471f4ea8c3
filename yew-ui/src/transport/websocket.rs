//! WebSocket: one binary message per packet.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{ArrayBuffer, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

use super::{OnClose, OnPacket, js_error};

type OpenSignal = futures_channel::oneshot::Sender<Result<(), String>>;

pub(crate) struct WsTransport {
    socket: WebSocket,
    closed: Rc<Cell<bool>>,
    // The handlers live as long as the socket.
    _handlers: Vec<Closure<dyn FnMut(web_sys::Event)>>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl WsTransport {
    pub(crate) async fn connect(
        url: &str,
        on_packet: OnPacket,
        on_close: OnClose,
    ) -> Result<Self, String> {
        let socket = WebSocket::new(url).map_err(|e| js_error(&e))?;
        socket.set_binary_type(BinaryType::Arraybuffer);
        let closed = Rc::new(Cell::new(false));
        let opened: Rc<RefCell<Option<OpenSignal>>> = Rc::new(RefCell::new(None));
        let (tx, rx) = futures_channel::oneshot::channel();
        *opened.borrow_mut() = Some(tx);

        let on_open = {
            let opened = opened.clone();
            Closure::<dyn FnMut(Event)>::new(move |_: Event| {
                if let Some(tx) = opened.borrow_mut().take() {
                    let _ = tx.send(Ok(()));
                }
            })
        };
        let on_close_handler = {
            let (opened, closed) = (opened.clone(), closed.clone());
            Closure::<dyn FnMut(Event)>::new(move |event: Event| {
                let close = event.dyn_ref::<CloseEvent>();
                let reason = close
                    .map(|e| {
                        if e.reason().is_empty() {
                            format!("closed (code {})", e.code())
                        } else {
                            e.reason()
                        }
                    })
                    .unwrap_or_else(|| "connection failed".into());
                if let Some(tx) = opened.borrow_mut().take() {
                    let _ = tx.send(Err(reason));
                } else if !closed.replace(true) {
                    on_close(close.map(|e| u32::from(e.code())), reason);
                }
            })
        };
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Ok(buffer) = event.data().dyn_into::<ArrayBuffer>() {
                on_packet(Uint8Array::new(&buffer).to_vec());
            }
        });
        socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        socket.set_onclose(Some(on_close_handler.as_ref().unchecked_ref()));
        socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        let result = rx
            .await
            .unwrap_or_else(|_| Err("connection dropped".into()));
        result?;
        Ok(Self {
            socket,
            closed,
            _handlers: vec![on_open, on_close_handler],
            _on_message: on_message,
        })
    }

    pub(crate) fn send(&self, packet: &[u8]) {
        if !self.closed.get() {
            let _ = self.socket.send_with_u8_array(packet);
        }
    }

    pub(crate) fn close(&self) {
        self.closed.set(true);
        let _ = self.socket.close();
    }
}

impl Drop for WsTransport {
    fn drop(&mut self) {
        self.socket.set_onopen(None);
        self.socket.set_onclose(None);
        self.socket.set_onmessage(None);
        self.close();
    }
}
