//! `--scenario reconnect`: subscribers that lose their connection at random while the
//! publishers broadcast, and come back asking for what they missed.
//!
//! Each subscriber joins the channel itself (`join`, SendMsg form), remembers the epoch and
//! offset of the last message it received (the push's `serverId`), and about every
//! `--reconnect-every` (uniformly 0.5× to 1.5×, so drops do not line up) drops its TCP
//! connection without a close handshake, opens a new one and joins again with `since`. Its
//! sequence tracking lives across connections, so every message missed for good counts as
//! lost and every one received twice as duplicated; the join replies count how many reconnects
//! recovered everything. Drops stop when publishing ends, so the drain finds everyone online.

use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;
use wsp_proto::{Message as _, SendMsg};
use wsp_server::publication::{positions_of, Since};

use super::client::{client_url, describe, open, Slot, Ws};
use super::clock::now_ns;
use super::plan::Plan;
use super::stats::Tracks;
use super::thread::{Phase, Shared};
use super::wire::{Codec, Incoming};

/// `localId` of a subscriber's join.
const JOIN_ID: &str = "bench-join";

/// A small xorshift generator for the drop jitter (deterministic per subscriber).
struct Jitter(u64);

impl Jitter {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How one connection of a subscriber ended.
enum End {
    /// Our drop, on schedule.
    Dropped,
    /// The server closed it, or it failed.
    Lost,
    /// The run is over.
    Stop,
}

/// Runs one reconnecting subscriber, from its first (already open) connection until the end.
pub(super) async fn subscriber(
    plan: Rc<Plan>,
    codec: Rc<Codec>,
    stats: Shared,
    mut phase: watch::Receiver<Phase>,
    slot: Slot,
    first: Ws,
) {
    let mut tracks: Tracks = Tracks::default();
    let mut seen: Option<Since> = None;
    let mut jitter =
        Jitter(0x9E37_79B9_7F4A_7C15 ^ (slot.index as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
    let mut ws = Some(first);
    let mut attempt = 0u32;
    let mut reconnecting = false;
    loop {
        let conn = match ws.take() {
            Some(w) => w,
            None => match reopen(&plan, &slot, attempt, &stats, &mut phase).await {
                Some(w) => w,
                None => return,
            },
        };
        let end = connection(
            conn,
            Ctx {
                plan: &plan,
                codec: &codec,
                stats: &stats,
                tracks: &mut tracks,
                seen: &mut seen,
                jitter: &mut jitter,
                reconnecting,
            },
            &mut phase,
        )
        .await;
        match end {
            End::Stop => return,
            End::Dropped | End::Lost => {
                stats.borrow_mut().counts.reconnects += 1;
                attempt += 1;
                reconnecting = true;
            }
        }
    }
}

/// Opens the next connection (a new client id each time: the old one may not be gone yet on
/// the server), retrying every 100 ms until the run stops.
async fn reopen(
    plan: &Plan,
    slot: &Slot,
    attempt: u32,
    stats: &Shared,
    phase: &mut watch::Receiver<Phase>,
) -> Option<Ws> {
    let id = format!("{}.{attempt}", slot.id);
    let again = Slot {
        url: client_url(plan, slot.index, &id, false),
        id,
        ..slot.clone()
    };
    loop {
        if *phase.borrow() == Phase::Stop {
            return None;
        }
        match open(plan, &again).await {
            Ok(w) => return Some(w),
            Err(e) => {
                stats
                    .borrow_mut()
                    .error(format!("reconnect failed: {}", describe(&e)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

struct Ctx<'a> {
    plan: &'a Plan,
    codec: &'a Codec,
    stats: &'a Shared,
    tracks: &'a mut Tracks,
    seen: &'a mut Option<Since>,
    jitter: &'a mut Jitter,
    reconnecting: bool,
}

/// One connection: join (with `since` when known), receive until the scheduled drop.
async fn connection(ws: Ws, c: Ctx<'_>, phase: &mut watch::Receiver<Phase>) -> End {
    let (mut sink, mut stream) = ws.split();
    let mut data = json!({ "channel": c.plan.channel });
    if let Some(s) = c.seen.as_ref() {
        data["since"] = json!({ "epoch": s.epoch, "offset": s.offset });
    }
    let join = SendMsg {
        cmd: 1001,
        local_id: JOIN_ID.into(),
        msg: data.to_string(),
        ..Default::default()
    };
    if sink
        .send(Message::binary(join.encode_to_vec()))
        .await
        .is_err()
    {
        return End::Lost;
    }
    let every = Duration::from_millis(c.plan.reconnect_every_ms.max(1));
    let mut drop_at: Option<tokio::time::Instant> = None;
    loop {
        // Drops are scheduled only while publishing.
        if drop_at.is_none() {
            let go = match *phase.borrow() {
                Phase::Go(start_ns) => Some(start_ns),
                _ => None,
            };
            if let Some(start_ns) = go {
                let end_ns = start_ns + c.plan.duration_ms * 1_000_000;
                let wait = every.mul_f64(0.5 + c.jitter.next_f64());
                let now = now_ns();
                let from = start_ns.max(now);
                if from + (wait.as_nanos() as u64) < end_ns {
                    let delay = Duration::from_nanos(from - now) + wait;
                    drop_at = Some(tokio::time::Instant::now() + delay);
                }
            }
        }
        let drop_timer = async {
            match drop_at {
                Some(t) => tokio::time::sleep_until(t).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = drop_timer => return End::Dropped, // dropping `stream` and `sink`: no close frame
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() == Phase::Stop {
                    return End::Stop;
                }
            }
            m = stream.next() => {
                let m = match m {
                    Some(Ok(m)) => m,
                    Some(Err(e)) => {
                        c.stats.borrow_mut().error(format!("connection lost: {e}"));
                        return End::Lost;
                    }
                    None => return End::Lost,
                };
                let wire = (m.wire_len, m.compressed);
                let m = m.message;
                if let Message::Close(f) = &m {
                    let why = f.as_ref().map(|f| format!("{} {}", u16::from(f.code), f.reason)).unwrap_or_default();
                    c.stats.borrow_mut().error(format!("server closed a connection: {why}"));
                    return End::Lost;
                }
                let Message::Binary(b) = &m else { continue };
                let Ok(msg) = SendMsg::decode(b.as_ref()) else { continue };
                // Replies only from the server: another client's frame carries its id.
                if msg.cmd == 1001 && msg.local_id == JOIN_ID && msg.from_client_id.is_empty() {
                    joined(&msg, c.seen, c.stats, c.reconnecting);
                    continue;
                }
                if let Incoming::Message(h) = c.codec.recognize(&m) {
                    let track = c.tracks.of(h.publisher);
                    c.stats.borrow_mut().delivery(track, h, now_ns(), wire);
                    // Positions of channel pushes only (a unicast carries its sender's).
                    let pushed = msg.to_client_id.is_empty();
                    for p in positions_of(&msg).into_iter().flatten().filter(|_| pushed) {
                        let newer = match c.seen.as_ref() {
                            Some(s) => s.epoch != p.epoch || p.offset > s.offset,
                            None => true,
                        };
                        if newer {
                            *c.seen = Some(Since { epoch: p.epoch, offset: p.offset });
                        }
                    }
                }
            }
        }
    }
}

/// The reply to a join: counts a reconnect's recovery and sets where this subscriber is.
fn joined(reply: &SendMsg, seen: &mut Option<Since>, stats: &Shared, reconnecting: bool) {
    let d: Value = serde_json::from_str(&reply.msg).unwrap_or(Value::Null);
    let recovered = d["recovered"].as_bool();
    if reconnecting {
        let mut s = stats.borrow_mut();
        if recovered == Some(true) {
            s.counts.recovered += 1;
        } else {
            s.counts.not_recovered += 1;
        }
    }
    if reply.status != 0 {
        stats
            .borrow_mut()
            .error(format!("join refused: {} {}", reply.status, reply.desc));
        return;
    }
    // After a full recovery the missed messages follow and move the position on; otherwise
    // this subscriber starts from the newest offset.
    if recovered != Some(true) {
        if let (Some(epoch), Some(offset)) = (d["epoch"].as_str(), d["offset"].as_u64()) {
            *seen = Some(Since {
                epoch: epoch.to_string(),
                offset,
            });
        }
    }
}
