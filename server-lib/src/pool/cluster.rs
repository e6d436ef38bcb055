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

use crate::pool::history::{Entry, Fetched, Limits};
use crate::pool::presence::{Answer, Delivery, Info, PresenceEvent, Query, Route};
use crate::pool::registry::Delivered;
use crate::wire::publication::{Position, Publication};
use crate::Result;

/// What a cluster backend may ask of its own node: the narrow view of the pool a backend works
/// through (the backend never sees the whole [`Hub`](crate::Hub)). [`WeakHub`](crate::WeakHub)
/// implements it without keeping the hub alive; once the hub is gone every call is a no-op and
/// [`Local::alive`] is false.
pub trait Local: Send + Sync + 'static {
    /// The hub still exists.
    fn alive(&self) -> bool;
    /// The history's bounds, when the node keeps channel history.
    fn history_limits(&self) -> Option<Limits>;
    /// Counts one cluster event in the node's metrics.
    fn count(&self, event: ClusterEvent);
    /// Local members of a channel.
    fn channel_len(&self, channel: &str) -> usize;
    /// Every local client with its uid, channels and info (to rebuild the cluster's view).
    fn entries(&self) -> Vec<(String, Option<String>, Vec<String>, Info)>;
    /// Answers a presence query from this node's clients alone.
    fn answer(&self, query: &Query) -> Answer;
    /// Delivers to the matching clients of this node (a delivery from another node).
    fn deliver_local(&self, route: &Route, delivery: &Delivery) -> Delivered;
    /// Delivers to the local members of `channel` in none of `except` (one copy of a
    /// multi-channel send).
    fn deliver_channel_except(&self, channel: &str, except: &[String], delivery: &Delivery);
    /// Delivers a channel message the backend positioned (see
    /// [`Hub::deliver_positioned`](crate::Hub::deliver_positioned)).
    fn deliver_positioned(
        &self,
        channels: &[String],
        index: Option<usize>,
        positions: &[Position],
        time_ms: i64,
        p: &Publication,
        follows: &dyn Fn(&str) -> bool,
    );
    /// Applies a change another node sent for a client of this node (with this node's
    /// limits); `false` when the client is not here.
    fn apply(&self, event: PresenceEvent) -> BoxFuture<'_, Result<bool>>;
}

/// What a backend counts in its node's metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterEvent {
    /// A message went out to the backend.
    Published,
    /// A message came in from the backend.
    Received,
    /// A backend operation failed.
    Error,
}

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
