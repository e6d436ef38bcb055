//! The two WebSockets of one proxied connection and the messages between them. Each side has
//! its own WebSocket layer (and its own permessage-deflate, negotiated on its own); what one
//! side's read brought (at most 64 messages) is shown, queued on the other side and flushed
//! once before anything more is read from either: a slow reader slows the sender and no queue
//! grows past one burst. A close is relayed with its code and reason, then both sides end.

use anyhow::Context as _;
use futures_util::{SinkExt as _, StreamExt as _};
use rustls::pki_types::ServerName;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::http::Request;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;
use wsp_server::ws::{Incoming, WebSocket};

use super::log::Direction;
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

/// Relays until either side closes or fails; shows every message.
pub async fn run<C, U>(shared: &Shared, id: u64, client: WebSocket<C>, up: WebSocket<U>)
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let (mut c_tx, mut c_rx) = client.split();
    let (mut u_tx, mut u_rx) = up.split();
    let (mut frames_up, mut frames_down) = (0u64, 0u64);
    let mut injected = shared.inject.open(id);
    let ended = loop {
        tokio::select! {
            Some((direction, frame)) = injected.recv() => {
                let message = crate::connect::session::to_message(frame);
                let dir = match direction {
                    Direction::ToUpstream => Dir::Out,
                    Direction::ToClient => Dir::In,
                };
                if let Some(r) = record_of(dir, &message) {
                    shared.log.frame(id, direction, &r, true);
                }
                let sent = match direction {
                    Direction::ToUpstream => u_tx.send(message).await,
                    Direction::ToClient => c_tx.send(message).await,
                };
                if let Err(e) = sent {
                    break json!({"by": "proxy", "error": format!("injecting failed: {e}")});
                }
            }
            m = c_rx.next() => match m {
                Some(Ok(m)) => {
                    let way = Way { shared, id, direction: Direction::ToUpstream };
                    if let Some(end) = way.burst(m, &mut c_rx, &mut u_tx, &mut frames_up).await {
                        break end;
                    }
                }
                Some(Err(e)) => break json!({"by": "client", "error": e.to_string()}),
                None => break json!({"by": "client", "error": "the connection ended without a close frame"}),
            },
            m = u_rx.next() => match m {
                Some(Ok(m)) => {
                    let way = Way { shared, id, direction: Direction::ToClient };
                    if let Some(end) = way.burst(m, &mut u_rx, &mut c_tx, &mut frames_down).await {
                        break end;
                    }
                }
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
    shared.inject.close(id);
    let mut detail = ended;
    detail["frames_to_upstream"] = json!(frames_up);
    detail["frames_to_client"] = json!(frames_down);
    shared.log.event(id, "closed", detail);
}

/// Messages read at once on one side, at most this many, are written with one flush.
const BURST: usize = 64;

/// One direction of one connection.
struct Way<'a> {
    shared: &'a Shared,
    id: u64,
    direction: Direction,
}

impl Way<'_> {
    fn by(&self) -> &'static str {
        match self.direction {
            Direction::ToUpstream => "client",
            Direction::ToClient => "upstream",
        }
    }

    /// Relays `first` and every message already read behind it (up to [`BURST`]), then
    /// flushes once: one write for what arrived together, however many messages it holds.
    /// `Some` when the connection ends here.
    async fn burst<R, E, S>(
        &self,
        first: Incoming,
        from: &mut R,
        to: &mut S,
        count: &mut u64,
    ) -> Option<serde_json::Value>
    where
        R: futures_util::Stream<Item = Result<Incoming, E>> + Unpin,
        E: std::fmt::Display,
        S: futures_util::Sink<Message> + Unpin,
        S::Error: std::fmt::Display,
    {
        use futures_util::FutureExt as _;
        let mut next = Some(first);
        let mut end = None;
        for _ in 0..BURST {
            let Some(m) = next.take() else { break };
            *count += 1;
            if let Some(e) = self.pass(m, to).await {
                end = Some(e);
                break;
            }
            match from.next().now_or_never() {
                Some(Some(Ok(m))) => next = Some(m),
                Some(Some(Err(e))) => {
                    end = Some(json!({"by": self.by(), "error": e.to_string()}));
                    break;
                }
                Some(None) => {
                    end = Some(
                        json!({"by": self.by(), "error": "the connection ended without a close frame"}),
                    );
                    break;
                }
                None => break,
            }
        }
        if let Some(m) = next {
            // BURST reached: the message read past it goes first next time round.
            *count += 1;
            if let Some(e) = self.pass(m, to).await {
                end = end.or(Some(e));
            }
        }
        if let Err(e) = to.flush().await {
            return end.or(Some(
                json!({"by": self.by(), "error": format!("relaying failed: {e}")}),
            ));
        }
        end
    }

    /// Shows one message and queues it for the other side; `Some` when the connection ends
    /// here (a close was relayed, or the other side is gone).
    async fn pass<S>(&self, m: Incoming, to: &mut S) -> Option<serde_json::Value>
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
        let dir = match self.direction {
            Direction::ToUpstream => Dir::Out,
            Direction::ToClient => Dir::In,
        };
        if let Some(r) = self
            .shared
            .log
            .active()
            .then(|| record_of(dir, &message))
            .flatten()
        {
            self.shared.log.frame(
                self.id,
                self.direction,
                &r.with_wire(wire_len, compressed),
                false,
            );
        }
        let close = match &message {
            Message::Close(c) => Some(json!({
                "by": self.by(),
                "code": c.as_ref().map(|f| u16::from(f.code)).unwrap_or(1005),
                "reason": c.as_ref().map(|f| f.reason.to_string()).unwrap_or_default(),
            })),
            _ => None,
        };
        if let Err(e) = to.feed(message).await {
            return Some(json!({"by": self.by(), "error": format!("relaying failed: {e}")}));
        }
        close
    }
}
