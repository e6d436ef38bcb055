//! Outbound: a queue of ready-made wire frames written with vectored writes.
//!
//! The frames are shared bytes (a broadcast's one buffer, see [`crate::transport::frame`]), so writing a
//! batch copies nothing: up to [`MAX_SLICES`] frames go to the kernel in one `writev`. On a
//! stream that cannot write vectored (TLS), small frames are first joined into one buffer, so
//! a batch still becomes few records.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::AsyncWrite;

use super::{frame_head, Role};

/// Frames handed to one `writev`.
const MAX_SLICES: usize = 64;
/// Joined buffer size on streams without vectored writes.
const JOIN: usize = 16 * 1024;

/// The frames waiting to be written on one connection.
#[derive(Debug, Default)]
pub struct Writer {
    queue: VecDeque<Bytes>,
    /// Bytes of the front frame already written.
    offset: usize,
}

impl Writer {
    /// Queues wire bytes (a whole frame, or a run of them).
    pub fn push(&mut self, wire: Bytes) {
        if !wire.is_empty() {
            self.queue.push_back(wire);
        }
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Drops what is waiting (the socket failed).
    pub fn clear(&mut self) {
        self.queue.clear();
        self.offset = 0;
        self.shrink();
    }

    /// Frees the queue's buffer when nothing waits (after a quiet while).
    pub fn shrink_idle(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
    }

    fn shrink(&mut self) {
        // An idle connection keeps no big queue from its busiest moment.
        if self.queue.is_empty() && self.queue.capacity() > 64 {
            self.queue = VecDeque::new();
        }
    }

    /// Writes everything queued, then flushes.
    pub fn poll_write<S: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut S,
    ) -> Poll<std::io::Result<()>> {
        while !self.queue.is_empty() {
            if !io.is_write_vectored() {
                self.join_front();
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let mut n = 0;
            for (i, b) in self.queue.iter().take(MAX_SLICES).enumerate() {
                slices[i] = IoSlice::new(if i == 0 { &b[self.offset..] } else { b });
                n += 1;
            }
            let written =
                std::task::ready!(Pin::new(&mut *io).poll_write_vectored(cx, &slices[..n]))?;
            if written == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            self.advance(written);
        }
        self.shrink();
        Pin::new(io).poll_flush(cx)
    }

    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let front = self.queue.front().expect("wrote no more than queued").len() - self.offset;
            if n >= front {
                n -= front;
                self.offset = 0;
                self.queue.pop_front();
            } else {
                self.offset += n;
                n = 0;
            }
        }
    }

    /// Joins small frames at the front into one buffer of up to [`JOIN`] bytes.
    fn join_front(&mut self) {
        let small = self
            .queue
            .iter()
            .take_while(|b| b.len() < JOIN)
            .take(MAX_SLICES)
            .count();
        if small < 2 {
            return;
        }
        let mut joined = BytesMut::with_capacity(JOIN);
        let mut offset = self.offset;
        while let Some(front) = self.queue.front() {
            let part = &front[offset..];
            if joined.len() + part.len() > JOIN && !joined.is_empty() {
                break;
            }
            joined.put_slice(part);
            offset = 0;
            self.queue.pop_front();
        }
        self.offset = 0;
        self.queue.push_front(joined.freeze());
    }
}

/// One complete frame as `role` sends it: masked with a fresh random key by a client, plain
/// by a server. `fin` false for a message's non-final parts; `rsv1` on a compressed message's
/// first frame.
pub fn frame(role: Role, opcode: u8, payload: &[u8], fin: bool, rsv1: bool) -> Bytes {
    let masked = role == Role::Client;
    let head = frame_head::len(payload.len()) + if masked { 4 } else { 0 };
    let mut out = BytesMut::with_capacity(head + payload.len());
    if masked {
        let key: [u8; 4] = rand::random();
        frame_head::put_masked(&mut out, opcode, fin, rsv1, payload.len(), key);
        out.put_slice(payload);
        frame_head::apply_mask(&mut out[head..], key);
    } else {
        frame_head::put(&mut out, opcode, fin, rsv1, payload.len());
        out.put_slice(payload);
    }
    out.freeze()
}

/// A close frame's payload: the code, then the reason.
pub fn close_payload(code: u16, reason: &str) -> Vec<u8> {
    let mut p = Vec::with_capacity(2 + reason.len());
    p.extend_from_slice(&code.to_be_bytes());
    p.extend_from_slice(reason.as_bytes());
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most 5 bytes per write and no vectored writes.
    struct Trickle(Vec<u8>);

    impl AsyncWrite for Trickle {
        fn poll_write(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<std::io::Result<usize>> {
            let n = buf.len().min(5);
            self.0.extend_from_slice(&buf[..n]);
            Poll::Ready(Ok(n))
        }
        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn partial_writes_keep_every_byte_in_order() {
        let mut w = Writer::default();
        let mut expect = Vec::new();
        for i in 0..100u8 {
            let f = frame(
                Role::Server,
                frame_head::OP_BINARY,
                &vec![i; i as usize],
                true,
                false,
            );
            expect.extend_from_slice(&f);
            w.push(f);
        }
        let mut sink = Trickle(Vec::new());
        std::future::poll_fn(|cx| w.poll_write(cx, &mut sink))
            .await
            .unwrap();
        assert_eq!(sink.0, expect);
        assert_eq!(w.len(), 0);
    }
}
