//! `wsp serve`: run a pool.
//!
//! Settings come from, in order of precedence: flags, `WSP_*` environment variables, the TOML
//! file given by `--config`, and the library defaults (see `wsp_server::ServerConfig`).

mod config;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use tokio::net::TcpListener;
use wsp_server::redis::RedisCluster;
use wsp_server::tls::Tls;
use wsp_server::{App, Hub, Server};

pub use config::ServeArgs;

/// Runs `wsp serve` until SIGINT/SIGTERM.
pub fn main(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::sys::init_logging();
    let config::Resolved {
        listen,
        config: cfg,
        redis,
        tls,
    } = args.resolve()?;
    cfg.validate().context("checking the configuration")?;
    let tls = tls
        .map(|f| Tls::from_pem_files(&f.cert, &f.key))
        .transpose()
        .context("loading the TLS certificate")?;
    let fds = crate::sys::raise_fd_limit();
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}: is another server on that port? pick another with --listen"))?;
        let addr = listener.local_addr()?;
        // The one line a script waits for (port 0 resolves here).
        let mut out = std::io::stdout().lock();
        let scheme = if tls.is_some() { "wss" } else { "ws" };
        writeln!(out, "wsp serve listening on {scheme}://{addr}/ws")?;
        out.flush()?;
        drop(out);
        tracing::info!(%addr, server_id = %cfg.server_id, echo = cfg.echo, open_files = fds, tls = tls.is_some(), auth = cfg.auth.is_some(), "serving");
        if cfg.auth.is_none() && !addr.ip().is_loopback() {
            tracing::warn!(%addr, "listening beyond loopback with no authentication: anyone who reaches this port can connect as any free id and join any channel; set --auth-jwt-secret or --auth-jwt-public-key");
        }
        if cfg.api_key.is_some() {
            tracing::info!("server API on: POST /api and /api/batch with `Authorization: Bearer <--api-key>`");
        }
        if cfg.demo {
            let scheme = if tls.is_some() { "https" } else { "http" };
            tracing::info!("demo page: {scheme}://{addr}/?id=alice&channel=news");
        }
        if cfg.client_rights == wsp_server::ClientRights::All {
            tracing::warn!("--client-rights all: any client may join, bind, read, change and close any other; use on trusted networks only");
        }
        let hub = match redis {
            None => Hub::new(cfg),
            Some(r) => {
                let url = r.url.clone();
                let cluster = RedisCluster::connect(r, cfg.server_id.clone())
                    .await
                    .with_context(|| format!("joining the cluster at {url}: is redis-server running there?"))?;
                let hub = Hub::with_cluster(cfg, cluster.clone());
                cluster.start(hub.local()).await.context("registering this node in Redis")?;
                tracing::info!(%url, "cluster mode: presence and fan-out through Redis");
                hub
            }
        };
        let mut server = Server::new(hub, App::new())?;
        if let Some(tls) = tls {
            server = server.with_tls(tls.clone());
            tokio::spawn(reload_on_sighup(tls));
        }
        server.run(listener, crate::sys::shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
}

/// Reloads the certificate and key on every SIGHUP; a bad file keeps the current ones.
async fn reload_on_sighup(tls: std::sync::Arc<Tls>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: TLS reload disabled");
        return;
    };
    while hup.recv().await.is_some() {
        match tls.reload() {
            Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the current certificate")
            }
        }
    }
}

/// Starts a pool on a free loopback port in this process (for `wsp bench` with no URL).
/// Returns its `ws://` URL.
#[allow(dead_code)]
pub async fn embedded(cfg: wsp_server::ServerConfig) -> anyhow::Result<String> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = Server::new(Hub::new(cfg), App::new())?;
    tokio::spawn(server.run(listener, std::future::pending()));
    Ok(format!("ws://{addr}/ws"))
}
