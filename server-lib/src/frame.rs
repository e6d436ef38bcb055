//! Outbound data frames: serialized once, shared by every recipient.

pub use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use wsp_proto::{Message as _, SendMsg};

/// A data frame on its way to one or many clients.
///
/// Cloning is cheap (a reference count): a broadcast builds its frame once and every recipient's
/// queue holds the same bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame (always valid UTF-8).
    Text(Utf8Bytes),
    /// A binary frame (usually an encoded [`SendMsg`]).
    Binary(Bytes),
}

impl Frame {
    /// Encodes a [`SendMsg`] as a binary frame.
    pub fn sendmsg(msg: &SendMsg) -> Self {
        Frame::Binary(msg.encode_to_vec().into())
    }

    /// A text frame holding the JSON encoding of `value`.
    pub fn json(value: &impl serde::Serialize) -> Self {
        let text = serde_json::to_string(value).expect("serializing JSON to a string cannot fail");
        Frame::Text(text.into())
    }

    /// A text frame.
    pub fn text(text: impl Into<String>) -> Self {
        Frame::Text(text.into().into())
    }

    /// Payload length in bytes.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(t) => t.as_str().len(),
            Frame::Binary(b) => b.len(),
        }
    }

    /// True when the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<Frame> for axum::extract::ws::Message {
    fn from(frame: Frame) -> Self {
        match frame {
            Frame::Text(t) => axum::extract::ws::Message::Text(t),
            Frame::Binary(b) => axum::extract::ws::Message::Binary(b),
        }
    }
}
