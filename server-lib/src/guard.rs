//! The one place where built-in commands are checked against what the calling client is
//! allowed ([`crate::auth::Grant`], `client_rights`) and against the per-client limits. It runs
//! after the application's middleware, before the built-in itself (and before a protobuf
//! application frame is routed); an application that handles a command itself decides its own
//! rules.

use serde_json::Value;

use crate::commands::Caller;
use crate::config::ClientRights;
use crate::hub::Hub;
use crate::limits::{cause, check_channel, check_id};
use crate::protocol::{is_addressed, status, Command, Reply};

/// Commands that act on the client named by `client_id` (the caller by default).
const ACTS_ON_CLIENT: &[&str] = &[
    "join",
    "leave",
    "bind_uid",
    "unbind_uid",
    "set_info",
    "update_info",
    "get_info",
    "uid_by_client_id",
    "close_client",
];

/// Presence queries about one channel.
const CHANNEL_QUERIES: &[&str] = &[
    "client_ids_by_channel",
    "uids_by_channel",
    "channel_client_count",
    "channel_uid_count",
    "history",
];

/// Commands that reach or list every client: with authentication, for admins only.
const EVERYONE: &[&str] = &["send_to_all", "all_uids", "all_channels"];

/// `Ok` when the caller may run `command` with these arguments; otherwise the reply that
/// says why not (403, 400 or 413), already counted in the hub's refusals. Every channel name
/// a command carries is checked here (length, control characters), on every path: JSON,
/// SendMsg, the server API.
#[allow(clippy::result_large_err)]
pub(crate) fn check(hub: &Hub, caller: Caller<'_>, command: &Command) -> Result<(), Reply> {
    let cfg = hub.config();
    let grant = caller.grant();
    let me = caller.id().unwrap_or("api");
    let data = &command.data;
    let cmd = command.name.as_str();
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
    let on_self = caller.id() == Some(target);
    if ACTS_ON_CLIENT.contains(&cmd) && !on_self && !admin {
        return refuse(
            cause::RIGHTS,
            status::FORBIDDEN,
            format!("`{cmd}` on another client ({target:?}) needs an admin token, or `--client-rights all` on a trusted network"),
        );
    }
    let authenticated = grant.authenticated() && !grant.admin;
    let channels: Vec<&str> = match (cmd, data.get("channel")) {
        ("join" | "leave" | "send_to_channel", Some(Value::String(c))) => vec![c.as_str()],
        ("send_to_channel", Some(Value::Array(cs))) => {
            cs.iter().filter_map(Value::as_str).collect()
        }
        (q, Some(Value::String(c))) if CHANNEL_QUERIES.contains(&q) => vec![c.as_str()],
        // Not a string where a channel name goes: the command itself says what it wants.
        _ => match &command.sendmsg {
            Some(m) if is_addressed(m) && cmd != "join" => {
                m.channel.iter().map(String::as_str).collect()
            }
            _ => Vec::new(),
        },
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
    if authenticated && cmd != "leave" {
        if let Some(ch) = channels.iter().find(|c| !grant.channels.allows(c)) {
            return refuse(
                cause::RIGHTS,
                status::FORBIDDEN,
                format!("channel {ch:?} is not in this connection's token"),
            );
        }
        if EVERYONE.contains(&cmd) {
            return refuse(
                cause::RIGHTS,
                status::FORBIDDEN,
                format!("`{cmd}` needs an admin token"),
            );
        }
        if matches!(cmd, "bind_uid" | "unbind_uid") && text("uid") != grant.uid.as_deref() {
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
    if cmd == "bind_uid" {
        if let Some(uid) = text("uid") {
            check_id("uid", uid).or_else(|m| refuse(cause::INVALID, status::BAD_REQUEST, m))?;
        }
    }
    // Limits on what a client holds (channels, info bytes) are the hub's: checked on the
    // node that has the client, whoever asks (`Hub::join`, `Hub::set_info`).
    Ok(())
}
