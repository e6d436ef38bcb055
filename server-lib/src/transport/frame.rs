//! Outbound data frames: framed once, compressed at most once, shared by every recipient.
//!
//! A [`Frame`] holds the message already laid out as it goes on the wire (the server's frame
//! header, then the payload), so a broadcast to 5,000 clients builds its bytes once and every
//! recipient's queue holds a reference to them: writing is a vectored write of shared bytes,
//! with no copy and no per-recipient framing. For connections that negotiated
//! permessage-deflate, the compressed form is built the first time one of them needs it and
//! kept beside the plain one (gorilla's `PreparedMessage`), so it is compressed once too.

use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use wsp_proto::{Message as _, SendMsg};

use crate::transport::deflate::{self, Deflate};
use crate::transport::frame_head;

/// Whether a data frame is text or binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A text frame (always valid UTF-8).
    Text,
    /// A binary frame (usually an encoded [`SendMsg`]).
    Binary,
}

/// A data frame on its way to one or many clients.
///
/// Cloning is cheap (a reference count): every recipient's queue holds the same bytes.
#[derive(Clone)]
pub struct Frame(Arc<Prepared>);

struct Prepared {
    kind: Kind,
    /// Server frame header (FIN, opcode, unmasked length) followed by the payload.
    wire: Bytes,
    /// Where the payload starts in `wire`.
    head: u8,
    /// The compressed wire form for the default parameter set (15-bit window, the server's
    /// level), built by the first recipient that needs it. `None` inside: compressing did not
    /// make it smaller, so everyone gets the plain form.
    deflated: OnceLock<Option<Bytes>>,
}

impl Frame {
    fn build(kind: Kind, len: usize, fill: impl FnOnce(&mut BytesMut)) -> Self {
        let head = frame_head::len(len);
        let mut buf = BytesMut::with_capacity(head + len);
        frame_head::put(&mut buf, opcode(kind), true, false, len);
        fill(&mut buf);
        debug_assert_eq!(buf.len(), head + len);
        Frame(Arc::new(Prepared {
            kind,
            wire: buf.freeze(),
            head: head as u8,
            deflated: OnceLock::new(),
        }))
    }

    /// A text frame.
    pub fn text(text: impl AsRef<str>) -> Self {
        let t = text.as_ref().as_bytes();
        Self::build(Kind::Text, t.len(), |b| b.put_slice(t))
    }

    /// A text frame from bytes; fails when they are not UTF-8.
    pub fn text_bytes(bytes: &[u8]) -> Result<Self, std::str::Utf8Error> {
        Ok(Self::text(std::str::from_utf8(bytes)?))
    }

    /// A binary frame.
    pub fn binary(bytes: impl AsRef<[u8]>) -> Self {
        let b = bytes.as_ref();
        Self::build(Kind::Binary, b.len(), |buf| buf.put_slice(b))
    }

    /// Encodes a [`SendMsg`] as a binary frame, straight into the frame's buffer.
    pub fn sendmsg(msg: &SendMsg) -> Self {
        let len = msg.encoded_len();
        Self::build(Kind::Binary, len, |b| {
            msg.encode(b).expect("the buffer holds encoded_len bytes")
        })
    }

    /// A text frame holding the JSON encoding of `value` (gows' `WriteJSON`).
    ///
    /// # Panics
    /// Only if `value`'s `Serialize` implementation fails (a map with non-string keys, say);
    /// use [`Frame::try_json`] for values that can.
    pub fn json(value: &impl serde::Serialize) -> Self {
        Self::try_json(value).expect("value serializes to JSON")
    }

    /// A text frame holding the JSON encoding of any `Serialize` value, or the serializer's
    /// error.
    pub fn try_json(value: &impl serde::Serialize) -> serde_json::Result<Self> {
        Ok(Self::text(serde_json::to_string(value)?))
    }

    /// Text or binary.
    pub fn kind(&self) -> Kind {
        self.0.kind
    }

    /// The payload (shares the frame's bytes).
    pub fn payload(&self) -> Bytes {
        self.0.wire.slice(self.0.head as usize..)
    }

    /// The payload as text, for a text frame.
    pub fn as_text(&self) -> Option<&str> {
        match self.0.kind {
            // Built only from `&str` (or checked bytes): always UTF-8.
            Kind::Text => std::str::from_utf8(&self.0.wire[self.0.head as usize..]).ok(),
            Kind::Binary => None,
        }
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        self.0.wire.len() - self.0.head as usize
    }

    /// True when the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes to write for a connection with these compression settings (`None`: the
    /// connection did not negotiate compression).
    pub(crate) fn wire(&self, deflate: Option<&Deflate>) -> Bytes {
        match (self.shared_wire(deflate), deflate) {
            (Some(wire), _) => wire.clone(),
            // A rare parameter set (a client asked for a smaller window): compressed for it alone.
            (None, Some(d)) => self.compress(d).unwrap_or_else(|| self.0.wire.clone()),
            (None, None) => unreachable!("an uncompressed connection takes the shared bytes"),
        }
    }

    /// The bytes to write, as every connection with no compression or with the shared
    /// settings gets them (compressed once for all, by the first that needs it); `None` for
    /// any other parameter set, which [`Self::wire`] compresses for itself.
    pub(crate) fn shared_wire(&self, deflate: Option<&Deflate>) -> Option<&Bytes> {
        let Some(d) = deflate.filter(|d| d.worth_compressing(self.len())) else {
            return Some(&self.0.wire);
        };
        if !d.is_shared_params() {
            return None;
        }
        let deflated = self.0.deflated.get_or_init(|| self.compress(d));
        // `None` inside: compressing did not make it smaller.
        Some(deflated.as_ref().unwrap_or(&self.0.wire))
    }

    fn compress(&self, d: &Deflate) -> Option<Bytes> {
        deflate::compress_frame(d, opcode(self.0.kind), &self.payload())
    }
}

fn opcode(kind: Kind) -> u8 {
    match kind {
        Kind::Text => frame_head::OP_TEXT,
        Kind::Binary => frame_head::OP_BINARY,
    }
}

impl PartialEq for Frame {
    fn eq(&self, other: &Self) -> bool {
        self.0.kind == other.0.kind && self.payload() == other.payload()
    }
}

impl Eq for Frame {}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.as_text() {
            Some(t) => f.debug_tuple("Text").field(&t).finish(),
            None => f.debug_tuple("Binary").field(&self.payload()).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_is_header_then_payload() {
        let f = Frame::text("hi");
        assert_eq!(&f.wire(None)[..], b"\x81\x02hi");
        assert_eq!(f.as_text(), Some("hi"));
        let big = Frame::binary(vec![7u8; 300]);
        let w = big.wire(None);
        assert_eq!(&w[..4], &[0x82, 126, 1, 44]);
        assert_eq!(big.len(), 300);
        assert_eq!(&big.payload()[..], &[7u8; 300][..]);
    }

    #[test]
    fn sendmsg_is_encoded_in_place() {
        let msg = SendMsg {
            cmd: 7,
            msg: "x".repeat(200),
            ..Default::default()
        };
        let f = Frame::sendmsg(&msg);
        assert_eq!(SendMsg::decode(f.payload()).unwrap(), msg);
    }

    #[test]
    fn compressed_once_and_shared() {
        let d = Deflate::server(deflate::Params::default(), 6, 16);
        let f = Frame::text("hello ".repeat(100));
        let a = f.wire(Some(&d));
        let b = f.wire(Some(&d));
        assert_eq!(
            a.as_ptr(),
            b.as_ptr(),
            "the second recipient reuses the first's bytes"
        );
        assert_eq!(a[0], 0x80 | 0x40 | 0x1, "FIN, RSV1, text");
        assert!(a.len() < f.len());
        // Below the threshold: the plain bytes.
        let small = Frame::text("tiny");
        assert_eq!(small.wire(Some(&d)), small.wire(None));
    }
}
