//! The third layer: the wire protocol's shapes (`docs/PROTOCOL.md`). [`protocol`]: statuses,
//! the JSON request/reply forms and their SendMsg forms, [`Command`](protocol::Command) and
//! [`Reply`](protocol::Reply); [`publication`]: a channel message and its positions in the
//! channels' history. The names and numbers of the built-in commands are the commands layer's
//! (`crate::commands::BUILTINS`), handed to the parsers here.

pub mod protocol;
pub mod publication;
