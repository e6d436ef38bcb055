//! `wsp bench`: broadcast latency and throughput, open-loop and honest enough for CI.
//!
//! Layout: `plan` (one worker's share), `worker` (threads owning clients, the schedule, the
//! measurements), `wire` (messages per protocol), `stats` (histograms, sequence tracking),
//! `report` (summary, JSON, gates), `progress` (live view), `target` (embedded server, child
//! workers).

mod args;
mod ci;
mod client;
mod clock;
mod compare;
mod html;
mod live;
mod merge;
mod plan;
mod progress;
mod reconnect;
mod report;
mod scenario;
mod stats;
mod target;
mod thread;
mod timeline;
mod traffic;
mod wire;
mod worker;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;

pub use args::BenchArgs;

use live::Live;
pub use plan::Plan;
use plan::Scenario;
use report::Report;
use wire::Protocol;

/// `wsp bench [FLAGS]` runs a benchmark; `wsp bench compare A B` compares two reports.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchCommand {
    #[command(subcommand)]
    sub: Option<BenchSub>,
    #[command(flatten)]
    run: BenchArgs,
}

#[derive(Debug, clap::Subcommand)]
enum BenchSub {
    /// Compare two `--json` reports side by side; exit 1 when B regressed.
    Compare(compare::CompareArgs),
    /// Merge the `--json` reports of the shards of a spread run (`--shard I/N`) into one, and
    /// apply the gates to the whole; exit 1 when one fails.
    Merge(merge::MergeArgs),
}

/// Runs `wsp bench` or `wsp bench compare`.
pub fn command(c: BenchCommand) -> anyhow::Result<ExitCode> {
    match c.sub {
        Some(BenchSub::Compare(args)) => compare::main(args),
        Some(BenchSub::Merge(args)) => merge::main(args),
        None => main(c.run),
    }
}

/// Runs `wsp bench`; exit code 0 when every gate passed, 1 when one failed.
pub fn main(args: BenchArgs) -> anyhow::Result<ExitCode> {
    crate::sys::init_logging();
    let duration = match args.messages {
        Some(n) => Duration::from_secs_f64(n as f64 / args.rate),
        None => args.duration,
    };
    validate(&args, duration)?;
    let fds = crate::sys::raise_fd_limit();
    let per_worker = (args.clients + args.publishers).div_ceil(args.workers) as u64;
    if per_worker + 64 > fds {
        bail!(
            "each worker needs about {} open files but the limit is {fds}: raise the hard limit (`ulimit -Hn`), or use more --workers",
            per_worker + 64
        );
    }
    let baseline = args.baseline.as_deref().map(report::load).transpose()?;

    let embedded = if args.url.is_empty() {
        if args.protocol == Protocol::Shootout {
            bail!("--protocol shootout needs --url: start a peer (e.g. shared/peers/run-peer.sh go 9102) and pass --url ws://127.0.0.1:9102/");
        }
        let mut extra = args.serve_args.clone();
        if args.compression {
            extra.push("--compression".into());
        }
        Some(target::EmbeddedServer::start(&extra).context("starting the embedded wsp serve")?)
    } else {
        None
    };
    let mut urls = match &embedded {
        Some(s) => vec![s.url.clone()],
        None => args.url.clone(),
    };
    if let Some(token) = &args.token {
        for u in &mut urls {
            let sep = if u.contains('?') { '&' } else { '?' };
            u.push_str(&format!("{sep}token={}", urlencode(token)));
        }
    }

    let plans = split(&args, &urls, duration);
    let shard_publishers = match args.shard {
        Some(sh) => args::share(args.publishers, sh.index, sh.count),
        None => (0, args.publishers),
    };
    // What is shown and reported: the URLs without the token.
    let shown: Vec<String> = match &embedded {
        Some(s) => vec![s.url.clone()],
        None => args.url.clone(),
    };
    let lives: Vec<Arc<Live>> = plans.iter().map(|_| Arc::new(Live::default())).collect();
    let mut view = progress::View::new(!args.no_tui, &args, &shown, duration);
    let server_pid = embedded.as_ref().map(|s| s.pid).or(args.server_pid);
    let start_at = args.start_at.map(|s| (s * 1e9) as u64);
    let outcome = target::run_workers(&plans, &lives, server_pid, start_at, &mut view);
    view.finish();
    let outcome = outcome?;

    let mut latency = stats::histogram();
    let mut rtt = stats::histogram();
    let mut connect = stats::histogram();
    let mut counts = stats::Counts::default();
    let mut errors: Vec<(String, u64)> = Vec::new();
    let (mut cpu_ms, mut wall_ms, mut connect_ms) = (0, 0, 0);
    let mut timeline = timeline::Timeline::default();
    let mut seen: std::collections::BTreeMap<u32, u64> = Default::default();
    for r in &outcome.results {
        for (p, top) in &r.seen {
            let t = seen.entry(*p).or_default();
            *t = (*t).max(*top);
        }
        timeline.add(&timeline::Timeline::decode(&r.timeline)?);
        counts.add(&r.counts);
        latency.add(stats::decode(&r.latency)?).ok();
        rtt.add(stats::decode(&r.rtt)?).ok();
        connect.add(stats::decode(&r.connect)?).ok();
        cpu_ms += r.cpu_ms;
        wall_ms = wall_ms.max(r.wall_ms);
        connect_ms = connect_ms.max(r.connect_ms);
        for (e, n) in &r.errors {
            match errors.iter_mut().find(|(k, _)| k == e) {
                Some((_, m)) => *m += n,
                None => errors.push((e.clone(), *n)),
            }
        }
    }
    // Receivers established = connections minus publishers (in echo every client receives).
    let receivers = match args.scenario {
        Scenario::Echo | Scenario::Connect => counts.connected,
        _ => counts.connected.saturating_sub(shard_publishers.1 as u64),
    };
    // A shard's subscribers get every shard's messages: what the others' publishers sent, as
    // far as this shard saw (the merge knows it exactly).
    let own = shard_publishers.0 as u32..(shard_publishers.0 + shard_publishers.1) as u32;
    let foreign_sent: u64 = seen
        .iter()
        .filter(|(p, _)| !own.contains(p))
        .map(|(_, top)| top)
        .sum();
    let encoded = timeline.encode();
    let mut report = Report::build(report::Inputs {
        scenario: args.scenario,
        target: report::Target {
            urls: shown.clone(),
            embedded: embedded.is_some(),
            protocol: args.protocol,
        },
        config: report::Config {
            clients: args.shard.map_or(args.clients, |sh| {
                args::share(args.clients, sh.index, sh.count).1
            }),
            publishers: shard_publishers.1,
            rate: args.rate * shard_publishers.1 as f64 / args.publishers.max(1) as f64,
            payload: args.payload,
            payload_kind: args.payload_kind,
            compression: args.compression,
            duration_s: duration.as_secs_f64(),
            warmup_s: args.warmup.as_secs_f64(),
            workers: args.workers,
            ramp: args.ramp,
        },
        counts,
        latency,
        rtt,
        connect,
        connect_ms,
        cpu_ms,
        wall_ms,
        server_percent: outcome.server_percent,
        errors,
        receivers,
        command_line: command_line(),
        timeline: timeline.rows(&outcome.samples),
        timeline_latency: encoded.latency,
        foreign_sent,
        shard: args.shard.map(|sh| report::ShardInfo {
            index: sh.index,
            count: sh.count,
            receivers,
            first_publisher: shard_publishers.0,
            publishers: shard_publishers.1,
            foreign_sent,
        }),
        ramp: outcome
            .ramp
            .iter()
            .map(|&(t, connected)| report::RampPoint { t, connected })
            .collect(),
    });
    gates(&mut report, &args, baseline.as_ref());
    drop(embedded);

    eprint!("{}", report.summary());
    if let Some(hint) = report.limit_hint() {
        eprintln!("  hint          {hint}");
    }
    let checks = ci::checks(&report, &args.threshold, args.allow_loss);
    ci::Outputs {
        json: args.json.as_deref(),
        html: args.html.as_deref(),
        junit: args.junit.as_deref(),
        summary_md: args.summary_md.as_deref(),
    }
    .write(&report, &checks)?;
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Percent-encodes a query value.
fn urlencode(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// The command line as typed (arguments quoted when they need it), with secrets (the token,
/// a JWT secret or API key passed to the embedded server) masked.
fn command_line() -> String {
    shell_words(std::env::args())
}

fn shell_words(args: impl Iterator<Item = String>) -> String {
    const SECRET: [&str; 3] = ["--token", "--auth-jwt-secret", "--api-key"];
    let mut mask_next = false;
    args.map(|a| {
        if std::mem::take(&mut mask_next) {
            return "…".to_string();
        }
        if SECRET.contains(&a.as_str()) {
            mask_next = true;
            return a;
        }
        let a = match SECRET
            .iter()
            .find_map(|s| a.find(&format!("{s}=")).map(|i| i + s.len() + 1))
        {
            Some(at) => format!("{}…", &a[..at]),
            None => a,
        };
        if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "'\"$`\\|&;<>()*?".contains(c))
        {
            format!("'{}'", a.replace('\'', "'\\''"))
        } else {
            a
        }
    })
    .collect::<Vec<_>>()
    .join(" ")
}

fn validate(args: &BenchArgs, duration: Duration) -> anyhow::Result<()> {
    if args.clients == 0 {
        bail!("--clients must be at least 1");
    }
    if args.rate <= 0.0 || !args.rate.is_finite() {
        bail!("--rate must be a positive number of messages per second");
    }
    if args.payload < wire::HEADER_LEN {
        bail!(
            "--payload must be at least {} bytes (the bench header)",
            wire::HEADER_LEN
        );
    }
    if args.workers == 0 || args.ramp <= 0.0 {
        bail!("--workers and --ramp must be above zero");
    }
    if duration <= args.warmup {
        bail!(
            "the run ({duration:?}) must be longer than the warm-up ({:?})",
            args.warmup
        );
    }
    if args.scenario == Scenario::Reconnect {
        if args.protocol != Protocol::Wsp {
            bail!("--scenario reconnect needs the wsp protocol (it rejoins with `since`)");
        }
        if args.reconnect_every < Duration::from_millis(100) {
            bail!("--reconnect-every must be at least 100ms");
        }
    }
    if matches!(
        args.scenario,
        Scenario::Broadcast | Scenario::Unicast | Scenario::Reconnect
    ) && args.publishers == 0
    {
        bail!("--publishers must be at least 1 for {:?}", args.scenario);
    }
    if let Some(sh) = args.shard {
        if args.url.is_empty() {
            bail!("--shard {sh} needs --url: every shard must load the same pool (start it once, then point each shard at it)");
        }
        if matches!(args.scenario, Scenario::Unicast) {
            bail!("--shard splits broadcast, reconnect, echo and connect runs; a unicast targets clients by a per-run id that another shard cannot know");
        }
        if args.publishers < sh.count
            && args.scenario != Scenario::Echo
            && args.scenario != Scenario::Connect
        {
            bail!("--shard {sh}: each shard needs a publisher of its own (latency is measured on one clock): give --publishers at least {}", sh.count);
        }
        if args.clients < sh.count {
            bail!("--shard {sh}: --clients must be at least {}", sh.count);
        }
    }
    if args.scenario == Scenario::Unicast && args.protocol == Protocol::Shootout {
        bail!("the shootout protocol has no unicast; use --scenario broadcast or echo");
    }
    Ok(())
}

fn gates(report: &mut Report, args: &BenchArgs, baseline: Option<&Report>) {
    if report.connections.failed > 0 {
        report.fail(format!("{} connections failed", report.connections.failed));
    }
    if report.scenario != Scenario::Connect && !args.allow_loss {
        if report.lost > 0 {
            report.fail(format!(
                "{} of {} deliveries lost (use --allow-loss to accept)",
                report.lost, report.expected
            ));
        }
        if report.duplicated > 0 {
            report.fail(format!("{} deliveries duplicated", report.duplicated));
        }
        if report.out_of_order > 0 {
            report.fail(format!("{} deliveries out of order", report.out_of_order));
        }
    }
    // The loss checks above, and each threshold (the same checks `--junit` lists).
    for c in ci::checks(report, &args.threshold, args.allow_loss) {
        if !c.passed && c.name.starts_with("threshold") {
            report.fail(c.message);
        }
    }
    if let Some(base) = baseline {
        report.compare(base, args.max_regression, args.regression_floor_ms);
    }
}

/// Splits the run over the workers: clients and publishers in contiguous ranges.
fn split(args: &BenchArgs, urls: &[String], duration: Duration) -> Vec<Plan> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let senders = match args.scenario {
        Scenario::Echo => args.clients,
        Scenario::Connect => 1,
        _ => args.publishers,
    };
    let publishers = match args.scenario {
        Scenario::Broadcast | Scenario::Unicast | Scenario::Reconnect => args.publishers,
        _ => 0,
    };
    let run_id = format!("b{:x}", clock::now_ns() % 0xffff_ffff);
    // This process's part: the whole run, or its shard's share of clients and publishers.
    let ((client0, my_clients), (publisher0, my_publishers)) = match args.shard {
        Some(sh) => (
            args::share(args.clients, sh.index, sh.count),
            args::share(publishers, sh.index, sh.count),
        ),
        None => ((0, args.clients), (0, publishers)),
    };
    let latency_from = args
        .shard
        .map(|_| (publisher0 as u32, my_publishers as u32));
    (0..args.workers)
        .map(|w| {
            let (first_client, clients) = args::share(my_clients, w, args.workers);
            let (first_publisher, pubs) = args::share(my_publishers, w, args.workers);
            let (first_client, first_publisher) =
                (client0 + first_client, publisher0 + first_publisher);
            Plan {
                urls: urls.to_vec(),
                protocol: args.protocol,
                scenario: args.scenario,
                first_client,
                clients,
                first_publisher,
                publishers: pubs,
                total_clients: args.clients,
                total_publishers: publishers,
                rate_per_sender: args.rate / senders.max(1) as f64,
                payload: args.payload,
                payload_kind: args.payload_kind,
                compression: args.compression,
                duration_ms: duration.as_millis() as u64,
                warmup_ms: args.warmup.as_millis() as u64,
                drain_ms: args.drain.as_millis() as u64,
                ramp_per_sec: args.ramp / args.workers as f64,
                threads,
                run_id: run_id.clone(),
                channel: "bench".into(),
                spread_sources: !args.no_spread_sources,
                reconnect_every_ms: args.reconnect_every.as_millis() as u64,
                latency_from,
            }
        })
        .collect()
}

/// `wsp bench-worker`: runs one plan read from stdin (used by `--workers`).
pub fn worker_main() -> anyhow::Result<ExitCode> {
    target::child_main()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_quoted_and_secrets_are_masked() {
        let words = [
            "wsp",
            "bench",
            "--token",
            "eyJ.secret",
            "--serve-arg=--auth-jwt-secret=abc",
            "p99<5ms",
        ];
        assert_eq!(
            super::shell_words(words.iter().map(|s| s.to_string())),
            "wsp bench --token … --serve-arg=--auth-jwt-secret=… 'p99<5ms'"
        );
    }
}
