//! `wsp proxy --listen ADDR --upstream ws://HOST:PORT`: a reverse proxy a client connects to
//! instead of the server, that shows every frame of every connection, decoded as `wsp
//! connect` decodes them.
//!
//! - `http`: each TCP connection is served as HTTP/1.1 (hyper); a WebSocket upgrade is carried
//!   to the upstream with its path, query, cookies, `Authorization`, `Origin` and subprotocols,
//!   and the upstream's answer (101, or a refusal such as 401/403/429 with its body) goes back
//!   to the client; every other request is forwarded as it is (hyper-util's client).
//! - `relay`: the two WebSockets of a proxied connection, each with its own permessage-deflate
//!   negotiation, and the messages between them: relayed, never rewritten.
//! - `log`: what the proxy shows: one JSON line per frame (pipe mode, `--record`).
//! - `control`: what the user tells the proxy, from stdin or the UI's composer: frames sent
//!   into one direction of one connection (`3> /json ping`, `3< {"cmd":…}`), a connection
//!   closed with a code, held messages forwarded, edited or dropped.
//! - `intercept`: which messages are held until the user decides (`--intercept EXPR`, or a
//!   whole connection).
//! - `tui` (drawing and the loop) over `view` (its state and keys).
//!
//! Decisions (docs/PROXY.md): the proxy terminates each WebSocket (it must, to show and inject
//! messages): a message keeps its type and content, its fragmentation may change; pings and
//! pongs are relayed both ways (each side's WebSocket layer also answers a ping itself); a
//! close is relayed with its code and reason. Back-pressure: a connection relays one burst
//! (what one read brought, at most 64 messages) at a time, so a side that reads slowly slows
//! the side that sends; nothing queues without bound.

mod control;
mod http;
mod intercept;
mod log;
mod relay;
mod shared;
mod tui;
mod view;

use shared::Shared;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args;

/// Flags of `wsp proxy`.
#[derive(Debug, Args)]
pub struct ProxyArgs {
    /// Address to listen on, e.g. `127.0.0.1:8081` (port 0 picks one; the address is printed on stderr).
    #[arg(long, default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The server to proxy: `ws://HOST:PORT` or `wss://HOST:PORT` (HTTP requests go to the same
    /// host as http:// or https://).
    #[arg(long)]
    upstream: String,
    /// Print one JSON line per frame on stdout (the default when stdout is not a terminal).
    #[arg(long)]
    print: bool,
    /// Print nothing on stdout (relay only; `--record` still records).
    #[arg(long, conflicts_with = "print")]
    quiet: bool,
    /// Also write every frame's JSON line to FILE (the same lines as `wsp connect --record`,
    /// with the connection id).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Send the upstream its own host in `Host` (default: the client's `Host` goes through, as
    /// a transparent reverse proxy does, so the upstream's origin check sees the page's host).
    #[arg(long)]
    rewrite_host: bool,
    /// Do not offer permessage-deflate to the upstream (the client side is still negotiated).
    #[arg(long)]
    no_upstream_compression: bool,
    /// Do not accept permessage-deflate from clients.
    #[arg(long)]
    no_client_compression: bool,
    #[command(flatten)]
    schema: crate::connect::decode::SchemaArgs,
    /// For a `wss://` upstream.
    #[command(flatten)]
    tls_client: crate::connect::tls::TlsArgs,
    /// Serve `wss://` and `https://` with this certificate chain (PEM; with --tls-key).
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Hold every data message that matches EXPR until it is forwarded, edited or dropped
    /// (`/forward K`, `/edit K INPUT`, `/drop K` on stdin or in the UI). EXPR is the frame
    /// filter's syntax: `cmd:NAME ch:CHANNEL dir:up|down type:text|binary status:N` and words.
    #[arg(long, value_name = "EXPR")]
    intercept: Option<String>,
    /// Largest message relayed, in bytes.
    #[arg(long, default_value_t = 64 << 20)]
    max_message_size: usize,
}

/// Runs `wsp proxy`.
pub fn main(args: ProxyArgs) -> anyhow::Result<ExitCode> {
    let upstream = url::Url::parse(&args.upstream)
        .with_context(|| format!("--upstream {:?}: not a URL", args.upstream))?;
    if !matches!(upstream.scheme(), "ws" | "wss") || upstream.host_str().is_none() {
        bail!(
            "--upstream {:?}: give ws://HOST:PORT or wss://HOST:PORT",
            args.upstream
        );
    }
    let decoder = args.schema.load()?;
    let tls = args.tls_client.client_config()?;
    use std::io::IsTerminal as _;
    // A terminal gets the UI; a pipe (or --print) gets the lines.
    let ui = !args.quiet && !args.print && std::io::stdout().is_terminal();
    let print = !args.quiet && !ui;
    let (ui_tx, ui_rx) = if ui {
        let (tx, rx) = tokio::sync::mpsc::channel(log::QUEUED_LINES);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let log = log::Log::new(decoder, print, args.record.as_deref(), ui_tx)?;
    let shared = Arc::new(Shared {
        upstream,
        tls,
        upstream_compression: !args.no_upstream_compression,
        client_compression: !args.no_client_compression,
        max_message: args.max_message_size,
        rewrite_host: args.rewrite_host,
        log,
        conns: control::Connections::default(),
        intercept: intercept::Intercept::new(args.intercept.as_deref()),
    });
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(c), Some(k)) => Some(wsp_server::tls::Tls::from_pem_files(c, k)?),
        _ => None,
    };
    let rt = tokio::runtime::Runtime::new()?;
    let proxy = {
        let shared = shared.clone();
        async move {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            let addr = listener.local_addr()?;
            eprintln!(
                "wsp proxy: {}://{addr} → {} (every frame shown{})",
                if tls.is_some() { "wss" } else { "ws" },
                shared.upstream,
                if print {
                    " as JSON lines on stdout"
                } else {
                    ""
                }
            );
            if !ui {
                // With the UI, the terminal is the UI's: it injects from its composer.
                tokio::spawn(read_stdin(shared.clone()));
            }
            let mut next = 0u64;
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let (tcp, peer) = match accepted {
                            Ok(x) => x,
                            Err(e) => {
                                eprintln!("wsp proxy: accept failed: {e}");
                                continue;
                            }
                        };
                        let _ = tcp.set_nodelay(true);
                        next += 1;
                        let (shared, id) = (shared.clone(), next);
                        match &tls {
                            None => {
                                tokio::spawn(http::serve(shared, tcp, peer, id));
                            }
                            Some(tls) => {
                                let tls = tls.clone();
                                tokio::spawn(async move {
                                    let limit = std::time::Duration::from_secs(10);
                                    match tokio::time::timeout(limit, tls.accept(tcp)).await {
                                        Ok(Ok(stream)) => http::serve(shared, stream, peer, id).await,
                                        Ok(Err(e)) => eprintln!("wsp proxy: TLS handshake with {peer} failed: {e}"),
                                        Err(_) => eprintln!("wsp proxy: TLS handshake with {peer} took over 10 s"),
                                    }
                                });
                            }
                        }
                    }
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
            anyhow::Ok(ExitCode::SUCCESS)
        }
    };
    match ui_rx {
        None => rt.block_on(proxy),
        Some(rx) => {
            // The proxy runs on the runtime's threads; the UI owns this one until Esc.
            let listening = rt.spawn(proxy);
            std::thread::sleep(std::time::Duration::from_millis(100));
            if listening.is_finished() {
                return rt.block_on(listening)?;
            }
            tui::run(shared, rx)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Reads stdin lines and carries them out (`control`), until stdin ends; then nobody can
/// decide a held message any more, so intercepting stops and what is held is forwarded.
async fn read_stdin(shared: Arc<Shared>) {
    use tokio::io::AsyncBufReadExt as _;
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut next_id = 0u64;
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        if let Err(e) = control::execute(&line, &shared.conns, &shared.intercept, &mut next_id) {
            eprintln!("wsp proxy: {e}");
        }
    }
    if shared.intercept.on() {
        eprintln!("wsp proxy: stdin ended: intercepting stops (nobody can forward a held message), what is held is forwarded");
    }
    shared.intercept.off();
}
