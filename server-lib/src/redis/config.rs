//! How a node reaches Redis and behaves as a cluster node.

use std::time::Duration;

/// How to reach Redis and how to behave as a node.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://host:port[/db]` (or a cluster node's address with `clustered`).
    pub url: String,
    /// The URL is a node of a Redis Cluster.
    pub clustered: bool,
    /// Use sharded pub/sub (`SPUBLISH`, Redis 7). Default: on when `clustered`.
    pub sharded: bool,
    /// Key and topic prefix, so several pools can share a Redis. Default `wsp`.
    pub prefix: String,
    /// A node whose liveness key is older than this is dead. Default 10 s.
    pub node_ttl: Duration,
}

impl RedisConfig {
    /// A configuration for `url` with the defaults.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            clustered: false,
            sharded: false,
            prefix: "wsp".into(),
            node_ttl: Duration::from_secs(10),
        }
    }

    /// Sets [`Self::clustered`] (and [`Self::sharded`] with it).
    pub fn clustered(mut self, yes: bool) -> Self {
        self.clustered = yes;
        self.sharded = yes;
        self
    }

    /// Sets [`Self::sharded`].
    pub fn sharded(mut self, yes: bool) -> Self {
        self.sharded = yes;
        self
    }

    /// Sets [`Self::prefix`].
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Sets [`Self::node_ttl`].
    pub fn node_ttl(mut self, ttl: Duration) -> Self {
        self.node_ttl = ttl;
        self
    }
}
