//! A connection's points in time, kept small: milliseconds since the process first asked, in 8
//! bytes where tokio's `Instant` takes 16 (and `Option<Instant>` 24). A connection keeps a few
//! (last heard from, next ping, stalled since, its rate limit's last refill, its alarm);
//! millisecond resolution is plenty for timeouts counted in seconds.

use std::num::NonZeroU64;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::time::Instant;

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// A point in time (`Option<Stamp>` is 8 bytes too).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Stamp(NonZeroU64);

impl Stamp {
    /// Now.
    pub(crate) fn now() -> Self {
        Self::of(Instant::now())
    }

    /// `d` from now.
    pub(crate) fn after(d: Duration) -> Self {
        Self::of(Instant::now() + d)
    }

    /// The stamp of `at` (rounded down to the millisecond).
    pub(crate) fn of(at: Instant) -> Self {
        let ms = at.saturating_duration_since(epoch()).as_millis() as u64;
        Self(NonZeroU64::new(ms + 1).expect("ms + 1 > 0"))
    }

    /// The stamp as a number (never 0), to keep in an atomic.
    pub(crate) fn get(self) -> u64 {
        self.0.get()
    }

    /// As an `Instant`.
    pub(crate) fn instant(self) -> Instant {
        epoch() + Duration::from_millis(self.0.get() - 1)
    }

    /// Time from `earlier` to this (zero if `earlier` is later).
    pub(crate) fn since(self, earlier: Stamp) -> Duration {
        Duration::from_millis(self.0.get().saturating_sub(earlier.0.get()))
    }

    /// Time since.
    pub(crate) fn elapsed(self) -> Duration {
        self.instant().elapsed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_keep_milliseconds_and_order() {
        let a = Stamp::now();
        let b = Stamp::after(Duration::from_secs(30));
        assert!(a < b);
        let gap = b.instant() - a.instant();
        assert!(gap >= Duration::from_millis(29_999) && gap <= Duration::from_millis(30_001));
        assert_eq!(std::mem::size_of::<Option<Stamp>>(), 8);
    }
}
