//! The two WebSockets of one proxied connection and the messages between them. Each side has
//! its own WebSocket layer (and its own permessage-deflate, negotiated on its own); what one
//! side's read brought (at most 64 messages) is shown, queued on the other side and flushed
//! once before anything more is read from either: a slow reader slows the sender and no queue
//! grows past one burst. A close is relayed with its code and reason, then both sides end.
//!
//! A message that is intercepted (`intercept`) ends its burst: it is held, and its side is not
//! read again until its verdict comes (forward, edit, drop); the other side goes on. Commands
//! (`control`: inject a frame, close the connection) are served between bursts.

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::http::Request;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;
use wsp_server::ws::{Incoming, WebSocket};

use super::control::Command;
use super::intercept::{Ticket, Verdict};
use super::log::Mark;
use super::shared::Shared;
use crate::connect::model::Dir;
use crate::connect::session::record_of;

/// A connection to the upstream: TCP, and TLS for `wss://`/`https://`.
pub type Io = MaybeTlsStream<tokio::net::TcpStream>;

/// Opens TCP (and TLS when the request's scheme is `wss` or `https`) to its host.
pub async fn open<B>(shared: &Shared, req: &Request<B>) -> anyhow::Result<Io> {
    let uri = req.uri();
    let host = uri.host().context("the upstream URL has no host")?;
    let tls = matches!(uri.scheme_str(), Some("wss" | "https"));
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let bare = host.trim_matches(['[', ']']);
    let tcp = tokio::net::TcpStream::connect((bare, port))
        .await
        .with_context(|| format!("connecting to the upstream {host}:{port}"))?;
    tcp.set_nodelay(true)?;
    if !tls {
        return Ok(MaybeTlsStream::Plain(tcp));
    }
    let name = ServerName::try_from(bare.to_string())
        .with_context(|| format!("{host} is not a valid TLS server name"))?;
    let stream = tokio_rustls::TlsConnector::from(shared.tls.clone())
        .connect(name, tcp)
        .await
        .with_context(|| format!("TLS handshake with the upstream {host}:{port}"))?;
    Ok(MaybeTlsStream::Rustls(stream))
}

/// Relays until either side closes or fails, or the connection is closed by a command; shows
/// every message.
pub async fn run<C, U>(shared: &Shared, id: u64, client: WebSocket<C>, up: WebSocket<U>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_tx, mut u_rx) = up.split();
    let (mut frames_up, mut frames_down) = (0u64, 0u64);
    let mut commands = shared.conns.open(id);
    let to_up = Way {
        shared,
        id,
        dir: Dir::Out,
    };
    let to_client = Way {
        shared,
        id,
        dir: Dir::In,
    };
    // A message of the client held before the upstream, and one of the upstream held before
    // the client: while one is, its side is not read.
    let (mut held_up, mut held_down) = (None::<Held>, None::<Held>);
    let ended = loop {
        tokio::select! {
            Some(command) = commands.recv() => match command {
                Command::Send(dir, frame) => {
                    let message = crate::connect::session::to_message(frame);
                    let way = if dir == Dir::Out { &to_up } else { &to_client };
                    way.show(&message, None, Mark::Injected).await;
                    let sent = match dir {
                        Dir::Out => u_tx.send(message).await,
                        Dir::In => c_tx.send(message).await,
                    };
                    if let Err(e) = sent {
                        break json!({"by": "proxy", "error": format!("injecting failed: {e}")});
                    }
                }
                Command::Close(code, reason) => {
                    let close = || Message::Close(Some(CloseFrame { code: code.into(), reason: reason.clone().into() }));
                    to_up.show(&close(), None, Mark::Injected).await;
                    to_client.show(&close(), None, Mark::Injected).await;
                    let _ = tokio::join!(u_tx.send(close()), c_tx.send(close()));
                    break json!({"by": "proxy", "code": code, "reason": reason});
                }
            },
            verdict = verdict_of(&mut held_up) => {
                let held = held_up.take().expect("a verdict comes for a held message");
                if let Some(end) = to_up.release(held, verdict, &mut u_tx).await {
                    break end;
                }
            }
            verdict = verdict_of(&mut held_down) => {
                let held = held_down.take().expect("a verdict comes for a held message");
                if let Some(end) = to_client.release(held, verdict, &mut c_tx).await {
                    break end;
                }
            }
            m = c_rx.next(), if held_up.is_none() => match m {
                Some(Ok(m)) => match to_up.burst(m, &mut c_rx, &mut u_tx, &mut frames_up).await {
                    Flow::Go => {}
                    Flow::Held(h) => held_up = Some(h),
                    Flow::End(end) => break end,
                },
                Some(Err(e)) => break json!({"by": "client", "error": e.to_string()}),
                None => break json!({"by": "client", "error": "the connection ended without a close frame"}),
            },
            m = u_rx.next(), if held_down.is_none() => match m {
                Some(Ok(m)) => match to_client.burst(m, &mut u_rx, &mut c_tx, &mut frames_down).await {
                    Flow::Go => {}
                    Flow::Held(h) => held_down = Some(h),
                    Flow::End(end) => break end,
                },
                Some(Err(e)) => break json!({"by": "upstream", "error": e.to_string()}),
                None => break json!({"by": "upstream", "error": "the connection ended without a close frame"}),
            },
        }
    };
    // Whatever ended it, give both sides a moment to exchange their closing frames.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(1), async {
        let _ = c_tx.close().await;
        let _ = u_tx.close().await;
    })
    .await;
    shared.conns.close(id);
    shared.intercept.forget(id);
    let mut detail = ended;
    detail["frames_to_upstream"] = json!(frames_up);
    detail["frames_to_client"] = json!(frames_down);
    let lost: Vec<u64> = held_up.iter().chain(&held_down).map(|h| h.hold).collect();
    if !lost.is_empty() {
        // Held when the connection ended: relayed to nobody.
        detail["lost_held"] = json!(lost);
    }
    shared.log.event(id, "closed", detail).await;
}

/// Messages read at once on one side, at most this many, are written with one flush.
const BURST: usize = 64;

/// A message held until its verdict.
struct Held {
    hold: u64,
    message: Message,
    verdict: tokio::sync::oneshot::Receiver<Verdict>,
}

/// `held`'s verdict (forward when nobody can decide any more); never, when nothing is held.
async fn verdict_of(held: &mut Option<Held>) -> Verdict {
    match held {
        Some(h) => (&mut h.verdict).await.unwrap_or(Verdict::Forward),
        None => std::future::pending().await,
    }
}

/// What a burst left behind.
enum Flow {
    /// Read on.
    Go,
    /// A message is held: do not read this side until its verdict.
    Held(Held),
    /// The connection ends (a close was relayed, or a side is gone).
    End(serde_json::Value),
}

/// One direction of one connection: `Dir::Out` from the client to the upstream, `Dir::In`
/// from the upstream to the client (the client's view, as in the lines).
struct Way<'a> {
    shared: &'a Shared,
    id: u64,
    dir: Dir,
}

impl Way<'_> {
    fn by(&self) -> &'static str {
        match self.dir {
            Dir::Out => "client",
            Dir::In => "upstream",
        }
    }

    /// Shows a message going this way (`wire`: its length on the wire and whether it came
    /// compressed, for a relayed one).
    async fn show(&self, message: &Message, wire: Option<(usize, bool)>, mark: Mark) {
        if !self.shared.log.active() {
            return;
        }
        if let Some(r) = record_of(self.dir, message) {
            let r = match wire {
                Some((len, compressed)) => r.with_wire(len, compressed),
                None => r,
            };
            self.shared.log.frame(self.id, &r, mark).await;
        }
    }

    /// Relays `first` and every message already read behind it (up to [`BURST`]), then
    /// flushes once: one write for what arrived together, however many messages it holds.
    async fn burst<R, E, S>(
        &self,
        first: Incoming,
        from: &mut R,
        to: &mut S,
        count: &mut u64,
    ) -> Flow
    where
        R: futures_util::Stream<Item = Result<Incoming, E>> + Unpin,
        E: std::fmt::Display,
        S: futures_util::Sink<Message> + Unpin,
        S::Error: std::fmt::Display,
    {
        use futures_util::FutureExt as _;
        let mut next = Some(first);
        let mut flow = Flow::Go;
        let mut relayed = 0;
        while let Some(m) = next.take() {
            *count += 1;
            flow = self.pass(m, to).await;
            relayed += 1;
            if !matches!(flow, Flow::Go) || relayed == BURST {
                break;
            }
            match from.next().now_or_never() {
                Some(Some(Ok(m))) => next = Some(m),
                Some(Some(Err(e))) => {
                    flow = Flow::End(json!({"by": self.by(), "error": e.to_string()}));
                }
                Some(None) => {
                    flow = Flow::End(
                        json!({"by": self.by(), "error": "the connection ended without a close frame"}),
                    );
                }
                None => {}
            }
        }
        if let Err(e) = to.flush().await {
            if !matches!(flow, Flow::End(_)) {
                return Flow::End(
                    json!({"by": self.by(), "error": format!("relaying failed: {e}")}),
                );
            }
        }
        flow
    }

    /// Shows one message and queues it for the other side, or holds it when it is
    /// intercepted.
    async fn pass<S>(&self, m: Incoming, to: &mut S) -> Flow
    where
        S: futures_util::Sink<Message> + Unpin,
        S::Error: std::fmt::Display,
    {
        let Incoming {
            message,
            compressed,
            wire_len,
            ..
        } = m;
        let (log, intercept) = (&self.shared.log, &self.shared.intercept);
        if log.active() || intercept.on() {
            if let Some(r) = record_of(self.dir, &message) {
                let r = r.with_wire(wire_len, compressed);
                if intercept.matches(self.id, &r) {
                    let Ticket { hold, verdict } = intercept.hold(self.id);
                    log.frame(self.id, &r, Mark::Held(hold)).await;
                    return Flow::Held(Held {
                        hold,
                        message,
                        verdict,
                    });
                }
                log.frame(self.id, &r, Mark::Relayed).await;
            }
        }
        self.feed(message, to).await
    }

    /// Queues one message on the other side; `End` after a close, or when that side is gone.
    async fn feed<S>(&self, message: Message, to: &mut S) -> Flow
    where
        S: futures_util::Sink<Message> + Unpin,
        S::Error: std::fmt::Display,
    {
        let close = match &message {
            Message::Close(c) => Some(json!({
                "by": self.by(),
                "code": c.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005),
                "reason": c.as_ref().map(|f| f.reason.to_string()).unwrap_or_default(),
            })),
            _ => None,
        };
        if let Err(e) = to.feed(message).await {
            return Flow::End(json!({"by": self.by(), "error": format!("relaying failed: {e}")}));
        }
        close.map_or(Flow::Go, Flow::End)
    }

    /// Carries out a held message's verdict; `Some` when the connection ends here.
    async fn release<S>(
        &self,
        held: Held,
        verdict: Verdict,
        to: &mut S,
    ) -> Option<serde_json::Value>
    where
        S: futures_util::Sink<Message> + Unpin,
        S::Error: std::fmt::Display,
    {
        let Held { hold, message, .. } = held;
        let (name, message) = match verdict {
            Verdict::Forward => ("forwarded", Some(message)),
            Verdict::Drop => ("dropped", None),
            Verdict::Replace(frame) => {
                let message = crate::connect::session::to_message(frame);
                self.show(&message, None, Mark::Replaces(hold)).await;
                ("edited", Some(message))
            }
        };
        self.shared
            .log
            .event(self.id, "released", json!({"hold": hold, "verdict": name}))
            .await;
        let message = message?;
        let flow = self.feed(message, to).await;
        if let Err(e) = to.flush().await {
            return Some(json!({"by": self.by(), "error": format!("relaying failed: {e}")}));
        }
        match flow {
            Flow::End(end) => Some(end),
            _ => None,
        }
    }
}
