//! The server API: a backend reaches the pool over HTTP on the same port, with the built-in
//! commands in wsrv's request shape (`POST /api`), or many at once (`POST /api/batch`).
//!
//! It is off unless the server has an API key ([`crate::ServerConfig::api_key`]); every call
//! then carries `Authorization: Bearer KEY`. A call runs the same command table as a client's
//! frame (`commands.rs`), as a trusted backend: it acts on the client named by `client_id`,
//! sends as the server, and passes every rights check; the per-client limits (channels, info
//! size, names) still hold. In cluster mode the hub answers for the whole cluster, so every
//! call does too.

use std::time::Instant;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::base::auth::ApiKey;
use crate::pool::hub::Hub;
use crate::wire::protocol::{status, Command, JsonReply, JsonRequest, Reply};

/// Most requests in one `POST /api/batch`.
pub const MAX_BATCH: usize = 1000;

/// `POST /api`: one request, one reply.
pub(crate) async fn call(State(hub): State<Hub>, req: Request) -> Response {
    let body = match admit(&hub, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    match serde_json::from_slice::<JsonRequest>(&body) {
        Ok(request) => (StatusCode::OK, axum::Json(run(&hub, request).await)).into_response(),
        Err(e) => refuse(
            StatusCode::BAD_REQUEST,
            status::BAD_REQUEST,
            format!("the body must be one JSON request {{\"cmd\", \"seqno\", \"data\"}}: {e}"),
        ),
    }
}

/// `POST /api/batch`: an array of requests, answered in order (each runs after the previous
/// one has finished).
pub(crate) async fn batch(State(hub): State<Hub>, req: Request) -> Response {
    let body = match admit(&hub, req).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let requests = match serde_json::from_slice::<Vec<JsonRequest>>(&body) {
        Ok(r) => r,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                status::BAD_REQUEST,
                format!(
                "the body must be a JSON array of requests {{\"cmd\", \"seqno\", \"data\"}}: {e}"
            ),
            )
        }
    };
    if requests.len() > MAX_BATCH {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            status::TOO_LARGE,
            format!(
                "{} requests in one batch; at most {MAX_BATCH}: split it",
                requests.len()
            ),
        );
    }
    let mut replies = Vec::with_capacity(requests.len());
    for request in requests {
        replies.push(run(&hub, request).await);
    }
    (StatusCode::OK, axum::Json(replies)).into_response()
}

/// Runs one request and shapes its reply.
async fn run(hub: &Hub, request: JsonRequest) -> JsonReply {
    let started = Instant::now();
    let command = Command::from_json(request, &crate::commands::Table);
    let reply: Reply = crate::commands::for_api(hub, &command).await;
    if let Some(m) = hub.metrics() {
        m.api_call(
            crate::commands::label(&command.name),
            reply.status,
            started.elapsed(),
        );
    }
    JsonReply {
        cmd: command.name,
        seqno: command.seqno,
        status: reply.status,
        msg: reply.msg,
        data: reply.data,
    }
}

/// Checks that the API is on and the key is right, and reads the body (at most
/// `max_message_size` bytes).
async fn admit(hub: &Hub, req: Request) -> Result<bytes::Bytes, Response> {
    let cfg = hub.config();
    let Some(key) = cfg.api_key.as_ref().map(ApiKey::as_str) else {
        return Err(refuse(
            StatusCode::NOT_FOUND,
            status::NOT_FOUND,
            "the server API is off: start wsp serve with --api-key (or WSP_API_KEY)",
        ));
    };
    if !key_matches(req.headers(), key) {
        hub.refusals()
            .note(crate::base::limits::cause::API_KEY, "a server API call");
        let mut r = refuse(
            StatusCode::UNAUTHORIZED,
            status::UNAUTHORIZED,
            "missing or wrong API key: send `Authorization: Bearer <the --api-key>`",
        );
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return Err(r);
    }
    let body: Body = req.into_body();
    to_bytes(body, cfg.max_message_size).await.map_err(|_| {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            status::TOO_LARGE,
            format!(
                "the body is over {} bytes (--max-message-size)",
                cfg.max_message_size
            ),
        )
    })
}

/// Compares the bearer token with the key in constant time.
fn key_matches(headers: &HeaderMap, key: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    given.len() == key.len() && bool::from(given.as_bytes().ct_eq(key.as_bytes()))
}

/// An HTTP refusal with a body in the reply shape, so a client parses every answer alike.
fn refuse(http: StatusCode, status: i32, msg: impl Into<String>) -> Response {
    let reply = JsonReply {
        cmd: String::new(),
        seqno: Value::String(String::new()),
        status,
        msg: msg.into(),
        data: Value::Null,
    };
    (http, axum::Json(reply)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_must_match_exactly() {
        let mut h = HeaderMap::new();
        assert!(!key_matches(&h, "k1"));
        h.insert(header::AUTHORIZATION, "Bearer k1".parse().unwrap());
        assert!(key_matches(&h, "k1"));
        assert!(!key_matches(&h, "k12"));
        assert!(!key_matches(&h, "k"));
        h.insert(header::AUTHORIZATION, "Basic k1".parse().unwrap());
        assert!(!key_matches(&h, "k1"));
    }
}
