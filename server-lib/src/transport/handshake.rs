//! The opening handshake (RFC 6455 §4): the server's checks and answer, and a client's
//! request/response exchange over any stream (plain TCP or TLS).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::http::{header, HeaderMap, Request, Response, StatusCode};

use super::deflate::{self, Params};
use super::socket::{WebSocket, WsConfig};
use super::{Role, WsError};

/// Largest handshake response a client reads.
const MAX_RESPONSE: usize = 16 * 1024;

/// As a server: checks that `headers` ask for a WebSocket upgrade; the `Sec-WebSocket-Accept`
/// value, or what is wrong (for an HTTP 400 / 426).
pub fn accept_key(headers: &HeaderMap) -> Result<String, (StatusCode, &'static str)> {
    let has_token = |name: header::HeaderName, token: &str| {
        headers.get_all(name).iter().any(|v| {
            v.to_str()
                .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
                .unwrap_or(false)
        })
    };
    if !has_token(header::UPGRADE, "websocket") {
        return Err((
            StatusCode::BAD_REQUEST,
            "not a WebSocket request: `Upgrade: websocket` is missing",
        ));
    }
    if !has_token(header::CONNECTION, "upgrade") {
        return Err((StatusCode::BAD_REQUEST, "`Connection: upgrade` is missing"));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(|v| v.as_bytes())
        != Some(b"13")
    {
        return Err((
            StatusCode::UPGRADE_REQUIRED,
            "unsupported WebSocket version: use `Sec-WebSocket-Version: 13`",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or((StatusCode::BAD_REQUEST, "`Sec-WebSocket-Key` is missing"))?;
    Ok(derive_accept_key(key.as_bytes()))
}

/// As a server: the permessage-deflate parameters for the offers in `headers`, if any can be
/// honoured.
pub fn negotiate_deflate(headers: &HeaderMap) -> Option<Params> {
    deflate::negotiate(
        headers
            .get_all(header::SEC_WEBSOCKET_EXTENSIONS)
            .iter()
            .filter_map(|v| v.to_str().ok()),
    )
}

/// As a client: sends `request` (from tungstenite's `IntoClientRequest`, which sets the key and
/// version headers) over `io`, offering permessage-deflate when `compression`, and reads the
/// answer. A refusal comes back as [`WsError::Refused`] with the server's reason.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    mut request: Request<()>,
    compression: bool,
    config: &WsConfig,
) -> Result<(WebSocket<S>, Response<()>), WsError> {
    if compression {
        request.headers_mut().insert(
            header::SEC_WEBSOCKET_EXTENSIONS,
            header::HeaderValue::from_static(deflate::CLIENT_OFFER),
        );
    }
    let key = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| WsError::Handshake("request has no Sec-WebSocket-Key".into()))?
        .clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut head = format!("GET {path} HTTP/1.1\r\n");
    for (name, value) in request.headers() {
        let value = value
            .to_str()
            .map_err(|_| WsError::Handshake(format!("header {name} is not ASCII")))?;
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    io.write_all(head.as_bytes()).await?;
    io.flush().await?;

    let mut buf = BytesMut::with_capacity(1024);
    let (response, used) = loop {
        if io.read_buf(&mut buf).await? == 0 {
            return Err(WsError::Handshake(
                "connection closed during the handshake".into(),
            ));
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut parsed = httparse::Response::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(used)) => {
                let mut response = Response::builder().status(parsed.code.unwrap_or(0));
                for h in parsed.headers.iter() {
                    response = response.header(h.name, h.value);
                }
                let response = response
                    .body(())
                    .map_err(|e| WsError::Handshake(format!("bad response: {e}")))?;
                break (response, used);
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_RESPONSE => continue,
            Ok(httparse::Status::Partial) => {
                return Err(WsError::Handshake("response headers too long".into()))
            }
            Err(e) => return Err(WsError::Handshake(format!("bad HTTP response: {e}"))),
        }
    };
    let leftover = buf.split_off(used).freeze();
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(refused(&mut io, &response, leftover).await);
    }
    let expect = derive_accept_key(key.as_bytes());
    if response
        .headers()
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .map(|v| v.as_bytes())
        != Some(expect.as_bytes())
    {
        return Err(WsError::Handshake("wrong Sec-WebSocket-Accept".into()));
    }
    let mut params = None;
    for value in response.headers().get_all(header::SEC_WEBSOCKET_EXTENSIONS) {
        let value = value
            .to_str()
            .map_err(|_| WsError::Handshake("Sec-WebSocket-Extensions is not ASCII".into()))?;
        if let Some(p) = deflate::accept_response(value).map_err(WsError::Handshake)? {
            if !compression || params.is_some() {
                return Err(WsError::Handshake(
                    "server chose an extension that was not offered".into(),
                ));
            }
            params = Some(p);
        }
    }
    Ok((
        WebSocket::new(io, Role::Client, params, config, leftover),
        response,
    ))
}

/// The error for a non-101 answer, with up to 1 KiB of its body (the server's reason).
async fn refused<S: AsyncRead + Unpin>(
    io: &mut S,
    response: &Response<()>,
    body: Bytes,
) -> WsError {
    let len: usize = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .unwrap_or(0)
        .min(1024);
    let mut body = body.to_vec();
    if body.len() < len {
        let mut rest = vec![0u8; len - body.len()];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(2), io.read_exact(&mut rest)).await;
        if matches!(read, Ok(Ok(_))) {
            body.extend_from_slice(&rest);
        }
    }
    body.truncate(1024);
    WsError::Refused {
        status: response.status().as_u16(),
        body: String::from_utf8_lossy(&body).trim().to_string(),
    }
}
