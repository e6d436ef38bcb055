//! Node liveness: the heartbeat key, reaping dead nodes' clients, and rebuilding this node's
//! presence after Redis comes back.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use fred::prelude::*;
use fred::types::Expiration;

use super::{cluster_err, RedisCluster};

impl RedisCluster {
    pub(super) async fn heartbeat(&self) -> crate::Result<()> {
        self.online()?;
        let ttl = self.cfg.node_ttl.as_millis() as i64;
        self.client
            .set::<(), _, _>(
                self.key(&format!("alive:{}", self.node)),
                "1",
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await
            .map_err(cluster_err)?;
        self.client
            .sadd::<(), _, _>(self.key("nodes"), self.node.as_str())
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
            .smembers(self.key("nodes"))
            .await
            .map_err(cluster_err)?;
        for n in nodes.iter().filter(|n| **n != self.node) {
            let alive: u64 = self
                .client
                .exists(self.key(&format!("alive:{n}")))
                .await
                .map_err(cluster_err)?;
            if alive == 0 {
                let reaped: u64 = self.op(&["reap", n]).await?;
                tracing::info!(node = %n, reaped, "removed a dead node and its clients");
            }
        }
        Ok(())
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
        if self.limits().is_some() {
            again.push(self.history_all_topic());
        }
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
        }
        for (id, uid, channels, info) in entries {
            let mut ok = self.op::<u64>(&["claim", &id, &self.node]).await.is_ok();
            for ch in &channels {
                ok &= self.op::<u64>(&["join", &id, ch]).await.is_ok();
            }
            if let Some(uid) = &uid {
                ok &= self.op::<u64>(&["bind", &id, uid]).await.is_ok();
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
