//! The local registry: who is connected to this node, their uid, channels and info.
//!
//! One `std::sync::RwLock` guards the maps. Writers (connect, join, bind...) are rare next to
//! deliveries, and no lock is ever held across an `.await`. Fan-out does not hold the lock
//! while pushing: each channel (and "everyone") caches an immutable snapshot of its members,
//! `Arc<[ClientHandle]>`, rebuilt lazily after a membership change; a broadcast clones that
//! `Arc` under a brief read lock and then pushes to every member with the lock released.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::pool::client::ClientHandle;
use crate::pool::clients::Clients;
use crate::pool::flush::{Due, Flush};
use crate::pool::outbox::{Deferred, Pushed};
use crate::pool::presence::{Answer, Delivery, Info, Query, Route};

type Snapshot = Arc<[ClientHandle]>;

#[derive(Default)]
struct Channel {
    members: HashMap<Arc<str>, ClientHandle>,
    snapshot: Option<Snapshot>,
}

#[derive(Default)]
struct State {
    clients: Clients,
    uids: HashMap<String, BTreeSet<Arc<str>>>,
    channels: HashMap<String, Channel>,
    everyone: Option<Snapshot>,
}

/// Outcome of a delivery on this node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// Clients the frame was queued for.
    pub queued: usize,
    /// Clients whose full queue dropped the frame, or that were closing.
    pub missed: usize,
    /// Of `missed`, the frames dropped by a full queue (`SlowPolicy::Drop`).
    pub dropped: usize,
}

impl Delivered {
    /// Queues `delivery` for one client and counts the outcome; a client whose queue a flush
    /// is now due for joins `dirty`.
    fn push(&mut self, h: &ClientHandle, delivery: &Delivery, dirty: &mut Vec<Due>) {
        match delivery {
            Delivery::Frame(f) => match h.outbox().defer(f) {
                Deferred::Flush(front) => {
                    self.queued += 1;
                    dirty.push(Due::new(h.clone(), front));
                }
                Deferred::Queued | Deferred::Pushed(Pushed::Queued) => self.queued += 1,
                Deferred::Pushed(Pushed::Dropped) => {
                    self.missed += 1;
                    self.dropped += 1;
                }
                Deferred::Pushed(Pushed::Closed) => self.missed += 1,
            },
            Delivery::Close(c) => {
                h.close(c.clone());
                self.queued += 1;
            }
            // The hub builds publications' frames before they reach the registry; one that
            // arrives anyway goes out without positions.
            Delivery::Publication(p) => self.push(h, &Delivery::Frame(p.frame(&[])), dirty),
        }
    }

    /// Queues `delivery` for every client of `handles`, prefetching [`AHEAD`] members ahead
    /// (each member's state is cold: without it, every push waits for memory).
    fn push_all(&mut self, handles: &[ClientHandle], delivery: &Delivery, dirty: &mut Vec<Due>) {
        for h in handles.iter().take(AHEAD) {
            h.prefetch();
        }
        for (i, h) in handles.iter().enumerate() {
            if let Some(next) = handles.get(i + AHEAD) {
                next.prefetch();
            }
            self.push(h, delivery, dirty);
        }
    }
}

/// How many members ahead a fan-out prefetches: enough to cover a memory access's latency
/// behind the pushes in between, few enough that the lines are still in cache when used.
const AHEAD: usize = 8;

/// What became of a join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Joined {
    /// The client is now in the channel.
    Added,
    /// It was in it already.
    Already,
    /// It is at its channel limit.
    Full,
    /// It is not connected to this node.
    Absent,
}

/// The clients connected to this node and their uid, channels and info.
#[derive(Default)]
pub struct Registry {
    state: RwLock<State>,
    /// Sends what deliveries queued without a wake (see `pool::flush`).
    flush: Arc<Flush>,
}

impl Registry {
    /// A registry whose broadcasts are sent by `flush` (with the server's deflate settings
    /// and metrics).
    pub(crate) fn new(flush: Flush) -> Self {
        Self {
            state: RwLock::default(),
            flush: Arc::new(flush),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a client; `false` when its id is already taken.
    pub fn insert(&self, handle: ClientHandle) -> bool {
        let mut s = self.write();
        if !s.clients.insert(handle) {
            return false;
        }
        s.everyone = None;
        true
    }

    /// Removes a client with its uid binding and channel memberships.
    pub fn remove(&self, id: &str) {
        let mut s = self.write();
        let Some(entry) = s.clients.remove(id) else {
            return;
        };
        s.everyone = None;
        let Some(more) = entry.more else {
            return;
        };
        if let Some(uid) = more.uid {
            unbind(&mut s, id, &uid);
        }
        for ch in more.channels {
            leave(&mut s, id, &ch);
        }
    }

    /// The handle of a connected client.
    pub fn handle(&self, id: &str) -> Option<ClientHandle> {
        self.read().clients.get(id).map(|e| e.handle.clone())
    }

    /// How many channels a client here is in, and the bytes of its info (keys and values).
    pub fn footprint(&self, id: &str) -> Option<(usize, usize)> {
        self.read().clients.get(id).map(|e| {
            (
                e.channel_count(),
                crate::pool::presence::info_bytes(e.info()),
            )
        })
    }

    /// The info of a client here.
    pub fn info_of(&self, id: &str) -> Option<Info> {
        self.read().clients.get(id).map(|e| e.info().clone())
    }

    /// Adds a client to a channel; `false` when the client is not here.
    pub fn join(&self, id: &str, channel: &str) -> bool {
        self.join_limited(id, channel, usize::MAX) != Joined::Absent
    }

    /// Adds a client to a channel unless it is already in `max` others.
    pub(crate) fn join_limited(&self, id: &str, channel: &str, max: usize) -> Joined {
        let mut s = self.write();
        let Some(entry) = s.clients.get_mut(id) else {
            return Joined::Absent;
        };
        if entry.in_channel(channel) {
            return Joined::Already;
        }
        if entry.channel_count() >= max {
            return Joined::Full;
        }
        entry.more().channels.insert(channel.to_string());
        let handle = entry.handle.clone();
        let ch = s.channels.entry(channel.to_string()).or_default();
        ch.members.insert(handle.id_arc().clone(), handle);
        ch.snapshot = None;
        Joined::Added
    }

    /// Is a client with this id connected here?
    pub fn contains(&self, id: &str) -> bool {
        self.read().clients.contains_key(id)
    }

    /// Removes a client from a channel; `false` when it was not a member.
    pub fn leave(&self, id: &str, channel: &str) -> bool {
        let mut s = self.write();
        let Some(entry) = s.clients.get_mut(id) else {
            return false;
        };
        if !entry
            .more
            .as_mut()
            .is_some_and(|m| m.channels.remove(channel))
        {
            return false;
        }
        entry.tidy();
        leave(&mut s, id, channel);
        true
    }

    /// Binds a client to `uid`, replacing its previous uid; returns the previous one.
    /// `Err(())` when the client is not here.
    #[allow(clippy::result_unit_err)]
    pub fn bind_uid(&self, id: &str, uid: &str) -> Result<Option<String>, ()> {
        let mut s = self.write();
        let Some(entry) = s.clients.get_mut(id) else {
            return Err(());
        };
        let previous = entry.more().uid.replace(uid.to_string());
        let key = entry.handle.id_arc().clone();
        if let Some(prev) = &previous {
            if prev == uid {
                return Ok(previous);
            }
            unbind(&mut s, id, prev);
        }
        s.uids.entry(uid.to_string()).or_default().insert(key);
        Ok(previous)
    }

    /// Removes a client's binding to `uid`; `false` when it was not bound to it.
    pub fn unbind_uid(&self, id: &str, uid: &str) -> bool {
        let mut s = self.write();
        let Some(entry) = s.clients.get_mut(id) else {
            return false;
        };
        if entry.uid() != Some(uid) {
            return false;
        }
        entry.more().uid = None;
        entry.tidy();
        unbind(&mut s, id, uid);
        true
    }

    /// Replaces (`merge` false) or merges into (`merge` true) a client's info unless the result
    /// would hold more than `max` bytes (`Err` with its size); returns the new info, or `None`
    /// when the client is not here.
    pub fn set_info(
        &self,
        id: &str,
        info: Info,
        merge: bool,
        max: usize,
    ) -> Result<Option<Info>, usize> {
        let mut s = self.write();
        let Some(entry) = s.clients.get_mut(id) else {
            return Ok(None);
        };
        let all = crate::pool::presence::merged(entry.info(), &info, merge);
        let bytes = crate::pool::presence::info_bytes(&all);
        if bytes > max {
            return Err(bytes);
        }
        entry.more().info = all;
        entry.tidy();
        Ok(Some(entry.info().clone()))
    }

    /// Queues `delivery` for every local client on `route`.
    pub fn deliver(&self, route: &Route, delivery: &Delivery) -> Delivered {
        if let Delivery::Publication(p) = delivery {
            return self.deliver(route, &Delivery::Frame(p.frame(&[])));
        }
        let mut out = Delivered::default();
        let mut dirty = Vec::new();
        match route {
            Route::Client(id) => {
                if let Some(h) = self.handle(id) {
                    out.push(&h, delivery, &mut dirty);
                }
            }
            Route::Uid(uid) => {
                let handles: Vec<ClientHandle> = {
                    let s = self.read();
                    s.uids
                        .get(uid.as_str())
                        .into_iter()
                        .flatten()
                        .filter_map(|id| s.clients.get(id).map(|e| e.handle.clone()))
                        .collect()
                };
                out.push_all(&handles, delivery, &mut dirty);
            }
            Route::Channels(chs) if chs.len() == 1 => {
                if let Some(snap) = self.channel_snapshot(&chs[0]) {
                    out.push_all(&snap, delivery, &mut dirty);
                }
            }
            Route::Channels(chs) => {
                let mut seen = HashSet::new();
                for ch in chs {
                    if let Some(snap) = self.channel_snapshot(ch) {
                        for h in snap.iter() {
                            if seen.insert(h.id_arc().clone()) {
                                out.push(h, delivery, &mut dirty);
                            }
                        }
                    }
                }
            }
            Route::All => out.push_all(&self.everyone(), delivery, &mut dirty),
        }
        self.flush.add(dirty);
        out
    }

    /// Delivers to the local members of `channel` that are in none of `except` (a cluster
    /// node receives a multi-channel send once per channel and must reach each member once).
    pub fn deliver_channel_except(
        &self,
        channel: &str,
        except: &[String],
        delivery: &Delivery,
    ) -> Delivered {
        if except.is_empty() {
            return self.deliver(&Route::Channels(vec![channel.to_string()]), delivery);
        }
        let mut out = Delivered::default();
        let Some(snap) = self.channel_snapshot(channel) else {
            return out;
        };
        let mut dirty = Vec::new();
        for h in snap.iter().filter(|h| !self.in_any(h.id(), except)) {
            out.push(h, delivery, &mut dirty);
        }
        self.flush.add(dirty);
        out
    }

    fn channel_snapshot(&self, channel: &str) -> Option<Snapshot> {
        if let Some(ch) = self.read().channels.get(channel) {
            if let Some(snap) = &ch.snapshot {
                return Some(snap.clone());
            }
        }
        let mut s = self.write();
        let ch = s.channels.get_mut(channel)?;
        Some(
            ch.snapshot
                .get_or_insert_with(|| ch.members.values().cloned().collect())
                .clone(),
        )
    }

    fn everyone(&self) -> Snapshot {
        if let Some(snap) = &self.read().everyone {
            return snap.clone();
        }
        let mut s = self.write();
        let snap: Snapshot = s.clients.values().map(|e| e.handle.clone()).collect();
        s.everyone = Some(snap.clone());
        snap
    }

    /// Every local client with its uid, channels and info (to rebuild a cluster's view).
    pub fn entries(&self) -> Vec<(String, Option<String>, Vec<String>, Info)> {
        let s = self.read();
        s.clients
            .values()
            .map(|e| {
                (
                    e.handle.id().to_string(),
                    e.uid().map(String::from),
                    e.channels().cloned().collect(),
                    e.info().clone(),
                )
            })
            .collect()
    }

    /// Local members of a channel.
    pub fn channel_len(&self, channel: &str) -> usize {
        self.read()
            .channels
            .get(channel)
            .map_or(0, |c| c.members.len())
    }

    /// Channels with at least one local member.
    pub fn channel_count(&self) -> usize {
        self.read().channels.len()
    }

    /// Is this local client in any of `channels`?
    pub fn in_any(&self, id: &str, channels: &[String]) -> bool {
        let s = self.read();
        s.clients
            .get(id)
            .is_some_and(|e| channels.iter().any(|c| e.in_channel(c)))
    }

    /// Every local client's handle.
    pub fn handles(&self) -> Vec<ClientHandle> {
        self.everyone().to_vec()
    }

    /// Number of local clients.
    pub fn len(&self) -> usize {
        self.read().clients.len()
    }

    /// True when no client is connected here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Answers a presence query about the clients of this node.
    pub fn answer(&self, query: &Query) -> Answer {
        let s = self.read();
        let sorted = |it: &mut dyn Iterator<Item = String>| {
            let mut v: Vec<String> = it.collect();
            v.sort_unstable();
            v.dedup();
            Answer::Ids(v)
        };
        let members = |ch: &str| s.channels.get(ch).map(|c| &c.members);
        match query {
            Query::IsOnline(id) => Answer::Bool(s.clients.contains_key(id)),
            Query::IsUidOnline(uid) => Answer::Bool(s.uids.contains_key(uid.as_str())),
            Query::UidByClientId(id) => Answer::Uid(
                s.clients
                    .get(id.as_str())
                    .and_then(|e| e.uid().map(String::from)),
            ),
            Query::ClientIdsByUid(uid) => sorted(
                &mut s
                    .uids
                    .get(uid.as_str())
                    .into_iter()
                    .flatten()
                    .map(|id| id.to_string()),
            ),
            Query::ClientIdsByChannel(ch) => sorted(
                &mut members(ch)
                    .into_iter()
                    .flat_map(|m| m.keys())
                    .map(|id| id.to_string()),
            ),
            Query::UidsByChannel(ch) => sorted(&mut channel_uids(&s, ch).into_iter()),
            Query::ClientCount => Answer::Count(s.clients.len()),
            Query::ChannelClientCount(ch) => Answer::Count(members(ch).map_or(0, |m| m.len())),
            Query::ChannelUidCount(ch) => Answer::Count(channel_uids(&s, ch).len()),
            Query::AllUids => sorted(&mut s.uids.keys().cloned()),
            Query::AllChannels => sorted(&mut s.channels.keys().cloned()),
            Query::GetInfo(id) => {
                Answer::Info(s.clients.get(id.as_str()).map(|e| e.info().clone()))
            }
        }
    }
}

fn channel_uids(s: &State, channel: &str) -> HashSet<String> {
    s.channels
        .get(channel)
        .into_iter()
        .flat_map(|c| c.members.keys())
        .filter_map(|id| s.clients.get(id).and_then(|e| e.uid().map(String::from)))
        .collect()
}

fn leave(s: &mut State, id: &str, channel: &str) {
    if let Some(ch) = s.channels.get_mut(channel) {
        ch.members.remove(id);
        ch.snapshot = None;
        if ch.members.is_empty() {
            s.channels.remove(channel);
        }
    }
}

fn unbind(s: &mut State, id: &str, uid: &str) {
    if let Some(ids) = s.uids.get_mut(uid) {
        ids.remove(id);
        if ids.is_empty() {
            s.uids.remove(uid);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::config::SlowPolicy;
    use crate::transport::frame::Frame;

    fn client(r: &Registry, id: &str) -> ClientHandle {
        let h = ClientHandle::new(id.into(), 8, SlowPolicy::Drop, Default::default());
        assert!(r.insert(h.clone()));
        h
    }

    #[test]
    fn multi_channel_broadcast_reaches_each_member_once() {
        let r = Registry::default();
        let a = client(&r, "a");
        client(&r, "b");
        r.join("a", "x");
        r.join("a", "y");
        r.join("b", "y");
        let route = Route::Channels(vec!["x".into(), "y".into()]);
        let d = r.deliver(&route, &Delivery::Frame(Frame::text("hi")));
        assert_eq!(d.queued, 2);
        r.remove("b");
        assert_eq!(
            r.answer(&Query::ChannelClientCount("y".into())),
            Answer::Count(1)
        );
        assert_eq!(a.dropped(), 0);
    }

    #[test]
    fn rebinding_moves_the_uid() {
        let r = Registry::default();
        client(&r, "a");
        assert_eq!(r.bind_uid("a", "u1"), Ok(None));
        assert_eq!(r.bind_uid("a", "u2"), Ok(Some("u1".into())));
        assert_eq!(
            r.answer(&Query::IsUidOnline("u1".into())),
            Answer::Bool(false)
        );
        assert_eq!(r.answer(&Query::AllUids), Answer::Ids(vec!["u2".into()]));
        assert!(!r.insert(ClientHandle::new(
            "a".into(),
            1,
            SlowPolicy::Drop,
            Default::default()
        )));
    }
}
