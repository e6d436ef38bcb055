//! The handle through which the hub reaches one connected client.

use std::sync::{Arc, RwLock};

use crate::base::auth::Grant;
use crate::base::config::SlowPolicy;
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
    /// What it may do; shared by every client of an open server, replaced by `refresh`.
    grant: RwLock<Arc<Grant>>,
}

impl ClientHandle {
    pub(crate) fn new(id: Arc<str>, queue: usize, policy: SlowPolicy, grant: Arc<Grant>) -> Self {
        Self(Arc::new(Shared {
            id,
            outbox: Outbox::new(queue, policy),
            grant: RwLock::new(grant),
        }))
    }

    /// What this client is allowed (from its token; open without authentication).
    pub fn grant(&self) -> Arc<Grant> {
        self.0
            .grant
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub(crate) fn set_grant(&self, grant: Arc<Grant>) {
        *self.0.grant.write().unwrap_or_else(|e| e.into_inner()) = grant;
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
}

impl std::fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ClientHandle").field(&self.id()).finish()
    }
}
