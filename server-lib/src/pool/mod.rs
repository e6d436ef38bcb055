//! The fourth layer: the pool itself. [`hub`]: [`Hub`](hub::Hub), the pool's API over the
//! local [`registry`] (its table of clients: `clients`) or a [`cluster`] backend; [`client`]:
//! one client's handle and its bounded
//! [`outbox`]; `flush`: broadcasts sent to the sockets once per turn; [`stream`]: a message written in parts; [`presence`]: the vocabulary of routes,
//! queries and presence changes; [`history`]: channel history and recovery.
//!
//! Imports from the layers below ([`crate::wire`], [`crate::base`], [`crate::transport`]);
//! a cluster backend (`crate::redis`) reaches the pool through [`cluster::Local`], not the hub.

pub mod client;
mod clients;
pub mod cluster;
pub(crate) mod flush;
pub mod history;
pub mod hub;
pub mod outbox;
pub mod presence;
pub mod registry;
pub mod stream;
