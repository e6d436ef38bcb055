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

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

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

/// How tokens are checked: the key and the algorithms it may sign with.
#[derive(Clone)]
pub struct Auth {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("algorithms", &self.validation.algorithms)
            .finish_non_exhaustive()
    }
}

impl Auth {
    /// Tokens signed with HS256 and this shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::new(DecodingKey::from_secret(secret), vec![Algorithm::HS256])
    }

    /// Tokens signed with the private half of this PEM public key: RS256 for an RSA key,
    /// ES256 for a P-256 key. The error says what the file holds when it is neither.
    pub fn public_key_pem(pem: &[u8]) -> Result<Self, AuthError> {
        if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::new(key, vec![Algorithm::RS256]));
        }
        DecodingKey::from_ec_pem(pem)
            .map(|key| Self::new(key, vec![Algorithm::ES256]))
            .map_err(|e| {
                AuthError::Invalid(format!(
                    "not an RSA or P-256 public key in PEM form ({e}); export it with `openssl pkey -pubout`"
                ))
            })
    }

    fn new(key: DecodingKey, algorithms: Vec<Algorithm>) -> Self {
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.leeway = 0;
        validation.validate_nbf = true;
        // Without a configured audience, a token's `aud` is not the server's business.
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            key: Arc::new(key),
            validation: Arc::new(validation),
        }
    }

    /// Accepts only tokens whose `iss` is `issuer` (the claim becomes required).
    pub fn with_issuer(mut self, issuer: &str) -> Self {
        let v = Arc::make_mut(&mut self.validation);
        v.set_issuer(&[issuer]);
        let mut required: Vec<&str> = vec!["exp", "sub", "iss"];
        if v.aud.is_some() {
            required.push("aud");
        }
        v.set_required_spec_claims(&required);
        self
    }

    /// Accepts only tokens whose `aud` names `audience` (the claim becomes required).
    pub fn with_audience(mut self, audience: &str) -> Self {
        let v = Arc::make_mut(&mut self.validation);
        v.set_audience(&[audience]);
        v.validate_aud = true;
        let mut required: Vec<&str> = vec!["exp", "sub", "aud"];
        if v.iss.is_some() {
            required.push("iss");
        }
        v.set_required_spec_claims(&required);
        self
    }

    /// Checks a token's signature, algorithm and expiry, and reads its grant.
    pub fn verify(&self, token: &str) -> Result<Grant, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => AuthError::NotYetValid,
                _ => AuthError::Invalid(e.to_string()),
            },
        )?;
        let c = data.claims;
        if c.sub.is_empty() {
            return Err(AuthError::Invalid("`sub` (the uid) is empty".into()));
        }
        Ok(Grant {
            uid: Some(c.sub),
            client_id: c.client_id,
            channels: Channels::List(c.channels.unwrap_or_default()),
            admin: c.admin.unwrap_or(false),
            expires_at: Some(c.exp),
        })
    }
}

/// The claims wsp reads; others are ignored.
#[derive(Debug, Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    client_id: Option<String>,
    channels: Option<Vec<String>>,
    admin: Option<bool>,
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
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;

    fn now() -> u64 {
        jsonwebtoken::get_current_timestamp()
    }

    fn token(claims: serde_json::Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap()
    }

    #[test]
    fn a_good_token_gives_its_grant() {
        let auth = Auth::hs256(b"secret");
        let g = auth
            .verify(&token(json!({"sub": "u1", "exp": now() + 60, "channels": ["news", "room:*"], "client_id": "c1"})))
            .unwrap();
        assert_eq!(g.uid.as_deref(), Some("u1"));
        assert_eq!(g.client_id.as_deref(), Some("c1"));
        assert!(!g.admin);
        assert!(g.channels.allows("news"));
        assert!(g.channels.allows("room:42"));
        assert!(!g.channels.allows("room"));
        assert!(!g.channels.allows("newsroom"));
    }

    #[test]
    fn bad_tokens_are_refused_with_a_reason() {
        let auth = Auth::hs256(b"secret");
        assert_eq!(
            auth.verify(&token(json!({"sub": "u1", "exp": now() - 5}))),
            Err(AuthError::Expired)
        );
        assert!(matches!(
            auth.verify(&token(json!({"sub": "u1"}))),
            Err(AuthError::Invalid(_))
        ));
        let other = encode(
            &Header::default(),
            &json!({"sub": "u1", "exp": now() + 60}),
            &EncodingKey::from_secret(b"other"),
        )
        .unwrap();
        assert!(matches!(auth.verify(&other), Err(AuthError::Invalid(_))));
        assert!(matches!(auth.verify("garbage"), Err(AuthError::Invalid(_))));
        // alg=none is never accepted.
        let none = format!(
            "eyJhbGciOiJub25lIn0.{}.",
            base64_url(&json!({"sub": "u1", "exp": now() + 60}).to_string())
        );
        assert!(matches!(auth.verify(&none), Err(AuthError::Invalid(_))));
    }

    #[test]
    fn nbf_iss_and_aud_are_checked() {
        let auth = Auth::hs256(b"secret");
        assert_eq!(
            auth.verify(&token(
                json!({"sub": "u1", "exp": now() + 60, "nbf": now() + 30})
            )),
            Err(AuthError::NotYetValid)
        );
        // An `aud` the server does not ask about is ignored.
        assert!(auth
            .verify(&token(
                json!({"sub": "u1", "exp": now() + 60, "aud": "other", "nbf": now() - 1})
            ))
            .is_ok());
        let strict = Auth::hs256(b"secret")
            .with_issuer("idp")
            .with_audience("wsp");
        let good = json!({"sub": "u1", "exp": now() + 60, "iss": "idp", "aud": "wsp"});
        assert!(strict.verify(&token(good.clone())).is_ok());
        for (k, v) in [
            ("iss", json!("evil")),
            ("aud", json!("other")),
            ("iss", json!(null)),
        ] {
            let mut bad = good.clone();
            bad[k] = v;
            if bad[k].is_null() {
                bad.as_object_mut().unwrap().remove(k);
            }
            assert!(
                matches!(
                    strict.verify(&token(bad.clone())),
                    Err(AuthError::Invalid(_))
                ),
                "{bad}"
            );
        }
    }

    fn base64_url(s: &str) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn token_sources() {
        assert_eq!(token_of(Some("q"), Some("Bearer h")), Some("q"));
        assert_eq!(token_of(None, Some("Bearer h")), Some("h"));
        assert_eq!(token_of(Some(""), Some("Basic x")), None);
        assert_eq!(token_of(None, None), None);
    }
}
