//! Authentication with JSON Web Tokens, and the [`Grant`] every connection carries: who it is
//! and what it may do. The claims are a public contract (`docs/PROTOCOL.md`):
//!
//! - `sub`: the uid the connection is bound to (required);
//! - `client_id`: the only client id this token may connect as (optional);
//! - `channels`: channels the client may join or send to: exact names, `prefix:*` patterns, or
//!   `*` for any (optional; none means no channel);
//! - `admin`: `true` lets the client act on other clients (optional);
//! - `exp`: expiry, seconds since the Unix epoch (required). At expiry the connection is closed
//!   with 4401 (within a second) unless it sent a fresh token with the `refresh` command first.
//! - `nbf`: not before (optional): a token used earlier is refused.
//! - `iss`, `aud`: checked when the server names an issuer ([`Auth::with_issuer`]) or an
//!   audience ([`Auth::with_audience`]); ignored otherwise.

/// Close code sent when a connection's token expires (mirrors HTTP 401).
pub const TOKEN_EXPIRED: u16 = 4401;

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthError {
    /// No token in `?token=` nor in `Authorization: Bearer`.
    #[error("a token is required: pass it as ?token=JWT or an `Authorization: Bearer JWT` header")]
    Missing,
    /// The token has expired.
    #[error("the token has expired")]
    Expired,
    /// The token's `nbf` is still in the future.
    #[error("the token is not valid yet (its `nbf` is in the future)")]
    NotYetValid,
    /// The token is malformed, signed with another key or algorithm, or lacks a claim.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// The server API's key (never printed: its `Debug` hides it).
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(…)")
    }
}

/// Which channels a connection may join or send to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channels {
    /// Any channel (no authentication).
    Any,
    /// These names; an entry ending in `*` is a prefix (`news:*`), and `*` alone is any.
    List(Vec<String>),
}

impl Channels {
    /// Whether `channel` is allowed.
    pub fn allows(&self, channel: &str) -> bool {
        match self {
            Channels::Any => true,
            Channels::List(list) => list.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => channel.starts_with(prefix),
                None => p == channel,
            }),
        }
    }
}

/// What a connection is allowed: set at the handshake (from its token, or open when the
/// server runs without authentication) and replaced by `refresh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The uid the token binds the connection to (`sub`); `None` without authentication.
    pub uid: Option<String>,
    /// The only client id the token allows (`client_id`).
    pub client_id: Option<String>,
    /// Channels it may join and send to.
    pub channels: Channels,
    /// It may act on other clients.
    pub admin: bool,
    /// When the token expires, seconds since the Unix epoch.
    pub expires_at: Option<u64>,
}

impl Default for Grant {
    fn default() -> Self {
        Self::open()
    }
}

impl Grant {
    /// The grant of every connection on a server without authentication: any channel, no
    /// expiry, not admin (acting on others is governed by `client_rights`).
    pub fn open() -> Self {
        Self {
            uid: None,
            client_id: None,
            channels: Channels::Any,
            admin: false,
            expires_at: None,
        }
    }

    /// The grant of the server API: acts on any client and any channel.
    pub fn admin() -> Self {
        Self {
            admin: true,
            ..Self::open()
        }
    }

    /// Whether this grant came from a token.
    pub fn authenticated(&self) -> bool {
        self.uid.is_some()
    }
}

/// The token of a handshake: `?token=` wins over `Authorization: Bearer`.
pub fn token_of<'a>(
    query_token: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Option<&'a str> {
    query_token.filter(|t| !t.is_empty()).or_else(|| {
        authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_sources() {
        assert_eq!(token_of(Some("q"), Some("Bearer h")), Some("q"));
        assert_eq!(token_of(None, Some("Bearer h")), Some("h"));
        assert_eq!(token_of(Some(""), Some("Basic x")), None);
        assert_eq!(token_of(None, None), None);
    }
}
