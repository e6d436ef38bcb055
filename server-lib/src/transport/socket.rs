//! One WebSocket connection: the socket, its reader and writer, and what compression it
//! negotiated. Used directly by the server's connection task, and as a `Stream` + `Sink` of
//! messages by clients.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::deflate::{self, Deflate, Inflater, Params};
use super::frame_head::{OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT};
use super::read::{Incoming, Reader};
use super::write::{self, Writer};
use super::{Role, WsError};

/// Limits and compression settings of a connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct WsConfig {
    /// Largest message accepted, after inflating. Default: 1 MiB.
    pub max_message: usize,
    /// Read step; a bigger frame reserves its own size once its header is in. Default: 1 KiB.
    pub read_chunk: usize,
    /// zlib level (0 to 9) for what this side compresses. Default: 1 (fast; most of the gain on
    /// JSON comes at the first levels).
    pub compression_level: u32,
    /// Messages smaller than this go uncompressed. Default: 512 bytes (gows').
    pub compression_min_size: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_message: 1 << 20,
            read_chunk: 1024,
            compression_level: 1,
            compression_min_size: 512,
        }
    }
}

/// A WebSocket connection over any byte stream `S`, after the handshake.
pub struct WebSocket<S> {
    io: S,
    reader: Reader,
    writer: Writer,
    role: Role,
    /// What this side compresses with, when deflate was negotiated (boxed: a connection
    /// without it is 16 bytes smaller).
    deflate: Option<Box<Deflate>>,
    /// A close frame was sent (nothing else may follow it).
    close_sent: bool,
    /// The peer's close frame arrived.
    close_received: bool,
}

impl<S> std::fmt::Debug for WebSocket<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSocket")
            .field("role", &self.role)
            .field("deflate", &self.deflate)
            .field("close_sent", &self.close_sent)
            .finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WebSocket<S> {
    /// Wraps a stream whose handshake is done. `params`: the negotiated permessage-deflate
    /// parameters, if any; `leftover`: bytes read past the handshake.
    pub fn new(
        io: S,
        role: Role,
        params: Option<Params>,
        config: &WsConfig,
        leftover: Bytes,
    ) -> Self {
        let (deflate, inflater) = match params {
            None => (None, None),
            Some(p) => {
                let (send, peer_takes_over) = match role {
                    Role::Server => (
                        Deflate::server(p, config.compression_level, config.compression_min_size),
                        !p.client_no_context_takeover,
                    ),
                    Role::Client => (
                        Deflate::client(p, config.compression_level, config.compression_min_size),
                        !p.server_no_context_takeover,
                    ),
                };
                (Some(Box::new(send)), Some(Inflater::new(peer_takes_over)))
            }
        };
        Self {
            io,
            reader: Reader::new(
                role,
                config.max_message,
                config.read_chunk,
                inflater,
                leftover,
            ),
            writer: Writer::default(),
            role,
            deflate,
            close_sent: false,
            close_received: false,
        }
    }

    /// Gives back the buffers a burst left (the write queue's), when nothing waits in them.
    pub fn shrink_idle(&mut self) {
        self.writer.shrink_idle();
    }

    /// The compression this connection negotiated.
    pub fn deflate(&self) -> Option<&Deflate> {
        self.deflate.as_deref()
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &S {
        &self.io
    }

    /// Reads the next message (control frames too). Cancel-safe. `None` at a clean EOF.
    pub fn poll_read(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Incoming, WsError>>> {
        match std::task::ready!(self.reader.poll_next(cx, &mut self.io)) {
            Ok(Some(m)) => {
                if matches!(m.message, Message::Close(_)) {
                    self.close_received = true;
                }
                Poll::Ready(Some(Ok(m)))
            }
            Ok(None) => Poll::Ready(None),
            Err(e) => Poll::Ready(Some(Err(e))),
        }
    }

    /// Reads the next message. Cancel-safe.
    pub async fn read(&mut self) -> Option<Result<Incoming, WsError>> {
        poll_fn(|cx| self.poll_read(cx)).await
    }

    /// Queues ready wire bytes: a prepared frame (a broadcast's shared bytes, in the form this
    /// connection takes: see [`Self::deflate`]) or the parts of a streamed message. Returns the
    /// bytes queued (0 once a close frame was sent).
    pub fn queue_wire(&mut self, wire: Bytes) -> usize {
        if self.close_sent {
            return 0;
        }
        let n = wire.len();
        self.writer.push(wire);
        n
    }

    /// Queues any message, framed for this side (masked as a client, compressed when
    /// negotiated and worth it). A close frame is queued once; nothing is queued after it.
    pub fn queue_message(&mut self, msg: &Message) {
        if self.close_sent {
            return;
        }
        let (opcode, payload): (u8, Bytes) = match msg {
            Message::Text(t) => (OP_TEXT, Bytes::copy_from_slice(t.as_bytes())),
            Message::Binary(b) => (OP_BINARY, b.clone()),
            Message::Ping(p) => (OP_PING, p.clone()),
            Message::Pong(p) => (OP_PONG, p.clone()),
            Message::Close(c) => {
                self.close_sent = true;
                let payload = c
                    .as_ref()
                    .map(|c| write::close_payload(c.code.into(), &c.reason))
                    .unwrap_or_default();
                (OP_CLOSE, payload.into())
            }
            Message::Frame(_) => return,
        };
        let data = opcode == OP_TEXT || opcode == OP_BINARY;
        let compressed = match &self.deflate {
            Some(d) if data && d.worth_compressing(payload.len()) => deflate::compress(d, &payload),
            _ => None,
        };
        let (body, rsv1) = match &compressed {
            Some(c) => (&c[..], true),
            None => (&payload[..], false),
        };
        let wire = write::frame(self.role, opcode, body, true, rsv1);
        self.writer.push(wire);
    }

    /// Queues a close frame with `code` and `reason`.
    pub fn queue_close(&mut self, code: u16, reason: &str) {
        self.queue_message(&Message::Close(Some(CloseFrame {
            code: code.into(),
            reason: reason.into(),
        })));
    }

    /// A close frame was queued or sent.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Frames waiting to be written.
    pub fn queued(&self) -> usize {
        self.writer.len()
    }

    /// Writes everything queued and flushes.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let r = std::task::ready!(self.writer.poll_write(cx, &mut self.io));
        if r.is_err() {
            self.writer.clear();
        }
        Poll::Ready(r)
    }

    /// Writes everything queued and flushes.
    pub async fn flush(&mut self) -> std::io::Result<()> {
        poll_fn(|cx| self.poll_flush(cx)).await
    }

    /// Shuts the write side of the stream down (after the close handshake).
    pub async fn shutdown(&mut self) -> std::io::Result<()> {
        self.io.shutdown().await
    }
}

/// Messages from the peer, as a client reads them. A ping is answered (the pong is written
/// with the next write or flush) and a close is answered with the same code, then the stream
/// ends.
impl<S: AsyncRead + AsyncWrite + Unpin> Stream for WebSocket<S> {
    type Item = Result<Incoming, WsError>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if this.close_received {
            // Deliver our close reply, then end.
            let _ = std::task::ready!(this.poll_flush(cx));
            return Poll::Ready(None);
        }
        let item = std::task::ready!(this.poll_read(cx));
        if let Some(Ok(incoming)) = &item {
            match &incoming.message {
                Message::Ping(p) => {
                    this.queue_message(&Message::Pong(p.clone()));
                    let _ = this.poll_flush(cx);
                }
                Message::Close(c) => {
                    let reply = c.as_ref().map(|c| CloseFrame {
                        code: c.code,
                        reason: "".into(),
                    });
                    this.queue_message(&Message::Close(reply));
                    let _ = this.poll_flush(cx);
                }
                _ => {}
            }
        }
        Poll::Ready(item)
    }
}

/// Frames at most this many waiting before `poll_ready` writes them out.
const SINK_HIGH_WATER: usize = 64;

impl<S: AsyncRead + AsyncWrite + Unpin> Sink<Message> for WebSocket<S> {
    type Error = WsError;

    fn poll_ready(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if this.writer.len() >= SINK_HIGH_WATER {
            std::task::ready!(this.poll_flush(cx))?;
        }
        Poll::Ready(Ok(()))
    }

    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), WsError> {
        let this = self.get_mut();
        if this.close_sent {
            return Err(WsError::Io(std::io::ErrorKind::BrokenPipe.into()));
        }
        this.queue_message(&item);
        Ok(())
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        self.get_mut().poll_flush(cx).map_err(WsError::Io)
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), WsError>> {
        let this = self.get_mut();
        if !this.close_sent {
            this.queue_message(&Message::Close(None));
        }
        std::task::ready!(this.poll_flush(cx))?;
        Pin::new(&mut this.io)
            .poll_shutdown(cx)
            .map_err(WsError::Io)
    }
}
