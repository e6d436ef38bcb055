//! The second layer: what every part of the pool is configured and bounded by, and counts
//! with. [`config`]: [`ServerConfig`](config::ServerConfig), every limit and timer with its
//! default; [`auth`]: tokens and the [`Grant`](auth::Grant) a connection carries, and the
//! server API's key; [`limits`]: rate limits, per-IP counts, name rules and the record of
//! refusals; [`metrics`]: the Prometheus counters; [`tls`]: certificates with reload; `stamp`:
//! the 8-byte millisecond points in time a connection keeps; `prefetch`: the cache hint the
//! loops over thousands of clients give a few members ahead.
//!
//! Imports only from [`crate::transport`] (and the crate's error type).

pub mod auth;
pub mod config;
#[cfg(feature = "jwt")]
pub mod jwt;
#[cfg(not(feature = "jwt"))]
#[path = "jwt_off.rs"]
pub mod jwt;
pub mod limits;
pub mod metrics;
pub(crate) mod prefetch;
pub(crate) mod stamp;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(not(feature = "tls"))]
#[path = "tls_off.rs"]
pub mod tls;
