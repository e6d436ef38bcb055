//! A worker: OS threads, each a single-threaded tokio runtime that owns its share of the
//! clients and keeps its own histograms and counters (no locks, no message per sample). The
//! worker connects everything, reports ready, waits for the common start time, runs the
//! open-loop schedule, drains, and returns the merged result once.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use wsp_server::ws::{handshake, WebSocket, WsConfig, WsError};

use super::plan::{Plan, Scenario};
use super::stats::{self, Counts, Seen, SeqTrack};
use super::timeline::Timeline;
use super::wire::{Codec, Header, Incoming, Protocol};

/// Live counters, updated by the threads every 100 ms, read by the progress display.
#[derive(Debug, Default)]
pub struct Live {
    /// Connections established.
    pub connected: AtomicU64,
    /// Connections that failed.
    pub failed: AtomicU64,
    /// Messages sent.
    pub sent: AtomicU64,
    /// Distinct deliveries.
    pub delivered: AtomicU64,
    /// Connections lost before the end.
    pub dropped: AtomicU64,
    /// Latency over the last second, median (µs).
    pub recent_p50_us: AtomicU64,
    /// Latency over the last second, 99th percentile (µs).
    pub recent_p99_us: AtomicU64,
}

impl Live {
    /// A snapshot as [`Counts`] (only the live fields are set).
    pub fn snapshot(&self) -> Counts {
        Counts {
            connected: self.connected.load(Ordering::Relaxed),
            connect_failed: self.failed.load(Ordering::Relaxed),
            sent: self.sent.load(Ordering::Relaxed),
            delivered: self.delivered.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            recent_p50_us: self.recent_p50_us.load(Ordering::Relaxed),
            recent_p99_us: self.recent_p99_us.load(Ordering::Relaxed),
            ..Counts::default()
        }
    }

    /// Stores a snapshot (for child-process workers).
    pub fn store(&self, c: &Counts) {
        self.connected.store(c.connected, Ordering::Relaxed);
        self.failed.store(c.connect_failed, Ordering::Relaxed);
        self.sent.store(c.sent, Ordering::Relaxed);
        self.delivered.store(c.delivered, Ordering::Relaxed);
        self.dropped.store(c.dropped, Ordering::Relaxed);
        self.recent_p50_us.store(c.recent_p50_us, Ordering::Relaxed);
        self.recent_p99_us.store(c.recent_p99_us, Ordering::Relaxed);
    }

    fn add(&self, d: &Counts) {
        self.connected.fetch_add(d.connected, Ordering::Relaxed);
        self.failed.fetch_add(d.connect_failed, Ordering::Relaxed);
        self.sent.fetch_add(d.sent, Ordering::Relaxed);
        self.delivered.fetch_add(d.delivered, Ordering::Relaxed);
        self.dropped.fetch_add(d.dropped, Ordering::Relaxed);
    }
}

/// What a worker measured.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct WorkerResult {
    /// Counters.
    pub counts: Counts,
    /// One-way latency (µs), measured window only; round trip in echo.
    pub latency: String,
    /// Publisher round trip to the ack (µs), measured window only.
    pub rtt: String,
    /// Handshake latency (µs).
    pub connect: String,
    /// Distinct errors seen, with how many times (at most 20 kinds).
    pub errors: Vec<(String, u64)>,
    /// CPU time this worker process used while publishing, ms.
    pub cpu_ms: u64,
    /// Wall time of the publishing window, ms.
    pub wall_ms: u64,
    /// When connecting took, ms (first attempt to last outcome).
    pub connect_ms: u64,
    /// Per-second latency and deliveries.
    #[serde(default)]
    pub timeline: super::timeline::Encoded,
}

/// Nanoseconds since the Unix epoch (the clock every process on the host shares).
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// CPU time (user + system) of this process.
pub fn process_cpu() -> Duration {
    cpu_of("self").unwrap_or_default()
}

/// CPU time of process `pid` from `/proc` (Linux), if readable.
pub fn cpu_of(pid: &str) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10)) // USER_HZ is 100 on Linux
}

/// Per-thread state, shared by the thread's tasks through `Rc<RefCell<…>>` (one thread: no lock).
pub(super) struct ThreadStats {
    pub(super) counts: Counts,
    flushed: Counts,
    latency: Histogram<u64>,
    rtt: Histogram<u64>,
    connect: Histogram<u64>,
    errors: HashMap<String, u64>,
    last_receipt: Instant,
    /// Latencies since the last live update (the live view's "last second").
    recent: Histogram<u64>,
    flushes: u64,
    timeline: Timeline,
}

impl ThreadStats {
    pub(super) fn error(&mut self, e: String) {
        let n = self.errors.len();
        match self.errors.get_mut(&e) {
            Some(c) => *c += 1,
            None if n < 20 => {
                self.errors.insert(e, 1);
            }
            None => {}
        }
    }

    /// Accounts one received bench message: duplicate, out of order, or a new delivery (whose
    /// latency counts when it was sent in the measured window).
    pub(super) fn delivery(
        &mut self,
        track: &mut SeqTrack,
        h: Header,
        now_ns: u64,
        wire: (usize, bool),
    ) {
        self.last_receipt = Instant::now();
        self.counts.received += 1;
        self.counts.wire_bytes += wire.0 as u64;
        self.counts.compressed += u64::from(wire.1);
        match track.see(h.seq) {
            Seen::Duplicate => self.counts.duplicated += 1,
            seen => {
                if seen == Seen::OutOfOrder {
                    self.counts.out_of_order += 1;
                }
                self.counts.delivered += 1;
                let us = now_ns.saturating_sub(h.intended_ns) / 1000;
                stats::record(&mut self.recent, us);
                self.timeline.record(h.intended_ns, now_ns, us);
                if h.measured {
                    self.counts.delivered_measured += 1;
                    stats::record(&mut self.latency, us);
                }
            }
        }
    }

    fn flush(&mut self, live: &Live) {
        let c = &self.counts;
        let f = &self.flushed;
        live.add(&Counts {
            connected: c.connected - f.connected,
            connect_failed: c.connect_failed - f.connect_failed,
            sent: c.sent - f.sent,
            delivered: c.delivered - f.delivered,
            dropped: c.dropped - f.dropped,
            ..Counts::default()
        });
        self.flushed = self.counts.clone();
        // Every second: this thread's recent percentiles for the live view.
        self.flushes += 1;
        if self.flushes % 10 == 0 && !self.recent.is_empty() {
            live.recent_p50_us
                .store(self.recent.value_at_quantile(0.5), Ordering::Relaxed);
            live.recent_p99_us
                .store(self.recent.value_at_quantile(0.99), Ordering::Relaxed);
            self.recent.reset();
        }
    }
}

pub(super) type Shared = Rc<RefCell<ThreadStats>>;
/// A bench client: the client side of wsp's own frame layer (the same code as the server's,
/// with permessage-deflate when `--compression`).
pub(super) type Ws = WebSocket<tokio::net::TcpStream>;

/// The phase signal every task watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    Connecting,
    /// Publishing starts at this time (ns since the epoch).
    Go(u64),
    Stop,
}

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

/// One client to open: its global index, role and URL.
#[derive(Clone)]
pub(super) struct Slot {
    pub(super) index: usize,
    pub(super) publisher: Option<usize>,
    pub(super) id: String,
    pub(super) url: String,
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
        last_receipt: Instant::now(),
        recent: stats::histogram(),
        flushes: 0,
        timeline: Timeline::default(),
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
        let quiet = stats.borrow().last_receipt.elapsed() > Duration::from_millis(300);
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
    })
}

pub(super) fn client_url(plan: &Plan, index: usize, id: &str, receiver: bool) -> String {
    let base = &plan.urls[index % plan.urls.len()];
    if plan.protocol == Protocol::Shootout {
        return base.clone();
    }
    let sep = if base.contains('?') { '&' } else { '?' };
    let subscribe = receiver && plan.scenario == Scenario::Broadcast;
    if subscribe {
        format!("{base}{sep}id={id}&channel={}", plan.channel)
    } else {
        format!("{base}{sep}id={id}")
    }
}

/// Source address for client `index`: 127.0.0.1 to 127.0.0.250 in turn, so each source has
/// its own ephemeral port range.
fn source_for(plan: &Plan, index: usize, target: &SocketAddr) -> Option<IpAddr> {
    (plan.spread_sources && target.ip().is_loopback() && target.is_ipv4())
        .then(|| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (index % 250) as u8)))
}

pub(super) async fn open(plan: &Plan, slot: &Slot) -> anyhow::Result<Ws> {
    let url = url::Url::parse(&slot.url).with_context(|| format!("bad URL {}", slot.url))?;
    let host = url.host_str().context("URL has no host")?;
    let port = url.port_or_known_default().context("URL has no port")?;
    let target = tokio::net::lookup_host((host, port))
        .await?
        .next()
        .with_context(|| format!("{host} did not resolve"))?;
    let sock = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(src) = source_for(plan, slot.index, &target) {
        sock.bind(SocketAddr::new(src, 0))?;
    }
    let stream = sock.connect(target).await?;
    stream.set_nodelay(true)?;
    let request = slot.url.as_str().into_client_request()?;
    let mut config = WsConfig::default();
    config.max_message = 64 << 20;
    let (ws, _) = handshake::client(stream, request, plan.compression, &config).await?;
    if plan.compression && ws.deflate().is_none() {
        anyhow::bail!("the server declined permessage-deflate (start it with --compression)");
    }
    Ok(ws)
}

/// A short, stable description of a connect error, with what to do.
pub(super) fn describe(e: &anyhow::Error) -> String {
    if let Some(io) = e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) {
        return match io.raw_os_error() {
            Some(24) => "open-file limit reached (EMFILE): raise `ulimit -n` or split the load with --workers".into(),
            Some(99) => "no free source port (EADDRNOTAVAIL): use a loopback target so sources spread over 127.0.0.0/8, or fewer clients".into(),
            Some(111) => "connection refused: is the server running at that address?".into(),
            Some(104) => "connection reset by the server during the handshake (accept backlog full?): lower --ramp".into(),
            _ => format!("i/o error: {io}"),
        };
    }
    if let Some(WsError::Refused { status, body }) =
        e.chain().find_map(|c| c.downcast_ref::<WsError>())
    {
        return match status {
            503 => "server refused: HTTP 503 (its connection limit; raise --max-connections on the server)".into(),
            s => format!("server refused the handshake: HTTP {s} {body}"),
        };
    }
    format!("{e:#}")
}

async fn client_task(
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
    let (mut sink, mut stream) = ws.split();
    let sender = match plan.scenario {
        Scenario::Echo => true,
        _ => slot.publisher.is_some(),
    };
    let receiver = slot.publisher.is_none();

    let reader = {
        let stats = stats.clone();
        let codec = codec.clone();
        let plan = plan.clone();
        async move {
            let mut tracks: HashMap<u32, SeqTrack> = HashMap::new();
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
                        let track = tracks.entry(h.publisher).or_default();
                        stats.borrow_mut().delivery(track, h, now, wire);
                    }
                    Incoming::Ack(h) if sender => {
                        let mut s = stats.borrow_mut();
                        s.counts.acks += 1;
                        if plan.scenario == Scenario::Echo && plan.protocol == Protocol::Shootout {
                            // The shootout echo comes back as-is: it is the delivery.
                            s.delivery(tracks.entry(h.publisher).or_default(), h, now, wire);
                        } else if h.measured {
                            stats::record(&mut s.rtt, now.saturating_sub(h.intended_ns) / 1000);
                        }
                    }
                    _ => {}
                }
            }
            stats.borrow_mut().counts.dropped += 1;
        }
    };

    let writer = async {
        if !sender {
            return std::future::pending::<()>().await;
        }
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
