//! The handle through which the hub reaches one connected client.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;

use crate::base::auth::Grant;
use crate::base::config::SlowPolicy;
use crate::base::prefetch;
use crate::base::stamp::Stamp;
use crate::pool::outbox::{Item, Outbox, Pushed};
use crate::pool::stream::MessageWriter;
use crate::transport::close::Close;
use crate::transport::frame::{Frame, Kind};

/// A cheap, clonable reference to a connected client: its id and its outbound queue.
#[derive(Clone)]
pub struct ClientHandle(Arc<Shared>);

struct Shared {
    id: Arc<str>,
    outbox: Outbox,
    /// What it may do; shared by every client of an open server, replaced by `refresh` (one
    /// pointer, no lock: a `RwLock` around it took 24 bytes).
    grant: ArcSwap<Grant>,
    /// When the connection wants to be woken next (a [`Stamp`]'s number), [`UNSET`] or
    /// [`RUNG`]: the connection keeps no timer of its own, a shared ticker rings this.
    alarm: AtomicU64,
}

/// No alarm is set.
const UNSET: u64 = 0;
/// The alarm rang and the connection has not seen it yet.
const RUNG: u64 = u64::MAX;

/// A client's handle that does not keep it alive: what the alarm ticker holds.
pub(crate) struct WeakClient(Weak<Shared>);

impl WeakClient {
    /// Rings the client's alarm if it is due at `now` (wakes its connection); false when the
    /// client is gone or its alarm is not due (unset, not yet, or rung already).
    pub(crate) fn ring(&self, now: Stamp) -> bool {
        let Some(shared) = self.0.upgrade() else {
            return false;
        };
        let mut at = shared.alarm.load(Ordering::Acquire);
        while at != UNSET && at != RUNG && at <= now.get() {
            match shared
                .alarm
                .compare_exchange(at, RUNG, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    shared.outbox.wake();
                    return true;
                }
                Err(moved) => at = moved,
            }
        }
        false
    }
}

impl ClientHandle {
    pub(crate) fn new(id: Arc<str>, queue: usize, policy: SlowPolicy, grant: Arc<Grant>) -> Self {
        Self(Arc::new(Shared {
            id,
            outbox: Outbox::new(queue, policy),
            grant: ArcSwap::new(grant),
            alarm: AtomicU64::new(UNSET),
        }))
    }

    /// A handle that does not keep the client alive.
    pub(crate) fn downgrade(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.0))
    }

    /// Sets the connection's alarm to `at` unless it is set to ring sooner (or has rung and
    /// not been seen): true when it was set, and whoever rings it must be told of the new time.
    /// An alarm never moves later, so a connection posts at most one time per ring; ringing
    /// early is harmless (the connection checks what is due and sets the next one).
    pub(crate) fn set_alarm(&self, at: Stamp) -> bool {
        let at = at.get();
        self.0
            .alarm
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                (now == UNSET || (now != RUNG && now > at)).then_some(at)
            })
            .is_ok()
    }

    /// The alarm rang (and is now unset): the connection's timers are due.
    pub(crate) fn take_rung(&self) -> bool {
        self.0.alarm.load(Ordering::Acquire) == RUNG
            && self
                .0
                .alarm
                .compare_exchange(RUNG, UNSET, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// What this client is allowed (from its token; open without authentication).
    pub fn grant(&self) -> Arc<Grant> {
        self.0.grant.load_full()
    }

    pub(crate) fn set_grant(&self, grant: Arc<Grant>) {
        self.0.grant.store(grant);
    }

    /// The client's id.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    pub(crate) fn id_arc(&self) -> &Arc<str> {
        &self.0.id
    }

    /// Queues a frame for this client without waiting.
    pub fn send(&self, frame: Frame) -> Pushed {
        self.0.outbox.push(Item::Frame(frame))
    }

    /// Queues the JSON encoding of any `Serialize` value as a text frame (gows' `WriteJSON`);
    /// the serializer's error when it cannot be encoded.
    pub fn send_json(&self, value: &impl serde::Serialize) -> serde_json::Result<Pushed> {
        Ok(self.send(Frame::try_json(value)?))
    }

    /// Starts one message sent in parts (gows' `NextWriter`): each
    /// [`MessageWriter::write`] goes out as a continuation frame, and nothing else is written
    /// to this client until [`MessageWriter::close`] ends the message. The writer takes one
    /// slot of the client's queue; a full queue applies the slow-reader policy as for any
    /// frame, and the writer then fails with [`crate::Error::ClientGone`].
    pub fn message_writer(&self, kind: Kind) -> crate::Result<MessageWriter> {
        let (writer, rx) = MessageWriter::new(self.id(), kind);
        match self.0.outbox.push(Item::Stream(rx)) {
            Pushed::Queued => Ok(writer),
            _ => Err(crate::Error::ClientGone(self.id().to_string())),
        }
    }

    /// Asks the client's connection to close with `close` (frames still queued are discarded).
    pub fn close(&self, close: Close) {
        self.0.outbox.close(close)
    }

    /// Frames dropped for this client because its queue was full.
    pub fn dropped(&self) -> u64 {
        self.0.outbox.dropped()
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.0.outbox
    }

    /// Asks the CPU to start loading this client's state (its queue's lock and slots) into
    /// cache. A fan-out over thousands of clients touches each one's state once, cold: it
    /// prefetches a few members ahead, so the push finds the lines there instead of waiting
    /// for memory on every member (the lock's first touch was more than half of `push`).
    #[inline]
    pub(crate) fn prefetch(&self) {
        // The state is at most two lines (it sits in jemalloc's 128-byte class).
        let p = Arc::as_ptr(&self.0).cast::<u8>();
        prefetch::line(p);
        prefetch::line(p.wrapping_add(64));
    }
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ClientHandle").field(&self.id()).finish()
    }
}

#[cfg(test)]
mod tests {
    /// A handle's shared part is one allocation per client: kept within jemalloc's 128-byte
    /// class (with its reference counts).
    #[test]
    fn a_handle_stays_small() {
        let size = std::mem::size_of::<super::Shared>() + 16;
        assert!(size <= 128, "a client's handle grew to {size} bytes");
    }
}
