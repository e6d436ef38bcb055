//! # wsp-server
//!
//! A WebSocket connection pool as a library: a registry of live connections (client ids,
//! uids, channels, per-client info), routing (to a client, a uid, a channel, everyone),
//! heartbeats, origin checks, close handshakes and limits, with a seam for a distributed
//! backend. It unites the APIs of wsPool, gows, bin-x/websocket (GatewayWorker), wsrv and the
//! gin hub; `docs/PROTOCOL.md` is the wire contract.
//!
//! ## Layout
//! Folders are layers, lowest first; a module imports only from its own layer and those below
//! it, never from above, and no two modules import each other (`scripts/check-layers` fails
//! on either; it runs in `scripts/test`).
//!
//! 1. `transport/`: the WebSocket protocol for both ends (frames, permessage-deflate,
//!    handshakes), close codes, and [`Frame`], an outbound frame built once for every
//!    recipient. Public as [`ws`] and [`close`].
//! 2. `base/`: [`ServerConfig`] and every limit, authentication ([`auth`]), the record of
//!    refusals ([`limits`]), [`metrics`] counters, [`tls`].
//! 3. `wire/`: the protocol's shapes: [`protocol`] (statuses, JSON and SendMsg forms,
//!    [`Command`], [`Reply`]) and [`publication`] (channel messages and their positions).
//! 4. `pool/`: [`Hub`] (the pool's API), the local registry, [`ClientHandle`] and its bounded
//!    outbox, [`history`], and the [`Cluster`] seam ([`cluster`]).
//!    `redis/` sits beside it: the Redis backend ([`redis`]), which reaches the pool through
//!    [`cluster::Local`] only.
//! 5. `commands/`: the table of built-in commands (name, number, rights and handler, declared
//!    once each), the rights check, and [`App`]: handlers, middleware, callbacks.
//! 6. `server/`: [`Server`] (`/ws`, `/healthz`, `/metrics`), the accept loop, one connection's
//!    task, the server API and the demo page.
//!
//! Optional backends are Cargo features, all on by default: `redis` (cluster mode), `jwt`
//! (token authentication), `tls` (`wss://`), `metrics` (Prometheus `GET /metrics`).
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

mod base;
mod commands;
mod error;
mod pool;
mod server;
mod transport;
mod wire;

#[cfg(feature = "redis")]
pub mod redis;

#[doc(hidden)]
pub mod fuzzing;

/// The WebSocket transport, server and client side (`wsp connect` and `wsp bench` use the
/// client side): [`WebSocket`](ws::WebSocket) over any byte stream, its configuration, the
/// handshakes and permessage-deflate negotiation.
pub mod ws {
    pub use crate::transport::deflate::{self, Deflate, Params};
    pub use crate::transport::handshake;
    pub use crate::transport::read::Incoming;
    pub use crate::transport::socket::{WebSocket, WsConfig};
    pub use crate::transport::{Message, Role, WsError};
}

/// RFC 6455 close codes and [`Close`].
pub mod close {
    pub use crate::transport::close::*;
}

/// The wire protocol's vocabulary (`docs/PROTOCOL.md`): statuses, request and reply forms,
/// and the names and numbers of the built-in commands.
pub mod protocol {
    pub use crate::commands::{builtin_name, builtin_number, Builtin, BUILTINS};
    pub use crate::wire::protocol::*;
}

/// Channel messages and their positions in the channels' history.
pub mod publication {
    pub use crate::wire::publication::*;
}

/// Authentication: JWT verification and the [`Grant`](auth::Grant) a connection carries.
pub mod auth {
    pub use crate::base::auth::*;
    pub use crate::base::jwt::Auth;
}

/// TLS with certificate reload.
#[cfg(feature = "tls")]
pub mod tls {
    pub use crate::base::tls::Tls;
}

/// Prometheus metrics of a node.
pub mod metrics {
    pub use crate::base::metrics::{Gauges, HistoryGauges, Metrics};
}

/// Limits against abuse: the name rules and the record of refusals.
pub mod limits {
    pub use crate::base::limits::{cause, check_channel, check_id, Refusals, MAX_NAME_LEN};
}

/// Channel history kept on a node.
pub mod history {
    pub use crate::pool::history::{new_epoch, Entry, Fetched, History, Limits, Recovery};
}

/// The seam where a distributed backend plugs in.
pub mod cluster {
    pub use crate::pool::cluster::{Cluster, Footprint, Local};
}

pub use base::auth::ApiKey;
pub use base::config::{ClientRights, ServerConfig, SlowPolicy};
pub use commands::app::{App, Context, Next, Session};
pub use error::{Error, Result};
pub use pool::client::ClientHandle;
pub use pool::cluster::Cluster;
pub use pool::hub::{generate_id, Hub, WeakHub};
pub use pool::outbox::Pushed;
pub use pool::presence::{Answer, Delivery, Info, PresenceEvent, Query, Route};
pub use pool::registry::Delivered;
pub use pool::stream::MessageWriter;
pub use server::Server;
pub use transport::close::Close;
pub use transport::frame::{Frame, Kind};
pub use wire::protocol::{Command, Format, Reply, ReplyTo};
pub use wire::publication::{Position, Publication, Since};
