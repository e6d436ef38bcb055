//! The history script's operations: publish a channel message with its positions, read a
//! channel's stream for a recovery or the `history` command.

use bytes::Bytes;
use fred::prelude::*;

use super::envelope;
use super::{cluster_err, RedisCluster, HISTORY_META_TTL};
use crate::pool::history::Fetched;
use crate::pool::presence::{Delivery, Route};

impl RedisCluster {
    /// Publishes a channel message through the history script; the nodes (this one too)
    /// deliver it when it comes back from Redis with its positions.
    pub(super) async fn publish_history(
        &self,
        channels: &[String],
        delivery: &Delivery,
        limits: crate::pool::history::Limits,
    ) -> crate::Result<()> {
        self.online()?;
        let env = envelope::delivery(
            &self.node,
            Route::Channels(channels.to_vec()),
            None,
            delivery,
        );
        let mut args: Vec<Value> = vec![
            "publish".into(),
            (limits.size as i64).into(),
            (limits.ttl.as_millis() as i64).into(),
            (HISTORY_META_TTL.as_millis() as i64).into(),
            if self.cfg.sharded {
                "SPUBLISH"
            } else {
                "PUBLISH"
            }
            .into(),
            self.channel_topic_prefix().into(),
            self.history_all_topic().into(),
            Value::Bytes(env),
        ];
        args.extend(channels.iter().map(|c| Value::from(c.as_str())));
        let r = self
            .history_script
            .evalsha_with_reload::<Value, _, _>(&self.client, vec![self.key("clients")], args)
            .await
            .map(drop)
            .map_err(cluster_err);
        self.published(r)
    }

    /// Runs a history read (`read` or `last`) and decodes the kept messages of `channel`.
    pub(super) async fn history_op(
        &self,
        channel: &str,
        args: Vec<Value>,
    ) -> crate::Result<Option<Fetched>> {
        self.online()?;
        let r: crate::Result<Vec<Value>> = self
            .history_script
            .evalsha_with_reload(&self.client, vec![self.key("clients")], args)
            .await
            .map_err(cluster_err);
        let r = self.failed(r)?;
        let mut it = r.into_iter();
        let epoch: Option<String> = it.next().and_then(|v| v.convert().ok());
        let top: u64 = it.next().and_then(|v| v.convert().ok()).unwrap_or(0);
        let Some(epoch) = epoch else { return Ok(None) };
        let messages: Vec<Bytes> = it.next().and_then(|v| v.convert().ok()).unwrap_or_default();
        let mut entries = Vec::with_capacity(messages.len());
        for m in messages {
            let d = envelope::decode(&m).map_err(cluster_err)?;
            let (Some(stamp), Some(p)) = (&d.stamp, d.publication()) else {
                continue;
            };
            // Older nodes stored one copy per channel with its index; a shared copy is found by
            // the channel's name.
            let pos = match stamp.index {
                Some(i) => stamp.positions.get(i).filter(|p| p.channel == channel),
                None => stamp.positions.iter().find(|p| p.channel == channel),
            };
            let Some(pos) = pos else {
                continue;
            };
            entries.push((pos.offset, stamp.time, p.frame(&stamp.positions)));
        }
        Ok(Some(Fetched {
            epoch,
            top,
            entries,
        }))
    }
}
