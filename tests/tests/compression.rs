//! permessage-deflate through a real `wsp serve --compression`, and wsPool's free `cmd` space
//! (issue 8).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use wsp_proto::SendMsg;
use wsp_server::ws::{handshake, Incoming, WebSocket, WsConfig};
use wsp_tests::{Client, Serve};

type Ws = WebSocket<TcpStream>;

async fn connect(url: &str, compression: bool) -> (Ws, Option<String>) {
    let req = url.into_client_request().unwrap();
    let host = req.uri().host().unwrap().to_string();
    let port = req.uri().port_u16().unwrap();
    let tcp = TcpStream::connect((host.as_str(), port)).await.unwrap();
    let (ws, resp) = handshake::client(tcp, req, compression, &WsConfig::default())
        .await
        .unwrap();
    let ext = resp
        .headers()
        .get("sec-websocket-extensions")
        .map(|v| v.to_str().unwrap().to_string());
    (ws, ext)
}

async fn next_data(ws: &mut Ws) -> Incoming {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("valid");
        if matches!(m.message, Message::Text(_) | Message::Binary(_)) {
            return m;
        }
    }
}

fn text(m: &Incoming) -> Value {
    match &m.message {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn big_broadcasts_arrive_compressed_and_small_ones_plain() {
    let s = Serve::start(&["--compression"]);
    let (mut sub, ext) = connect(&s.ws("id=sub&channel=news&format=json"), true).await;
    assert_eq!(
        ext.as_deref(),
        Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
    );
    assert_eq!(text(&next_data(&mut sub).await)["cmd"], "welcome");
    let (mut plain, ext) = connect(&s.ws("id=plain&channel=news&format=json"), false).await;
    assert_eq!(ext, None);
    text(&next_data(&mut plain).await);

    let (mut publisher, _) = connect(&s.ws("id=pub&format=json"), true).await;
    text(&next_data(&mut publisher).await);
    let big = "x".repeat(2048);
    for (payload, compressed) in [(json!("small"), false), (json!(big), true)] {
        let req =
            json!({"cmd":"send_to_channel","seqno":"1","data":{"channel":"news","data":payload}});
        publisher
            .send(Message::text(req.to_string()))
            .await
            .unwrap();
        let got = next_data(&mut sub).await;
        assert_eq!(got.compressed, compressed, "{payload}");
        assert_eq!(text(&got)["data"]["data"], payload);
        if compressed {
            assert!(
                got.wire_len < 200,
                "2 KiB of x compress well: {}",
                got.wire_len
            );
        }
        let other = next_data(&mut plain).await;
        assert!(!other.compressed);
        assert_eq!(text(&other)["data"]["data"], payload);
        // The publisher's own (compressed) request was inflated and answered.
        assert_eq!(text(&next_data(&mut publisher).await)["status"], 0);
    }
}

#[tokio::test]
async fn a_deflate_bomb_closes_with_1009() {
    let s = Serve::start(&["--compression", "--max-message-size", "65536"]);
    let (mut ws, _) = connect(&s.ws("id=bomb&format=json"), true).await;
    next_data(&mut ws).await;
    // 10 MB of zeros compresses to about 10 KB: under the limit on the wire, far over inflated.
    ws.send(Message::binary(vec![0u8; 10 << 20])).await.unwrap();
    let close = loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
        {
            Some(Ok(Incoming {
                message: Message::Close(c),
                ..
            })) => break c.expect("a close code"),
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(u16::from(close.code), 1009);
    // The server goes on serving others.
    let mut c = Client::json(&s.ws("id=after")).await;
    c.ok("ping", json!({})).await;
}

#[tokio::test]
async fn addressed_sendmsg_is_an_application_frame_whatever_its_cmd() {
    let s = Serve::start(&[]);
    let mut a = Client::proto(&s.ws("id=a")).await;
    let mut bob = Client::proto(&s.ws("id=bob&channel=room")).await;
    for cmd in [1001, 1099] {
        a.send_proto(&SendMsg {
            cmd,
            to_client_id: "bob".into(),
            msg: "direct".into(),
            ..Default::default()
        })
        .await;
        let m = bob.recv_proto().await;
        assert_eq!(
            (m.cmd, m.msg.as_str(), m.from_client_id.as_str()),
            (cmd, "direct", "a")
        );
        a.send_proto(&SendMsg {
            cmd,
            channel: vec!["room".into()],
            msg: "to the room".into(),
            ..Default::default()
        })
        .await;
        let m = bob.recv_proto().await;
        assert_eq!((m.cmd, m.msg.as_str()), (cmd, "to the room"));
    }
    // Without an address, 1001 is still the built-in join.
    a.send_proto(&SendMsg {
        cmd: 1001,
        local_id: "j".into(),
        msg: json!({"channel": "room"}).to_string(),
        ..Default::default()
    })
    .await;
    let reply = a.recv_proto().await;
    assert_eq!(
        (reply.cmd, reply.status, reply.local_id.as_str()),
        (1001, 0, "j")
    );
}
