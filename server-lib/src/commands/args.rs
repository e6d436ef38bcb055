//! Reading a command's arguments, and the replies for what goes wrong: shared by every
//! built-in.

use serde_json::Value;

use crate::pool::presence::Info;
use crate::wire::protocol::{status, Reply};
use crate::wire::publication::Since;

/// What a built-in answers: its reply, or the error reply (both are sent the same way).
pub(crate) type Outcome = Result<Reply, Reply>;

/// A non-empty string argument, if present.
pub(crate) fn opt_str<'a>(data: &'a Value, key: &str) -> Option<&'a str> {
    data.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

/// "Missing argument".
pub(crate) fn missing(key: &str, what: &str) -> Reply {
    Reply::error(
        status::BAD_REQUEST,
        format!("missing argument `{key}` ({what})"),
    )
}

/// A non-empty string argument.
pub(crate) fn str_arg<'a>(data: &'a Value, key: &str) -> Result<&'a str, Reply> {
    opt_str(data, key).ok_or_else(|| missing(key, "a non-empty string"))
}

/// `channel`: a name, or a non-empty array of names; each once, in the order first named (a
/// name listed twice would be published twice).
pub(crate) fn channels_arg(data: &Value) -> Result<Vec<String>, Reply> {
    let bad = || missing("channel", "a channel name or a non-empty array of them");
    let channels: Vec<String> = match data.get("channel") {
        Some(Value::String(s)) if !s.is_empty() => vec![s.clone()],
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| {
                v.as_str()
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(bad)
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(bad()),
    };
    Ok(dedup(channels))
}

/// Each channel once, in the order first named.
pub(crate) fn dedup(mut channels: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    channels.retain(|c| seen.insert(c.clone()));
    channels
}

/// `join`'s optional `since`: `{"epoch": string, "offset": integer}`.
pub(crate) fn since_arg(data: &Value) -> Result<Option<Since>, Reply> {
    match data.get("since") {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone()).map(Some).map_err(|e| {
            Reply::error(
                status::BAD_REQUEST,
                format!("`since` must be {{\"epoch\": string, \"offset\": integer}}: {e}"),
            )
        }),
    }
}

/// `info`: an object of strings.
pub(crate) fn info_arg(data: &Value) -> Result<Info, Reply> {
    match data.get("info") {
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| {
            Reply::error(
                status::BAD_REQUEST,
                format!("`info` must be an object of strings: {e}"),
            )
        }),
        None => Err(missing("info", "an object of strings")),
    }
}

/// The reply to a hub error: a limit is the caller's to fix (429, 413), anything else is ours
/// (a cluster backend failing: 500).
pub(crate) fn hub_error(e: crate::Error) -> Reply {
    match e {
        crate::Error::LimitReached(m) => Reply::error(status::TOO_MANY, m),
        crate::Error::TooLarge(m) => Reply::error(status::TOO_LARGE, m),
        crate::Error::NotOnline(id) => offline(&id),
        e => Reply::error(status::INTERNAL, e.to_string()),
    }
}

/// "Not online".
pub(crate) fn offline(id: &str) -> Reply {
    Reply::error(status::NOT_FOUND, format!("client {id:?} is not online"))
}

/// `Ok` with `value` when the client was found, 404 otherwise.
pub(crate) fn done(ok: bool, id: &str, value: Value) -> Outcome {
    if ok {
        Ok(Reply::ok(value))
    } else {
        Err(offline(id))
    }
}

/// "Unknown command".
pub(crate) fn unknown(cmd: &str) -> Reply {
    Reply::error(
        status::NOT_FOUND,
        format!("unknown cmd {cmd:?}: see docs/PROTOCOL.md for the built-in commands"),
    )
}
