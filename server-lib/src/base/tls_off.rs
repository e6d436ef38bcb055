//! [`Tls`] without the `tls` feature: a type with no value, so a server never serves TLS.

use std::convert::Infallible;

/// TLS is compiled out (feature `tls` off): no value of this type exists.
#[derive(Debug)]
pub struct Tls(Infallible);

impl Tls {
    pub(crate) async fn accept(
        &self,
        _: tokio::net::TcpStream,
    ) -> std::io::Result<tokio::net::TcpStream> {
        match self.0 {}
    }
}
