//! Where the load runs and what it hits: the embedded `wsp serve` (a child process of this
//! binary, so its CPU is measured apart from the generator's), and the workers: in this
//! process, or `--workers N` child processes speaking JSON lines on stdin/stdout.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde::{Deserialize, Serialize};

use super::clock::{cpu_of, now_ns, process_cpu};
use super::live::{Live, WorkerResult};
use super::plan::Plan;
use super::progress::{Phase, View};
use super::stats::Counts;
use super::timeline::Sample;
use super::worker;

/// A `wsp serve` started for the run, killed when dropped.
pub struct EmbeddedServer {
    child: Child,
    /// Its `ws://127.0.0.1:PORT/ws` URL.
    pub url: String,
    /// Its process id.
    pub pid: u32,
}

impl EmbeddedServer {
    /// Starts `wsp serve` (with `extra` flags) on a free loopback port and waits for its
    /// listening line.
    pub fn start(extra: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the wsp executable")?;
        let mut child = Command::new(exe)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--max-connections",
                "1000000",
                // A load generator on loopback is one IP sending as fast as it is told: the
                // embedded server opts out of the per-IP and rate limits, explicitly.
                "--max-connections-per-ip",
                "0",
                "--max-messages-per-sec",
                "0",
            ])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("WSP_BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("spawning wsp serve")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("server stdout")?).read_line(&mut line)?;
        let url = line
            .split_whitespace()
            .last()
            .filter(|u| u.starts_with("ws://"))
            .with_context(|| format!("wsp serve did not start: {line:?}"))?
            .to_string();
        let pid = child.id();
        Ok(Self { child, url, pid })
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the workers produced.
pub struct Outcome {
    /// One result per worker.
    pub results: Vec<WorkerResult>,
    /// Server CPU while publishing, percent of one core (embedded server only).
    pub server_percent: Option<f64>,
    /// What the coordinator saw each second of publishing.
    pub samples: Vec<Sample>,
    /// Connections established over time from the first handshake: (seconds, connections).
    pub ramp: Vec<(f64, u64)>,
}

/// Lines a child worker prints.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Progress(Counts),
    Ready,
    Result(Box<WorkerResult>),
    Error(String),
}

/// The start signal sent to child workers.
#[derive(Debug, Serialize, Deserialize)]
struct Go {
    start_ns: u64,
}

/// How long after "go" publishing starts, so every worker hears it first.
const START_DELAY: Duration = Duration::from_millis(200);

/// Runs every plan (in this process when there is one, else in child processes), driving the
/// progress view, and returns their results.
pub fn run_workers(
    plans: &[Plan],
    lives: &[Arc<Live>],
    server_pid: Option<u32>,
    start_at: Option<u64>,
    view: &mut View,
) -> anyhow::Result<Outcome> {
    let (event_tx, event_rx) = mpsc::channel::<Event>();
    let mut goes: Vec<Box<dyn FnOnce(u64) -> anyhow::Result<()>>> = Vec::new();
    let mut children = Vec::new();
    if plans.len() == 1 {
        let (go_tx, go_rx) = mpsc::channel::<u64>();
        let (plan, live, tx) = (plans[0].clone(), lives[0].clone(), event_tx.clone());
        std::thread::Builder::new()
            .name("bench-worker".into())
            .spawn(move || {
                let ready_tx = tx.clone();
                let result = worker::run(
                    &plan,
                    live,
                    move || drop(ready_tx.send(Event::Ready)),
                    move || go_rx.recv().unwrap_or(0),
                );
                let _ = tx.send(Event::Done(0, Box::new(result)));
            })?;
        goes.push(Box::new(move |ns| {
            go_tx.send(ns).context("the worker thread is gone")
        }));
    } else {
        for (i, plan) in plans.iter().enumerate() {
            let (child, go) = spawn_child(i, plan, lives[i].clone(), event_tx.clone())?;
            children.push(child);
            goes.push(go);
        }
    }
    drop(event_tx);

    let started = Instant::now();
    let mut results: Vec<Option<WorkerResult>> = plans.iter().map(|_| None).collect();
    let mut ready = 0;
    let mut server_cpu0 = None;
    let mut publish_started: Option<Instant> = None;
    let total_ms = plans[0].duration_ms;
    let child_pids: Vec<String> = children.iter().map(|c| c.id().to_string()).collect();
    let mut sampler = Sampler::new(server_pid, child_pids);
    let mut ramp: Vec<(f64, u64)> = Vec::new();
    while results.iter().any(Option::is_none) {
        let phase = match publish_started {
            None => Phase::Connecting,
            Some(t) if t.elapsed() < Duration::from_millis(total_ms) => {
                Phase::Publishing(t.elapsed())
            }
            Some(_) => Phase::Draining,
        };
        let live: Vec<Counts> = lives.iter().map(|l| l.snapshot()).collect();
        view.tick(phase, &live, started.elapsed());
        let mut sum = Counts::default();
        live.iter().for_each(|c| sum.add(c));
        match (phase, publish_started) {
            (Phase::Connecting, _) => ramp.push((started.elapsed().as_secs_f64(), sum.connected)),
            (_, Some(t0)) => sampler.tick(t0, &sum, total_ms),
            _ => {}
        }
        match event_rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Event::Ready) => {
                ready += 1;
                if ready == plans.len() {
                    // Every handshake has an outcome: the ramp's last point.
                    let mut sum = Counts::default();
                    lives.iter().for_each(|l| sum.add(&l.snapshot()));
                    ramp.push((started.elapsed().as_secs_f64(), sum.connected));
                    // Every shard of a spread run starts at the same wall-clock time.
                    let soonest = now_ns() + START_DELAY.as_nanos() as u64;
                    let start_ns = start_at.map_or(soonest, |t| t.max(soonest));
                    let delay = Duration::from_nanos(start_ns - now_ns().min(start_ns));
                    server_cpu0 = server_pid.and_then(|p| cpu_of(&p.to_string()));
                    for go in goes.drain(..) {
                        go(start_ns)?;
                    }
                    publish_started = Some(Instant::now() + delay);
                }
            }
            Ok(Event::Done(i, r)) => {
                results[i] = Some(r.with_context(|| format!("worker {i} failed"))?)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("a worker ended without a result"),
        }
    }
    let server_percent = match (server_pid, server_cpu0, publish_started) {
        (Some(pid), Some(cpu0), Some(t0)) => {
            let cpu1 = cpu_of(&pid.to_string()).unwrap_or(cpu0);
            let wall = t0.elapsed().as_secs_f64().max(1e-3);
            Some((cpu1 - cpu0).as_secs_f64() * 100.0 / wall)
        }
        _ => None,
    };
    for mut c in children {
        let _ = c.wait();
    }
    Ok(Outcome {
        results: results.into_iter().flatten().collect(),
        server_percent,
        samples: sampler.samples,
        ramp,
    })
}

/// Samples connections, messages sent and CPU at the end of each second of publishing.
struct Sampler {
    server_pid: Option<String>,
    /// Worker processes (empty: the workers are threads of this process).
    children: Vec<String>,
    samples: Vec<Sample>,
    last: Option<(Instant, u64, Duration, Option<Duration>)>,
}

impl Sampler {
    fn new(server_pid: Option<u32>, children: Vec<String>) -> Self {
        Self {
            server_pid: server_pid.map(|p| p.to_string()),
            children,
            samples: Vec::new(),
            last: None,
        }
    }

    fn generator_cpu(&self) -> Duration {
        if self.children.is_empty() {
            process_cpu()
        } else {
            self.children.iter().filter_map(|p| cpu_of(p)).sum()
        }
    }

    fn tick(&mut self, t0: Instant, counts: &Counts, total_ms: u64) {
        let now = Instant::now();
        if now < t0 {
            return;
        }
        let second = (now - t0).as_secs() as usize;
        // Sample i is taken as second i + 1 begins, for every second of publishing.
        if self.last.is_some() && (second <= self.samples.len() || second as u64 > total_ms / 1000)
        {
            return;
        }
        let gen = self.generator_cpu();
        let server = self.server_pid.as_deref().and_then(cpu_of);
        if let Some((at, sent, gen0, server0)) = self.last {
            let wall = (now - at).as_secs_f64().max(1e-3);
            let pct = |a: Duration, b: Duration| a.saturating_sub(b).as_secs_f64() * 100.0 / wall;
            self.samples.push(Sample {
                connected: counts.connected,
                sent: counts.sent.saturating_sub(sent),
                generator_cpu_percent: Some(pct(gen, gen0)),
                server_cpu_percent: server.zip(server0).map(|(a, b)| pct(a, b)),
            });
        }
        self.last = Some((now, counts.sent, gen, server));
    }
}

enum Event {
    Ready,
    Done(usize, Box<anyhow::Result<WorkerResult>>),
}

type GoFn = Box<dyn FnOnce(u64) -> anyhow::Result<()>>;

fn spawn_child(
    i: usize,
    plan: &Plan,
    live: Arc<Live>,
    events: mpsc::Sender<Event>,
) -> anyhow::Result<(Child, GoFn)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .arg("bench-worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning a bench worker process")?;
    let mut stdin = child.stdin.take().context("worker stdin")?;
    writeln!(stdin, "{}", serde_json::to_string(plan)?)?;
    let stdout = child.stdout.take().context("worker stdout")?;
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Line>(&line) {
                Ok(Line::Progress(c)) => live.store(&c),
                Ok(Line::Ready) => {
                    let _ = events.send(Event::Ready);
                }
                Ok(Line::Result(r)) => {
                    let _ = events.send(Event::Done(i, Box::new(Ok(*r))));
                    return;
                }
                Ok(Line::Error(e)) => {
                    let _ = events.send(Event::Done(i, Box::new(Err(anyhow::anyhow!(e)))));
                    return;
                }
                Err(e) => {
                    let _ = events.send(Event::Done(
                        i,
                        Box::new(Err(anyhow::anyhow!("bad line from worker: {e}: {line}"))),
                    ));
                    return;
                }
            }
        }
        let _ = events.send(Event::Done(
            i,
            Box::new(Err(anyhow::anyhow!("worker {i} exited without a result"))),
        ));
    });
    let go: GoFn = Box::new(move |start_ns| {
        writeln!(stdin, "{}", serde_json::to_string(&Go { start_ns })?)?;
        stdin.flush()?;
        Ok(())
    });
    Ok((child, go))
}

/// The `bench-worker` process: a plan on stdin, JSON lines on stdout.
pub fn child_main() -> anyhow::Result<std::process::ExitCode> {
    crate::sys::raise_fd_limit();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    let plan: Plan = serde_json::from_str(&lines.next().context("no plan on stdin")??)?;
    let live = Arc::new(Live::default());
    let print = |l: &Line| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            serde_json::to_string(l).expect("line serializes")
        );
        let _ = out.flush();
    };
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let (live, done) = (live.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                print(&Line::Progress(live.snapshot()));
                std::thread::sleep(Duration::from_millis(200));
            }
        });
    }
    let result = worker::run(
        &plan,
        live,
        || print(&Line::Ready),
        || {
            lines
                .next()
                .and_then(|l| l.ok())
                .and_then(|l| serde_json::from_str::<Go>(&l).ok())
                .map(|g| g.start_ns)
                .unwrap_or_else(now_ns)
        },
    );
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    match result {
        Ok(r) => {
            print(&Line::Result(Box::new(r)));
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => {
            print(&Line::Error(format!("{e:#}")));
            Ok(std::process::ExitCode::from(2))
        }
    }
}
