//! One node of a cluster: run it twice (two terminals) against the same Redis, and clients of
//! either node reach each other: channels, uids, presence queries and the server API answer for
//! the whole pool.
//!
//! Run with `redis-server --port 6379 &` then
//! `cargo run -p wsp-server --example cluster_node -- 8083 node-a` and, in another terminal,
//! `cargo run -p wsp-server --example cluster_node -- 8084 node-b`. Connect one client to each
//! (`wsp connect ws://127.0.0.1:8083/ws --channel news`, and the same on 8084) and send to the
//! channel from either. `WSP_REDIS` picks another Redis; `WSP_EXAMPLE_SECONDS=N` stops after N
//! seconds.

use std::sync::Arc;

use wsp_server::redis::{RedisCluster, RedisConfig};
use wsp_server::{App, Hub, Server, ServerConfig};

#[tokio::main]
async fn main() -> wsp_server::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().and_then(|p| p.parse().ok()).unwrap_or(8083);
    let node = args.next().unwrap_or_else(|| format!("node-{port}"));
    let url = std::env::var("WSP_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());

    let redis = RedisCluster::connect(RedisConfig::new(url), node.clone()).await?;
    let config = ServerConfig::default().server_id(node.clone());
    let hub = Hub::with_cluster(config, redis.clone() as Arc<dyn wsp_server::Cluster>);
    redis.start(hub.local()).await?;

    let app = App::new().on_open(|hub, client| {
        tracing::info!(id = client.id(), here = hub.online_count(), "connected");
    });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("{node} on ws://{}/ws", listener.local_addr()?);
    Server::new(hub, app)?.run(listener, stop()).await
}

async fn stop() {
    match std::env::var("WSP_EXAMPLE_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(secs) => tokio::time::sleep(std::time::Duration::from_secs(secs)).await,
        None => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
