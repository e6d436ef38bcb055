//! The bottom layer: the WebSocket transport (RFC 6455) with permessage-deflate (RFC 7692),
//! for both ends, and the outbound [`Frame`]. It imports nothing from the layers above.
//!
//! Why not tungstenite here: it has no permessage-deflate and refuses RSV1 frames, and a
//! broadcast through it is framed and copied once per recipient. This layer takes the socket
//! after the HTTP upgrade and speaks frames itself, so that a broadcast is framed (and
//! compressed) once and written to every recipient from the same bytes, and an idle connection,
//! compressed or not, keeps no zlib state. It reuses tungstenite's frame-header parser and
//! message types; `wsp connect` and `wsp bench` use the client side of the same code.
//! `docs/ARCHITECTURE.md` has the measurements behind the choice.
//!
//! - [`read`]: bytes → messages, every RFC check, bounded inflate.
//! - [`write`]: a queue of ready frames written with `writev`; `direct`: a non-blocking send
//!   by descriptor, for a broadcast written without waking its recipient's task.
//! - [`deflate`]: negotiation and the per-thread compressor / decompressor.
//! - [`socket`]: [`WebSocket`], a connection (reader + writer + compression settings).
//! - [`handshake`]: the server's `Sec-WebSocket-Accept`, and the client's handshake.
//! - [`frame_head`]: header layout and masking.
//! - [`frame`]: [`Frame`], an outbound data frame framed (and compressed) once for every
//!   recipient; [`close`]: close codes and [`Close`].

pub mod close;
pub mod deflate;
pub(crate) mod direct;
pub mod frame;
pub mod frame_head;
pub mod handshake;
pub mod read;
pub mod socket;
pub mod write;

pub use socket::{WebSocket, WsConfig};
pub use tokio_tungstenite::tungstenite::Message;

/// Which end of the connection this is: a server expects masked frames and sends unmasked
/// ones; a client the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The accepting end.
    Server,
    /// The connecting end.
    Client,
}

/// What went wrong on a WebSocket.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WsError {
    /// The peer broke RFC 6455 / 7692 (close code 1002).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A message passed the size limit, before or after inflating (close code 1009).
    #[error("message too big: the limit is {0} bytes")]
    TooBig(usize),
    /// A text message (or close reason) is not UTF-8 (close code 1007).
    #[error("text is not valid UTF-8")]
    Utf8,
    /// The socket failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The server answered the handshake with something other than 101.
    #[error("server refused the handshake: HTTP {status} {body}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The start of the response body (the server's reason).
        body: String,
    },
    /// The handshake response was not a valid WebSocket upgrade.
    #[error("bad handshake: {0}")]
    Handshake(String),
}

impl WsError {
    /// The close code to send for this error, or `None` when the socket is simply gone.
    pub fn close_code(&self) -> Option<u16> {
        match self {
            WsError::Protocol(_) => Some(crate::transport::close::code::PROTOCOL_ERROR),
            WsError::TooBig(_) => Some(crate::transport::close::code::TOO_BIG),
            WsError::Utf8 => Some(crate::transport::close::code::INVALID_PAYLOAD),
            _ => None,
        }
    }
}
