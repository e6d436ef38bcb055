//! The fan-out's flush: broadcast frames queued without waking their recipients
//! ([`crate::pool::outbox::Outbox::defer`]) are sent to the sockets once per turn, not once
//! per frame, and not by a task per recipient.
//!
//! A turn is one poll of a connection task ([`Turn`]): every broadcast its commands make
//! lands in the recipients' queues, and when the poll ends this thread sends each dirty
//! recipient's queue with one non-blocking `send`, however many of that turn's broadcasts it
//! holds (a publisher whose frames arrive together gets them merged per recipient, as
//! uWebSockets does per event-loop turn). A delivery made outside any turn (the cluster's
//! subscriber, the server API) hands its recipients to one flush task instead, spawned when
//! the first of them arrives.
//!
//! Cost: the sends of a turn run on the thread of that turn, as in uWebSockets; the
//! recipients that a flush could not finish (a full socket) go back to their own tasks.
//! `docs/ARCHITECTURE.md` ("Why the fan-out sends at the end of the turn") has the figures.

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use crate::base::metrics::{FrameKind, Metrics};
use crate::pool::client::ClientHandle;
use crate::pool::outbox::Front;
use crate::transport::deflate::Deflate;

/// What a hub's flushes need: the server's shared deflate settings and its metrics.
#[derive(Default)]
pub(crate) struct Flush {
    /// The shared deflate settings, when the server compresses (how a frame is sent to a
    /// connection that negotiated them: compressed once for all).
    shared: Option<Deflate>,
    metrics: Option<Arc<Metrics>>,
    /// Recipients of deliveries made outside a turn, and whether a flush task is on its way.
    later: Mutex<(Vec<Due>, bool)>,
}

/// A recipient a flush is due for, and where its queue's first entry was then (a cache hint:
/// see [`Front`]).
pub(crate) struct Due(ClientHandle, Front);

impl Due {
    /// `handle`'s queue is due for a flush; its first entry was at `front`.
    pub(crate) fn new(handle: ClientHandle, front: Front) -> Self {
        Self(handle, front)
    }

    /// Starts loading both of the recipient's cold lines a flush touches first: its handle
    /// (the queue's lock) and its queue's first entry.
    fn prefetch(&self) {
        self.0.prefetch();
        self.1.prefetch();
    }
}

/// How many recipients ahead a flush prefetches (see [`Flush::send`]).
const FLUSH_AHEAD: usize = 2;

/// The recipients a turn's deliveries dirtied, per hub (nearly always one).
type Dirty = Vec<(Arc<Flush>, Vec<Due>)>;

thread_local! {
    /// The turn being polled on this thread, if any.
    static TURN: RefCell<Option<Dirty>> = const { RefCell::new(None) };
}

/// One poll of a connection task: deliveries made while it lives are sent when it drops.
/// Nested turns are one turn (the outermost flushes).
pub(crate) struct Turn(bool);

impl Turn {
    /// Starts a turn on this thread (unless one is running).
    pub(crate) fn begin() -> Self {
        Self(TURN.with(|t| {
            let mut t = t.borrow_mut();
            if t.is_some() {
                return false;
            }
            *t = Some(Vec::new());
            true
        }))
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if self.0 {
            for (flush, list) in TURN.with(|t| t.borrow_mut().take()).unwrap_or_default() {
                flush.send(list);
            }
        }
    }
}

impl Flush {
    /// A hub's flush: `shared`, the server's shared deflate settings when it compresses.
    pub(crate) fn new(shared: Option<Deflate>, metrics: Option<Arc<Metrics>>) -> Self {
        Self {
            shared,
            metrics,
            later: Mutex::default(),
        }
    }

    /// Flushes `dirty` at the end of this thread's turn, or from a flush task when there is
    /// no turn (or no runtime: then at once).
    pub(crate) fn add(self: &Arc<Self>, dirty: Vec<Due>) {
        if dirty.is_empty() {
            return;
        }
        let Some(dirty) = TURN.with(|t| match t.borrow_mut().as_mut() {
            Some(lists) => {
                match lists.iter_mut().find(|(f, _)| Arc::ptr_eq(f, self)) {
                    Some((_, list)) => list.extend(dirty),
                    None => lists.push((self.clone(), dirty)),
                }
                None
            }
            None => Some(dirty),
        }) else {
            return;
        };
        let spawn = {
            let mut later = self.later.lock().unwrap_or_else(|e| e.into_inner());
            later.0.extend(dirty);
            !std::mem::replace(&mut later.1, true)
        };
        if spawn {
            let me = self.clone();
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => drop(rt.spawn(async move { me.send_later() })),
                Err(_) => me.send_later(),
            }
        }
    }

    /// The flush task: what deliveries outside a turn dirtied until now.
    fn send_later(&self) {
        let list = {
            let mut later = self.later.lock().unwrap_or_else(|e| e.into_inner());
            later.1 = false;
            std::mem::take(&mut later.0)
        };
        self.send(list);
    }

    fn send(&self, list: Vec<Due>) {
        let mut sent = [(0u64, 0u64); 2];
        // Each recipient's state is cold again by now (the sends in between touched the
        // kernel's socket state of thousands of others): the first touch of its queue's lock,
        // then of its first entry, were nine tenths of a flush's own CPU in `perf`. A send
        // takes microseconds, so a recipient or two ahead covers the memory latency.
        // Each handle is dropped right after its flush, while its line is still in cache (the
        // whole list dropped at the end took one more cold touch per recipient).
        let mut list = list.into_iter();
        for d in list.as_slice().iter().take(FLUSH_AHEAD) {
            d.prefetch();
        }
        while let Some(Due(h, _)) = list.next() {
            if let Some(next) = list.as_slice().get(FLUSH_AHEAD - 1) {
                next.prefetch();
            }
            let w = h.outbox().flush(self.shared.as_ref());
            for (total, one) in sent.iter_mut().zip(w) {
                total.0 += one.0;
                total.1 += one.1;
            }
        }
        // What a connection counts for the frames it writes.
        if let Some(m) = &self.metrics {
            m.sent(FrameKind::Text, sent[0].0, sent[0].1);
            m.sent(FrameKind::Binary, sent[1].0, sent[1].1);
        }
    }
}
