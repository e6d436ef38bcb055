//! Node liveness: the heartbeat key, reaping dead nodes' clients, and rebuilding this node's
//! presence after Redis comes back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use fred::types::Expiration;

use super::keys::NodeSet;
use super::{cluster_err, RedisCluster};

impl RedisCluster {
    pub(super) async fn heartbeat(&self) -> crate::Result<()> {
        self.online()?;
        let ttl = self.cfg.node_ttl.as_millis() as i64;
        self.client
            .set::<(), _, _>(
                self.alive_key(&self.node),
                "1",
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await
            .map_err(cluster_err)?;
        self.sadd(self.nodes_key(), &self.node).await
    }

    /// Refuses to join a pool of nodes that write key scheme 1 (every key under `{prefix}`):
    /// they would not see this node's clients, nor it theirs. Marks the prefix as
    /// scheme 2 otherwise.
    pub(super) async fn check_scheme(&self) -> crate::Result<()> {
        let old: Vec<String> = self
            .client
            .smembers(self.scheme1_nodes_key())
            .await
            .map_err(cluster_err)?;
        for n in &old {
            let alive: u64 = self
                .client
                .exists(self.scheme1_alive_key(n))
                .await
                .map_err(cluster_err)?;
            if alive == 1 {
                return Err(crate::Error::Config(format!(
                    "node {n:?} of an older wsp (key scheme 1: keys under \"{{{p}}}:\") is running on this Redis with prefix {p:?}; the two cannot share presence or history. Stop or upgrade every node of that pool first (docs/CLUSTER.md, \"Upgrading\"), or give this pool another --redis-prefix",
                    p = self.cfg.prefix
                )));
            }
        }
        self.client
            .set::<(), _, _>(self.scheme_key(), super::keys::SCHEME, None, None, false)
            .await
            .map_err(cluster_err)
    }

    /// Refreshes this node's liveness and reaps dead nodes, every third of the TTL.
    pub(super) async fn liveness(self: Arc<Self>) {
        let mut tick = tokio::time::interval(self.cfg.node_ttl / 3);
        loop {
            tick.tick().await;
            if self.pool().is_none() {
                return;
            }
            if let Err(e) = self.heartbeat().await {
                tracing::warn!(error = %e, "cannot refresh this node's liveness");
                continue;
            }
            if let Err(e) = self.reap_dead().await {
                tracing::warn!(error = %e, "cannot check other nodes' liveness");
            }
        }
    }

    pub(super) async fn reap_dead(&self) -> crate::Result<()> {
        let nodes: Vec<String> = self
            .client
            .smembers(self.nodes_key())
            .await
            .map_err(cluster_err)?;
        for n in nodes.iter().filter(|n| **n != self.node) {
            let alive: u64 = self
                .client
                .exists(self.alive_key(n))
                .await
                .map_err(cluster_err)?;
            if alive == 0 {
                let reaped = self.reap(n).await?;
                tracing::info!(node = %n, reaped, "removed a dead node and its clients");
            }
        }
        Ok(())
    }

    /// Removes every client of `node` (each in its own slot: its keys, then its entries in
    /// channels and uids), then the node's sets, and the node from the list last: a reaper
    /// that stops half-way leaves the node listed, and the next one finishes. Returns how
    /// many clients it removed.
    pub(super) async fn reap(&self, node: &str) -> crate::Result<usize> {
        let mut n = 0;
        for key in self.node_sets(node, NodeSet::Clients) {
            let ids: Vec<String> = self.client.smembers(key).await.map_err(cluster_err)?;
            for chunk in ids.chunks(256) {
                let removed = futures_util::future::try_join_all(
                    chunk.iter().map(|id| self.remove_client(id, node)),
                )
                .await?;
                n += removed.iter().flatten().count();
            }
        }
        let mut keys = Vec::with_capacity(3 * super::keys::BUCKETS as usize + 1);
        for kind in [NodeSet::Clients, NodeSet::Channels, NodeSet::Uids] {
            keys.extend(self.node_sets(node, kind));
        }
        // One DEL per key: they sit in different slots.
        futures_util::future::try_join_all(keys.into_iter().map(|k| self.client.del::<u64, _>(k)))
            .await
            .map_err(cluster_err)?;
        self.srem(self.nodes_key(), node).await?;
        Ok(n)
    }

    /// Re-registers this node and every local client (after a Redis restart or failover).
    pub(super) async fn rebuild(&self) {
        let Some(pool) = self.pool() else { return };
        // The pub/sub connection reconnects on its own schedule: wait for both.
        for _ in 0..100 {
            if self.online().is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if let Err(e) = self.heartbeat().await {
            tracing::warn!(error = %e, "rebuild: cannot register the node");
            return;
        }
        // Subscriptions may not have survived (a restarted Redis knows none): subscribe again
        // to every topic this node follows (subscribing twice is harmless; a topic left during
        // the outage may still be listed, and is dropped when its channel's members leave).
        let mut again: Vec<String> = vec![self.node_topic(&self.node), self.all_topic()];
        again.extend(self.topics().iter().cloned());
        for topic in again {
            if let Err(e) = self.subscribe(&topic).await {
                tracing::warn!(error = %e, %topic, "rebuild: cannot subscribe");
            }
        }
        let entries = pool.entries();
        let n = entries.len();
        let channels: HashSet<&String> = entries.iter().flat_map(|e| e.2.iter()).collect();
        for ch in channels {
            let _ = self.follow_channel(ch, false).await;
            let _ = self
                .sadd(self.node_set(&self.node, NodeSet::Channels, ch), ch)
                .await;
        }
        for (id, uid, channels, info) in entries {
            let mut ok = self.claim(&id).await.unwrap_or(false);
            for ch in &channels {
                ok &= self.join_channel(&id, ch).await.is_ok();
            }
            if let Some(uid) = &uid {
                ok &= self.bind(&id, uid).await.is_ok();
            }
            if !info.is_empty() {
                ok &= self.set_info(&id, &info).await.is_ok();
            }
            if !ok {
                tracing::warn!(client_id = %id, "rebuild: could not re-register a client");
            }
        }
        tracing::info!(clients = n, "rebuild done");
    }
}
