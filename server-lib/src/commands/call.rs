//! One call of a built-in, as every handler receives it.

use super::rights::Caller;
use crate::pool::hub::Hub;
use crate::wire::protocol::Command;

/// One call of a built-in: who asks, what, and of which pool.
pub(crate) struct Call<'a> {
    /// The pool.
    pub hub: &'a Hub,
    /// Who runs it.
    pub caller: Caller<'a>,
    /// The request.
    pub command: &'a Command,
    /// The application has `on_message` callbacks (an unrouted application frame is theirs).
    pub has_message_hooks: bool,
}
