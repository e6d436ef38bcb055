//! The one place where a command is checked against what its caller is allowed
//! ([`Grant`], `client_rights`), against the channel cap of a send, and against the name
//! rules. It runs after the application's middleware, before the built-in itself (and before a
//! protobuf application frame is routed); an application that handles a command itself decides
//! its own rules. What each built-in needs is declared beside it, in [`super::BUILTINS`].
//! Limits on what a client holds (channels, info bytes) are the pool's: `Hub::join` and
//! `Hub::set_info` check them on the node that has the client, whoever asks.

use std::sync::Arc;

use serde_json::Value;

use crate::base::auth::Grant;
use crate::base::config::ClientRights;
use crate::base::limits::{cause, check_channel, check_id};
use crate::pool::client::ClientHandle;
use crate::pool::hub::Hub;
use crate::wire::protocol::{is_addressed, status, Command, Reply};

/// Who runs a command.
#[derive(Clone, Copy)]
pub(crate) enum Caller<'a> {
    /// A connected client: it acts on itself unless it has rights.
    Client(&'a ClientHandle),
    /// The server API: a trusted backend holding the API key. It acts on the client named by
    /// `client_id` (there is no "itself"), sends as the server (`from` is null), and is
    /// admin for every rights check; the per-client limits still apply to the clients it
    /// changes.
    Api,
}

impl<'a> Caller<'a> {
    /// The caller's own client id (none for the API).
    pub(crate) fn id(&self) -> Option<&'a str> {
        match self {
            Caller::Client(c) => Some(c.id()),
            Caller::Api => None,
        }
    }

    /// What the caller may do.
    pub(crate) fn grant(&self) -> Arc<Grant> {
        match self {
            Caller::Client(c) => c.grant(),
            Caller::Api => Arc::new(Grant::admin()),
        }
    }
}

/// Where a command names channels, and whether the token must allow them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channels {
    /// It names none.
    None,
    /// `channel`: one name, which the token must allow.
    One,
    /// `channel`: one name, which the token need not allow (leaving is always allowed).
    Leave,
    /// `channel`: a name or an array of them (a send), each allowed by the token, at most
    /// `max_channels_per_send`.
    Send,
}

/// What a built-in needs of its caller.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rights {
    /// It acts on the client named by `client_id` (the caller by default): another client
    /// needs an admin token, or `--client-rights all`.
    pub on_client: bool,
    /// Its channel argument.
    pub channels: Channels,
    /// It reaches or lists every client: with authentication, for admins only.
    pub everyone: bool,
    /// Its `uid` argument must be the token's uid.
    pub own_uid: bool,
}

impl Rights {
    /// Anyone may run it as it is.
    pub(crate) const OPEN: Rights = Rights {
        on_client: false,
        channels: Channels::None,
        everyone: false,
        own_uid: false,
    };
    /// It acts on a client (the caller, or another with rights).
    pub(crate) const ON_CLIENT: Rights = Rights {
        on_client: true,
        ..Rights::OPEN
    };
    /// It reaches or lists everyone.
    pub(crate) const EVERYONE: Rights = Rights {
        everyone: true,
        ..Rights::OPEN
    };

    /// With this channel argument.
    pub(crate) const fn channels(self, channels: Channels) -> Rights {
        Rights { channels, ..self }
    }

    /// With a `uid` that must be the token's.
    pub(crate) const fn own_uid(self) -> Rights {
        Rights {
            own_uid: true,
            ..self
        }
    }
}

/// `Ok` when the caller may run `command` (a built-in with `rights`, or with `None` an
/// application frame routed by the server) with these arguments; otherwise the reply that
/// says why not (403, 400 or 413), already counted in the hub's refusals. Every channel name
/// a command carries is checked here (length, control characters), on every path: JSON,
/// SendMsg, the server API.
#[allow(clippy::result_large_err)]
pub(crate) fn check(
    hub: &Hub,
    caller: Caller<'_>,
    command: &Command,
    rights: Option<&Rights>,
) -> Result<(), Reply> {
    let cfg = hub.config();
    let grant = caller.grant();
    let me = caller.id().unwrap_or("api");
    let data = &command.data;
    let cmd = command.name.as_str();
    let rights = rights.copied().unwrap_or(Rights::OPEN);
    let admin = grant.admin || cfg.client_rights == ClientRights::All;
    let refuse = |c: &'static str, st: i32, msg: String| {
        hub.refusals().note(c, &format!("{me}: {msg}"));
        Err(Reply::error(st, msg))
    };
    let text = |key: &str| {
        data.get(key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };

    let target = text("client_id").or(caller.id()).unwrap_or_default();
    if rights.on_client && caller.id() != Some(target) && !admin {
        return refuse(
            cause::RIGHTS,
            status::FORBIDDEN,
            format!("`{cmd}` on another client ({target:?}) needs an admin token, or `--client-rights all` on a trusted network"),
        );
    }
    let authenticated = grant.authenticated() && !grant.admin;
    // Not a string where a channel name goes: the command itself says what it wants.
    let channels: Vec<&str> = match (rights.channels, data.get("channel")) {
        (Channels::None, _) => match &command.sendmsg {
            Some(m) if is_addressed(m) => m.channel.iter().map(String::as_str).collect(),
            _ => Vec::new(),
        },
        (_, Some(Value::String(c))) => vec![c.as_str()],
        (Channels::Send, Some(Value::Array(cs))) => cs.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    if channels.len() > cfg.max_channels_per_send {
        return refuse(
            cause::FANOUT,
            status::TOO_LARGE,
            format!(
                "{} channels in one send; at most {} (--max-channels-per-send): send it in parts, or raise the limit",
                channels.len(),
                cfg.max_channels_per_send
            ),
        );
    }
    for ch in &channels {
        check_channel(ch).or_else(|m| refuse(cause::INVALID, status::BAD_REQUEST, m))?;
    }
    if authenticated {
        if rights.channels != Channels::Leave {
            if let Some(ch) = channels.iter().find(|c| !grant.channels.allows(c)) {
                return refuse(
                    cause::RIGHTS,
                    status::FORBIDDEN,
                    format!("channel {ch:?} is not in this connection's token"),
                );
            }
        }
        if rights.everyone {
            return refuse(
                cause::RIGHTS,
                status::FORBIDDEN,
                format!("`{cmd}` needs an admin token"),
            );
        }
        if rights.own_uid && text("uid") != grant.uid.as_deref() {
            return refuse(
                cause::RIGHTS,
                status::FORBIDDEN,
                format!(
                    "this connection's token binds it to uid {:?}",
                    grant.uid.as_deref().unwrap_or_default()
                ),
            );
        }
    }
    if rights.own_uid {
        if let Some(uid) = text("uid") {
            check_id("uid", uid).or_else(|m| refuse(cause::INVALID, status::BAD_REQUEST, m))?;
        }
    }
    Ok(())
}
