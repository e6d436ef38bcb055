//! # wsp-server
//!
//! A WebSocket connection pool as a library: a registry of live connections (client ids,
//! uids, channels, per-client info), routing (to a client, a uid, a channel, everyone),
//! heartbeats, origin checks, close handshakes and limits, with a seam for a distributed
//! backend. It unites the APIs of wsPool, gows, bin-x/websocket (GatewayWorker), wsrv and the
//! gin hub; `docs/PROTOCOL.md` is the wire contract.
//!
//! ## Layout
//! - [`config`]: [`ServerConfig`], every limit and timer with its default; [`SlowPolicy`].
//! - [`hub`]: [`Hub`], the pool's API: send to a client/uid/channel/all, bind uids, join
//!   channels, presence queries, info, close.
//! - [`registry`]: the local registry behind the hub; lock-free fan-out over cached snapshots.
//! - [`presence`]: [`Route`], [`Query`], [`Answer`], [`PresenceEvent`]: the vocabulary of the hub.
//! - [`cluster`]: the [`Cluster`] trait, where a distributed backend plugs in; [`redis`]: the
//!   Redis backend (presence in Redis, fan-out over pub/sub, node liveness).
//! - [`app`]: [`App`]: command handlers, middleware, session values, connection callbacks.
//! - [`protocol`]: command names and numbers, statuses, JSON and protobuf request/reply forms.
//! - `commands`: the built-in commands; `conn`: one connection's task; `outbox`: its bounded
//!   outbound queue.
//! - [`server`]: [`Server`]: the `/ws` and `/healthz` endpoints and graceful shutdown;
//!   [`api`]: the server API (`POST /api`); [`metrics`]: Prometheus `GET /metrics`; `demo`: the
//!   browser page of `--demo`.
//! - [`history`]: channel history and recovery on reconnect; [`publication`]: a channel
//!   message before its offsets are known, [`Position`], [`Since`].
//! - [`close`]: RFC 6455 close codes; [`frame`]: outbound frames, framed and compressed once
//!   for every recipient; [`stream`]: [`MessageWriter`], one message written in parts.
//! - [`ws`]: the WebSocket transport for both ends (frames, permessage-deflate, handshakes).
//!
//! ## Example
//! ```no_run
//! use wsp_server::{App, Hub, Server, ServerConfig};
//! # async fn run() -> wsp_server::Result<()> {
//! let hub = Hub::new(ServerConfig::default());
//! let app = App::new().on_open(|hub, client| {
//!     tracing::info!(id = client.id(), online = hub.online_count(), "hello");
//! });
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! Server::new(hub, app)?.run(listener, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
#![deny(missing_docs)]

pub mod api;
pub mod app;
pub mod auth;
pub mod client;
pub mod close;
pub mod cluster;
mod commands;
pub mod config;
mod conn;
mod demo;
pub mod error;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod guard;
pub mod history;
pub mod hub;
pub mod limits;
mod listen;
pub mod metrics;
mod outbox;
pub mod presence;
pub mod protocol;
pub mod publication;
pub mod redis;
pub mod registry;
pub mod server;
pub mod stream;
pub mod tls;
pub mod ws;

pub use app::{App, Context, Next, Session};
pub use client::ClientHandle;
pub use close::Close;
pub use cluster::Cluster;
pub use config::{ClientRights, ServerConfig, SlowPolicy};
pub use error::{Error, Result};
pub use frame::Frame;
pub use hub::{Hub, WeakHub};
pub use outbox::Pushed;
pub use presence::{Answer, Delivery, Info, PresenceEvent, Query, Route};
pub use protocol::{Command, Format, Reply, ReplyTo};
pub use publication::{Position, Publication, Since};
pub use registry::Registry;
pub use server::Server;
pub use stream::MessageWriter;
