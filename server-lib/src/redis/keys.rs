//! Key and topic names. Keys carry the `{prefix}` hash tag (one slot in Redis Cluster);
//! topics carry it when the history script publishes on them.

use super::RedisCluster;

impl RedisCluster {
    pub(super) fn key(&self, rest: &str) -> String {
        format!("{}:{rest}", self.k)
    }

    pub(super) fn node_topic(&self, node: &str) -> String {
        format!("{}:node:{node}", self.cfg.prefix)
    }

    pub(super) fn all_topic(&self) -> String {
        format!("{}:all", self.cfg.prefix)
    }

    /// With history, where a send to several channels is published, once, by the script.
    pub(super) fn history_all_topic(&self) -> String {
        format!("{}:hall", self.k)
    }

    pub(super) fn channel_topic(&self, channel: &str) -> String {
        format!("{}{channel}", self.channel_topic_prefix())
    }

    /// With history, channel topics share the keys' hash tag (the history script publishes).
    pub(super) fn channel_topic_prefix(&self) -> String {
        if self.limits().is_some() {
            format!("{}:hbc:", self.k)
        } else {
            format!("{}:bc:", self.cfg.prefix)
        }
    }
}
