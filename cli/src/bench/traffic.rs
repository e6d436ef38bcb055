//! The bench client of the broadcast, unicast and echo scenarios: a receiver accounts every
//! bench message it gets (loss, duplicates, order, latency); a sender publishes on the open-loop
//! schedule, each message stamped with the time it was meant to leave.

use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use super::client::{Slot, Ws};
use super::clock::now_ns;
use super::plan::{Plan, Scenario};
use super::stats::{self, Tracks};
use super::thread::{Phase, Shared};
use super::wire::{Codec, Header, Incoming, Protocol};

/// Runs one connected client until the thread aborts it at the end of the drain.
pub(super) async fn run(
    plan: Rc<Plan>,
    codec: Rc<Codec>,
    stats: Shared,
    mut phase: watch::Receiver<Phase>,
    slot: Slot,
    ws: Ws,
) {
    let sender = match plan.scenario {
        Scenario::Echo => true,
        _ => slot.publisher.is_some(),
    };
    let receiver = slot.publisher.is_none();
    if !sender {
        // A subscriber only reads: the socket is not split (no lock between two halves on
        // every read; pings are still answered by the read side).
        return read(ws, &plan, &codec, &stats, receiver, sender).await;
    }
    let (mut sink, stream) = ws.split();
    let reader = read(stream, &plan, &codec, &stats, receiver, sender);

    let writer = async {
        let start_ns = loop {
            if let Phase::Go(ns) = *phase.borrow_and_update() {
                break ns;
            }
            if phase.changed().await.is_err() {
                return;
            }
        };
        let me = match plan.scenario {
            Scenario::Echo => slot.index,
            _ => slot.publisher.unwrap_or(0),
        } as u32;
        let interval = 1e9 / plan.rate_per_sender;
        // Spread senders over one interval so they do not fire together.
        let senders = match plan.scenario {
            Scenario::Echo => plan.total_clients.max(1),
            _ => plan.total_publishers.max(1),
        };
        let phase_ns = interval * (me as f64 % senders as f64) / senders as f64;
        let end_ns = start_ns + plan.duration_ms * 1_000_000;
        let measured_from = start_ns + plan.warmup_ms * 1_000_000;
        let mut seq: u64 = 0;
        loop {
            let intended = start_ns + (phase_ns + interval * seq as f64) as u64;
            if intended >= end_ns {
                break;
            }
            let now = now_ns();
            if intended > now {
                // tokio's timer has 1 ms granularity: sleep until about 1 ms before, then yield
                // (letting this thread's other clients run) until the intended time.
                let wait = intended - now;
                if wait > 1_500_000 {
                    tokio::time::sleep(Duration::from_nanos(wait - 1_000_000)).await;
                } else {
                    tokio::task::yield_now().await;
                }
                continue;
            }
            // Send every message that is due (catching up after a late wake-up); each keeps
            // its own intended time, so lateness shows in the latency.
            let mut batch = 0u64;
            loop {
                let intended = start_ns + (phase_ns + interval * seq as f64) as u64;
                if intended > now || intended >= end_ns {
                    break;
                }
                let h = Header {
                    publisher: me,
                    seq,
                    intended_ns: intended,
                    measured: intended >= measured_from,
                };
                let msg = match plan.scenario {
                    Scenario::Broadcast | Scenario::Reconnect => codec.broadcast(h),
                    Scenario::Unicast => {
                        let target =
                            (seq as usize * 7919 + me as usize) % plan.total_clients.max(1);
                        codec.unicast(&plan.client_id(target), h)
                    }
                    _ => codec.unicast(&slot.id, h),
                };
                if let Err(e) = sink.feed(msg).await {
                    stats.borrow_mut().error(format!("send failed: {e}"));
                    return;
                }
                seq += 1;
                batch += 1;
                if h.measured {
                    stats.borrow_mut().counts.sent_measured += 1;
                }
            }
            stats.borrow_mut().counts.sent += batch;
            if let Err(e) = sink.flush().await {
                stats.borrow_mut().error(format!("send failed: {e}"));
                return;
            }
        }
        std::future::pending::<()>().await
    };

    // Runs until the thread aborts this task at the end of the drain.
    tokio::select! {
        _ = reader => {}
        _ = writer => {}
    }
}

/// Accounts every message `stream` brings until it ends or fails.
async fn read<S>(
    mut stream: S,
    plan: &Plan,
    codec: &Codec,
    stats: &Shared,
    receiver: bool,
    sender: bool,
) where
    S: futures_util::Stream<Item = Result<wsp_server::ws::Incoming, wsp_server::ws::WsError>>
        + Unpin,
{
    let mut tracks: Tracks = Tracks::default();
    while let Some(msg) = stream.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => {
                let mut s = stats.borrow_mut();
                s.counts.dropped += 1;
                s.error(format!("connection lost: {e}"));
                return;
            }
        };
        let wire = (msg.wire_len, msg.compressed);
        let msg = msg.message;
        if let Message::Close(frame) = &msg {
            let mut s = stats.borrow_mut();
            s.counts.dropped += 1;
            let why = frame
                .as_ref()
                .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                .unwrap_or_default();
            s.error(format!("server closed a connection: {why}"));
            return;
        }
        let now = now_ns();
        match codec.recognize(&msg) {
            Incoming::Message(h) if receiver || plan.scenario == Scenario::Echo => {
                let track = tracks.of(h.publisher);
                stats.borrow_mut().delivery(track, h, now, wire);
            }
            Incoming::Ack(h) if sender => {
                let mut s = stats.borrow_mut();
                s.counts.acks += 1;
                if plan.scenario == Scenario::Echo && plan.protocol == Protocol::Shootout {
                    // The shootout echo comes back as-is: it is the delivery.
                    s.delivery(tracks.of(h.publisher), h, now, wire);
                } else if h.measured {
                    stats::record(&mut s.rtt, now.saturating_sub(h.intended_ns) / 1000);
                }
            }
            _ => {}
        }
    }
    stats.borrow_mut().counts.dropped += 1;
}
