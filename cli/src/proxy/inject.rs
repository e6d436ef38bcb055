//! Frames injected into a connection: each stdin line `N> INPUT` sends INPUT to the upstream
//! of connection N (as if its client had sent it), `N< INPUT` to its client (as if the
//! upstream had); INPUT is the `wsp connect` composer's syntax (`/json ping`, `/ch news hi`,
//! a SendMsg as JSON, `/close 4000 bye`). Injected frames are shown like the others, with
//! `"injected": true`. Each connection's queue holds 16 frames; a line for a full queue or an
//! unknown connection is refused with a message on stderr.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::mpsc;

use super::log::Direction;
use crate::connect::compose::{self, Outgoing};

/// Frames waiting to be injected into one connection.
pub type Queue = mpsc::Receiver<(Direction, Outgoing)>;

/// Every open connection's injection queue.
#[derive(Default)]
pub struct Registry(Mutex<HashMap<u64, mpsc::Sender<(Direction, Outgoing)>>>);

impl Registry {
    /// Opens connection `id`'s queue; [`Registry::close`] when it ends.
    pub fn open(&self, id: u64) -> Queue {
        let (tx, rx) = mpsc::channel(16);
        self.lock().insert(id, tx);
        rx
    }

    /// Forgets connection `id`.
    pub fn close(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<(Direction, Outgoing)>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one stdin line; what went wrong otherwise.
    pub fn line(&self, line: &str, next_id: &mut u64) -> Result<(), String> {
        let split = line
            .find(['>', '<'])
            .ok_or("write `N> INPUT` (to connection N's upstream) or `N< INPUT` (to its client)")?;
        let id: u64 = line[..split]
            .trim()
            .parse()
            .map_err(|_| format!("{:?} is not a connection number", line[..split].trim()))?;
        let direction = if line.as_bytes()[split] == b'>' {
            Direction::ToUpstream
        } else {
            Direction::ToClient
        };
        let frame = compose::parse(line[split + 1..].trim(), next_id)?.frame;
        let tx = self
            .lock()
            .get(&id)
            .cloned()
            .ok_or(format!("no open connection {id}"))?;
        tx.try_send((direction, frame))
            .map_err(|_| format!("connection {id}: 16 injected frames are waiting already"))
    }
}
