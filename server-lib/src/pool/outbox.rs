//! A client's bounded outbound queue.
//!
//! Every sender (a broadcast, a unicast, the client's own replies) pushes into the queue without
//! waiting; the connection task drains it and writes the frames in one batch, flushing once.
//! A push never blocks and never allocates beyond `capacity` frames: when the queue is full the
//! configured [`SlowPolicy`] decides (drop the frame, or close the client with 1008).
//!
//! The task's waker lives under the queue's lock: a push queues and takes the waker in one
//! critical section, and the task takes a batch or registers in one (an `AtomicWaker` beside
//! the lock cost a second lock and an atomic round per poll, and 8 bytes).
//!
//! A broadcast skips the task when it can ([`Outbox::defer`], then [`Outbox::flush`]): if the
//! task has nothing on the way, the frame is queued without a wake, and the fan-out's flush at
//! the end of the publisher's turn (`pool::flush`) sends everything the queue holds straight
//! to the socket, in one non-blocking `send`, however many broadcasts of that turn it got.
//! What the socket does not take goes back to the front of the queue and the task is woken
//! to write it: from then on the task writes, in order, until it has written everything.
//!
//! One lock orders the two writers. A flush sends with it held, and only while the task has
//! nothing on the way (`busy` clear): the task sets `busy` under the lock when it takes a
//! batch or writes something of its own ([`Outbox::hold`]), and clears it only when its
//! writer is empty and it finds the queue empty (in [`Outbox::poll_next`]). The descriptor is
//! lent by the task ([`Outbox::attach`], plain TCP only) and taken back, under the lock,
//! before the socket closes ([`Outbox::detach`]): a flush never reaches a closed or reused
//! descriptor.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::os::fd::RawFd;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;

use crate::base::config::SlowPolicy;
use crate::base::prefetch;
use crate::pool::stream::StreamRx;
use crate::transport::close::Close;
use crate::transport::deflate::Deflate;
use crate::transport::direct;
use crate::transport::frame::{Frame, Kind};

/// One entry of the queue.
pub(crate) enum Item {
    /// A whole message.
    Frame(Frame),
    /// A message streamed in parts: the connection writes its parts, and nothing else, until it
    /// ends.
    Stream(StreamRx),
    /// The part of a frame a flush could not get into the socket: written as it is, before
    /// anything else (boxed: rare, and it keeps an entry 16 bytes).
    Rest(Box<Bytes>),
}

/// What became of a pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued for delivery.
    Queued,
    /// The queue was full and the policy is to drop: this frame is lost for this client.
    Dropped,
    /// The client is closing (or the queue was full and the policy is to close it).
    Closed,
}

/// What became of a broadcast frame handed to [`Outbox::defer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Deferred {
    /// Queued without a wake, and the queue was clean: the caller flushes this outbox at the
    /// end of its turn (and may prefetch the [`Front`] just before).
    Flush(Front),
    /// Queued behind frames a flush is already due for: nothing more to do.
    Queued,
    /// Not deferred (the task writes): what [`Outbox::push`] made of it.
    Pushed(Pushed),
}

/// Where a queue's first entry was when a flush became due: a cache hint for the flush (the
/// entry's slot is a second cold line after the handle's), never read through. The queue may
/// have moved since (a later push that grew it); a prefetch of a stale address only wastes a
/// load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Front(usize);

impl Front {
    /// Starts loading the entry's slot into cache.
    #[inline]
    pub(crate) fn prefetch(self) {
        prefetch::line(self.0 as *const u8);
    }
}

/// What a flush wrote: (frames, wire bytes) of text and of binary frames.
pub(crate) type Written = [(u64, u64); 2];

/// One batch handed to the connection task.
pub(crate) enum Batch {
    /// Frames to write, oldest first.
    Frames,
    /// Close the connection with this code and reason (after writing nothing more).
    Close(Close),
}

struct Inner {
    frames: VecDeque<Item>,
    /// Boxed: set once, at the end (every idle client's handle is 24 bytes smaller).
    close: Option<Box<Close>>,
    /// The connection task, to wake for a push, a close or its alarm (taken by the wake).
    waker: Option<Waker>,
    /// The socket a flush may send to, or [`NO_FD`] (not plain TCP, closing, failed).
    fd: RawFd,
    /// [`DEFLATED`], [`BUSY`], [`DIRTY`].
    flags: u8,
}

/// No descriptor: broadcasts go through the task.
const NO_FD: RawFd = -1;
/// The connection has the server's shared deflate settings: a flush sends frames as
/// compressed once for all of them.
const DEFLATED: u8 = 1;
/// The task has bytes of its own on the way (a batch it took, a ping, a pong).
const BUSY: u8 = 2;
/// A flush is due: a deferred frame is queued and its caller will flush.
const DIRTY: u8 = 4;
/// At most this many entries go out in one flush's `sendmsg` (the rest stay queued, for the
/// task): the iovec array lives on the stack. A flush usually finds one to three.
const MAX_IOV: usize = 32;

impl Default for Inner {
    fn default() -> Self {
        Self {
            frames: VecDeque::new(),
            close: None,
            waker: None,
            fd: NO_FD,
            flags: 0,
        }
    }
}

impl Inner {
    /// A flush may send to the socket now: open, lent, and the task has nothing on the way.
    fn sendable(&self) -> bool {
        self.close.is_none() && self.fd != NO_FD && self.flags & BUSY == 0
    }
}

/// The top bit of `Outbox::bound`: a full queue drops the frame ([`SlowPolicy::Drop`]).
const DROP_BIT: u32 = 1 << 31;

/// Bounded multi-producer, single-consumer queue of frames for one client.
pub(crate) struct Outbox {
    // A std Mutex: critical sections are a push or a swap, never held across an await, and
    // an idle client costs no allocation (an empty VecDeque allocates nothing). The waker
    // lives under it too (an `AtomicWaker` beside it took 8 bytes more).
    inner: Mutex<Inner>,
    /// At most this many frames (up to 2^31 - 1), and in the top bit the policy when full
    /// ([`DROP_BIT`]: drop; clear: close): with `dropped`, one word for the three (an idle
    /// client's handle fits 128 bytes).
    bound: u32,
    /// Frames dropped (saturating at 4,294,967,295).
    dropped: AtomicU32,
}

impl Outbox {
    pub(crate) fn new(capacity: usize, policy: SlowPolicy) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            bound: u32::try_from(capacity).unwrap_or(u32::MAX).min(!DROP_BIT)
                | match policy {
                    SlowPolicy::Drop => DROP_BIT,
                    SlowPolicy::Close => 0,
                },
            dropped: AtomicU32::new(0),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the queue inconsistent (push/swap only).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an item without waiting.
    pub(crate) fn push(&self, item: Item) -> Pushed {
        self.enqueue(self.lock(), item)
    }

    /// Queues a broadcast frame; without a wake when a flush can send it (see the module
    /// doc): then the caller flushes this outbox at the end of its turn if told
    /// [`Deferred::Flush`].
    pub(crate) fn defer(&self, frame: &Frame) -> Deferred {
        let mut inner = self.lock();
        if !inner.sendable() || inner.frames.len() >= (self.bound & !DROP_BIT) as usize {
            return Deferred::Pushed(self.enqueue(inner, Item::Frame(frame.clone())));
        }
        inner.frames.push_back(Item::Frame(frame.clone()));
        if inner.flags & DIRTY != 0 {
            return Deferred::Queued;
        }
        inner.flags |= DIRTY;
        let front = inner
            .frames
            .front()
            .map_or(0, |f| f as *const Item as usize);
        Deferred::Flush(Front(front))
    }

    /// Sends what the queue holds straight to the socket when the task has nothing on the way
    /// (`shared`: the server's shared deflate settings); wakes the task for whatever it could
    /// not send. What it sent, for the metrics.
    pub(crate) fn flush(&self, shared: Option<&Deflate>) -> Written {
        let mut written = Written::default();
        let mut inner = self.lock();
        inner.flags &= !DIRTY;
        if inner.frames.is_empty() {
            return written;
        }
        let deflate = match (inner.flags & DEFLATED != 0, shared) {
            (false, _) => Some(None),
            (true, Some(d)) => Some(Some(d)),
            (true, None) => None,
        };
        let (Some(deflate), true) = (deflate, inner.sendable()) else {
            wake(inner);
            return written;
        };
        // Each entry's bytes, borrowed from the queue: a frame's wire form is shared by every
        // recipient (compressed once for all, when it is).
        let mut lens = [0usize; MAX_IOV];
        let mut n = 0;
        let result = {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            for item in inner.frames.iter().take(MAX_IOV) {
                let bytes: &[u8] = match item {
                    Item::Frame(f) => match f.shared_wire(deflate) {
                        Some(wire) => wire,
                        None => break,
                    },
                    Item::Rest(rest) => rest,
                    // A stream is the task's to write.
                    Item::Stream(_) => break,
                };
                slices[n] = IoSlice::new(bytes);
                lens[n] = bytes.len();
                n += 1;
            }
            (n > 0).then(|| direct::send_now(inner.fd, &slices[..n]))
        };
        let mut sent = match result {
            None => 0,
            Some(Ok(sent)) => sent,
            Some(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => 0,
            // A failed socket: the task meets the error on its own write and ends.
            Some(Err(_)) => {
                inner.fd = NO_FD;
                0
            }
        };
        for &len in &lens[..n] {
            if sent == 0 {
                break;
            }
            let Some(item) = inner.frames.pop_front() else {
                break;
            };
            if sent < len {
                // The socket took a part: the rest goes first, by the task.
                let rest = match &item {
                    Item::Frame(f) => f.shared_wire(deflate).map(|w| w.slice(sent..)),
                    Item::Rest(r) => Some(r.slice(sent..)),
                    Item::Stream(_) => None,
                };
                if let Some(rest) = rest {
                    inner.frames.push_front(Item::Rest(Box::new(rest)));
                }
            }
            // A rest was counted when the frame was sent in part.
            if let Item::Frame(f) = &item {
                let k = &mut written[matches!(f.kind(), Kind::Binary) as usize];
                k.0 += 1;
                k.1 += len as u64;
            }
            sent = sent.saturating_sub(len);
        }
        if !inner.frames.is_empty() {
            // The socket is full (or a stream is next): the task writes from here on, until
            // it finds the queue empty; flushes keep off (no retried `send` per turn).
            inner.flags |= BUSY;
            wake(inner);
        }
        written
    }

    fn enqueue(&self, mut inner: MutexGuard<'_, Inner>, item: Item) -> Pushed {
        if inner.close.is_some() {
            return Pushed::Closed;
        }
        let result = if inner.frames.len() < (self.bound & !DROP_BIT) as usize {
            inner.frames.push_back(item);
            Pushed::Queued
        } else if self.bound & DROP_BIT != 0 {
            Pushed::Dropped
        } else {
            clear(&mut inner.frames);
            inner.close = Some(Box::new(Close::slow_consumer()));
            Pushed::Closed
        };
        match result {
            Pushed::Dropped => {
                drop(inner);
                let _ = self
                    .dropped
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_add(1));
            }
            _ => wake(inner),
        }
        result
    }

    /// Asks the connection to close; frames already queued are discarded. The first request wins.
    pub(crate) fn close(&self, close: Close) {
        let mut inner = self.lock();
        if inner.close.is_none() {
            clear(&mut inner.frames);
            inner.close = Some(Box::new(close));
        }
        wake(inner);
    }

    /// Lends the socket to flushes while the task has nothing on the way (`deflated`: the
    /// connection has the server's shared deflate settings). The caller keeps `fd` open until
    /// it calls [`Self::detach`].
    pub(crate) fn attach(&self, fd: RawFd, deflated: bool) {
        let mut inner = self.lock();
        inner.fd = fd;
        if deflated {
            inner.flags |= DEFLATED;
        }
    }

    /// No more flushes to the socket: once this returns, none is under way and none will
    /// start (call it before the socket closes). Returns the tail of a frame a flush sent in
    /// part, which the task must write before anything else (its close frame).
    pub(crate) fn detach(&self) -> Option<Bytes> {
        let mut inner = self.lock();
        inner.fd = NO_FD;
        take_rest(&mut inner.frames)
    }

    /// The task is about to write something of its own (a ping, a pong): broadcasts go through
    /// it until it has written that and found the queue empty. Returns the tail of a frame a
    /// flush sent in part, which the task must write first.
    pub(crate) fn hold(&self) -> Option<Bytes> {
        let mut inner = self.lock();
        inner.flags |= BUSY;
        take_rest(&mut inner.frames)
    }

    /// Gives back the spare buffer a burst left, when nothing is queued (called when the
    /// connection has been quiet for a while: a busy one keeps it, to reuse).
    pub(crate) fn shrink_idle(&self) {
        let mut inner = self.lock();
        if inner.frames.is_empty() && inner.frames.capacity() > 0 {
            inner.frames = VecDeque::new();
        }
    }

    /// Registers the connection task to be woken by the next push, close or alarm (each wake
    /// uses the registration up).
    pub(crate) fn register(&self, waker: &Waker) {
        set(&mut self.lock().waker, waker);
    }

    /// Wakes the connection task (its alarm rang).
    pub(crate) fn wake(&self) {
        wake(self.lock());
    }

    /// Frames dropped for this client under [`SlowPolicy::Drop`].
    pub(crate) fn dropped(&self) -> u64 {
        u64::from(self.dropped.load(Ordering::Relaxed))
    }

    /// Waits until there is something to do, then moves every queued frame into `out`.
    #[cfg(test)]
    pub(crate) async fn next(&self, out: &mut VecDeque<Item>) -> Batch {
        std::future::poll_fn(|cx| self.poll_next(cx, out)).await
    }

    /// Moves every queued frame into `out` (or says to close), and registers `cx` to be woken
    /// by the next push either way: a task that writes the batch it took needs no second look
    /// to learn that nothing came meanwhile (one lock per wake, not two).
    ///
    /// Called by the task only when its writer is empty: taking a batch, it keeps flushes off
    /// the socket; finding the queue empty, it lends the socket to them again.
    pub(crate) fn poll_next(&self, cx: &mut Context<'_>, out: &mut VecDeque<Item>) -> Poll<Batch> {
        let mut inner = self.lock();
        if let Some(close) = &inner.close {
            return Poll::Ready(Batch::Close(Close::clone(close)));
        }
        set(&mut inner.waker, cx.waker());
        if inner.frames.is_empty() {
            inner.flags &= !BUSY;
            return Poll::Pending;
        }
        // Swap buffers: the queue keeps the (empty) spare allocation, the writer gets the frames.
        std::mem::swap(&mut inner.frames, out);
        inner.flags |= BUSY;
        Poll::Ready(Batch::Frames)
    }
}

/// Discards the queued frames, but not the tail of a frame a flush sent in part: the socket
/// has its head, so the tail must follow (before the close frame).
fn clear(frames: &mut VecDeque<Item>) {
    let rest = take_rest(frames);
    frames.clear();
    if let Some(rest) = rest {
        frames.push_back(Item::Rest(Box::new(rest)));
    }
}

/// Takes the tail of a frame a flush sent in part, if one is queued (it is always first).
fn take_rest(frames: &mut VecDeque<Item>) -> Option<Bytes> {
    match frames.front() {
        Some(Item::Rest(_)) => match frames.pop_front() {
            Some(Item::Rest(rest)) => Some(*rest),
            _ => unreachable!("the front is a rest"),
        },
        _ => None,
    }
}

/// Stores `waker` unless the one stored already wakes the same task.
fn set(slot: &mut Option<Waker>, waker: &Waker) {
    match slot {
        Some(w) if w.will_wake(waker) => {}
        _ => *slot = Some(waker.clone()),
    }
}

/// Takes the task's waker and wakes it once the lock is released.
fn wake(mut inner: MutexGuard<'_, Inner>) {
    let waker = inner.waker.take();
    drop(inner);
    if let Some(w) = waker {
        w.wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Item {
        Item::Frame(Frame::text(s))
    }

    #[tokio::test]
    async fn full_queue_drops_under_drop_policy() {
        let outbox = Outbox::new(2, SlowPolicy::Drop);
        assert_eq!(outbox.push(t("a")), Pushed::Queued);
        assert_eq!(outbox.push(t("b")), Pushed::Queued);
        assert_eq!(outbox.push(t("c")), Pushed::Dropped);
        assert_eq!(outbox.dropped(), 1);
        let mut out = VecDeque::new();
        assert!(matches!(outbox.next(&mut out).await, Batch::Frames));
        assert_eq!(out.len(), 2);
    }

    #[tokio::test]
    async fn full_queue_closes_under_close_policy() {
        let outbox = Outbox::new(1, SlowPolicy::Close);
        assert_eq!(outbox.push(t("a")), Pushed::Queued);
        assert_eq!(outbox.push(t("b")), Pushed::Closed);
        assert_eq!(outbox.push(t("c")), Pushed::Closed);
        let mut out = VecDeque::new();
        match outbox.next(&mut out).await {
            Batch::Close(c) => assert_eq!(c.code, 1008),
            Batch::Frames => panic!("expected a close"),
        }
    }

    #[test]
    fn a_push_after_a_poll_wakes_the_task_once() {
        use std::sync::atomic::AtomicUsize;
        use std::sync::Arc;
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let outbox = Outbox::new(4, SlowPolicy::Drop);
        let mut out = VecDeque::new();
        assert!(outbox.poll_next(&mut cx, &mut out).is_pending());
        assert_eq!(outbox.push(t("a")), Pushed::Queued);
        assert_eq!(outbox.push(t("b")), Pushed::Queued);
        // The first push used the registration up; the second found none.
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(outbox.poll_next(&mut cx, &mut out).is_ready());
        assert_eq!(out.len(), 2);
        // Taking a batch registered the task: the next push wakes it with no second poll.
        out.clear();
        assert_eq!(outbox.push(t("c")), Pushed::Queued);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert!(outbox.poll_next(&mut cx, &mut out).is_ready());
        assert_eq!(out.len(), 1);
        // A ring (the alarm) wakes a registered task too.
        out.clear();
        assert!(outbox.poll_next(&mut cx, &mut out).is_pending());
        outbox.wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
    }

    /// A connected pair: the outbox's end (non-blocking, as tokio keeps it) and the peer's.
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ours = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (peer, _) = listener.accept().unwrap();
        ours.set_nonblocking(true).unwrap();
        (ours, peer)
    }

    fn read_exact(peer: &mut std::net::TcpStream, n: usize) -> Vec<u8> {
        use std::io::Read;
        let mut buf = vec![0u8; n];
        peer.read_exact(&mut buf).unwrap();
        buf
    }

    #[test]
    fn a_flush_sends_a_turns_broadcasts_at_once_and_a_busy_task_gets_them() {
        use std::os::fd::AsRawFd;
        let (ours, mut peer) = pair();
        let outbox = Outbox::new(8, SlowPolicy::Drop);
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut out = VecDeque::new();
        // Not lent: the task writes.
        assert_eq!(
            outbox.defer(&Frame::text("a")),
            Deferred::Pushed(Pushed::Queued)
        );
        assert!(outbox.poll_next(&mut cx, &mut out).is_ready());
        outbox.attach(ours.as_raw_fd(), false);
        // The task took a batch and has not written it: its turn, still.
        assert_eq!(
            outbox.defer(&Frame::text("b")),
            Deferred::Pushed(Pushed::Queued)
        );
        out.clear();
        assert!(outbox.poll_next(&mut cx, &mut out).is_ready());
        // Its writer and the queue are empty: the socket is lent to flushes.
        out.clear();
        assert!(outbox.poll_next(&mut cx, &mut out).is_pending());
        assert!(matches!(
            outbox.defer(&Frame::text("hi")),
            Deferred::Flush(_)
        ));
        assert_eq!(outbox.defer(&Frame::binary(vec![1, 2])), Deferred::Queued);
        assert_eq!(outbox.flush(None), [(1, 4), (1, 4)]);
        assert_eq!(read_exact(&mut peer, 8), b"\x81\x02hi\x82\x02\x01\x02");
        // Flushed: the next broadcast makes the outbox dirty again.
        assert!(matches!(
            outbox.defer(&Frame::text("c")),
            Deferred::Flush(_)
        ));
        // A ping of the task's own on the way: the flush leaves the frame to the task.
        outbox.hold();
        assert_eq!(outbox.flush(None), Written::default());
        assert!(outbox.poll_next(&mut cx, &mut out).is_ready());
        assert_eq!(out.len(), 1);
        out.clear();
        assert!(outbox.poll_next(&mut cx, &mut out).is_pending());
        // Taken back (closing): the task writes, never a flush.
        outbox.detach();
        assert_eq!(
            outbox.defer(&Frame::text("d")),
            Deferred::Pushed(Pushed::Queued)
        );
        assert_eq!(outbox.flush(None), Written::default());
    }

    #[test]
    fn what_a_full_socket_does_not_take_goes_first_through_the_task() {
        use std::os::fd::AsRawFd;
        let (ours, mut peer) = pair();
        let outbox = Outbox::new(1 << 20, SlowPolicy::Drop);
        outbox.attach(ours.as_raw_fd(), false);
        // Numbered 1 KB frames, flushed one by one, until a flush leaves something: then
        // the task writes, and the next frame is queued for it.
        let frame = |i: u32| {
            let mut body = vec![(i % 251) as u8; 1024];
            body[..4].copy_from_slice(&i.to_be_bytes());
            Frame::binary(body)
        };
        let mut i = 0u32;
        while matches!(outbox.defer(&frame(i)), Deferred::Flush(_)) {
            // Sent (whole, or a part: the rest is counted with it), or nothing taken.
            let w = outbox.flush(None);
            assert!(w == [(0, 0), (1, 1028)] || w == Written::default(), "{w:?}");
            i += 1;
            assert!(i < 1 << 20, "the socket never filled");
        }
        // Frame i is queued behind what the socket did not take (the tail of a frame first,
        // if it took a part); three more queue behind it.
        for k in 1..=3 {
            assert_eq!(
                outbox.defer(&frame(i + k)),
                Deferred::Pushed(Pushed::Queued)
            );
        }
        // The task writes a ping of its own first: it gets the tail of a frame the socket
        // took a part of, to write before the ping (the test leaves the ping out).
        let mut rest: Vec<u8> = outbox.hold().map(|b| b.to_vec()).unwrap_or_default();
        let mut out = VecDeque::new();
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(outbox.poll_next(&mut cx, &mut out).is_ready());
        for item in out.drain(..) {
            match item {
                Item::Rest(_) => panic!("hold() left the tail of a frame in the queue"),
                Item::Frame(f) => rest.extend_from_slice(&f.wire(None)),
                Item::Stream(_) => panic!("no stream was queued"),
            }
        }
        // The peer reads what the socket took, then the task's bytes follow: every frame
        // whole and in order.
        let total = (i as usize + 4) * 1028;
        let mut got = read_exact(&mut peer, total - rest.len());
        got.extend_from_slice(&rest);
        for (n, chunk) in got.chunks(1028).enumerate() {
            assert_eq!(&chunk[..4], &[0x82, 126, 4, 0], "frame {n} is torn");
            assert_eq!(
                u32::from_be_bytes(chunk[4..8].try_into().unwrap()),
                n as u32
            );
        }
    }

    #[test]
    fn a_close_keeps_the_tail_of_a_frame_the_socket_has_the_head_of() {
        let outbox = Outbox::new(4, SlowPolicy::Close);
        let tail = Bytes::from_static(b"lo");
        assert_eq!(
            outbox.push(Item::Rest(Box::new(tail.clone()))),
            Pushed::Queued
        );
        assert_eq!(outbox.push(t("next")), Pushed::Queued);
        outbox.close(Close::new(1000, "bye"));
        // The frames go; the tail stays, and the task takes it as the socket closes.
        assert_eq!(outbox.detach(), Some(tail));
        assert_eq!(outbox.detach(), None);
        assert_eq!(outbox.hold(), None);
    }
}
