//! Entry points for the fuzz targets (`fuzz/`) and the property tests
//! (`server-lib/tests/properties.rs`): each feeds untrusted input to one parser and checks the
//! invariants that must hold whatever the input. Not part of the library's API.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::transport::{deflate, Role, WebSocket, WsConfig};

/// The message limit the entry points use.
pub const MAX: usize = 64 * 1024;

/// Bytes from a client, read by a server connection (with permessage-deflate negotiated when
/// `compressed`): never a panic, never a message over the limit, and the reader stops.
pub fn frames(data: &[u8], compressed: bool) {
    let config = WsConfig {
        max_message: MAX,
        ..WsConfig::default()
    };
    let params = compressed.then(deflate::Params::default);
    let mut ws = WebSocket::new(
        Replay(data.to_vec(), 0),
        Role::Server,
        params,
        &config,
        Bytes::new(),
    );
    let waker = futures_util::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    // Every step consumes input or ends: bounded by the input length.
    for _ in 0..=data.len() + 1 {
        match ws.poll_read(&mut cx) {
            Poll::Ready(Some(Ok(m))) => {
                let len = match &m.message {
                    crate::transport::Message::Text(t) => t.len(),
                    crate::transport::Message::Binary(b) => b.len(),
                    _ => 0,
                };
                assert!(
                    len <= MAX,
                    "a {len}-byte message passed the {MAX}-byte limit"
                );
            }
            Poll::Ready(Some(Err(e))) => {
                // Every refusal maps to a close code or to "the socket is gone".
                let _ = e.close_code();
                return;
            }
            Poll::Ready(None) | Poll::Pending => return,
        }
    }
    panic!("the reader did not stop");
}

/// One compressed message body: inflating never produces more than the limit.
pub fn inflate(data: &[u8]) {
    if let Ok(out) = deflate::Inflater::new(false).inflate(data, MAX) {
        assert!(out.len() <= MAX);
    }
}

/// A `Sec-WebSocket-Extensions` offer: whatever the server accepts, its answer is one a
/// client accepts, with the same parameters.
pub fn negotiate(offer: &str) {
    if let Some(p) = deflate::negotiate([offer]) {
        let answer = p.response();
        let back = deflate::accept_response(&answer)
            .unwrap_or_else(|e| panic!("answer {answer:?} to {offer:?} refused: {e}"));
        assert_eq!(back, Some(p), "{offer:?} → {answer:?}");
    }
}

/// A text frame's JSON request: parsed or refused, never a panic.
pub fn json_request(text: &[u8]) {
    if let Ok(req) = serde_json::from_slice::<crate::wire::protocol::JsonRequest>(text) {
        let _ = crate::wire::protocol::Command::from_json(req, &crate::commands::Table);
    }
}

/// A binary frame's SendMsg: decoded and turned into a command (or refused), never a panic.
pub fn sendmsg(bytes: &[u8]) {
    use wsp_proto::Message as _;
    if let Ok(m) = wsp_proto::SendMsg::decode(bytes) {
        let addressed = crate::wire::protocol::is_addressed(&m);
        if let Ok(cmd) = crate::wire::protocol::Command::from_sendmsg(m, &crate::commands::Table) {
            let _ = (addressed, cmd.payload());
        }
    }
}

/// The handshake's query string and `Sec-WebSocket-Protocol`: parsed or refused with a
/// reason; an accepted id, uid and channels pass the name rules.
pub fn connect_query(query: &str, subprotocol: &str) {
    crate::server::fuzz_connect_params(query, subprotocol);
}

/// An in-memory socket: reads `data` then end of stream; writes are accepted and dropped.
struct Replay(Vec<u8>, usize);

impl AsyncRead for Replay {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let at = self.1;
        let n = buf.remaining().min(self.0.len() - at);
        buf.put_slice(&self.0[at..at + n]);
        self.1 += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Replay {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        b: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(Ok(b.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
