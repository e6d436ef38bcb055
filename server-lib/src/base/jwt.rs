//! [`Auth`]: checking JSON Web Tokens (feature `jwt`) with `jsonwebtoken`, into a [`Grant`].

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;

use super::auth::{AuthError, Channels, Grant};

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
}
