//! One connection's life: register, welcome, then a single task that reads frames, writes the
//! outbound queue in batches, pings, and closes with the right code.
//!
//! A single task (not a reader and a writer) keeps an idle connection small: one future, one
//! socket, no split lock. While a batch is being written the task does not read; every write
//! is bounded by `write_timeout`, so a peer that stops reading is dropped, never waited on
//! forever, and its full queue never slows anyone else.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite;
use wsp_proto::{Message as _, SendMsg};

use crate::app::{App, Context, Session};
use crate::client::ClientHandle;
use crate::close::{code, Close};
use crate::frame::Frame;
use crate::hub::Hub;
use crate::outbox::Batch;
use crate::protocol::{
    now_ms, status, Command, Format, JsonReply, JsonRequest, Reply, CMD_ERROR, CMD_WELCOME,
};

/// What the handshake asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Join {
    pub uid: Option<String>,
    pub channels: Vec<String>,
    pub format: Option<Format>,
}

/// Why the loop ended.
enum End {
    /// We close with this code (and wait for the peer's reply).
    Close(Close),
    /// The peer sent a close frame (tungstenite queued our reply).
    PeerClosed,
    /// The socket is gone (reset, EOF, write failure): nothing more to send.
    Gone,
}

/// Runs a registered connection until it ends, then removes it from the pool.
pub(crate) async fn run(
    mut ws: WebSocket,
    hub: Hub,
    app: Arc<App>,
    client: ClientHandle,
    join: Join,
) {
    let cfg = hub.config();
    let id = client.id().to_string();
    let session = Session::default();
    if !cfg.echo {
        // Boxed, like every rarely-taken await below: a task is as big as its largest
        // state, and an idle connection should pay only for the small waiting state.
        Box::pin(open(&hub, &app, &client, &join)).await;
    }
    tracing::debug!(client_id = %id, "connected");

    let mut batch = VecDeque::new();
    let mut last_seen = Instant::now();
    // One timer for the connection's life, reset after each ping (not a new one per frame).
    let ping = tokio::time::sleep(cfg.ping_interval);
    tokio::pin!(ping);
    let end = loop {
        tokio::select! {
            b = client.outbox().next(&mut batch) => match b {
                Batch::Close(close) => break End::Close(close),
                Batch::Frames => {
                    if let Err(e) = Box::pin(write_batch(&mut ws, &mut batch, cfg.write_timeout)).await {
                        app.errored(&hub, &id, &e);
                        break End::Gone;
                    }
                }
            },
            msg = ws.next() => {
                let msg = match msg {
                    None => break End::Gone,
                    Some(Err(e)) => match classify(e, cfg.max_message_size) {
                        Some(close) => {
                            app.errored(&hub, &id, &close.reason);
                            break End::Close(close);
                        }
                        None => break End::Gone,
                    },
                    Some(Ok(m)) => m,
                };
                last_seen = Instant::now();
                match msg {
                    Message::Close(_) => break End::PeerClosed,
                    Message::Ping(_) | Message::Pong(_) => {}
                    Message::Text(t) if cfg.echo => { client.send(Frame::Text(t)); }
                    Message::Binary(b) if cfg.echo => { client.send(Frame::Binary(b)); }
                    // An empty data frame is a heartbeat (wsrv).
                    Message::Text(t) if t.as_str().is_empty() => {}
                    Message::Binary(b) if b.is_empty() => {}
                    Message::Text(t) => Box::pin(on_text(&hub, &app, &client, &session, t.as_str())).await,
                    Message::Binary(b) => Box::pin(on_binary(&hub, &app, &client, &session, &b)).await,
                }
            },
            () = &mut ping => {
                if last_seen.elapsed() > cfg.heartbeat_timeout {
                    break End::Close(Close::heartbeat_timeout(cfg.heartbeat_timeout.as_secs()));
                }
                ping.as_mut().reset(Instant::now() + cfg.ping_interval);
                let sent = Box::pin(timeout(cfg.write_timeout, ws.send(Message::Ping(bytes::Bytes::new())))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break End::Gone;
                }
            }
        }
    };

    Box::pin(finish(ws, &hub, &app, &id, end)).await;
}

/// Applies the handshake's uid and channels, queues the welcome frames, calls `on_open`.
async fn open(hub: &Hub, app: &App, client: &ClientHandle, join: &Join) {
    let id = client.id();
    if let Some(uid) = &join.uid {
        let _ = hub.bind_uid(id, uid).await;
    }
    for ch in &join.channels {
        let _ = hub.join(id, ch).await;
    }
    client.send(welcome(hub, id, join));
    if let Some(text) = &hub.config().welcome_message {
        client.send(Frame::text(text.clone()));
    }
    app.opened(hub, client);
}

/// Leaves the pool, completes the close handshake, calls `on_close`.
async fn finish(mut ws: WebSocket, hub: &Hub, app: &App, id: &str, end: End) {
    let cfg = hub.config();
    // Leave the pool first: nothing more is queued for a closing connection.
    hub.unregister(id).await;
    match end {
        End::Close(close) => {
            tracing::debug!(client_id = %id, code = close.code, reason = %close.reason, "closing");
            close_handshake(&mut ws, close, cfg.close_timeout).await;
        }
        End::PeerClosed => {
            // Sends the close reply tungstenite queued, then ends the stream.
            let _ = timeout(cfg.close_timeout, ws.close()).await;
        }
        End::Gone => {}
    }
    if !cfg.echo {
        app.closed(hub, id);
    }
    tracing::debug!(client_id = %id, "disconnected");
}

async fn write_batch(
    ws: &mut WebSocket,
    batch: &mut VecDeque<Frame>,
    limit: Duration,
) -> Result<(), String> {
    let result = {
        let write = async {
            while let Some(frame) = batch.pop_front() {
                ws.feed(frame.into()).await?;
            }
            ws.flush().await
        };
        let mut write = std::pin::pin!(write);
        // Almost every batch fits in the socket buffer at once: try without arming a timer (a
        // timer per batch per client is measurable in a broadcast), and bound the wait only
        // when the socket is full.
        match futures_util::FutureExt::now_or_never(&mut write) {
            Some(r) => Ok(r),
            None => timeout(limit, write).await,
        }
    };
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            batch.clear();
            Err(format!("write failed: {e}"))
        }
        Err(_) => {
            batch.clear();
            Err(format!(
                "write timed out after {limit:?}: the peer stopped reading"
            ))
        }
    }
}

/// Sends our close frame, then waits (bounded) for the peer's.
async fn close_handshake(ws: &mut WebSocket, close: Close, limit: Duration) {
    let frame = Message::Close(Some(CloseFrame {
        code: close.code,
        reason: close.reason.into(),
    }));
    let _ = timeout(limit, async {
        if ws.send(frame).await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.next().await {
            if matches!(msg, Message::Close(_)) {
                break;
            }
        }
    })
    .await;
}

/// The close code for a read error, or `None` when the socket is simply gone.
fn classify(e: axum::Error, max: usize) -> Option<Close> {
    let inner = e.into_inner();
    let err = inner.downcast_ref::<tungstenite::Error>()?;
    match err {
        tungstenite::Error::Capacity(_) => Some(Close::new(
            code::TOO_BIG,
            format!("message too big: the limit is {max} bytes"),
        )),
        tungstenite::Error::Utf8(_) => Some(Close::new(
            code::INVALID_PAYLOAD,
            "text frame is not valid UTF-8",
        )),
        tungstenite::Error::Protocol(p) => match p {
            tungstenite::error::ProtocolError::ResetWithoutClosingHandshake => None,
            _ => Some(Close::new(code::PROTOCOL_ERROR, p.to_string())),
        },
        _ => None,
    }
}

fn welcome(hub: &Hub, id: &str, join: &Join) -> Frame {
    let cfg = hub.config();
    let data = json!({
        "client_id": id,
        "uid": join.uid,
        "channels": join.channels,
        "server_id": cfg.server_id,
        "heartbeat_timeout_ms": cfg.heartbeat_timeout.as_millis() as u64,
        "max_message_size": cfg.max_message_size,
    });
    match join.format.unwrap_or(Format::Proto) {
        Format::Json => Frame::json(&JsonReply {
            cmd: "welcome".into(),
            seqno: Value::String(String::new()),
            status: status::OK,
            msg: "ok".into(),
            data,
        }),
        Format::Proto => Frame::sendmsg(&SendMsg {
            cmd: CMD_WELCOME,
            timestamp: now_ms(),
            to_client_id: id.into(),
            server_id: cfg.server_id.clone(),
            channel: join.channels.clone(),
            msg: data.to_string(),
            desc: "welcome".into(),
            ..Default::default()
        }),
    }
}

async fn on_text(hub: &Hub, app: &Arc<App>, client: &ClientHandle, session: &Session, text: &str) {
    match serde_json::from_str::<JsonRequest>(text) {
        Ok(req) => dispatch(hub, app, client, session, Command::from_json(req)).await,
        Err(e) => {
            client.send(Frame::json(&JsonReply {
                cmd: String::new(),
                seqno: Value::String(String::new()),
                status: status::BAD_REQUEST,
                msg: format!("malformed JSON request ({e}); expected {{\"cmd\": string, \"seqno\": any, \"data\": any}}"),
                data: Value::Null,
            }));
        }
    }
}

async fn on_binary(
    hub: &Hub,
    app: &Arc<App>,
    client: &ClientHandle,
    session: &Session,
    bytes: &[u8],
) {
    let bad = |why: String| {
        client.send(Frame::sendmsg(&SendMsg {
            cmd: CMD_ERROR,
            timestamp: now_ms(),
            to_client_id: client.id().into(),
            status: status::BAD_REQUEST,
            desc: why,
            ..Default::default()
        }));
    };
    let msg = match SendMsg::decode(bytes) {
        Ok(m) => m,
        Err(e) => return bad(format!("malformed SendMsg protobuf: {e}")),
    };
    app.message(hub, client, &msg);
    match Command::from_sendmsg(msg) {
        Ok(cmd) => dispatch(hub, app, client, session, cmd).await,
        Err(why) => bad(why),
    }
}

async fn dispatch(
    hub: &Hub,
    app: &Arc<App>,
    client: &ClientHandle,
    session: &Session,
    cmd: Command,
) {
    let to = cmd.reply_to();
    let ctx = Context {
        hub: hub.clone(),
        client: client.clone(),
        session: session.clone(),
        command: cmd,
    };
    let reply: Reply = app.dispatch(ctx).await;
    if !reply.silent {
        client.send(reply.encode(&to, client.id(), &hub.config().server_id));
    }
}
