//! Inbound: bytes from the socket to whole messages. Checks every rule of RFC 6455 §5 (masking,
//! reserved bits, opcodes, control-frame size and fragmentation, continuation order, close
//! payloads, UTF-8 of text as it arrives) and RFC 7692 (RSV1 only on a message's first frame,
//! and only when deflate was negotiated); inflates with a bound.
//!
//! Sizes are checked from the header, before a payload is read: a frame header announcing
//! 2^63 bytes is refused with 1009 without reserving anything.
//!
//! Buffers: a connection keeps no read buffer of its own while idle. Reads go into one buffer
//! per thread ([`SCRATCH`] bytes); the bytes of the complete frames in it are taken out, and only
//! a partial frame's bytes stay with the connection. A frame bigger than the thread's buffer is
//! read straight into a buffer of its own size once its header is in. So 10,000 idle
//! connections hold no read memory, and a burst of small fragments costs one `read` per
//! [`SCRATCH`] bytes, not one per frame.

use std::io::Cursor;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, ReadBuf};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::deflate::{InflateError, Inflater};
use super::frame_head::apply_mask;
use super::{Role, WsError};

/// A message read from the peer, with how it travelled.
#[derive(Debug, Clone, PartialEq)]
pub struct Incoming {
    /// The message (control frames too: ping, pong, close).
    pub message: Message,
    /// It arrived compressed (RSV1).
    pub compressed: bool,
    /// Bytes it took on the wire, headers included.
    pub wire_len: usize,
    /// Frames it took (1 unless fragmented), for rate limits that count frames.
    pub frames: u32,
}

/// A fragmented message being reassembled (boxed in [`Reader`]: rare, and big).
struct Partial {
    text: bool,
    compressed: bool,
    data: BytesMut,
    wire_len: usize,
    frames: u32,
    /// Length of the prefix known to be valid UTF-8 (uncompressed text only).
    utf8_checked: usize,
}

/// Bytes a thread reads at once into its own buffer (one per thread, shared by every
/// connection it serves).
pub const SCRATCH: usize = 64 * 1024;

thread_local! {
    static BUFFER: std::cell::RefCell<Box<[u8]>> =
        std::cell::RefCell::new(vec![0u8; SCRATCH].into_boxed_slice());
}

/// Turns the bytes of one connection into messages.
pub struct Reader {
    /// Bytes read but not yet taken: a partial frame (empty, and unallocated, while idle).
    buf: BytesMut,
    partial: Option<Box<Partial>>,
    role: Role,
    max_message: usize,
    /// Bytes needed before the next frame can be parsed.
    need: usize,
    inflater: Option<Inflater>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("buffered", &self.buf.len())
            .field("role", &self.role)
            .field("max_message", &self.max_message)
            .finish()
    }
}

impl Reader {
    /// A reader for `role`: messages above `max_message` bytes (inflated) are refused;
    /// `inflater` when deflate was negotiated; `leftover` bytes already read past a handshake.
    /// (`_chunk`, the old per-connection read step, is no longer used: see the module doc.)
    pub fn new(
        role: Role,
        max_message: usize,
        _chunk: usize,
        inflater: Option<Inflater>,
        leftover: Bytes,
    ) -> Self {
        Self {
            buf: BytesMut::from(&leftover[..]),
            partial: None,
            role,
            max_message,
            need: 2,
            inflater,
        }
    }

    /// Reads until a whole message (or control frame) is in; `Ok(None)` at a clean EOF.
    /// Cancel-safe: everything read so far is kept in `self`.
    pub fn poll_next<S: AsyncRead + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut S,
    ) -> Poll<Result<Option<Incoming>, WsError>> {
        loop {
            if let Some(incoming) = self.parse()? {
                if self.buf.is_empty() {
                    // Nothing partial: hold no memory until the next read.
                    self.buf = BytesMut::new();
                }
                return Poll::Ready(Ok(Some(incoming)));
            }
            let n = if self.need > SCRATCH {
                // A big frame whose header is in: read straight into a buffer of its size.
                self.buf.reserve(self.need - self.buf.len());
                std::task::ready!(tokio_util::io::poll_read_buf(
                    Pin::new(&mut *io),
                    cx,
                    &mut self.buf
                ))?
            } else {
                let buf = &mut self.buf;
                std::task::ready!(BUFFER.with(|scratch| {
                    let mut scratch = scratch.borrow_mut();
                    let mut rb = ReadBuf::new(&mut scratch[..]);
                    std::task::ready!(Pin::new(&mut *io).poll_read(cx, &mut rb))?;
                    let n = rb.filled().len();
                    buf.extend_from_slice(rb.filled());
                    Poll::Ready(Ok::<usize, std::io::Error>(n))
                }))?
            };
            if n == 0 {
                return Poll::Ready(if self.buf.is_empty() && self.partial.is_none() {
                    Ok(None)
                } else {
                    Err(WsError::Io(std::io::ErrorKind::UnexpectedEof.into()))
                });
            }
        }
    }

    /// Parses frames from the buffer until a message is complete; `None` when more bytes are
    /// needed.
    fn parse(&mut self) -> Result<Option<Incoming>, WsError> {
        loop {
            if self.buf.len() < self.need.max(2) {
                return Ok(None);
            }
            let mut cursor = Cursor::new(&self.buf[..]);
            let Some((head, len)) =
                FrameHeader::parse(&mut cursor).map_err(|e| WsError::Protocol(e.to_string()))?
            else {
                self.need = self.buf.len() + 1;
                return Ok(None);
            };
            let head_len = cursor.position() as usize;
            self.check(&head, len)?;
            let total = head_len + len as usize;
            if self.buf.len() < total {
                self.need = total;
                return Ok(None);
            }
            self.need = 2;
            // The usual read holds exactly one frame: take the whole buffer (splitting it
            // would allocate a shared header for the two halves, one more allocation a frame).
            let mut payload = if self.buf.len() == total {
                std::mem::take(&mut self.buf)
            } else {
                self.buf.split_to(total)
            };
            payload.advance(head_len);
            if let Some(key) = head.mask {
                apply_mask(&mut payload, key);
            }
            if let Some(done) = self.frame(&head, payload, total)? {
                return Ok(Some(done));
            }
        }
    }

    /// Everything that can be refused from the header alone.
    fn check(&self, head: &FrameHeader, len: u64) -> Result<(), WsError> {
        let protocol = |m: &str| Err(WsError::Protocol(m.to_string()));
        match (self.role, head.mask.is_some()) {
            (Role::Server, false) => return protocol("client frames must be masked"),
            (Role::Client, true) => return protocol("server frames must not be masked"),
            _ => {}
        }
        if head.rsv2 || head.rsv3 {
            return protocol("reserved bits RSV2/RSV3 set without a negotiated extension");
        }
        if len >> 63 != 0 {
            return protocol("payload length with its most significant bit set (RFC 6455 §5.2)");
        }
        match head.opcode {
            OpCode::Control(_) => {
                if !head.is_final {
                    return protocol("control frames must not be fragmented");
                }
                if len > 125 {
                    return protocol("control frame payload above 125 bytes");
                }
                if head.rsv1 {
                    return protocol("RSV1 set on a control frame");
                }
            }
            OpCode::Data(Data::Continue) => {
                if head.rsv1 {
                    return protocol("RSV1 set on a continuation frame");
                }
                let Some(p) = &self.partial else {
                    return protocol("continuation frame with no message to continue");
                };
                if p.data.len() as u64 + len > self.max_message as u64 {
                    return Err(WsError::TooBig(self.max_message));
                }
            }
            OpCode::Data(_) => {
                if self.partial.is_some() {
                    return protocol("new data frame before the fragmented message ended");
                }
                if head.rsv1 && self.inflater.is_none() {
                    return protocol("RSV1 set but permessage-deflate was not negotiated");
                }
                if len > self.max_message as u64 {
                    return Err(WsError::TooBig(self.max_message));
                }
            }
        }
        Ok(())
    }

    /// Takes in one whole frame; a message when it completes one.
    fn frame(
        &mut self,
        head: &FrameHeader,
        payload: BytesMut,
        wire_len: usize,
    ) -> Result<Option<Incoming>, WsError> {
        let done = |message| {
            Ok(Some(Incoming {
                message,
                compressed: false,
                wire_len,
                frames: 1,
            }))
        };
        match head.opcode {
            OpCode::Control(Control::Ping) => done(Message::Ping(payload.freeze())),
            OpCode::Control(Control::Pong) => done(Message::Pong(payload.freeze())),
            OpCode::Control(Control::Close) => done(Message::Close(close_payload(payload)?)),
            OpCode::Control(Control::Reserved(_)) | OpCode::Data(Data::Reserved(_)) => {
                Err(WsError::Protocol("reserved opcode".into()))
            }
            OpCode::Data(Data::Continue) => {
                let p = self.partial.as_mut().expect("checked in `check`");
                p.data.extend_from_slice(&payload);
                p.wire_len += wire_len;
                p.frames = p.frames.saturating_add(1);
                if p.text && !p.compressed {
                    p.utf8_checked = check_utf8_prefix(&p.data, p.utf8_checked)?;
                }
                if !head.is_final {
                    return Ok(None);
                }
                let p = self.partial.take().expect("present");
                self.finish(p.text, p.compressed, p.data.freeze(), p.wire_len)
                    .map(|m| {
                        Some(Incoming {
                            frames: p.frames,
                            ..m
                        })
                    })
            }
            OpCode::Data(d) => {
                let text = d == Data::Text;
                if head.is_final {
                    return self
                        .finish(text, head.rsv1, payload.freeze(), wire_len)
                        .map(Some);
                }
                let utf8_checked = if text && !head.rsv1 {
                    check_utf8_prefix(&payload, 0)?
                } else {
                    0
                };
                self.partial = Some(Box::new(Partial {
                    text,
                    compressed: head.rsv1,
                    data: payload,
                    wire_len,
                    frames: 1,
                    utf8_checked,
                }));
                Ok(None)
            }
        }
    }

    fn finish(
        &mut self,
        text: bool,
        compressed: bool,
        data: Bytes,
        wire_len: usize,
    ) -> Result<Incoming, WsError> {
        let data = if compressed {
            let inflater = self.inflater.as_mut().expect("checked in `check`");
            inflater
                .inflate(&data, self.max_message)
                .map_err(|e| match e {
                    InflateError::TooBig(max) => WsError::TooBig(max),
                    InflateError::Corrupt(why) => {
                        WsError::Protocol(format!("bad deflate data: {why}"))
                    }
                })?
        } else {
            data
        };
        let message = if text {
            Message::Text(Utf8Bytes::try_from(data).map_err(|_| WsError::Utf8)?)
        } else {
            Message::Binary(data)
        };
        Ok(Incoming {
            message,
            compressed,
            wire_len,
            frames: 1,
        })
    }
}

/// Validates `data[from..]` as UTF-8 that may end mid-character; returns the new valid prefix.
fn check_utf8_prefix(data: &[u8], from: usize) -> Result<usize, WsError> {
    match std::str::from_utf8(&data[from..]) {
        Ok(_) => Ok(data.len()),
        Err(e) if e.error_len().is_none() => Ok(from + e.valid_up_to()),
        Err(_) => Err(WsError::Utf8),
    }
}

/// A close frame's code and reason, checked (RFC 6455 §5.5.1, §7.4).
fn close_payload(payload: BytesMut) -> Result<Option<CloseFrame>, WsError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(WsError::Protocol(
            "close frame with a 1-byte payload".into(),
        )),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let valid = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
            if !valid {
                return Err(WsError::Protocol(format!("invalid close code {code}")));
            }
            let reason =
                Utf8Bytes::try_from(payload.freeze().slice(2..)).map_err(|_| WsError::Utf8)?;
            Ok(Some(CloseFrame {
                code: CloseCode::from(code),
                reason,
            }))
        }
    }
}
