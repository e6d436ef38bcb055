//! A connection's token expiry: a deadline the connection's alarm is also set for, moved by
//! `refresh`, and checked before every command.

use std::num::NonZeroU64;
use std::time::Duration;

use crate::base::auth::TOKEN_EXPIRED;
use crate::base::limits::cause;
use crate::base::stamp::Stamp;
use crate::pool::client::ClientHandle;
use crate::pool::hub::Hub;
use crate::transport::close::Close;

/// When the connection's token expires, as the connection last saw it.
pub(super) struct Expiry {
    /// `exp` of the grant (seconds since the Unix epoch; 0 is kept as 1, as long past);
    /// `None`: never.
    exp: Option<NonZeroU64>,
}

impl Expiry {
    pub(super) fn of(client: &ClientHandle) -> Self {
        Self { exp: exp(client) }
    }

    /// The grant's expiry moved (`refresh`); takes the new one.
    pub(super) fn changed(&mut self, client: &ClientHandle) -> bool {
        let now = exp(client);
        std::mem::replace(&mut self.exp, now) != now
    }

    /// The token has expired (the clock has reached `exp`).
    pub(super) fn passed(&self) -> bool {
        self.exp
            .is_some_and(|exp| std::time::SystemTime::now() >= unix_time(exp.get()))
    }

    /// `at`, or the expiry if it comes first.
    pub(super) fn first(&self, at: Stamp) -> Stamp {
        match self.exp {
            None => at,
            Some(exp) => {
                let left = unix_time(exp.get())
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                at.min(Stamp::after(left))
            }
        }
    }
}

fn exp(client: &ClientHandle) -> Option<NonZeroU64> {
    client
        .grant()
        .expires_at
        .map(|e| NonZeroU64::new(e).unwrap_or(NonZeroU64::MIN))
}

fn unix_time(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + Duration::from_secs(secs)
}

/// Counts an expiry and says how the connection closes for it.
pub(super) fn expired(hub: &Hub, id: &str) -> Close {
    hub.refusals().note(cause::EXPIRED, id);
    Close::new(
        TOKEN_EXPIRED,
        "token expired: send `refresh` with a fresh token before `exp`",
    )
}
