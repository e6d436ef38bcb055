//! Close codes (RFC 6455 §7.4.1) and the reasons this pool closes a connection for.

/// A close the server sends: a code and a short reason (at most 123 bytes on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The RFC 6455 close code.
    pub code: u16,
    /// A short human-readable reason.
    pub reason: String,
}

/// RFC 6455 close codes, named.
pub mod code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown) or the browser left the page.
    pub const GOING_AWAY: u16 = 1001;
    /// Protocol error.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// Unsupported data type.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// No status code was present (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// Closed without a close frame (never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// Invalid payload data, such as non-UTF-8 text.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy violation: heartbeat timeout, slow consumer.
    pub const POLICY: u16 = 1008;
    /// A message was too big.
    pub const TOO_BIG: u16 = 1009;
    /// The client expected an extension the server did not offer.
    pub const MANDATORY_EXTENSION: u16 = 1010;
    /// Internal server error.
    pub const INTERNAL_ERROR: u16 = 1011;
    /// Service restart.
    pub const SERVICE_RESTART: u16 = 1012;
    /// Try again later (temporary overload).
    pub const TRY_AGAIN_LATER: u16 = 1013;
    /// Bad gateway.
    pub const BAD_GATEWAY: u16 = 1014;
    /// TLS handshake failure (never sent on the wire).
    pub const TLS_HANDSHAKE: u16 = 1015;
}

/// The conventional name of a close code, such as `"going away"` for 1001.
pub fn code_name(code: u16) -> &'static str {
    match code {
        1000 => "normal closure",
        1001 => "going away",
        1002 => "protocol error",
        1003 => "unsupported data",
        1005 => "no status received",
        1006 => "abnormal closure",
        1007 => "invalid payload data",
        1008 => "policy violation",
        1009 => "message too big",
        1010 => "mandatory extension",
        1011 => "internal error",
        1012 => "service restart",
        1013 => "try again later",
        1014 => "bad gateway",
        1015 => "TLS handshake",
        3000..=3999 => "registered (library/framework)",
        4000..=4999 => "private (application)",
        _ => "unknown",
    }
}

impl Close {
    /// A close with `code` and `reason`; the reason is cut to fit a control frame.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        let mut reason = reason.into();
        if reason.len() > 123 {
            let mut cut = 123;
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            reason.truncate(cut);
        }
        Self { code, reason }
    }

    /// 1001: the server is shutting down.
    pub fn going_away() -> Self {
        Self::new(code::GOING_AWAY, "server shutting down")
    }

    /// 1008: the client's outbound queue filled up.
    pub fn slow_consumer() -> Self {
        Self::new(code::POLICY, "outbound queue full: client reads too slowly")
    }

    /// 1008: no frame from the client within the heartbeat timeout.
    pub fn heartbeat_timeout(secs: u64) -> Self {
        Self::new(
            code::POLICY,
            format!("heartbeat timeout: nothing received for {secs}s"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_reason_is_cut_on_a_char_boundary() {
        let c = Close::new(1000, "é".repeat(100));
        assert!(c.reason.len() <= 123);
        assert!(c.reason.chars().all(|ch| ch == 'é'));
    }
}
