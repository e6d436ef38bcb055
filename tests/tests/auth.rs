//! Authentication and rights against a real `wsp serve`: JWT at the handshake (query and
//! header), the token's uid, client id and channels, admin, expiry and refresh; clients acting
//! only on themselves by default.

use std::time::{Duration, Instant};

use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use wsp_tests::{Client, Serve};

const SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

fn token(claims: Value) -> String {
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn authed() -> Serve {
    Serve::start(&["--auth-jwt-secret", SECRET])
}

/// The status and body of a refused handshake.
async fn refusal(url: &str) -> (u16, String) {
    let req = url.into_client_request().unwrap();
    refusal_of(req).await
}

async fn refusal_of(
    req: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> (u16, String) {
    match tokio_tungstenite::connect_async(req).await {
        Ok(_) => panic!("the handshake was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => (
            r.status().as_u16(),
            String::from_utf8_lossy(r.body().as_deref().unwrap_or_default()).into_owned(),
        ),
        Err(e) => panic!("expected an HTTP refusal, got {e}"),
    }
}

#[tokio::test]
async fn a_missing_bad_or_expired_token_is_refused_with_401_and_the_reason() {
    let s = authed();
    let (st, body) = refusal(&s.ws("format=json")).await;
    assert_eq!(st, 401);
    assert!(body.contains("token is required"), "{body}");

    let (st, body) = refusal(&s.ws("token=not.a.jwt")).await;
    assert_eq!(st, 401);
    assert!(body.contains("invalid token"), "{body}");

    let forged = encode(
        &Header::default(),
        &json!({"sub": "u1", "exp": now() + 60}),
        &EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes"),
    )
    .unwrap();
    let (st, _) = refusal(&s.ws(&format!("token={forged}"))).await;
    assert_eq!(st, 401);

    let expired = token(json!({"sub": "u1", "exp": now() - 10}));
    let (st, body) = refusal(&s.ws(&format!("token={expired}"))).await;
    assert_eq!(st, 401);
    assert!(body.contains("expired"), "{body}");

    let refused = s.healthz().await;
    assert_eq!(refused["auth"], true);
    assert_eq!(refused["refused"]["auth"], 4, "{refused}");
}

#[tokio::test]
async fn the_token_fixes_uid_client_id_and_channels() {
    let s = authed();
    let t = token(json!({
        "sub": "u1", "client_id": "c1", "exp": now() + 60,
        "channels": ["news", "room:*"],
    }));
    // The handshake may not ask for more than the token gives.
    for (query, why) in [
        ("id=c2", "client id"),
        ("uid=u2", "uid"),
        ("channel=secret", "channel"),
    ] {
        let (st, body) = refusal(&s.ws(&format!("token={t}&{query}"))).await;
        assert_eq!(st, 403, "{query}");
        assert!(body.contains(why), "{query}: {body}");
    }

    let mut c = Client::json(&s.ws(&format!("token={t}&channel=news"))).await;
    assert_eq!(c.id, "c1");
    assert_eq!(c.ok("uid_by_client_id", json!({})).await["uid"], "u1");
    c.ok("join", json!({"channel": "room:42"})).await;
    for (cmd, data) in [
        ("join", json!({"channel": "secret"})),
        (
            "send_to_channel",
            json!({"channel": ["news", "secret"], "data": "x"}),
        ),
        ("client_ids_by_channel", json!({"channel": "secret"})),
        ("send_to_all", json!({"data": "x"})),
        ("all_uids", json!({})),
        ("bind_uid", json!({"uid": "admin"})),
    ] {
        let r = c.call(cmd, data).await;
        assert_eq!(r["status"], 403, "{cmd}: {r}");
    }
    c.ok(
        "send_to_channel",
        json!({"channel": "room:42", "data": "hi"}),
    )
    .await;

    // The header form works too, and `?token=` wins over it.
    let t2 = token(json!({"sub": "u2", "exp": now() + 60, "channels": ["*"]}));
    let mut req = s.ws("format=json").into_client_request().unwrap();
    req.headers_mut()
        .insert("Authorization", format!("Bearer {t2}").parse().unwrap());
    let mut d = Client::with_request(req).await;
    assert_eq!(d.recv_json().await["data"]["uid"], "u2");
    d.ok("join", json!({"channel": "anything"})).await;
}

#[tokio::test]
async fn clients_act_only_on_themselves_unless_admin_or_all_rights() {
    // Open server, default rights.
    let s = Serve::start(&[]);
    let mut a = Client::json(&s.ws("id=a")).await;
    let mut b = Client::json(&s.ws("id=b")).await;
    for (cmd, data) in [
        ("join", json!({"client_id": "b", "channel": "x"})),
        ("get_info", json!({"client_id": "b"})),
        ("set_info", json!({"client_id": "b", "info": {"k": "v"}})),
        ("bind_uid", json!({"client_id": "b", "uid": "u"})),
        ("close_client", json!({"client_id": "b"})),
    ] {
        let r = a.call(cmd, data).await;
        assert_eq!(r["status"], 403, "{cmd}: {r}");
        assert!(r["msg"].as_str().unwrap().contains("admin"), "{r}");
    }
    // B was not touched and still works.
    b.ok("ping", json!({})).await;
    assert_eq!(b.ok("get_info", json!({})).await["info"], json!({}));
    assert_eq!(s.healthz().await["refused"]["rights"], 5);

    // --client-rights all: today's open behaviour, chosen explicitly.
    let s = Serve::start(&["--client-rights", "all"]);
    let mut a = Client::json(&s.ws("id=a")).await;
    let mut b = Client::json(&s.ws("id=b")).await;
    a.ok("join", json!({"client_id": "b", "channel": "x"}))
        .await;
    a.ok("close_client", json!({"client_id": "b"})).await;
    assert_eq!(b.expect_close().await.0, 1000);

    // With authentication, an admin token acts on others and on any channel.
    let s = authed();
    let admin = token(json!({"sub": "ops", "exp": now() + 60, "admin": true}));
    let user = token(json!({"sub": "u1", "exp": now() + 60, "channels": ["news"]}));
    let mut ops = Client::json(&s.ws(&format!("token={admin}&id=ops"))).await;
    let mut u = Client::json(&s.ws(&format!("token={user}&id=u"))).await;
    ops.ok("join", json!({"client_id": "u", "channel": "anything"}))
        .await;
    ops.ok("send_to_all", json!({"data": "hello"})).await;
    assert_eq!(u.recv_json().await["cmd"], "message");
    let r = u.call("close_client", json!({"client_id": "ops"})).await;
    assert_eq!(r["status"], 403);
}

#[tokio::test]
async fn an_expired_token_closes_with_4401_unless_refreshed() {
    let s = authed();
    let short = |sub: &str| token(json!({"sub": sub, "exp": now() + 2, "channels": ["*"]}));
    let mut lazy = Client::json(&s.ws(&format!("token={}", short("u1")))).await;
    let mut keen = Client::json(&s.ws(&format!("token={}", short("u2")))).await;

    // A token for another uid cannot be swapped in; a bad token is 401.
    let other = token(json!({"sub": "u3", "exp": now() + 60}));
    assert_eq!(
        keen.call("refresh", json!({"token": other})).await["status"],
        403
    );
    assert_eq!(
        keen.call("refresh", json!({"token": "x"})).await["status"],
        401
    );
    let fresh = token(json!({"sub": "u2", "exp": now() + 60, "channels": ["*"]}));
    let r = keen.ok("refresh", json!({"token": fresh})).await;
    assert!(r["expires_at"].as_u64().unwrap() > now() + 30);

    let t0 = Instant::now();
    let (code, reason) = lazy.expect_close().await;
    assert_eq!(code, 4401, "{reason}");
    assert!(t0.elapsed() < Duration::from_secs(5));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    keen.ok("ping", json!({})).await;
}
