//! An echo pool: every client's text comes back to it, and a line starting with `all:` goes to
//! everyone connected. The smallest embedding of `wsp-server`: a `Hub`, an `App` with one
//! callback, and the `Server` in front of them.
//!
//! Run with `cargo run -p wsp-server --example echo_pool`, then connect any WebSocket client to
//! `ws://127.0.0.1:8081/ws?format=json` (e.g. `wsp connect ws://127.0.0.1:8081/ws`), and send
//! `{"cmd":"echo","data":"hi"}` or `{"cmd":"echo","data":"all: hello everyone"}`. Ctrl-C stops
//! it: every client gets 1001. `WSP_EXAMPLE_SECONDS=N` stops it after N seconds instead.

use serde_json::{json, Value};
use wsp_server::{App, Context, Frame, Hub, Reply, Server, ServerConfig};

#[tokio::main]
async fn main() -> wsp_server::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let hub = Hub::new(ServerConfig::default());
    let app = App::new()
        .on_open(|hub, client| {
            tracing::info!(id = client.id(), online = hub.online_count(), "connected")
        })
        .handle("echo", |ctx: Context| async move {
            let text = match ctx.data() {
                Value::String(s) => s.clone(),
                Value::Null => return Reply::error(400, "send {\"cmd\":\"echo\",\"data\":…}"),
                other => other.to_string(),
            };
            if let Some(rest) = text.strip_prefix("all:") {
                let n = ctx
                    .hub()
                    .send_to_all(Frame::text(rest.trim()))
                    .await
                    .unwrap_or(0);
                return Reply::ok(json!({ "delivered": n }));
            }
            Reply::ok(json!({ "echo": text }))
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8081").await?;
    println!("echo pool on ws://{}/ws", listener.local_addr()?);
    Server::new(hub, app)?.run(listener, stop()).await
}

/// Ctrl-C, or `WSP_EXAMPLE_SECONDS` (how `scripts/test` runs the examples: briefly).
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
