//! Key and topic names (key scheme 2). Every key names the one thing it belongs to, and its
//! hash tag is made from that thing's name, so in a Redis Cluster the keys of one client sit
//! in one slot, those of one channel in one slot, those of one uid in one slot, and different
//! clients, channels and uids spread over all the slots:
//!
//! | what | keys (P = prefix, {t} = the tag of the name) |
//! |---|---|
//! | client `id` | `P:c:{t}:id` (hash: `node`, `uid`), `P:cch:{t}:id` (its channels), `P:info:{t}:id` |
//! | channel `ch` | `P:ch:{t}:ch` (its members), `P:hm:{t}:ch` and `P:h:{t}:ch` (history meta and stream), topic `P:hbc:{t}:ch` |
//! | uid `u` | `P:uid:{t}:u` (its clients) |
//! | node `n` | `P:alive:{t}:n`, and per bucket `b` of 16: `P:n:{t(n/b)}:n:clients:b`, `…:chs:b`, `…:uids:b` |
//! | the pool | `P:nodes` (written once per heartbeat), `P:scheme` |
//!
//! The tag is four hex digits of a hash of the name, not the name itself: short, sequential
//! names (`0` … `999`, `room:1` …) would otherwise land on few slots (CRC16 of similar short
//! strings clusters), and a name holding `{` or `}` cannot move its keys apart.

use super::RedisCluster;

/// Buckets of a node's aggregate sets (clients, channels, uids), each in its own slot, so a
/// node's connects and joins spread over the cluster instead of landing on its node's slot.
pub(super) const BUCKETS: u32 = 16;

/// The key scheme this version writes (`P:scheme`). Scheme 1 put every key under `{P}`.
pub(super) const SCHEME: &str = "2";

fn fnv(s: &str) -> u32 {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    h.write(s.as_bytes());
    let v = h.finish();
    (v ^ (v >> 32)) as u32
}

/// The hash tag of a name: `{xxxx}`, 65,536 tags spread evenly over Redis Cluster's 16,384
/// slots.
pub(super) fn tag(name: &str) -> String {
    let h = fnv(name);
    format!("{{{:04x}}}", (h ^ (h >> 16)) & 0xffff)
}

/// The bucket of a member in a node's aggregate sets.
pub(super) fn bucket(member: &str) -> u32 {
    fnv(member) % BUCKETS
}

/// Which of a node's aggregates.
#[derive(Debug, Clone, Copy)]
pub(super) enum NodeSet {
    /// Ids of its clients (claimed before the client keys are written: a reaper finds them).
    Clients,
    /// Channels it has members in.
    Channels,
    /// Uids it has clients of.
    Uids,
}

impl NodeSet {
    fn name(self) -> &'static str {
        match self {
            NodeSet::Clients => "clients",
            NodeSet::Channels => "chs",
            NodeSet::Uids => "uids",
        }
    }
}

impl RedisCluster {
    fn named(&self, kind: &str, name: &str) -> String {
        format!("{}:{kind}:{}:{name}", self.cfg.prefix, tag(name))
    }

    /// A client's keys: `[hash, channels, info]`, one slot.
    pub(super) fn client_keys(&self, id: &str) -> Vec<String> {
        let t = tag(id);
        let p = &self.cfg.prefix;
        vec![
            format!("{p}:c:{t}:{id}"),
            format!("{p}:cch:{t}:{id}"),
            format!("{p}:info:{t}:{id}"),
        ]
    }

    /// A client's hash (`node`, `uid`).
    pub(super) fn client_key(&self, id: &str) -> String {
        self.named("c", id)
    }

    /// A client's info hash.
    pub(super) fn info_key(&self, id: &str) -> String {
        self.named("info", id)
    }

    /// A channel's members.
    pub(super) fn channel_key(&self, ch: &str) -> String {
        self.named("ch", ch)
    }

    /// A uid's clients.
    pub(super) fn uid_key(&self, uid: &str) -> String {
        self.named("uid", uid)
    }

    /// A channel's history keys: `[meta, stream]`, one slot (with its history topic).
    pub(super) fn history_keys(&self, ch: &str) -> Vec<String> {
        vec![self.named("hm", ch), self.named("h", ch)]
    }

    /// A node's liveness key.
    pub(super) fn alive_key(&self, node: &str) -> String {
        self.named("alive", node)
    }

    /// Every node that registered (each heartbeat adds its own name).
    pub(super) fn nodes_key(&self) -> String {
        format!("{}:nodes", self.cfg.prefix)
    }

    /// The key scheme marker.
    pub(super) fn scheme_key(&self) -> String {
        format!("{}:scheme", self.cfg.prefix)
    }

    /// Scheme 1's node list (`{P}:nodes`), to find a pool of older nodes.
    pub(super) fn scheme1_nodes_key(&self) -> String {
        format!("{{{}}}:nodes", self.cfg.prefix)
    }

    /// Scheme 1's liveness key of a node.
    pub(super) fn scheme1_alive_key(&self, node: &str) -> String {
        format!("{{{}}}:alive:{node}", self.cfg.prefix)
    }

    /// The bucket of `node`'s aggregate `kind` that holds `member`.
    pub(super) fn node_set(&self, node: &str, kind: NodeSet, member: &str) -> String {
        self.node_bucket(node, kind, bucket(member))
    }

    fn node_bucket(&self, node: &str, kind: NodeSet, b: u32) -> String {
        format!(
            "{}:n:{}:{node}:{}:{b}",
            self.cfg.prefix,
            tag(&format!("{node}/{b}")),
            kind.name()
        )
    }

    /// Every bucket of `node`'s aggregate `kind`.
    pub(super) fn node_sets(&self, node: &str, kind: NodeSet) -> Vec<String> {
        (0..BUCKETS)
            .map(|b| self.node_bucket(node, kind, b))
            .collect()
    }

    pub(super) fn node_topic(&self, node: &str) -> String {
        format!("{}:node:{node}", self.cfg.prefix)
    }

    pub(super) fn all_topic(&self) -> String {
        format!("{}:all", self.cfg.prefix)
    }

    /// A channel's topic: without history `P:bc:ch`; with history `P:hbc:{t}:ch`, in the
    /// channel's slot (the history script publishes on it).
    pub(super) fn channel_topic(&self, channel: &str) -> String {
        if self.limits().is_some() {
            self.named("hbc", channel)
        } else {
            format!("{}:bc:{channel}", self.cfg.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_stable_and_spread_short_sequential_names() {
        // Stable across versions and nodes: the slot of a key is part of the contract.
        assert_eq!(tag("news"), tag("news"));
        assert_eq!(tag("news").len(), 6);
        // 1,000 sequential names over 3 equal slot ranges (as three masters hold them): each
        // within ±25% of a third. The tag's hash decides; Redis' CRC16 of the tag then picks
        // the slot.
        for names in [
            (0..1000).map(|i| i.to_string()).collect::<Vec<_>>(),
            (1..=1000).map(|i| format!("room:{i}")).collect(),
        ] {
            let mut thirds = [0u32; 3];
            for n in &names {
                let t = tag(n);
                let slot = crc16::State::<crc16::XMODEM>::calculate(&t.as_bytes()[1..5]) % 16384;
                thirds[(slot as usize * 3) / 16384] += 1;
            }
            for c in thirds {
                assert!((250..=417).contains(&c), "{thirds:?}");
            }
        }
    }
}
