//! The vocabulary shared by the local registry and a cluster backend: where a frame goes
//! ([`Route`]), what changed ([`PresenceEvent`]), and what can be asked ([`Query`], [`Answer`]).

use std::collections::BTreeMap;

use crate::transport::close::Close;
use crate::transport::frame::Frame;

/// Per-client information: a string map (GatewayWorker's `$_SESSION`-like info).
pub type Info = BTreeMap<String, String>;

/// Where a frame is delivered.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Route {
    /// One client, by id.
    Client(String),
    /// Every client bound to a uid.
    Uid(String),
    /// Every member of any of these channels, each once.
    Channels(Vec<String>),
    /// Every client.
    All,
}

/// What travels along a [`Route`].
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A data frame.
    Frame(Frame),
    /// A request to close the matching clients.
    Close(Close),
    /// A channel message whose frame is built once its positions in the channels' history are
    /// known (with history off, at once, without positions).
    Publication(std::sync::Arc<crate::wire::publication::Publication>),
}

/// A change of presence, applied to the local registry and mirrored by a cluster backend.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum PresenceEvent {
    /// A client connected.
    Connected {
        /// Client id.
        client_id: String,
    },
    /// A client disconnected (its uid binding, channels and info go with it).
    Disconnected {
        /// Client id.
        client_id: String,
    },
    /// A client joined a channel.
    Joined {
        /// Client id.
        client_id: String,
        /// Channel name.
        channel: String,
    },
    /// A client left a channel.
    Left {
        /// Client id.
        client_id: String,
        /// Channel name.
        channel: String,
    },
    /// A client was bound to a uid (replacing any previous binding).
    Bound {
        /// Client id.
        client_id: String,
        /// The uid.
        uid: String,
    },
    /// A client's uid binding was removed.
    Unbound {
        /// Client id.
        client_id: String,
        /// The uid it had.
        uid: String,
    },
    /// A client's info changed; this is the whole new info.
    InfoChanged {
        /// Client id.
        client_id: String,
        /// The complete info after the change.
        info: Info,
    },
}

/// A presence question, answered by the local registry or, in cluster mode, for all nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Query {
    /// Is this client connected? → [`Answer::Bool`]
    IsOnline(String),
    /// Is any client bound to this uid? → [`Answer::Bool`]
    IsUidOnline(String),
    /// The uid a client is bound to. → [`Answer::Uid`]
    UidByClientId(String),
    /// Clients bound to a uid. → [`Answer::Ids`]
    ClientIdsByUid(String),
    /// Clients in a channel. → [`Answer::Ids`]
    ClientIdsByChannel(String),
    /// Uids of the clients in a channel. → [`Answer::Ids`]
    UidsByChannel(String),
    /// Number of connected clients. → [`Answer::Count`]
    ClientCount,
    /// Number of clients in a channel. → [`Answer::Count`]
    ChannelClientCount(String),
    /// Number of distinct uids in a channel. → [`Answer::Count`]
    ChannelUidCount(String),
    /// Every bound uid. → [`Answer::Ids`]
    AllUids,
    /// Every channel with at least one member. → [`Answer::Ids`]
    AllChannels,
    /// A client's info. → [`Answer::Info`]
    GetInfo(String),
}

/// The answer to a [`Query`]. Lists are sorted, so answers compare and print stably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A yes/no answer.
    Bool(bool),
    /// A count.
    Count(usize),
    /// A sorted list of ids, uids or channels.
    Ids(Vec<String>),
    /// A uid, if any.
    Uid(Option<String>),
    /// A client's info, if the client is online.
    Info(Option<Info>),
}

/// Bytes an info holds: keys and values.
pub(crate) fn info_bytes(info: &Info) -> usize {
    info.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// `new` replacing `old` (set_info), or merged into it (update_info).
pub(crate) fn merged(old: &Info, new: &Info, merge: bool) -> Info {
    if merge {
        let mut all = old.clone();
        all.extend(new.clone());
        all
    } else {
        new.clone()
    }
}
