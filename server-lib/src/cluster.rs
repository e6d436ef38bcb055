//! The seam where a distributed backend plugs in.
//!
//! A single node needs no cluster: the [`Hub`](crate::Hub) answers from its local
//! [`Registry`](crate::Registry). When a [`Cluster`] is installed, the hub still applies every
//! presence change locally, and also:
//! - hands every delivery to [`Cluster::publish`], which must reach the matching clients on
//!   *every* node, this one included (the backend calls [`Hub::deliver_local`](crate::Hub::deliver_local)
//!   on each node that has recipients);
//! - mirrors every presence change with [`Cluster::record`];
//! - asks [`Cluster::query`] instead of the local registry, so answers cover all nodes;
//! - reserves client ids with [`Cluster::claim_id`], so they are unique across the cluster;
//! - sends a change aimed at a client on another node through [`Cluster::forward`].

use futures_util::future::BoxFuture;

use crate::history::{Entry, Fetched};
use crate::presence::{Answer, Delivery, Info, PresenceEvent, Query, Route};
use crate::Result;

/// What a client of another node holds, as the cluster sees it: enough to refuse a change that
/// would pass its limits before sending it to the client's node (which checks again).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Channels it is in.
    pub channels: usize,
    /// It is in the channel asked about.
    pub member: bool,
    /// Its info.
    pub info: Info,
}

/// A distributed backend: many nodes acting as one pool.
pub trait Cluster: Send + Sync + 'static {
    /// Delivers along `route` on every node that has recipients; returns how many recipients
    /// were reached on this node (remote counts may be unknown).
    fn publish(&self, route: Route, delivery: Delivery) -> BoxFuture<'_, Result<usize>>;
    /// Records a presence change of a client of this node.
    fn record(&self, event: PresenceEvent) -> BoxFuture<'_, Result<()>>;
    /// Applies a presence change to a client connected to another node; `false` when no node
    /// has that client.
    fn forward(&self, event: PresenceEvent) -> BoxFuture<'_, Result<bool>>;
    /// Answers a presence query for the whole cluster.
    fn query(&self, query: Query) -> BoxFuture<'_, Result<Answer>>;
    /// Reserves a client id cluster-wide; `false` when another node holds it.
    fn claim_id(&self, client_id: &str) -> BoxFuture<'_, Result<bool>>;

    /// What a client of another node holds (`channel`: also whether it is in that one).
    /// `None`: unknown (no such client, or the backend cannot tell); the change is then only
    /// checked on the client's node.
    fn footprint(
        &self,
        client_id: &str,
        channel: Option<&str>,
    ) -> BoxFuture<'_, Result<Option<Footprint>>> {
        let _ = (client_id, channel);
        Box::pin(async { Ok(None) })
    }

    /// A short status for `/healthz`: the backend's name and whether it is reachable now.
    fn status(&self) -> (&'static str, bool);

    /// Channel history (when the hub has it on): makes this node follow `channel` and reads
    /// the cluster's stream of it, with the messages after offset `after` (none without it).
    /// `None`: the backend keeps no history, and the node's own serves.
    fn history_fetch(
        &self,
        channel: &str,
        after: Option<u64>,
    ) -> BoxFuture<'_, Result<Option<Fetched>>> {
        let _ = (channel, after);
        Box::pin(async { Ok(None) })
    }

    /// The newest `limit` messages of a channel's cluster-wide history, oldest first, with its
    /// epoch and newest offset. `None`: the backend keeps no history.
    #[allow(clippy::type_complexity)]
    fn history_last(
        &self,
        channel: &str,
        limit: usize,
    ) -> BoxFuture<'_, Result<Option<Option<(String, u64, Vec<Entry>)>>>> {
        let _ = (channel, limit);
        Box::pin(async { Ok(None) })
    }
}
