//! [`Auth`] without the `jwt` feature: a type with no value, so a server always runs open.

use std::convert::Infallible;

use super::auth::{AuthError, Grant};

/// JWT authentication is compiled out (feature `jwt` off): no value of this type exists.
#[derive(Debug, Clone)]
pub struct Auth(Infallible);

impl Auth {
    /// Checks a token (never called: there is no `Auth`).
    pub fn verify(&self, _: &str) -> Result<Grant, AuthError> {
        match self.0 {}
    }
}
