//! One connection's life: register, welcome, then a single task that reads frames, writes the
//! outbound queue in batches, pings, and closes with the right code.
//!
//! A single task (not a reader and a writer) keeps an idle connection small: one future, one
//! socket, no split lock, no timer (a shared ticker rings its alarm: `alarms.rs`). While a batch is being written the task does not read; every write
//! is bounded by `write_timeout`, so a peer that stops reading is dropped, never waited on
//! forever, and its full queue never slows anyone else.

mod alarms;
mod expiry;
mod io;
mod replies;

use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use std::task::Poll;

use tokio::time::{timeout, Instant};
use wsp_proto::{Message as _, SendMsg};

use crate::base::limits::{cause, RateLimit, Verdict};
use crate::base::metrics::{FrameKind, Metrics, Source};
use crate::base::stamp::Stamp;
use crate::commands::app::{App, Context, Session};
use crate::pool::client::ClientHandle;
use crate::pool::flush::Turn;
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
pub(crate) use alarms::Alarms;
use expiry::{expired, Expiry};
use replies::{rate_limited, welcome};

/// A server connection: the upgraded HTTP socket.
pub(crate) type Socket = WebSocket<io::Io>;

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

/// What every connection of a server shares: one pointer in each task.
pub(crate) struct Ctx {
    pub hub: Hub,
    pub app: Arc<App>,
    /// The server's alarm ticker, which wakes the connections for their timers.
    pub alarms: Arc<Alarms>,
}

/// What a connection needs once hyper hands its socket over.
pub(crate) struct Start {
    pub ctx: Arc<Ctx>,
    pub client: ClientHandle,
    pub join: Join,
    pub deflate: Option<crate::transport::deflate::Params>,
    pub ws_config: crate::transport::socket::WsConfig,
    /// Released when the connection ends (the connection counts, per IP and in all).
    pub guards: Guards,
}

/// The counts a connection holds a place in while it lives (held for their `Drop`).
#[allow(dead_code)]
pub(crate) struct Guards {
    /// The server's connection count.
    pub slot: Slot,
    /// Its IP's connection count.
    pub ip: crate::base::limits::IpSlot,
}

/// Decrements the connection count when a connection (or a failed handshake) ends.
pub(crate) struct Slot(pub Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

type Busy = futures_util::future::BoxFuture<'static, ()>;

/// One connection, from the upgrade to the end: the task the server spawns for it.
///
/// A future written by hand, not an `async fn`: while it waits it is only this struct (the
/// socket, the handles and the counters), with nothing kept for the suspension points an
/// `async fn` would lay out side by side, and no timer (its alarm is rung by [`Alarms`]). The
/// rare steps (joining the handshake's channels, a command, the close handshake) run as boxed
/// futures. Keep it small: tokio allocates the task in 128-byte steps, and this struct (280
/// bytes) plus tokio's 104-byte header fits in 384 (a test holds it there).
pub(crate) struct Task {
    phase: Phase,
}

// A connection spends its life serving: boxing `Conn` would only add an allocation to it.
#[allow(clippy::large_enum_variant)]
enum Phase {
    /// Waiting for hyper to hand the socket over.
    Upgrading(hyper::upgrade::OnUpgrade, Option<Box<Start>>),
    /// Reading, writing, pinging (and first, as its busy step, joining the handshake's
    /// channels and queuing the welcome frame).
    Serving(Conn),
    /// Leaving the pool and closing.
    Finishing(Busy),
    Done,
}

impl Task {
    /// The task of a connection whose handshake was accepted.
    pub(crate) fn new(upgrade: hyper::upgrade::OnUpgrade, start: Start) -> Self {
        Self {
            phase: Phase::Upgrading(upgrade, Some(Box::new(start))),
        }
    }
}

impl std::future::Future for Task {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<()> {
        // What this poll's broadcasts queued is sent when it ends (`pool::flush`).
        let _turn = Turn::begin();
        let this = self.get_mut();
        loop {
            let next = match &mut this.phase {
                Phase::Upgrading(upgrade, start) => {
                    let upgraded = std::task::ready!(std::pin::Pin::new(upgrade).poll(cx));
                    let mut start = start.take().expect("started once");
                    match upgraded {
                        Ok(upgraded) => {
                            let join = std::mem::take(&mut start.join);
                            let mut conn = Conn::new(upgraded, *start);
                            conn.arm();
                            if !conn.ctx.hub.config().echo {
                                let (ctx, client) = (conn.ctx.clone(), conn.client.clone());
                                conn.work().command = Some(Box::pin(async move {
                                    open(&ctx.hub, &ctx.app, &client, &join).await;
                                }));
                            }
                            tracing::debug!(client_id = %conn.client.id(), compressed = conn.ws.deflate().is_some(), "connected");
                            Phase::Serving(conn)
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "upgrade failed");
                            let Start { ctx, client, .. } = *start;
                            Phase::Finishing(Box::pin(async move {
                                ctx.hub.unregister(client.id()).await;
                            }))
                        }
                    }
                }
                Phase::Serving(conn) => {
                    let end = std::task::ready!(conn.poll_serve(cx));
                    let Phase::Serving(mut conn) = std::mem::replace(&mut this.phase, Phase::Done)
                    else {
                        unreachable!("serving")
                    };
                    // The close handshake is the task's alone, and the socket closes after;
                    // a frame a flush sent in part is finished first.
                    if let Some(rest) = conn.client.outbox().detach() {
                        conn.ws.queue_wire(rest);
                    }
                    Phase::Finishing(Box::pin(async move {
                        let Conn {
                            ws, ctx, client, ..
                        } = conn;
                        finish(ws, &ctx.hub, &ctx.app, client.id(), end).await;
                    }))
                }
                Phase::Finishing(done) => {
                    std::task::ready!(done.as_mut().poll(cx));
                    Phase::Done
                }
                Phase::Done => return Poll::Ready(()),
            };
            this.phase = next;
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        // Dropped while serving (the runtime shutting down): no flush may send to the socket,
        // which closes right after this.
        if let Phase::Serving(conn) = &self.phase {
            let _ = conn.client.outbox().detach();
        }
    }
}

/// A connection while it serves: what an idle one needs, and its [`Work`] when it has any.
struct Conn {
    ws: Socket,
    ctx: Arc<Ctx>,
    client: ClientHandle,
    /// Made when there is something to do, freed once the connection is idle again.
    work: Option<Box<Work>>,
    last_seen: Stamp,
    next_ping: Stamp,
    limit: RateLimit,
    expiry: Expiry,
    /// What is being written is the welcome or a ping: once it is out, the buffers it took are
    /// given back (most of a pool's connections are idle between the two, and thousands of
    /// small leftover buffers are RSS; a busy connection keeps its buffers between pings).
    settle: bool,
    _guards: Guards,
}

/// What a connection keeps only while it has something to do: a batch being written, a
/// streamed message, a command, a stalled write (72 bytes an idle connection does without:
/// they keep its task in tokio's 384-byte class).
#[derive(Default)]
struct Work {
    /// Frames taken from the outbox, being written.
    batch: VecDeque<Item>,
    streaming: Option<Box<Streaming>>,
    /// A command being handled (first: the handshake's joins and the welcome): the next frame
    /// is read once it is done (in order).
    command: Option<Busy>,
    /// Made at the first command and kept: a connection that only listens never needs one.
    session: Option<Session>,
    /// When the socket stopped taking a write, while it has not taken it.
    stalled: Option<Stamp>,
}

impl Work {
    /// Nothing in it, nothing allocated, nothing to keep.
    fn is_idle(&self) -> bool {
        self.batch.capacity() == 0
            && self.streaming.is_none()
            && self.command.is_none()
            && self.session.is_none()
            && self.stalled.is_none()
    }
}

impl Conn {
    fn new(upgraded: hyper::upgrade::Upgraded, start: Start) -> Self {
        let Start {
            ctx,
            client,
            join: _,
            deflate,
            ws_config,
            guards,
        } = start;
        let cfg = ctx.hub.config();
        let (io, leftover) = io::Io::of(upgraded);
        let ws = WebSocket::new(io, Role::Server, deflate, &ws_config, leftover);
        if let io::Io::Tcp(tcp) = ws.get_ref() {
            // The fan-out's flush may send broadcasts to this socket itself (`pool::outbox`);
            // a connection with a deflate window of its own gets them through its task.
            match ws.deflate() {
                None => client.outbox().attach(tcp.as_raw_fd(), false),
                Some(d) if d.is_shared_params() => client.outbox().attach(tcp.as_raw_fd(), true),
                Some(_) => {}
            }
        }
        Self {
            ws,
            work: None,
            last_seen: Stamp::now(),
            next_ping: Stamp::after(cfg.ping_interval),
            limit: RateLimit::new(cfg.message_burst),
            expiry: Expiry::of(&client),
            settle: true,
            _guards: guards,
            ctx,
            client,
        }
    }

    /// The connection's work state, made on first use.
    fn work(&mut self) -> &mut Work {
        self.work.get_or_insert_with(Box::default)
    }

    /// A command is being handled.
    fn busy(&self) -> bool {
        self.work.as_ref().is_some_and(|w| w.command.is_some())
    }

    fn streaming(&self) -> bool {
        self.work.as_ref().is_some_and(|w| w.streaming.is_some())
    }

    fn stalled(&self) -> Option<Stamp> {
        self.work.as_ref().and_then(|w| w.stalled)
    }

    /// Sets the alarm for the next thing due: the next ping, the token's expiry, or a write
    /// that has waited `write_timeout`, whichever comes first.
    fn arm(&self) {
        let mut at = self.expiry.first(self.next_ping);
        if let Some(since) = self.stalled() {
            at = at.min(Stamp::of(
                since.instant() + self.ctx.hub.config().write_timeout,
            ));
        }
        self.ctx.alarms.set(&self.client, at);
    }

    /// Does everything that can be done now; `Ready` when the connection ends, and why.
    fn poll_serve(&mut self, cx: &mut std::task::Context<'_>) -> Poll<End> {
        loop {
            let mut progress = false;
            // Whether the outbox holds this task's waker (it also carries the alarm's ring).
            let mut registered = false;
            if let Some(w) = self.work.as_mut() {
                if w.command
                    .as_mut()
                    .is_some_and(|c| c.as_mut().poll(cx).is_ready())
                {
                    w.command = None;
                    progress = true;
                    if let Some(end) = self.after_command() {
                        return Poll::Ready(end);
                    }
                }
            }
            // Whether the outbox (or the stream) was looked at in this round: a write that
            // finishes after a round that skipped it needs another round.
            let took = self.ws.queued() == 0;
            if took {
                let metrics = self.ctx.hub.metrics();
                if let Some(w) = self.work.as_mut().filter(|w| w.streaming.is_some()) {
                    let s = w.streaming.as_mut().expect("streaming");
                    if let Poll::Ready(part) = s.rx.rx.poll_recv(cx) {
                        progress = true;
                        if let Err(close) =
                            stream_part(&mut self.ws, &mut w.streaming, &mut w.batch, part, metrics)
                        {
                            return Poll::Ready(End::Close(close));
                        }
                    }
                } else {
                    // An idle connection has no batch: the outbox hands its queue over in
                    // this one (and makes a new one on its next push).
                    let mut spare = VecDeque::new();
                    let out = match self.work.as_mut() {
                        Some(w) => &mut w.batch,
                        None => &mut spare,
                    };
                    match self.client.outbox().poll_next(cx, out) {
                        Poll::Ready(Batch::Close(close)) => return Poll::Ready(End::Close(close)),
                        Poll::Ready(Batch::Frames) => {
                            // The outbox kept this task's waker: a push from now on wakes
                            // it, so the batch needs no second round (it is written just
                            // below); a stream it started does.
                            registered = true;
                            let w = self.work.get_or_insert_with(Box::default);
                            if spare.capacity() > 0 {
                                w.batch = spare;
                            }
                            w.streaming = queue_batch(&mut self.ws, &mut w.batch, metrics);
                            progress |= w.streaming.is_some();
                        }
                        Poll::Pending => registered = true,
                    }
                }
            }
            if self.ws.queued() > 0 {
                match self.ws.poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        if let Some(w) = self.work.as_mut() {
                            w.stalled = None;
                        }
                        // What a finished write makes possible (the next batch, the next
                        // part) waits for the next round, unless this one just took it.
                        progress |= !took;
                        if self.settle && !self.busy() && !self.streaming() {
                            self.settle = false;
                            self.shrink_idle();
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        self.ctx.app.errored(
                            &self.ctx.hub,
                            self.client.id(),
                            &format!("write failed: {e}"),
                        );
                        return Poll::Ready(End::Gone);
                    }
                    Poll::Pending if self.stalled().is_none() => {
                        // The socket is full: bound the wait (almost every batch fits at
                        // once, so this costs no alarm in the common case).
                        self.work().stalled = Some(Stamp::now());
                        self.arm();
                    }
                    Poll::Pending => {}
                }
            }
            if !self.busy() {
                if let Poll::Ready(msg) = self.ws.poll_read(cx) {
                    progress = true;
                    let msg = match msg {
                        None => return Poll::Ready(End::Gone),
                        Some(Err(e)) => match e.close_code() {
                            Some(c) => {
                                self.ctx.app.errored(
                                    &self.ctx.hub,
                                    self.client.id(),
                                    &e.to_string(),
                                );
                                return Poll::Ready(End::Close(Close::new(c, e.to_string())));
                            }
                            None => return Poll::Ready(End::Gone),
                        },
                        Some(Ok(m)) => m,
                    };
                    if let Some(end) = self.on_frame(msg) {
                        return Poll::Ready(end);
                    }
                    if let Some(end) = self.after_command() {
                        return Poll::Ready(end);
                    }
                }
            }
            if !registered {
                // Before the check below: a ring after it wakes this registration.
                self.client.outbox().register(cx.waker());
            }
            if self.client.take_rung() {
                if let Some(end) = self.on_timer() {
                    return Poll::Ready(end);
                }
                self.arm();
                progress = true;
            }
            if !progress {
                return Poll::Pending;
            }
        }
    }

    /// After a frame or a command: the rate limit may close, `refresh` may move the expiry.
    fn after_command(&mut self) -> Option<End> {
        let cfg = self.ctx.hub.config();
        if self.limit.closing() {
            self.ctx
                .hub
                .refusals()
                .note(cause::RATE_CLOSE, self.client.id());
            return Some(End::Close(Close::new(
                code::POLICY,
                format!(
                    "rate limit: over {} frames/s for a whole burst",
                    cfg.max_messages_per_sec
                ),
            )));
        }
        if self.expiry.changed(&self.client) {
            self.arm();
        }
        None
    }

    /// The alarm rang: a write that waited too long, the token's expiry, or the next ping.
    fn on_timer(&mut self) -> Option<End> {
        let cfg = self.ctx.hub.config();
        if self.expiry.passed() {
            return Some(End::Close(expired(&self.ctx.hub, self.client.id())));
        }
        if let Some(since) = self.stalled() {
            if since.elapsed() >= cfg.write_timeout {
                let why = format!(
                    "write timed out after {:?}: the peer stopped reading",
                    cfg.write_timeout
                );
                self.ctx.app.errored(&self.ctx.hub, self.client.id(), &why);
                return Some(End::Gone);
            }
        }
        if Stamp::now() >= self.next_ping {
            if self.last_seen.elapsed() > cfg.heartbeat_timeout {
                return Some(End::Close(Close::heartbeat_timeout(
                    cfg.heartbeat_timeout.as_secs(),
                )));
            }
            // Quiet since the last ping, perhaps: once the ping is out, give back what a burst
            // left allocated (and what the ping took).
            self.settle = true;
            self.next_ping = Stamp::after(cfg.ping_interval);
            if let Some(m) = self.ctx.hub.metrics() {
                m.sent(FrameKind::Ping, 1, 2);
            }
            self.hold();
            self.ws.queue_message(&Message::Ping(bytes::Bytes::new()));
        }
        None
    }

    /// Keeps the fan-out's flushes off the socket while the task writes a frame of its own,
    /// after the tail of a frame a flush sent in part, if there is one.
    fn hold(&mut self) {
        if let Some(rest) = self.client.outbox().hold() {
            self.ws.queue_wire(rest);
        }
    }

    /// Gives back the spare buffers of the batch, the outbox and the write queue (whatever is
    /// still queued keeps its buffer).
    fn shrink_idle(&mut self) {
        if let Some(w) = self.work.as_mut() {
            if w.batch.is_empty() && w.batch.capacity() > 0 {
                w.batch = VecDeque::new();
            }
            if w.is_idle() {
                self.work = None;
            }
        }
        self.client.outbox().shrink_idle();
        self.ws.shrink_idle();
    }

    /// Handles one frame from the peer; `Some` when the connection ends with it.
    fn on_frame(&mut self, m: crate::transport::read::Incoming) -> Option<End> {
        let cfg = self.ctx.hub.config();
        let msg = match self
            .limit
            .take(m.frames, cfg.max_messages_per_sec, cfg.message_burst)
        {
            Verdict::Pass => m.message,
            Verdict::Warn => {
                self.ctx.hub.refusals().note(cause::RATE, self.client.id());
                self.client
                    .send(rate_limited(&m.message, self.client.id(), cfg));
                return None;
            }
            Verdict::Drop => return None,
            Verdict::Close => {
                self.ctx
                    .hub
                    .refusals()
                    .note(cause::RATE_CLOSE, self.client.id());
                return Some(End::Close(Close::new(
                    code::POLICY,
                    format!(
                        "rate limit: over {} frames/s for a whole burst",
                        cfg.max_messages_per_sec
                    ),
                )));
            }
        };
        self.last_seen = Stamp::now();
        if let Some(m) = self.ctx.hub.metrics() {
            count_received(m, &msg);
        }
        match msg {
            Message::Close(c) => return Some(End::PeerClosed(c.map(|c| c.code.into()))),
            Message::Ping(p) => {
                if let Some(m) = self.ctx.hub.metrics() {
                    m.sent(FrameKind::Pong, 1, 2 + p.len() as u64);
                }
                self.hold();
                self.ws.queue_message(&Message::Pong(p));
            }
            Message::Pong(_) | Message::Frame(_) => {}
            Message::Text(t) if cfg.echo => {
                self.client.send(Frame::text(t.as_str()));
            }
            Message::Binary(b) if cfg.echo => {
                self.client.send(Frame::binary(b));
            }
            // An empty data frame is a heartbeat (wsrv).
            Message::Text(t) if t.as_str().is_empty() => {}
            Message::Binary(b) if b.is_empty() => {}
            Message::Text(_) | Message::Binary(_) if self.expiry.passed() => {
                return Some(End::Close(expired(&self.ctx.hub, self.client.id())));
            }
            Message::Text(t) => match serde_json::from_str::<JsonRequest>(t.as_str()) {
                Ok(req) => self.command(Command::from_json(req, &crate::commands::Table)),
                Err(e) => {
                    self.client.send(Frame::json(&JsonReply {
                        cmd: String::new(),
                        seqno: Value::String(String::new()),
                        status: status::BAD_REQUEST,
                        msg: format!("malformed JSON request ({e}); expected {{\"cmd\": string, \"seqno\": any, \"data\": any}}"),
                        data: Value::Null,
                    }));
                }
            },
            Message::Binary(b) => {
                let bad = |why: String| {
                    Frame::sendmsg(&SendMsg {
                        cmd: CMD_ERROR,
                        timestamp: now_ms(),
                        to_client_id: self.client.id().into(),
                        status: status::BAD_REQUEST,
                        desc: why,
                        ..Default::default()
                    })
                };
                match SendMsg::decode(b.as_ref()) {
                    Err(e) => {
                        self.client
                            .send(bad(format!("malformed SendMsg protobuf: {e}")));
                    }
                    Ok(msg) => {
                        self.ctx.app.message(&self.ctx.hub, &self.client, &msg);
                        match Command::from_sendmsg(msg, &crate::commands::Table) {
                            Ok(cmd) => self.command(cmd),
                            Err(why) => {
                                self.client.send(bad(why));
                            }
                        }
                    }
                }
            }
        }
        None
    }

    /// Starts a command: charged to the rate limit for every publish it asks for, then run
    /// through the application (middleware, handlers, built-ins) as the connection's busy step.
    fn command(&mut self, cmd: Command) {
        let cfg = self.ctx.hub.config();
        let to = cmd.reply_to();
        // The frame paid for itself when it was read; a send to several channels pays for
        // each further publish before it runs (a bigger one is refused whole by the cap).
        let extra = cmd.publishes().min(cfg.max_channels_per_send) - 1;
        if extra > 0 {
            let verdict =
                self.limit
                    .take(extra as u32, cfg.max_messages_per_sec, cfg.message_burst);
            if verdict != Verdict::Pass {
                self.ctx.hub.refusals().note(cause::RATE, self.client.id());
                let reply = Reply::error(
                    status::TOO_MANY,
                    format!(
                        "rate limit: this send publishes to {} channels and each counts as a frame; at most {} frames/s (burst {})",
                        extra + 1,
                        cfg.max_messages_per_sec,
                        cfg.message_burst
                    ),
                );
                self.client
                    .send(reply.encode(&to, self.client.id(), &cfg.server_id));
                return;
            }
        }
        let session = self
            .work()
            .session
            .get_or_insert_with(Session::default)
            .clone();
        let (shared, client) = (self.ctx.clone(), self.client.clone());
        self.work().command = Some(Box::pin(async move {
            let (hub, app) = (&shared.hub, &shared.app);
            let started = Instant::now();
            let ctx = Context {
                hub: hub.clone(),
                client: client.clone(),
                session,
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
        }));
    }
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
            // The tail of a frame the fan-out's flush sent in part (and counted).
            Item::Rest(rest) => {
                ws.queue_wire(*rest);
            }
        }
    }
    if let Some(m) = metrics {
        m.sent(FrameKind::Text, sent[0].0, sent[0].1);
        m.sent(FrameKind::Binary, sent[1].0, sent[1].1);
    }
    streaming
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

#[cfg(test)]
mod tests {
    /// tokio allocates a task as its 104-byte header plus this future, rounded up to 128
    /// bytes: at most 280 keeps every idle connection's task in 384 (one more byte: 512).
    #[test]
    fn the_task_fits_tokios_384_byte_cell() {
        let size = std::mem::size_of::<super::Task>();
        assert!(size <= 280, "the connection task grew to {size} bytes");
    }
}
