//! One connection's life: register, welcome, then a single task that reads frames, writes the
//! outbound queue in batches, pings, and closes with the right code.
//!
//! A single task (not a reader and a writer) keeps an idle connection small: one future, one
//! socket, no split lock. While a batch is being written the task does not read; every write
//! is bounded by `write_timeout`, so a peer that stops reading is dropped, never waited on
//! forever, and its full queue never slows anyone else.

mod expiry;
mod replies;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::time::{timeout, Instant};
use wsp_proto::{Message as _, SendMsg};

use crate::base::limits::{cause, RateLimit, Verdict};
use crate::base::metrics::{FrameKind, Metrics, Source};
use crate::commands::app::{App, Context, Session};
use crate::pool::client::ClientHandle;
use crate::pool::hub::Hub;
use crate::pool::outbox::{Batch, Item};
use crate::pool::stream::{Part, StreamRx};
use crate::transport::close::{code, Close};
use crate::transport::frame::{Frame, Kind};
use crate::transport::frame_head::{OP_BINARY, OP_CONTINUE, OP_TEXT};
use crate::transport::{write, Message, Role, WebSocket};
use crate::wire::protocol::{
    now_ms, status, Command, Format, JsonReply, JsonRequest, Reply, CMD_ERROR,
};
use expiry::{expired, Expiry};
use replies::{rate_limited, welcome};

/// A server connection: the upgraded HTTP socket.
pub(crate) type Socket = WebSocket<TokioIo<hyper::upgrade::Upgraded>>;

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
    /// The peer sent a close frame; we answer with this code.
    PeerClosed(Option<u16>),
    /// The socket is gone (reset, EOF, write failure): nothing more to send.
    Gone,
}

/// A message being streamed to the client (boxed: rare).
struct Streaming {
    rx: StreamRx,
    /// No frame of it written yet (the first carries the opcode).
    first: bool,
}

/// Runs a registered connection until it ends, then removes it from the pool.
pub(crate) async fn run(mut ws: Socket, hub: Hub, app: Arc<App>, client: ClientHandle, join: Join) {
    let cfg = hub.config();
    let id = client.id().to_string();
    let session = Session::default();
    if !cfg.echo {
        // Boxed, like every rarely-taken await below: a task is as big as its largest
        // state, and an idle connection should pay only for the small waiting state.
        Box::pin(open(&hub, &app, &client, &join)).await;
    }
    tracing::debug!(client_id = %id, compressed = ws.deflate().is_some(), "connected");

    let mut batch: VecDeque<Item> = VecDeque::new();
    let mut streaming: Option<Box<Streaming>> = None;
    let mut last_seen = Instant::now();
    let mut limit = RateLimit::new(cfg.message_burst);
    // One timer for the connection's life (not a new one per frame): it wakes the connection
    // for the next ping, or at its token's expiry if that comes first; `refresh` moves it.
    let mut next_ping = Instant::now() + cfg.ping_interval;
    let mut expiry = Expiry::of(&client);
    let ping = tokio::time::sleep_until(expiry.first(next_ping));
    tokio::pin!(ping);
    let end = loop {
        tokio::select! {
            b = client.outbox().next(&mut batch), if streaming.is_none() => match b {
                Batch::Close(close) => break End::Close(close),
                Batch::Frames => {
                    streaming = queue_batch(&mut ws, &mut batch, hub.metrics());
                    if let Err(e) = Box::pin(flush(&mut ws, cfg.write_timeout)).await {
                        app.errored(&hub, &id, &e);
                        break End::Gone;
                    }
                }
            },
            part = next_part(&mut streaming) => {
                match stream_part(&mut ws, &mut streaming, &mut batch, part, hub.metrics()) {
                    Ok(()) => {}
                    Err(close) => break End::Close(close),
                }
                if let Err(e) = Box::pin(flush(&mut ws, cfg.write_timeout)).await {
                    app.errored(&hub, &id, &e);
                    break End::Gone;
                }
            },
            msg = ws.read() => {
                let msg = match msg {
                    None => break End::Gone,
                    Some(Err(e)) => match e.close_code() {
                        Some(c) => {
                            app.errored(&hub, &id, &e.to_string());
                            break End::Close(Close::new(c, e.to_string()));
                        }
                        None => break End::Gone,
                    },
                    Some(Ok(m)) => {
                        match limit.take(m.frames, cfg.max_messages_per_sec, cfg.message_burst) {
                            Verdict::Pass => m.message,
                            Verdict::Warn => {
                                hub.refusals().note(cause::RATE, &id);
                                client.send(rate_limited(&m.message, client.id(), cfg));
                                continue;
                            }
                            Verdict::Drop => continue,
                            Verdict::Close => {
                                hub.refusals().note(cause::RATE_CLOSE, &id);
                                break End::Close(Close::new(code::POLICY, format!("rate limit: over {} frames/s for a whole burst", cfg.max_messages_per_sec)));
                            }
                        }
                    }
                };
                last_seen = Instant::now();
                if let Some(m) = hub.metrics() {
                    count_received(m, &msg);
                }
                match msg {
                    Message::Close(c) => break End::PeerClosed(c.map(|c| c.code.into())),
                    Message::Ping(p) => {
                        if let Some(m) = hub.metrics() {
                            m.sent(FrameKind::Pong, 1, 2 + p.len() as u64);
                        }
                        ws.queue_message(&Message::Pong(p));
                        if Box::pin(flush(&mut ws, cfg.write_timeout)).await.is_err() {
                            break End::Gone;
                        }
                    }
                    Message::Pong(_) | Message::Frame(_) => {}
                    Message::Text(t) if cfg.echo => { client.send(Frame::text(t.as_str())); }
                    Message::Binary(b) if cfg.echo => { client.send(Frame::binary(b)); }
                    // An empty data frame is a heartbeat (wsrv).
                    Message::Text(t) if t.as_str().is_empty() => {}
                    Message::Binary(b) if b.is_empty() => {}
                    Message::Text(_) | Message::Binary(_) if expiry.passed() => {
                        break End::Close(expired(&hub, &id));
                    }
                    Message::Text(t) => Box::pin(on_text(&hub, &app, &client, &session, &mut limit, t.as_str())).await,
                    Message::Binary(b) => Box::pin(on_binary(&hub, &app, &client, &session, &mut limit, &b)).await,
                }
                if limit.closing() {
                    hub.refusals().note(cause::RATE_CLOSE, &id);
                    break End::Close(Close::new(code::POLICY, format!("rate limit: over {} frames/s for a whole burst", cfg.max_messages_per_sec)));
                }
                if expiry.changed(&client) {
                    // `refresh` gave a new expiry: the timer follows it.
                    ping.as_mut().reset(expiry.first(next_ping));
                }
            },
            () = &mut ping => {
                if expiry.passed() {
                    break End::Close(expired(&hub, &id));
                }
                if Instant::now() >= next_ping {
                    if last_seen.elapsed() > cfg.heartbeat_timeout {
                        break End::Close(Close::heartbeat_timeout(cfg.heartbeat_timeout.as_secs()));
                    }
                    next_ping = Instant::now() + cfg.ping_interval;
                    if let Some(m) = hub.metrics() {
                        m.sent(FrameKind::Ping, 1, 2);
                    }
                    ws.queue_message(&Message::Ping(bytes::Bytes::new()));
                    if Box::pin(flush(&mut ws, cfg.write_timeout)).await.is_err() {
                        break End::Gone;
                    }
                }
                ping.as_mut().reset(expiry.first(next_ping));
            }
        }
    };

    Box::pin(finish(ws, &hub, &app, &id, end)).await;
}

/// Counts a frame received (a whole message counts as one frame of its kind).
fn count_received(m: &Metrics, msg: &Message) {
    let (kind, len) = match msg {
        Message::Text(t) => (FrameKind::Text, t.len()),
        Message::Binary(b) => (FrameKind::Binary, b.len()),
        Message::Ping(p) => (FrameKind::Ping, p.len()),
        Message::Pong(p) => (FrameKind::Pong, p.len()),
        Message::Close(_) => (FrameKind::Close, 0),
        Message::Frame(f) => (FrameKind::Binary, f.payload().len()),
    };
    m.received(kind, len);
}

/// Queues the batch's frames up to the first streamed message, which it returns (the rest of
/// the batch waits for that message to end). Counts what it queued, once per batch.
fn queue_batch(
    ws: &mut Socket,
    batch: &mut VecDeque<Item>,
    metrics: Option<&Metrics>,
) -> Option<Box<Streaming>> {
    // (frames, wire bytes) of text and of binary frames.
    let mut sent = [(0u64, 0u64); 2];
    let mut streaming = None;
    while let Some(item) = batch.pop_front() {
        match item {
            Item::Frame(f) => {
                let wire = ws.queue_wire(f.wire(ws.deflate()));
                let k = &mut sent[matches!(f.kind(), Kind::Binary) as usize];
                k.0 += 1;
                k.1 += wire as u64;
            }
            Item::Stream(rx) => {
                streaming = Some(Box::new(Streaming { rx, first: true }));
                break;
            }
        }
    }
    if let Some(m) = metrics {
        m.sent(FrameKind::Text, sent[0].0, sent[0].1);
        m.sent(FrameKind::Binary, sent[1].0, sent[1].1);
    }
    streaming
}

/// The next part of the message being streamed; never ready when there is none.
async fn next_part(streaming: &mut Option<Box<Streaming>>) -> Option<Part> {
    match streaming {
        Some(s) => s.rx.rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Queues one part of a streamed message; at its end, goes on with the rest of the batch.
fn stream_part(
    ws: &mut Socket,
    streaming: &mut Option<Box<Streaming>>,
    batch: &mut VecDeque<Item>,
    part: Option<Part>,
    metrics: Option<&Metrics>,
) -> Result<(), Close> {
    let s = streaming
        .as_mut()
        .expect("a part comes only while streaming");
    let opcode = match (s.first, s.rx.kind) {
        (false, _) => OP_CONTINUE,
        (true, Kind::Text) => OP_TEXT,
        (true, Kind::Binary) => OP_BINARY,
    };
    match part {
        Some(Part::Data(data)) => {
            s.first = false;
            let wire = write::frame(Role::Server, opcode, &data, false, false);
            count_part(metrics, s.rx.kind, wire.len());
            ws.queue_wire(wire);
            Ok(())
        }
        Some(Part::End) => {
            let wire = write::frame(Role::Server, opcode, &[], true, false);
            count_part(metrics, s.rx.kind, wire.len());
            ws.queue_wire(wire);
            *streaming = queue_batch(ws, batch, metrics);
            Ok(())
        }
        None => Err(Close::new(
            code::INTERNAL_ERROR,
            "message writer dropped before the message ended",
        )),
    }
}

fn count_part(metrics: Option<&Metrics>, kind: Kind, wire: usize) {
    if let Some(m) = metrics {
        let k = match kind {
            Kind::Text => FrameKind::Text,
            Kind::Binary => FrameKind::Binary,
        };
        m.sent(k, 1, wire as u64);
    }
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
    client.send(welcome(
        hub,
        id,
        join.uid.as_deref(),
        &join.channels,
        join.format,
    ));
    if let Some(text) = &hub.config().welcome_message {
        client.send(Frame::text(text.clone()));
    }
    app.opened(hub, client);
}

/// Leaves the pool, completes the close handshake, calls `on_close`.
async fn finish(mut ws: Socket, hub: &Hub, app: &App, id: &str, end: End) {
    let cfg = hub.config();
    // Leave the pool first: nothing more is queued for a closing connection.
    hub.unregister(id).await;
    match end {
        End::Close(close) => {
            tracing::debug!(client_id = %id, code = close.code, reason = %close.reason, "closing");
            if let Some(m) = hub.metrics() {
                m.closed(close.code, close == Close::slow_consumer());
            }
            close_handshake(&mut ws, close, cfg.close_timeout).await;
        }
        End::PeerClosed(code) => {
            // Echo the peer's code (RFC 6455 §5.5.1), then end the stream.
            if let Some(m) = hub.metrics() {
                m.closed(code.unwrap_or(code::NO_STATUS), false);
            }
            match code {
                Some(c) => ws.queue_close(c, ""),
                None => ws.queue_message(&Message::Close(None)),
            }
            let _ = timeout(cfg.close_timeout, async {
                let _ = ws.flush().await;
                let _ = ws.shutdown().await;
            })
            .await;
        }
        End::Gone => {}
    }
    if !cfg.echo {
        app.closed(hub, id);
    }
    tracing::debug!(client_id = %id, "disconnected");
}

/// Writes what is queued. Almost every batch fits in the socket buffer at once: try without
/// arming a timer (a timer per batch per client is measurable in a broadcast), and bound the
/// wait only when the socket is full.
async fn flush(ws: &mut Socket, limit: Duration) -> Result<(), String> {
    let result = {
        let mut write = std::pin::pin!(ws.flush());
        match futures_util::FutureExt::now_or_never(&mut write) {
            Some(r) => Ok(r),
            None => timeout(limit, write).await,
        }
    };
    match result {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!("write failed: {e}")),
        Err(_) => Err(format!(
            "write timed out after {limit:?}: the peer stopped reading"
        )),
    }
}

/// Sends our close frame, then waits (bounded) for the peer's.
async fn close_handshake(ws: &mut Socket, close: Close, limit: Duration) {
    ws.queue_close(close.code, &close.reason);
    let _ = timeout(limit, async {
        if ws.flush().await.is_err() {
            return;
        }
        while let Some(Ok(msg)) = ws.read().await {
            if matches!(msg.message, Message::Close(_)) {
                break;
            }
        }
        let _ = ws.shutdown().await;
    })
    .await;
}

async fn on_text(
    hub: &Hub,
    app: &Arc<App>,
    client: &ClientHandle,
    session: &Session,
    limit: &mut RateLimit,
    text: &str,
) {
    match serde_json::from_str::<JsonRequest>(text) {
        Ok(req) => {
            dispatch(
                hub,
                app,
                client,
                session,
                limit,
                Command::from_json(req, &crate::commands::Table),
            )
            .await
        }
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
    limit: &mut RateLimit,
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
    match Command::from_sendmsg(msg, &crate::commands::Table) {
        Ok(cmd) => dispatch(hub, app, client, session, limit, cmd).await,
        Err(why) => bad(why),
    }
}

async fn dispatch(
    hub: &Hub,
    app: &Arc<App>,
    client: &ClientHandle,
    session: &Session,
    limit: &mut RateLimit,
    cmd: Command,
) {
    let to = cmd.reply_to();
    let cfg = hub.config();
    // The frame paid for itself when it was read; a send to several channels pays for each
    // further publish before it runs (a bigger one is refused whole by the channel cap).
    let extra = cmd.publishes().min(cfg.max_channels_per_send) - 1;
    if extra > 0 {
        let verdict = limit.take(extra as u32, cfg.max_messages_per_sec, cfg.message_burst);
        if verdict != Verdict::Pass {
            hub.refusals().note(cause::RATE, client.id());
            let reply = Reply::error(
                status::TOO_MANY,
                format!(
                    "rate limit: this send publishes to {} channels and each counts as a frame; at most {} frames/s (burst {})",
                    extra + 1,
                    cfg.max_messages_per_sec,
                    cfg.message_burst
                ),
            );
            client.send(reply.encode(&to, client.id(), &cfg.server_id));
            return;
        }
    }
    let started = Instant::now();
    let ctx = Context {
        hub: hub.clone(),
        client: client.clone(),
        session: session.clone(),
        command: cmd,
    };
    let reply: Reply = app.dispatch(ctx).await;
    if let Some(m) = hub.metrics() {
        m.command(
            crate::commands::label(&to.name),
            Source::Ws,
            started.elapsed(),
        );
    }
    if !reply.silent {
        client.send(reply.encode(&to, client.id(), &hub.config().server_id));
    }
}
