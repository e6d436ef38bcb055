//! One bench client from connect to the end: opens it, counts the handshake, then runs its
//! scenario (holds it for `connect`, `reconnect`'s subscriber, or the publish/receive client of
//! the others).

use std::rc::Rc;
use std::time::Instant;

use tokio::sync::watch;

use super::client::{describe, open, Slot};
use super::plan::{Plan, Scenario};
use super::stats;
use super::thread::{Phase, Shared};
use super::wire::Codec;

/// One client's task.
pub(super) async fn client_task(
    plan: Rc<Plan>,
    codec: Rc<Codec>,
    stats: Shared,
    mut phase: watch::Receiver<Phase>,
    slot: Slot,
    permit: tokio::sync::OwnedSemaphorePermit,
    connected: tokio::sync::oneshot::Sender<()>,
) {
    let t0 = Instant::now();
    let ws = match open(&plan, &slot).await {
        Ok(ws) => ws,
        Err(e) => {
            let mut s = stats.borrow_mut();
            s.counts.connect_failed += 1;
            s.error(describe(&e));
            return;
        }
    };
    {
        let mut s = stats.borrow_mut();
        stats::record(&mut s.connect, t0.elapsed().as_micros() as u64);
        s.counts.connected += 1;
    }
    drop(permit);
    let _ = connected.send(());
    if plan.scenario == Scenario::Connect {
        // Hold the connection until the run ends.
        let _ = phase.wait_for(|p| *p == Phase::Stop).await;
        return;
    }
    if plan.scenario == Scenario::Reconnect && slot.publisher.is_none() {
        return super::reconnect::subscriber(plan, codec, stats, phase, slot, ws).await;
    }
    super::traffic::run(plan, codec, stats, phase, slot, ws).await
}
