//! `wsp connect`: an interactive inspector for pools that speak SendMsg.
//!
//! Layout: `session` (the socket: connect, read/write, ping, record, reconnect), `model` (a
//! frame and its summary), `decode` (SendMsg and `cmdData` via prost-reflect), `compose`
//! (composer input to frames), `app` (state and keys), `ui` (drawing), `tui` (terminal guard
//! and the event loop), `pipe` (JSON lines when not on a terminal), `replay`.

mod app;
pub(crate) mod compose;
pub(crate) mod decode;
pub(crate) mod filter;
pub(crate) mod keymap;
pub(crate) mod model;
mod pipe;
mod recover;
pub(crate) mod render;
mod replay;
pub(crate) mod session;
pub(crate) mod tls;
pub(crate) mod tui;
mod ui;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

/// Flags of `wsp connect`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Server URL, ws:// or wss:// (e.g. ws://127.0.0.1:8080/ws).
    url: String,
    /// Extra request header `Name: value` (repeatable).
    #[arg(short = 'H', long = "header")]
    headers: Vec<String>,
    /// `Sec-WebSocket-Protocol` to offer (wsPool's `<id>_<ch1>_<ch2>` form works too).
    #[arg(long)]
    subprotocol: Option<String>,
    /// `Origin` header.
    #[arg(long)]
    origin: Option<String>,
    /// Client id (`id` query parameter).
    #[arg(long)]
    id: Option<String>,
    /// Bind this uid at connect (`uid` query parameter).
    #[arg(long)]
    uid: Option<String>,
    /// Join this channel at connect (repeatable).
    #[arg(long = "channel")]
    channels: Vec<String>,
    /// Welcome frame form: `proto` or `json` (`format` query parameter).
    #[arg(long)]
    format: Option<String>,
    #[command(flatten)]
    schema: decode::SchemaArgs,
    #[command(flatten)]
    tls: tls::TlsArgs,
    /// Reconnect with backoff (0.5 s doubling to 30 s) when the connection drops.
    #[arg(long)]
    reconnect: bool,
    /// Offer permessage-deflate; the inspector then shows, per received frame, whether it came
    /// compressed and its size on the wire.
    #[arg(long)]
    compression: bool,
    /// Ping interval for the round-trip display; 0 to never ping.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    ping_interval: Duration,
    /// Write every frame as a JSON line to this file.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Send a recorded (`--record`) or scripted session (one composer line per line).
    #[arg(long)]
    replay: Option<PathBuf>,
    /// With a `wsp proxy --record` file: replay what the client of proxy connection N sent.
    #[arg(long, value_name = "N", requires = "replay")]
    replay_conn: Option<u64>,
    /// Pipe mode even on a terminal: frames as JSON lines on stdout, stdin lines sent.
    #[arg(long)]
    print: bool,
    /// Pipe mode: send stdin lines verbatim as text frames.
    #[arg(long)]
    text: bool,
    /// Pipe mode: after stdin ends, wait this long for replies before closing.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    linger: Duration,
    /// Pipe mode: exit after this many received frames.
    #[arg(long)]
    count: Option<u64>,
}

impl ConnectArgs {
    fn full_url(&self) -> anyhow::Result<String> {
        let mut url = url::Url::parse(&self.url).with_context(|| {
            format!(
                "{:?} is not a URL; write e.g. ws://127.0.0.1:8080/ws",
                self.url
            )
        })?;
        if !matches!(url.scheme(), "ws" | "wss") {
            anyhow::bail!("{:?}: the scheme must be ws:// or wss://", self.url);
        }
        {
            let mut q = url.query_pairs_mut();
            if let Some(id) = &self.id {
                q.append_pair("id", id);
            }
            if let Some(uid) = &self.uid {
                q.append_pair("uid", uid);
            }
            for c in &self.channels {
                q.append_pair("channel", c);
            }
            if let Some(f) = &self.format {
                q.append_pair("format", f);
            }
        }
        let s = url.to_string();
        Ok(s.strip_suffix('?').unwrap_or(&s).to_string())
    }
}

/// Runs `wsp connect`.
pub fn main(args: ConnectArgs) -> anyhow::Result<ExitCode> {
    let url = args.full_url()?;
    let decoder = args.schema.load()?;
    let recorder = args
        .record
        .as_deref()
        .map(|p| session::Recorder::create(p, decoder.clone()))
        .transpose()?;
    let script = args
        .replay
        .as_deref()
        .map(|p| replay::load(p, args.replay_conn))
        .transpose()?;
    let tls = args.tls.client_config()?;
    let interactive =
        !args.print && std::io::stdout().is_terminal() && std::io::stdin().is_terminal();
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let target = session::Target {
            url: url.clone(),
            headers: args.headers.clone(),
            subprotocol: args.subprotocol.clone(),
            origin: args.origin.clone(),
            reconnect: args.reconnect,
            compression: args.compression,
            ping_every: args.ping_interval,
            tls,
        };
        let (out, events) = session::spawn(target, recorder);
        if let Some(script) = script {
            replay::spawn(script, out.clone());
        }
        if interactive {
            let mut guard = tui::TerminalGuard::new()?;
            let mut app = app::App::new(url, decoder);
            let keys = crossterm::event::EventStream::new();
            // SIGTERM/SIGINT end the loop like Ctrl-C does, so the guard restores the terminal.
            tokio::select! {
                r = tui::run(&mut guard.terminal, &mut app, keys, events, out) => r?,
                _ = crate::sys::shutdown_signal() => {}
            }
            Ok(ExitCode::SUCCESS)
        } else {
            let opts = pipe::PipeOptions {
                text: args.text,
                linger: args.linger,
                count: args.count,
            };
            let code = pipe::run(decoder, events, out, opts).await?;
            Ok(ExitCode::from(code as u8))
        }
    })
}
