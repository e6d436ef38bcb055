//! The library's error type.

/// What can go wrong in the hub and its server.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listener could not be bound or accepted from.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// A configuration value is out of range; the message names it and the accepted range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A client id is already connected (client ids are unique in the pool).
    #[error(
        "client id {0:?} is already connected; pick another id or omit it to get one assigned"
    )]
    DuplicateId(String),
    /// The client named by a call is not connected.
    #[error("client {0:?} is not online")]
    NotOnline(String),
    /// The client's connection closed (or its queue filled under the close policy) while a
    /// message was being written to it.
    #[error("client {0:?} is gone: its connection closed before the message was written")]
    ClientGone(String),
    /// A streamed text message was not valid UTF-8.
    #[error("streamed text is not valid UTF-8")]
    InvalidUtf8,
    /// The TLS certificate or key could not be loaded.
    #[error("TLS: {0}")]
    Tls(String),
    /// A per-client limit would be passed (channels per client); the message names it.
    #[error("{0}")]
    LimitReached(String),
    /// A value is over its size limit (info bytes); the message names it.
    #[error("{0}")]
    TooLarge(String),
    /// The cluster backend failed (Redis unreachable, protocol error...).
    #[error("cluster backend error: {0}")]
    Cluster(String),
}

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
