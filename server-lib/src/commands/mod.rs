//! The fifth layer: the built-in commands (`docs/PROTOCOL.md`), declared once each in
//! [`BUILTINS`] with their wire name and number, the rights they need and their handler; the
//! routing of protobuf application frames; and [`app`]: the application's handlers,
//! middleware and callbacks, which run before the built-ins.
//!
//! A built-in runs after the middleware, when the application has no handler of the same
//! name; the server API runs the same table as a trusted backend.
//!
//! - [`rights`]: the check every command passes first; `call`: one call of a built-in.
//! - `membership`, `send`, `info`, `queries`, `session`: the handlers, by what they touch.
//! - `args`: reading arguments, and the error replies.

pub mod app;
mod args;
mod call;
mod info;
mod membership;
mod queries;
pub(crate) mod rights;
mod send;
mod session;

use futures_util::future::BoxFuture;

use crate::pool::client::ClientHandle;
use crate::pool::hub::Hub;
use crate::wire::protocol::{status, Command, Names, Reply};
use args::Outcome;
use call::Call;
use rights::{Caller, Channels, Rights};

type Handler = for<'a> fn(&'a Call<'a>) -> BoxFuture<'a, Outcome>;

/// A built-in command: its name (JSON `cmd`), its number (SendMsg `cmd`), what it needs of its
/// caller, and its handler. [`BUILTINS`] lists them all; the protocol document's command table
/// is checked against it by a test.
pub struct Builtin {
    /// The JSON `cmd`.
    pub name: &'static str,
    /// The SendMsg `cmd` (in the reserved range 1000–1099).
    pub number: i32,
    pub(crate) rights: Rights,
    pub(crate) run: Handler,
}

impl std::fmt::Debug for Builtin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builtin")
            .field("name", &self.name)
            .field("number", &self.number)
            .finish_non_exhaustive()
    }
}

const fn b(name: &'static str, number: i32, rights: Rights, run: Handler) -> Builtin {
    Builtin {
        name,
        number,
        rights,
        run,
    }
}

/// Every built-in command, once.
pub const BUILTINS: &[Builtin] = &[
    b(
        "join",
        1001,
        Rights::ON_CLIENT.channels(Channels::One),
        membership::join,
    ),
    b(
        "leave",
        1002,
        Rights::ON_CLIENT.channels(Channels::Leave),
        membership::leave,
    ),
    b(
        "bind_uid",
        1003,
        Rights::ON_CLIENT.own_uid(),
        membership::bind_uid,
    ),
    b(
        "unbind_uid",
        1004,
        Rights::ON_CLIENT.own_uid(),
        membership::unbind_uid,
    ),
    b("send_to_client", 1005, Rights::OPEN, send::to_client),
    b("send_to_uid", 1006, Rights::OPEN, send::to_uid),
    b(
        "send_to_channel",
        1007,
        Rights::OPEN.channels(Channels::Send),
        send::to_channel,
    ),
    b("send_to_all", 1008, Rights::EVERYONE, send::to_all),
    b("set_info", 1009, Rights::ON_CLIENT, info::set_info),
    b("update_info", 1010, Rights::ON_CLIENT, info::update_info),
    b("get_info", 1011, Rights::ON_CLIENT, info::get_info),
    b("is_online", 1012, Rights::OPEN, queries::is_online),
    b("is_uid_online", 1013, Rights::OPEN, queries::is_uid_online),
    b(
        "uid_by_client_id",
        1014,
        Rights::ON_CLIENT,
        queries::uid_by_client_id,
    ),
    b(
        "client_ids_by_uid",
        1015,
        Rights::OPEN,
        queries::client_ids_by_uid,
    ),
    b(
        "client_ids_by_channel",
        1016,
        Rights::OPEN.channels(Channels::One),
        queries::client_ids_by_channel,
    ),
    b(
        "uids_by_channel",
        1017,
        Rights::OPEN.channels(Channels::One),
        queries::uids_by_channel,
    ),
    b("client_count", 1018, Rights::OPEN, queries::client_count),
    b(
        "channel_client_count",
        1019,
        Rights::OPEN.channels(Channels::One),
        queries::channel_client_count,
    ),
    b(
        "channel_uid_count",
        1020,
        Rights::OPEN.channels(Channels::One),
        queries::channel_uid_count,
    ),
    b("all_uids", 1021, Rights::EVERYONE, queries::all_uids),
    b(
        "all_channels",
        1022,
        Rights::EVERYONE,
        queries::all_channels,
    ),
    b(
        "close_client",
        1023,
        Rights::ON_CLIENT,
        session::close_client,
    ),
    b("ping", 1024, Rights::OPEN, session::ping),
    b("refresh", 1025, Rights::OPEN, session::refresh),
    b(
        "history",
        1026,
        Rights::OPEN.channels(Channels::One),
        session::history,
    ),
];

/// The built-in of this name.
pub(crate) fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// The number of a built-in command name.
pub fn builtin_number(name: &str) -> Option<i32> {
    builtin(name).map(|b| b.number)
}

/// The name of a built-in command number.
pub fn builtin_name(number: i32) -> Option<&'static str> {
    BUILTINS.iter().find(|b| b.number == number).map(|b| b.name)
}

/// The table, for the wire parsers.
pub(crate) struct Table;

impl Names for Table {
    fn number(&self, name: &str) -> Option<i32> {
        builtin_number(name)
    }
    fn name(&self, number: i32) -> Option<&'static str> {
        builtin_name(number)
    }
}

/// A command's label in metrics: its built-in name, or `other` (application commands are not
/// labelled by name, so a client cannot grow the label set).
pub(crate) fn label(name: &str) -> &'static str {
    builtin(name).map_or("other", |b| b.name)
}

/// Runs the built-in command `command` for a client, routes a protobuf application frame, or
/// answers "unknown command".
pub(crate) async fn for_client(
    hub: &Hub,
    client: &ClientHandle,
    command: &Command,
    has_message_hooks: bool,
) -> Reply {
    let call = Call {
        hub,
        caller: Caller::Client(client),
        command,
        has_message_hooks,
    };
    execute(&call).await.unwrap_or_else(|e| e)
}

/// Runs a built-in command for the server API.
pub(crate) async fn for_api(hub: &Hub, command: &Command) -> Reply {
    if command.name == "refresh" {
        return Reply::error(
            status::BAD_REQUEST,
            "`refresh` renews a connection's own token; the server API has none",
        );
    }
    let call = Call {
        hub,
        caller: Caller::Api,
        command,
        has_message_hooks: false,
    };
    execute(&call).await.unwrap_or_else(|e| e)
}

async fn execute(call: &Call<'_>) -> Outcome {
    let found = builtin(&call.command.name);
    rights::check(
        call.hub,
        call.caller,
        call.command,
        found.map(|b| &b.rights),
    )?;
    match (found, call.caller) {
        (Some(b), _) => (b.run)(call).await,
        (None, Caller::Client(client)) => send::route_or_unknown(call, client).await,
        (None, Caller::Api) => Err(args::unknown(&call.command.name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::RESERVED;

    #[test]
    fn builtin_numbers_are_reserved_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for b in BUILTINS {
            assert!(RESERVED.contains(&b.number), "{}", b.name);
            assert!(seen.insert(b.number), "{} reuses {}", b.name, b.number);
            assert_eq!(builtin_name(b.number), Some(b.name));
            assert_eq!(builtin_number(b.name), Some(b.number));
        }
        assert_eq!(BUILTINS.len(), 26);
    }

    /// docs/PROTOCOL.md's command table is the contract: every row names a built-in of this
    /// table with its number, and every built-in has a row.
    #[test]
    fn the_protocol_document_lists_exactly_these_commands() {
        let doc = include_str!("../../../docs/PROTOCOL.md");
        let start = doc
            .find("## Built-in commands")
            .expect("PROTOCOL.md has a Built-in commands section");
        let section = &doc[start..];
        let end = section[3..].find("\n## ").map_or(section.len(), |i| i + 3);
        let mut documented = std::collections::BTreeMap::new();
        for line in section[..end].lines() {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            if cells.len() > 3 {
                let name = cells[1].trim_matches('`');
                if let Ok(number) = cells[2].parse::<i32>() {
                    documented.insert(name.to_string(), number);
                }
            }
        }
        let declared: std::collections::BTreeMap<String, i32> = BUILTINS
            .iter()
            .map(|b| (b.name.to_string(), b.number))
            .collect();
        assert_eq!(
            documented, declared,
            "PROTOCOL.md's table and BUILTINS differ"
        );
    }
}
