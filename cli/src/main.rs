//! `wsp`: run, debug and load-test WebSocket connection pools.
//!
//! - `wsp serve`: run a pool (see `serve/`).
//! - `wsp connect`: inspect a pool in a terminal UI (see `connect/`).
//! - `wsp bench`: measure broadcast latency and throughput (see `bench/`).
//! - `wsp api`: call a pool's server API (see `api.rs`).
//! - `wsp completions`, `wsp man`: shell completions and the man page (see `shell.rs`).
//!
//! `main` stays thin: parse, dispatch, turn errors into a message and an exit code.

mod api;
mod bench;
mod connect;
mod kv;
mod proxy;
mod serve;
mod shell;
mod sys;

use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

/// Run, debug and load-test WebSocket connection pools.
#[derive(Debug, Parser)]
#[command(name = "wsp", version = sys::VERSION, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a pool: WebSocket endpoint `/ws`, health check `/healthz`.
    Serve(Box<serve::ServeArgs>),
    /// Measure broadcast latency and throughput (starts its own server without --url).
    Bench(bench::BenchCommand),
    /// Inspect a pool: a terminal UI that decodes SendMsg frames (JSON lines when piped).
    Connect(connect::ConnectArgs),
    /// Put a proxy between an application's clients and its server: every frame shown, decoded.
    Proxy(proxy::ProxyArgs),
    /// Call a pool's server API: `wsp api send_to_channel channel=news data.title=hi`.
    Api(api::ApiArgs),
    /// Print a shell completion script: `wsp completions bash > /etc/bash_completion.d/wsp`.
    Completions(shell::CompletionsArgs),
    /// Print the man page (roff): `wsp man > /usr/local/share/man/man1/wsp.1`.
    Man(shell::ManArgs),
    /// Internal: one `wsp bench --workers` process.
    #[command(hide = true)]
    BenchWorker,
}

/// jemalloc, not the system allocator: an idle pool's connections are small long-lived
/// allocations between the handshake's short-lived buffers, which glibc's heap keeps fragmented
/// (docs/ARCHITECTURE.md, "What an idle connection costs").
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's settings: a background thread gives freed pages back to the system within about
/// a second (`dirty_decay_ms`), so RSS follows a drained history or a burst's buffers down.
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: &[u8; 43] = b"background_thread:true,dirty_decay_ms:1000\0";

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::main(*args),
        Command::Bench(args) => bench::command(args),
        Command::Connect(args) => connect::main(args),
        Command::Proxy(args) => proxy::main(args),
        Command::Api(args) => api::main(args),
        Command::Completions(args) => shell::completions(args, Cli::command()),
        Command::Man(args) => shell::man(args, Cli::command()),
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
