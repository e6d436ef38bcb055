//! A worker: OS threads, each a single-threaded tokio runtime that owns its share of the
//! clients and keeps its own histograms and counters (no locks, no message per sample). The
//! worker connects everything, reports ready, waits for the common start time, runs the
//! open-loop schedule, drains, and returns the merged result once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use tokio::sync::watch;

use super::client::{client_url, Slot};
use super::clock::{now_ns, process_cpu};
use super::live::{Live, WorkerResult};
use super::plan::Plan;
use super::scenario::client_task;
use super::stats::{self, Counts};
use super::thread::{Phase, Shared, ThreadStats};
use super::timeline::Timeline;
use super::wire::Codec;

/// Runs `plan`: connects, calls `ready`, waits for `go()` to give the start time, publishes,
/// drains, returns the result.
pub fn run(
    plan: &Plan,
    live: Arc<Live>,
    ready: impl FnOnce(),
    go: impl FnOnce() -> u64,
) -> anyhow::Result<WorkerResult> {
    let threads = plan.threads.max(1);
    let (phase_tx, phase_rx) = watch::channel(Phase::Connecting);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let connect_started = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let plan = plan.clone();
            let live = live.clone();
            let phase = phase_rx.clone();
            let ready = ready_tx.clone();
            std::thread::Builder::new()
                .name(format!("bench-{t}"))
                .spawn(move || thread_main(plan, t, threads, live, phase, ready))
                .context("spawning a bench thread")
        })
        .collect::<anyhow::Result<_>>()?;
    drop(ready_tx);
    for _ in 0..threads {
        // A thread that died drops its sender; `recv` then errors and we carry on to join it.
        let _ = ready_rx.recv();
    }
    let connect_ms = connect_started.elapsed().as_millis() as u64;
    ready();
    let start_ns = go();
    let cpu0 = process_cpu();
    let wall0 = Instant::now();
    let _ = phase_tx.send(Phase::Go(start_ns));
    // Publishing ends at start + duration; then drain (each thread stops itself).
    let mut result = WorkerResult {
        connect_ms,
        ..Default::default()
    };
    let mut latency = stats::histogram();
    let mut rtt = stats::histogram();
    let mut connect = stats::histogram();
    let mut errors: HashMap<String, u64> = HashMap::new();
    let mut timeline = Timeline::default();
    for h in handles {
        let part = h
            .join()
            .map_err(|_| anyhow::anyhow!("a bench thread panicked"))??;
        result.counts.add(&part.counts);
        latency.add(&part.latency).ok();
        rtt.add(&part.rtt).ok();
        connect.add(&part.connect).ok();
        timeline.add(&part.timeline);
        for (p, top) in part.seen.into_iter().enumerate() {
            if top > 0 {
                let t = result.seen.entry(p as u32).or_default();
                *t = (*t).max(top);
            }
        }
        for (e, n) in part.errors {
            *errors.entry(e).or_default() += n;
        }
    }
    let _ = phase_tx.send(Phase::Stop);
    result.cpu_ms = (process_cpu().saturating_sub(cpu0)).as_millis() as u64;
    result.wall_ms = wall0.elapsed().as_millis() as u64;
    result.latency = stats::encode(&latency);
    result.rtt = stats::encode(&rtt);
    result.connect = stats::encode(&connect);
    result.timeline = timeline.encode();
    let mut errors: Vec<_> = errors.into_iter().collect();
    errors.sort_by_key(|e| std::cmp::Reverse(e.1));
    result.errors = errors;
    Ok(result)
}

struct ThreadPart {
    counts: Counts,
    latency: Histogram<u64>,
    rtt: Histogram<u64>,
    connect: Histogram<u64>,
    errors: HashMap<String, u64>,
    timeline: Timeline,
    seen: Vec<u64>,
}

fn thread_main(
    plan: Plan,
    t: usize,
    threads: usize,
    live: Arc<Live>,
    phase: watch::Receiver<Phase>,
    ready: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<ThreadPart> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, thread_run(plan, t, threads, live, phase, ready))
}

async fn thread_run(
    plan: Plan,
    t: usize,
    threads: usize,
    live: Arc<Live>,
    mut phase: watch::Receiver<Phase>,
    ready: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<ThreadPart> {
    let plan = Rc::new(plan);
    let codec = Rc::new(Codec {
        protocol: plan.protocol,
        payload: plan.payload,
        kind: plan.payload_kind,
        channel: plan.channel.clone(),
    });
    let stats: Shared = Rc::new(RefCell::new(ThreadStats {
        counts: Counts::default(),
        flushed: Counts::default(),
        latency: stats::histogram(),
        rtt: stats::histogram(),
        connect: stats::histogram(),
        errors: HashMap::new(),
        last_receipt_ns: now_ns(),
        recent: stats::histogram(),
        flushes: 0,
        timeline: Timeline::default(),
        latency_from: plan.latency_from,
        seen: Vec::new(),
    }));

    // This thread's clients: receivers i with i % threads == t, then publishers likewise.
    let mut slots = Vec::new();
    for i in (plan.first_client..plan.first_client + plan.clients).filter(|i| i % threads == t) {
        let id = plan.client_id(i);
        slots.push(Slot {
            index: i,
            publisher: None,
            url: client_url(&plan, i, &id, true),
            id,
        });
    }
    for p in
        (plan.first_publisher..plan.first_publisher + plan.publishers).filter(|p| p % threads == t)
    {
        let id = plan.publisher_id(p);
        slots.push(Slot {
            index: p,
            publisher: Some(p),
            url: client_url(&plan, p, &id, false),
            id,
        });
    }

    // Flush live counters every 100 ms.
    {
        let stats = stats.clone();
        let live = live.clone();
        tokio::task::spawn_local(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(100));
            loop {
                tick.tick().await;
                stats.borrow_mut().flush(&live);
            }
        });
    }

    // Connect at this thread's share of the ramp rate, at most 256 handshakes in flight.
    let per_thread_rate = (plan.ramp_per_sec / threads as f64).max(1.0);
    let gap = Duration::from_secs_f64(1.0 / per_thread_rate);
    let inflight = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(slots.len());
    let ramp_start = tokio::time::Instant::now();
    for (n, slot) in slots.into_iter().enumerate() {
        tokio::time::sleep_until(ramp_start + gap.mul_f64(n as f64)).await;
        let permit = inflight
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore open");
        let (plan, codec, stats, phase) =
            (plan.clone(), codec.clone(), stats.clone(), phase.clone());
        let (conn_tx, conn_rx) = tokio::sync::oneshot::channel::<()>();
        tasks.push((
            conn_rx,
            tokio::task::spawn_local(async move {
                client_task(plan, codec, stats, phase, slot, permit, conn_tx).await;
            }),
        ));
    }
    // Ready once every handshake has an outcome.
    let mut running = Vec::with_capacity(tasks.len());
    for (conn_rx, task) in tasks {
        let _ = conn_rx.await;
        running.push(task);
    }
    stats.borrow_mut().flush(&live);
    let _ = ready.send(());

    // Wait for the start time, then for the end of publishing, then drain.
    let start_ns = loop {
        if let Phase::Go(ns) = *phase.borrow_and_update() {
            break ns;
        }
        if phase.changed().await.is_err() {
            anyhow::bail!("the coordinator went away before the start");
        }
    };
    stats.borrow_mut().timeline.start_ns = start_ns;
    let end_ns = start_ns + plan.duration_ms * 1_000_000;
    tokio::time::sleep(Duration::from_nanos(end_ns.saturating_sub(now_ns()))).await;
    let drain_deadline = Instant::now() + Duration::from_millis(plan.drain_ms);
    loop {
        let quiet = now_ns().saturating_sub(stats.borrow().last_receipt_ns) > 300_000_000;
        if quiet || Instant::now() >= drain_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in &running {
        task.abort();
    }
    for task in running {
        let _ = task.await;
    }
    let mut s = stats.borrow_mut();
    s.flush(&live);
    Ok(ThreadPart {
        counts: s.counts.clone(),
        latency: s.latency.clone(),
        rtt: s.rtt.clone(),
        connect: s.connect.clone(),
        errors: std::mem::take(&mut s.errors),
        timeline: std::mem::take(&mut s.timeline),
        seen: std::mem::take(&mut s.seen),
    })
}
