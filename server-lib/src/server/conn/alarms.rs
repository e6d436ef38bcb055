//! One ticker for every connection's timers, instead of a `Sleep` in each task.
//!
//! A connection wakes up for three things: its next ping (every `ping_interval`, which is also
//! when it checks the heartbeat deadline), its token's expiry, and a write that has waited
//! `write_timeout`. It sets its alarm on its [`ClientHandle`] (one atomic) and posts the time
//! here; a tokio timer would cost every task 112 bytes and a registration in tokio's wheel.
//!
//! Posts are kept in buckets of one tick each (a coarse timing wheel): the ticker takes every
//! bucket that is due and rings its clients' alarms. A client whose alarm is not due (it rang
//! already), or that is gone, is skipped: a bucket keeps only weak handles, so it never keeps a
//! client alive, and it is emptied at its tick. An alarm only moves sooner (see
//! [`ClientHandle::set_alarm`]), so a connection posts at most once per ring. Timers fire up to one tick late (at most
//! 100 ms, and at most a tenth of the shortest of the three intervals).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::base::config::ServerConfig;
use crate::base::stamp::Stamp;
use crate::pool::client::{ClientHandle, WeakClient};

/// The server's alarm ticker.
pub(crate) struct Alarms {
    /// Milliseconds per tick.
    tick_ms: u64,
    /// Clients to ring, by the tick at which they are due.
    due: Mutex<BTreeMap<u64, Vec<WeakClient>>>,
    /// The ticker, once a connection needed it (restarted if its runtime went away).
    ticker: Mutex<Option<JoinHandle<()>>>,
}

impl Alarms {
    /// Alarms for connections configured by `cfg`.
    pub(crate) fn new(cfg: &ServerConfig) -> Arc<Self> {
        let shortest = cfg
            .ping_interval
            .min(cfg.heartbeat_timeout)
            .min(cfg.write_timeout);
        let tick = (shortest / 10).clamp(Duration::from_millis(10), Duration::from_millis(100));
        Arc::new(Self {
            tick_ms: tick.as_millis() as u64,
            due: Mutex::new(BTreeMap::new()),
            ticker: Mutex::new(None),
        })
    }

    /// Sets `client`'s alarm to `at` (a no-op when it is set to ring sooner).
    pub(crate) fn set(&self, client: &ClientHandle, at: Stamp) {
        if client.set_alarm(at) {
            // The first tick strictly after `at`, so the ringing never comes early.
            let tick = at.get() / self.tick_ms + 1;
            self.lock()
                .entry(tick)
                .or_default()
                .push(client.downgrade());
        }
    }

    /// Starts the ticker on the current runtime unless it runs (a server can be mounted in
    /// another app's router, so it starts with the first connection, not with `run`).
    pub(crate) fn ensure_ticking(self: &Arc<Self>) {
        let mut ticker = self.ticker.lock().unwrap_or_else(|e| e.into_inner());
        if ticker.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        *ticker = Some(tokio::spawn(tick(Arc::downgrade(self))));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Vec<WeakClient>>> {
        // Held for a push or a split, never across an await or a wake.
        self.due.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rings every client due by `now`; how many alarms rang.
    fn ring_due(&self, now: Stamp) -> usize {
        let due = {
            let mut map = self.lock();
            let later = map.split_off(&(now.get() / self.tick_ms + 1));
            std::mem::replace(&mut *map, later)
        };
        due.into_values()
            .flatten()
            .filter(|client| client.ring(now))
            .count()
    }
}

/// The ticker: rings what is due every tick, while anything can still post (it holds the
/// alarms weakly, and ends with the server).
async fn tick(alarms: Weak<Alarms>) {
    let Some(period) = alarms.upgrade().map(|a| Duration::from_millis(a.tick_ms)) else {
        return;
    };
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(alarms) = alarms.upgrade() else {
            return;
        };
        alarms.ring_due(Stamp::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::auth::Grant;
    use crate::base::config::SlowPolicy;

    fn client() -> ClientHandle {
        ClientHandle::new("c".into(), 4, SlowPolicy::Drop, Arc::new(Grant::default()))
    }

    #[test]
    fn rings_when_due_never_before_and_once() {
        let alarms = Alarms::new(&ServerConfig::default());
        let c = client();
        let at = Stamp::after(Duration::from_secs(5));
        alarms.set(&c, at);
        alarms.set(&c, at);
        assert_eq!(alarms.ring_due(Stamp::now()), 0, "not due yet");
        assert!(!c.take_rung());
        let later = Stamp::after(Duration::from_secs(6));
        assert_eq!(alarms.ring_due(later), 1, "posted twice, rings once");
        assert!(c.take_rung());
        assert!(!c.take_rung(), "taken");
        assert!(alarms.lock().is_empty());
    }

    #[test]
    fn the_soonest_alarm_wins_and_a_gone_client_is_skipped() {
        let alarms = Alarms::new(&ServerConfig::default());
        let c = client();
        alarms.set(&c, Stamp::after(Duration::from_secs(60)));
        alarms.set(&c, Stamp::after(Duration::from_secs(1)));
        alarms.set(&c, Stamp::after(Duration::from_secs(30)));
        assert_eq!(
            alarms.lock().values().map(Vec::len).sum::<usize>(),
            2,
            "a later time is not posted"
        );
        assert_eq!(
            alarms.ring_due(Stamp::after(Duration::from_secs(2))),
            1,
            "rings at the soonest"
        );
        assert!(c.take_rung());
        assert_eq!(
            alarms.ring_due(Stamp::after(Duration::from_secs(61))),
            0,
            "nothing set since"
        );
        let gone = client();
        alarms.set(&gone, Stamp::now());
        drop(gone);
        assert_eq!(alarms.ring_due(Stamp::after(Duration::from_secs(1))), 0);
    }
}
