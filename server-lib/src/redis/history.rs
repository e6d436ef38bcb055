//! The history script's operations: publish a channel message with its positions, read a
//! channel's stream for a recovery or the `history` command.

use bytes::Bytes;
use fred::prelude::*;

use super::envelope;
use super::{cluster_err, RedisCluster, HISTORY_META_TTL};
use crate::pool::history::Fetched;
use crate::pool::presence::{Delivery, Route};
use crate::wire::publication::Position;

impl RedisCluster {
    /// Publishes a channel message through the history script, once per channel (each run
    /// touches only that channel's slot); the nodes (this one too) deliver it when it comes
    /// back from Redis with its positions. Channels go in the send's order, each run given the
    /// positions the earlier ones got; a member gets the copy of the last of the send's
    /// channels it is in. Redis takes in the message once per channel: at most
    /// `--max-channels-per-send` times.
    pub(super) async fn publish_history(
        &self,
        channels: &[String],
        delivery: &Delivery,
        limits: crate::pool::history::Limits,
    ) -> crate::Result<()> {
        self.online()?;
        let many = channels.len() > 1;
        let mut earlier: Vec<Position> = Vec::with_capacity(channels.len());
        // The same envelope for every channel's run (encoded once; `Bytes` clones share it).
        let env = envelope::delivery(
            &self.node,
            Route::Channels(channels.to_vec()),
            None,
            delivery,
        );
        for (i, ch) in channels.iter().enumerate() {
            let args: Vec<Value> = vec![
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
                self.channel_topic(ch).into(),
                self.nonce.as_str().into(),
                if many { i.to_string() } else { String::new() }.into(),
                serde_json::to_string(&earlier)
                    .expect("positions serialize")
                    .into(),
                ch.as_str().into(),
                Value::Bytes(env.clone()),
            ];
            let r: crate::Result<String> = self
                .history_script
                .evalsha_with_reload(&self.client, self.history_keys(ch), args)
                .await
                .map_err(cluster_err);
            let mine = self.published(r)?;
            if many {
                earlier.push(serde_json::from_str(&mine).map_err(cluster_err)?);
            }
        }
        Ok(())
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
            .evalsha_with_reload(&self.client, self.history_keys(channel), args)
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
            // Copy `index` of a multi-channel send names this channel at `index`.
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
