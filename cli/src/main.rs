//! `wsp`: run, debug and load-test WebSocket connection pools.
//!
//! - `wsp serve`: run a pool (see `serve/`).
//! - `wsp bench`: measure broadcast latency and throughput (see `bench/`).
//!
//! `main` stays thin: parse, dispatch, turn errors into a message and an exit code.

mod bench;
mod connect;
mod serve;
mod sys;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Run, debug and load-test WebSocket connection pools.
#[derive(Debug, Parser)]
#[command(name = "wsp", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pool: WebSocket endpoint `/ws`, health check `/healthz`.
    Serve(serve::ServeArgs),
    /// Measure broadcast latency and throughput (starts its own server without --url).
    Bench(bench::BenchArgs),
    /// Inspect a pool: a terminal UI that decodes SendMsg frames (JSON lines when piped).
    Connect(connect::ConnectArgs),
    /// Internal: one `wsp bench --workers` process.
    #[command(hide = true)]
    BenchWorker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::main(args),
        Command::Bench(args) => bench::main(args),
        Command::Connect(args) => connect::main(args),
        Command::BenchWorker => bench::worker_main(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return ExitCode::SUCCESS;
            }
            eprintln!("wsp: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
