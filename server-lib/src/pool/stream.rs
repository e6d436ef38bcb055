//! One message written in parts (gows' `NextWriter`): write, write, close.
//!
//! The writer holds a small bounded channel (four parts) to the client's connection; the
//! connection writes each part as it comes as a frame (the first with the message's opcode, the
//! rest as continuations, FIN on the last), and writes nothing else to that client until the
//! message ends, so no other data frame can land inside it. `write` waits while four parts are
//! in flight: a slow client slows its writer, and memory stays bounded by four parts.
//!
//! A writer dropped before [`MessageWriter::close`] leaves a message that can never be
//! completed correctly; the connection then closes with 1011 rather than hand the client half
//! a message as if it were whole. Streamed messages are sent uncompressed.

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::transport::frame::Kind;
use crate::{Error, Result};

/// Parts in flight between a writer and its connection.
const PARTS_IN_FLIGHT: usize = 4;

/// What the connection receives from a writer.
pub(crate) enum Part {
    /// The next part of the message.
    Data(Bytes),
    /// The message is complete.
    End,
}

/// The connection's end of a streamed message.
pub(crate) struct StreamRx {
    pub(crate) kind: Kind,
    pub(crate) rx: mpsc::Receiver<Part>,
}

/// Writes one message to one client in parts. Get one with
/// [`ClientHandle::message_writer`](crate::ClientHandle::message_writer).
///
/// ```no_run
/// # async fn demo(client: wsp_server::ClientHandle) -> wsp_server::Result<()> {
/// let mut w = client.message_writer(wsp_server::Kind::Binary)?;
/// for chunk in [&b"big "[..], b"file ", b"contents"] {
///     w.write(chunk.to_vec()).await?;
/// }
/// w.close().await
/// # }
/// ```
pub struct MessageWriter {
    client: String,
    kind: Kind,
    tx: mpsc::Sender<Part>,
    /// Text only: the bytes of a character split across two parts, held for the next part.
    carry: Vec<u8>,
}

impl std::fmt::Debug for MessageWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageWriter")
            .field("client", &self.client)
            .field("kind", &self.kind)
            .finish()
    }
}

impl MessageWriter {
    pub(crate) fn new(client: &str, kind: Kind) -> (Self, StreamRx) {
        let (tx, rx) = mpsc::channel(PARTS_IN_FLIGHT);
        (
            Self {
                client: client.to_string(),
                kind,
                tx,
                carry: Vec::new(),
            },
            StreamRx { kind, rx },
        )
    }

    /// Sends the next part. For a text message the parts together must be UTF-8; a part may
    /// end inside a character (the rest comes with the next part). Fails when the client's
    /// connection is gone, or with [`Error::InvalidUtf8`].
    pub async fn write(&mut self, part: impl Into<Bytes>) -> Result<()> {
        let mut part: Bytes = part.into();
        if self.kind == Kind::Text {
            part = self.utf8_part(part)?;
        }
        if part.is_empty() {
            return Ok(());
        }
        self.send(Part::Data(part)).await
    }

    /// Ends the message (a final empty continuation frame carries FIN).
    pub async fn close(self) -> Result<()> {
        if !self.carry.is_empty() {
            return Err(Error::InvalidUtf8);
        }
        self.send(Part::End).await
    }

    async fn send(&self, part: Part) -> Result<()> {
        self.tx
            .send(part)
            .await
            .map_err(|_| Error::ClientGone(self.client.clone()))
    }

    /// The longest UTF-8-complete prefix of carry + `part`; keeps an unfinished character.
    fn utf8_part(&mut self, part: Bytes) -> Result<Bytes> {
        let joined: Bytes = if self.carry.is_empty() {
            part
        } else {
            let mut j = std::mem::take(&mut self.carry);
            j.extend_from_slice(&part);
            j.into()
        };
        match std::str::from_utf8(&joined) {
            Ok(_) => Ok(joined),
            Err(e) if e.error_len().is_none() => {
                let valid = e.valid_up_to();
                self.carry = joined[valid..].to_vec();
                Ok(joined.slice(..valid))
            }
            Err(_) => Err(Error::InvalidUtf8),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn text_parts_may_split_characters() {
        let (mut w, mut rx) = MessageWriter::new("c", Kind::Text);
        let s = "héllo wörld".as_bytes();
        w.write(Bytes::copy_from_slice(&s[..2])).await.unwrap(); // ends inside 'é'
        w.write(Bytes::copy_from_slice(&s[2..])).await.unwrap();
        w.close().await.unwrap();
        let mut got = Vec::new();
        while let Some(Part::Data(b)) = rx.rx.recv().await {
            assert!(std::str::from_utf8(&b).is_ok());
            got.extend_from_slice(&b);
        }
        assert_eq!(got, s);
    }

    #[tokio::test]
    async fn invalid_text_is_refused() {
        let (mut w, _rx) = MessageWriter::new("c", Kind::Text);
        assert!(matches!(
            w.write(vec![0xff, 0x41]).await,
            Err(Error::InvalidUtf8)
        ));
        let (mut w, _rx) = MessageWriter::new("c", Kind::Text);
        w.write(vec![0xc3]).await.unwrap();
        assert!(matches!(w.close().await, Err(Error::InvalidUtf8)));
    }
}
