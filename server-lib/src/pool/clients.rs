//! The registry's table of the clients on this node, by id.
//!
//! The table holds the handle itself (16 bytes a slot with its boxed extras, where a map from
//! an `Arc<str>` id to an entry took 32, and a plain entry 136), found by the id the handle
//! carries: a pool of idle clients pays ~26 bytes each for the table (it is kept at most 7/8
//! full, in power-of-two steps). Ids are chosen by clients, so the hasher is std's keyed one.

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use crate::pool::client::ClientHandle;
use crate::pool::presence::Info;

/// A client here. Most clients of a big pool never bind a uid, join only in the URL or not at
/// all, and set no info: what they have beyond the handle is boxed, and made on first use.
pub(crate) struct Entry {
    pub(crate) handle: ClientHandle,
    pub(crate) more: Option<Box<More>>,
}

/// A client's uid, channels and info; `None` in its entry while all three are empty.
#[derive(Default)]
pub(crate) struct More {
    pub(crate) uid: Option<String>,
    pub(crate) channels: HashSet<String>,
    pub(crate) info: Info,
}

/// The info of a client that set none.
static NO_INFO: Info = Info::new();

impl Entry {
    pub(crate) fn uid(&self) -> Option<&str> {
        self.more.as_ref()?.uid.as_deref()
    }

    pub(crate) fn channels(&self) -> impl Iterator<Item = &String> {
        self.more.iter().flat_map(|m| m.channels.iter())
    }

    pub(crate) fn channel_count(&self) -> usize {
        self.more.as_ref().map_or(0, |m| m.channels.len())
    }

    pub(crate) fn in_channel(&self, channel: &str) -> bool {
        self.more
            .as_ref()
            .is_some_and(|m| m.channels.contains(channel))
    }

    pub(crate) fn info(&self) -> &Info {
        self.more.as_ref().map_or(&NO_INFO, |m| &m.info)
    }

    /// The uid, channels and info, made on first use.
    pub(crate) fn more(&mut self) -> &mut More {
        self.more.get_or_insert_with(Box::default)
    }

    /// Frees the uid, channels and info once all three are empty again.
    pub(crate) fn tidy(&mut self) {
        if self
            .more
            .as_ref()
            .is_some_and(|m| m.uid.is_none() && m.channels.is_empty() && m.info.is_empty())
        {
            self.more = None;
        }
    }
}

/// The clients on this node, found by id.
#[derive(Default)]
pub(crate) struct Clients {
    table: HashTable<Entry>,
    hasher: RandomState,
}

impl Clients {
    fn hash(&self, id: &str) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The client with this id.
    pub(crate) fn get(&self, id: &str) -> Option<&Entry> {
        self.table.find(self.hash(id), |e| e.handle.id() == id)
    }

    /// The client with this id, to change.
    pub(crate) fn get_mut(&mut self, id: &str) -> Option<&mut Entry> {
        let hash = self.hash(id);
        self.table.find_mut(hash, |e| e.handle.id() == id)
    }

    /// Is a client with this id here?
    pub(crate) fn contains_key(&self, id: &str) -> bool {
        self.get(id).is_some()
    }

    /// Adds a client; `false` (and nothing changed) when its id is taken.
    pub(crate) fn insert(&mut self, handle: ClientHandle) -> bool {
        let hash = self.hash(handle.id());
        let hasher = &self.hasher;
        match self.table.entry(
            hash,
            |e| e.handle.id() == handle.id(),
            |e| hasher.hash_one(e.handle.id()),
        ) {
            hashbrown::hash_table::Entry::Occupied(_) => false,
            hashbrown::hash_table::Entry::Vacant(v) => {
                v.insert(Entry { handle, more: None });
                true
            }
        }
    }

    /// Takes a client out.
    pub(crate) fn remove(&mut self, id: &str) -> Option<Entry> {
        let hash = self.hash(id);
        match self.table.find_entry(hash, |e| e.handle.id() == id) {
            Ok(entry) => Some(entry.remove().0),
            Err(_) => None,
        }
    }

    /// Clients here.
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Every client here.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Entry> {
        self.table.iter()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::base::auth::Grant;
    use crate::base::config::SlowPolicy;

    fn handle(id: &str) -> ClientHandle {
        ClientHandle::new(id.into(), 4, SlowPolicy::Drop, Arc::new(Grant::default()))
    }

    #[test]
    fn finds_by_id_refuses_a_taken_id_and_removes() {
        let mut c = Clients::default();
        assert!(c.insert(handle("a")));
        assert!(c.insert(handle("b")));
        assert!(!c.insert(handle("a")), "a taken id");
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("b").map(|e| e.handle.id()), Some("b"));
        assert!(c.get("z").is_none());
        c.get_mut("a").expect("a").more().uid = Some("u".into());
        assert_eq!(c.get("a").and_then(|e| e.uid()), Some("u"));
        assert!(c.remove("a").is_some());
        assert!(c.remove("a").is_none());
        assert!(!c.contains_key("a"));
        assert_eq!(c.values().count(), 1);
        assert_eq!(std::mem::size_of::<Entry>(), 16);
    }
}
