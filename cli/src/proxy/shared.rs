//! What every proxied connection shares: where the upstream is, how to reach it, the
//! compression and size settings, where frames are shown, the connections' command queues and
//! the interception rules.

use std::sync::Arc;

use super::control;
use super::intercept::Intercept;
use super::log;

/// What every proxied connection shares.
pub struct Shared {
    /// `ws://host:port` or `wss://host:port`, without a trailing slash.
    pub upstream: url::Url,
    /// TLS for a `wss://` upstream.
    pub tls: Arc<rustls::ClientConfig>,
    /// Offer permessage-deflate to the upstream.
    pub upstream_compression: bool,
    /// Accept permessage-deflate from clients.
    pub client_compression: bool,
    /// Send the upstream its own host in `Host`, not the client's.
    pub rewrite_host: bool,
    /// Largest message relayed.
    pub max_message: usize,
    /// Where frames are shown.
    pub log: log::Log,
    /// Each open connection's command queue (`control`).
    pub conns: control::Connections,
    /// What is held, and what gets held (`intercept`).
    pub intercept: Intercept,
}
