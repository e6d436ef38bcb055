//! Limits against abuse, and the record of what they refused: a per-client rate limit on
//! inbound frames, a per-IP connection count, and [`Refusals`], which counts every refusal by
//! cause and logs each cause once (then a summary at most once a minute), never once per frame.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::base::stamp::Stamp;

/// What the rate limit says about a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Within the limit.
    Pass,
    /// Over the limit for the first time in this episode: drop it and tell the client.
    Warn,
    /// Still over the limit: drop it silently.
    Drop,
    /// A whole burst's worth over the limit: close the connection (1008).
    Close,
}

/// A token bucket per connection: `rate` frames per second sustained, `burst` at once. Small
/// on purpose (it lives in every connection's task).
#[derive(Debug)]
pub(crate) struct RateLimit {
    tokens: f32,
    /// Refilled up to here (milliseconds: the fraction is carried to the next refill).
    last: Stamp,
    /// Frames dropped since the bucket was last full; [`CLOSING`] once a whole burst's worth
    /// went over and the connection must close (16 bytes in all, not 24).
    over: u32,
}

/// `RateLimit::over` once the connection must close.
const CLOSING: u32 = u32::MAX;

impl RateLimit {
    /// A full bucket.
    pub(crate) fn new(burst: u32) -> Self {
        Self {
            tokens: burst as f32,
            last: Stamp::now(),
            over: 0,
        }
    }

    /// The limit said [`Verdict::Close`]: the connection must end (1008).
    pub(crate) fn closing(&self) -> bool {
        self.over == CLOSING
    }

    /// Charges `n` frames (a frame read costs one; a send also costs one more per extra
    /// channel it publishes to). `rate` 0 means no limit.
    pub(crate) fn take(&mut self, n: u32, rate: u32, burst: u32) -> Verdict {
        if rate == 0 {
            return Verdict::Pass;
        }
        if self.over == CLOSING {
            return Verdict::Close;
        }
        let now = Stamp::now();
        let elapsed = now.since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate as f32).min(burst as f32);
        if self.tokens >= burst as f32 {
            self.over = 0;
        }
        if self.tokens >= n as f32 {
            self.tokens -= n as f32;
            return Verdict::Pass;
        }
        let first = self.over == 0;
        self.over = self.over.saturating_add(n);
        if self.over > burst {
            self.over = CLOSING;
            Verdict::Close
        } else if first {
            Verdict::Warn
        } else {
            Verdict::Drop
        }
    }
}

/// Open WebSocket connections per client IP.
#[derive(Debug, Default, Clone)]
pub(crate) struct PerIp(Arc<Mutex<HashMap<IpAddr, u32>>>);

/// One connection's place in [`PerIp`]; released on drop.
#[derive(Debug)]
pub(crate) struct IpSlot {
    map: PerIp,
    /// The address as IPv6 (an IPv4 one mapped): 16 bytes where an `IpAddr` takes 17, and 24
    /// in the slot a connection keeps.
    ip: Ipv6Addr,
}

impl PerIp {
    /// Takes a slot for `ip`, or `None` when it already has `max` (0: no limit).
    pub(crate) fn acquire(&self, ip: IpAddr, max: usize) -> Option<IpSlot> {
        // One key per client: an IPv4 client of a dual-stack listener (`::ffff:a.b.c.d`)
        // counts as that IPv4 address, and its slot releases the key it took.
        let ip = ip.to_canonical();
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map.entry(ip).or_insert(0);
        if max > 0 && *n as usize >= max {
            return None;
        }
        *n += 1;
        Some(IpSlot {
            map: self.clone(),
            ip: match ip {
                IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                IpAddr::V6(v6) => v6,
            },
        })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let ip = IpAddr::V6(self.ip).to_canonical();
        let mut map = self.map.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = map.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&ip);
            }
        }
    }
}

/// Causes of refusal, as counted in `/healthz` `refused` and named in the logs.
pub mod cause {
    /// A handshake without a valid token (HTTP 401).
    pub const AUTH: &str = "auth";
    /// A handshake asking for an id, uid or channel its token does not allow (HTTP 403).
    pub const HANDSHAKE_FORBIDDEN: &str = "handshake_forbidden";
    /// A request head or TLS handshake not complete within the handshake timeout.
    pub const HANDSHAKE_TIMEOUT: &str = "handshake_timeout";
    /// A failed TLS handshake.
    pub const TLS: &str = "tls";
    /// Too many connections from one IP (HTTP 429).
    pub const PER_IP: &str = "connections_per_ip";
    /// The server's connection limit (HTTP 503).
    pub const MAX_CONNECTIONS: &str = "max_connections";
    /// A command acting on another client without rights, or outside the token's channels (403).
    pub const RIGHTS: &str = "rights";
    /// A frame over the client's rate limit (dropped with a 429 reply).
    pub const RATE: &str = "rate_limit";
    /// A client closed for staying over its rate limit (1008).
    pub const RATE_CLOSE: &str = "rate_limit_close";
    /// A send naming more channels than `max_channels_per_send` (413).
    pub const FANOUT: &str = "channels_per_send";
    /// A join past the per-client channel limit (429).
    pub const CHANNELS: &str = "channels_per_client";
    /// An info over the size limit, or a bad id, uid or channel name (400/413).
    pub const INVALID: &str = "invalid_argument";
    /// A connection closed at its token's expiry (4401).
    pub const EXPIRED: &str = "token_expired";
    /// A request naming a foreign `Host` on a loopback server (HTTP 403: DNS rebinding).
    pub const HOST: &str = "foreign_host";
    /// A server API call without the right key (HTTP 401).
    pub const API_KEY: &str = "api_key";
}

/// How often a cause that keeps happening is summarized in the log.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug)]
struct Tally {
    total: u64,
    since_log: u64,
    logged_at: Instant,
}

/// Every refusal, counted by cause. The first of each cause is logged with its detail; after
/// that, one line per minute at most says how many more there were.
#[derive(Debug, Default)]
pub struct Refusals(Mutex<HashMap<&'static str, Tally>>);

impl Refusals {
    /// Counts one refusal of `cause` (one of [`cause`]) and logs it if due.
    pub fn note(&self, cause: &'static str, detail: &str) {
        // Decide under the lock, log after it: a slow log sink (a full stderr pipe) must never
        // hold a lock that every refusing connection takes.
        let report = {
            let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            match map.get_mut(cause) {
                None => {
                    map.insert(
                        cause,
                        Tally {
                            total: 1,
                            since_log: 0,
                            logged_at: now,
                        },
                    );
                    Some(None)
                }
                Some(t) => {
                    t.total += 1;
                    t.since_log += 1;
                    (now.duration_since(t.logged_at) >= SUMMARY_EVERY).then(|| {
                        let counts = (t.since_log, t.total);
                        t.since_log = 0;
                        t.logged_at = now;
                        Some(counts)
                    })
                }
            }
        };
        match report {
            None => {}
            Some(None) => tracing::warn!(cause, detail, "refused (first of its kind; later ones are counted in /healthz `refused` and summarized once a minute)"),
            Some(Some((count, total))) => tracing::warn!(
                cause,
                count,
                total,
                last = detail,
                "refused again since the last report"
            ),
        }
    }

    /// Refusals so far, by cause.
    pub fn counts(&self) -> Vec<(&'static str, u64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, t)| (*k, t.total)).collect();
        v.sort();
        v
    }
}

/// Checks a client id or uid: 1 to 128 bytes of ASCII letters, digits and `-_.:@`.
pub fn check_id(what: &str, id: &str) -> Result<(), String> {
    if id.is_empty()
        || id.len() > MAX_NAME_LEN
        || !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:@".contains(&b))
    {
        return Err(format!(
            "{what} must be 1 to {MAX_NAME_LEN} characters of A-Z a-z 0-9 - _ . : @"
        ));
    }
    Ok(())
}

/// Checks a channel name: 1 to 128 bytes, no control characters.
pub fn check_channel(channel: &str) -> Result<(), String> {
    if channel.is_empty() || channel.len() > MAX_NAME_LEN || channel.chars().any(char::is_control) {
        return Err(format!(
            "channel names must be 1 to {MAX_NAME_LEN} bytes without control characters"
        ));
    }
    Ok(())
}

/// Longest id, uid or channel name, in bytes.
pub const MAX_NAME_LEN: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_passes_a_burst_then_warns_drops_and_closes() {
        let mut r = RateLimit::new(5);
        for _ in 0..5 {
            assert_eq!(r.take(1, 1, 5), Verdict::Pass);
        }
        assert_eq!(r.take(1, 1, 5), Verdict::Warn);
        for _ in 0..4 {
            assert_eq!(r.take(1, 1, 5), Verdict::Drop);
        }
        assert_eq!(r.take(1, 1, 5), Verdict::Close);
        // No limit.
        assert_eq!(RateLimit::new(1).take(1000, 0, 1), Verdict::Pass);
    }

    #[test]
    fn per_ip_slots_are_released() {
        let p = PerIp::default();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = p.acquire(ip, 2).unwrap();
        let _b = p.acquire(ip, 2).unwrap();
        assert!(p.acquire(ip, 2).is_none());
        drop(a);
        assert!(p.acquire(ip, 2).is_some());
        assert!(p.acquire(ip, 0).is_some());
    }

    #[test]
    fn a_mapped_ipv4_client_counts_as_its_ipv4_address_and_is_released() {
        let p = PerIp::default();
        let v4: IpAddr = "10.0.0.2".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.2".parse().unwrap();
        let a = p.acquire(mapped, 1).unwrap();
        assert!(p.acquire(v4, 1).is_none(), "the same client either way");
        drop(a);
        assert!(
            p.0.lock().unwrap().is_empty(),
            "released: {:?}",
            p.0.lock().unwrap()
        );
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        drop(p.acquire(v6, 1).unwrap());
        assert!(p.0.lock().unwrap().is_empty());
    }

    #[test]
    fn names() {
        assert!(check_id("id", "alice-1@x.y:z_").is_ok());
        assert!(check_id("id", "").is_err());
        assert!(check_id("id", "a b").is_err());
        assert!(check_id("id", &"a".repeat(129)).is_err());
        assert!(check_channel("news room/é").is_ok());
        assert!(check_channel("a\nb").is_err());
    }
}
