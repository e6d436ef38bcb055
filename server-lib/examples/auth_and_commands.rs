//! A pool with JWT authentication and a command of its own: clients connect with a token
//! (`?token=JWT`, HS256 with the secret below; `sub` is the uid, `channels` what it may join),
//! and `{"cmd":"shout","data":{"channel":"news","text":"hi"}}` sends the text upper-cased to a
//! channel the token allows, through the same `Hub` the built-ins use. A middleware logs every
//! command with its caller and refuses `send_to_all` whatever the token says.
//!
//! Run with `cargo run -p wsp-server --example auth_and_commands`; it prints a token valid for
//! an hour. Then `wsp connect "ws://127.0.0.1:8082/ws?token=TOKEN" --channel news` and type
//! `/cmd shout {"channel":"news","text":"hello"}`. `WSP_EXAMPLE_SECONDS=N` stops it after N seconds.

use serde::Deserialize;
use serde_json::json;
use wsp_server::auth::Auth;
use wsp_server::{App, Context, Frame, Hub, Next, Reply, Server, ServerConfig};

const SECRET: &str = "an-example-secret-of-at-least-32-bytes";

#[derive(Deserialize)]
struct Shout {
    channel: String,
    text: String,
}

#[tokio::main]
async fn main() -> wsp_server::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let config = ServerConfig::default().auth(Some(Auth::hs256(SECRET.as_bytes())));
    let app = App::new()
        .middleware(|ctx: Context, next: Next| async move {
            tracing::info!(client = ctx.client_id(), cmd = ctx.cmd(), "command");
            if ctx.cmd() == "send_to_all" {
                return Reply::error(403, "this pool does not broadcast to everyone");
            }
            next.run(ctx).await
        })
        .handle("shout", |ctx: Context| async move {
            let Shout { channel, text } = match ctx.bind() {
                Ok(s) => s,
                Err(reply) => return reply,
            };
            if !ctx.client().grant().channels.allows(&channel) {
                return Reply::error(403, format!("channel {channel:?} is not in your token"));
            }
            let frame = Frame::json(&json!({
                "cmd": "shout",
                "data": { "from": ctx.client_id(), "text": text.to_uppercase() },
            }));
            match ctx.hub().send_to_channels(&[channel], frame).await {
                Ok(n) => Reply::ok(json!({ "delivered": n })),
                Err(e) => Reply::error(500, e.to_string()),
            }
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8082").await?;
    println!("pool with auth on ws://{}/ws", listener.local_addr()?);
    println!(
        "a token for uid alice, channels news and room:*: {}",
        token()
    );
    Server::new(Hub::new(config), app)?
        .run(listener, stop())
        .await
}

/// An HS256 token for `alice`, valid for an hour (a real application gets them from its
/// identity provider).
fn token() -> String {
    let exp = jsonwebtoken::get_current_timestamp() + 3600;
    let claims = json!({"sub": "alice", "exp": exp, "channels": ["news", "room:*"]});
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("an HS256 token encodes")
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
