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
use wsp_server::{App, Hub, Server};

pub use config::ServeArgs;

/// Runs `wsp serve` until SIGINT/SIGTERM.
pub fn main(args: ServeArgs) -> anyhow::Result<ExitCode> {
    crate::sys::init_logging();
    let (listen, cfg, redis) = args.resolve()?;
    cfg.validate().context("checking the configuration")?;
    let fds = crate::sys::raise_fd_limit();
    let rt = tokio::runtime::Runtime::new().context("starting the tokio runtime")?;
    rt.block_on(async move {
        let listener = TcpListener::bind(&listen)
            .await
            .with_context(|| format!("binding {listen}: is another server on that port? pick another with --listen"))?;
        let addr = listener.local_addr()?;
        // The one line a script waits for (port 0 resolves here).
        let mut out = std::io::stdout().lock();
        writeln!(out, "wsp serve listening on ws://{addr}/ws")?;
        out.flush()?;
        drop(out);
        tracing::info!(%addr, server_id = %cfg.server_id, echo = cfg.echo, open_files = fds, "serving");
        let hub = match redis {
            None => Hub::new(cfg),
            Some(r) => {
                let url = r.url.clone();
                let cluster = RedisCluster::connect(r, cfg.server_id.clone())
                    .await
                    .with_context(|| format!("joining the cluster at {url}: is redis-server running there?"))?;
                let hub = Hub::with_cluster(cfg, cluster.clone());
                cluster.start(&hub).await.context("registering this node in Redis")?;
                tracing::info!(%url, "cluster mode: presence and fan-out through Redis");
                hub
            }
        };
        let server = Server::new(hub, App::new())?;
        server.run(listener, crate::sys::shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok(ExitCode::SUCCESS)
    })
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
