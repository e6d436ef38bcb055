//! Bad input gets a clear answer, never a crash: error replies keep the connection open;
//! limits close with the right code; refused handshakes get the right HTTP status.

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message;
use wsp_proto::SendMsg;
use wsp_tests::{refused_status, Client, Serve};

#[tokio::test]
async fn json_replies_echo_cmd_and_seqno_and_errors_keep_the_connection() {
    let s = Serve::start(&[]);
    let mut a = Client::json(&s.ws("id=a")).await;
    a.send_json(&json!({"cmd": "ping", "seqno": 77, "data": {}}))
        .await;
    let r = a.recv_json().await;
    assert_eq!(
        (
            r["cmd"].as_str(),
            r["seqno"].as_i64(),
            r["status"].as_i64(),
            r["msg"].as_str()
        ),
        (Some("ping"), Some(77), Some(0), Some("ok"))
    );

    a.ws.send(Message::text("{not json")).await.unwrap();
    let r = a.recv_json().await;
    assert_eq!(r["status"], 400);
    assert!(r["msg"].as_str().unwrap().contains("malformed JSON"), "{r}");

    let r = a.call("no_such_cmd", json!({})).await;
    assert_eq!(r["status"], 404);
    assert!(r["msg"].as_str().unwrap().contains("unknown cmd"), "{r}");

    let r = a.call("join", json!({})).await;
    assert_eq!(r["status"], 400);
    assert!(r["msg"].as_str().unwrap().contains("channel"), "{r}");

    // Still open and answering.
    assert_eq!(a.ok("client_count", json!({})).await, json!({"count": 1}));
}

#[tokio::test]
async fn malformed_protobuf_gets_an_error_reply() {
    let s = Serve::start(&[]);
    let mut a = Client::proto(&s.ws("id=a")).await;
    a.ws.send(Message::binary(vec![0xff, 0xff, 0xff]))
        .await
        .unwrap();
    let r = a.recv_proto().await;
    assert_eq!((r.cmd, r.status), (1099, 400));
    assert!(r.desc.contains("malformed SendMsg"), "{}", r.desc);
    // Reserved but unknown, and a bad JSON argument.
    a.send_proto(&SendMsg {
        cmd: 1098,
        local_id: "x".into(),
        ..Default::default()
    })
    .await;
    let r = a.recv_proto().await;
    assert_eq!((r.status, r.local_id.as_str()), (404, "x"));
    a.send_proto(&SendMsg {
        cmd: 1001,
        msg: "{".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(a.recv_proto().await.status, 400);
    // An application cmd with no route and no handler.
    a.send_proto(&SendMsg {
        cmd: 5,
        ..Default::default()
    })
    .await;
    assert_eq!(a.recv_proto().await.status, 404);
    // Still usable.
    a.send_proto(&SendMsg {
        cmd: 1024,
        local_id: "p".into(),
        ..Default::default()
    })
    .await;
    let r = a.recv_proto().await;
    assert_eq!((r.cmd, r.status, r.local_id.as_str()), (1024, 0, "p"));
}

#[tokio::test]
async fn oversize_message_closes_with_1009() {
    let s = Serve::start(&["--max-message-size", "1024"]);
    let mut a = Client::json(&s.ws("")).await;
    let mut other = Client::json(&s.ws("")).await;
    a.ws.send(Message::binary(vec![0u8; 4096])).await.unwrap();
    let (code, reason) = a.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
    assert!(reason.contains("1024"), "{reason}");
    assert!(other.ok("ping", json!({})).await["pong"].is_i64());
}

#[tokio::test]
async fn invalid_utf8_text_closes_with_1007() {
    let s = Serve::start(&[]);
    let mut a = Client::json(&s.ws("")).await;
    let frame = Frame::message(vec![0xc3, 0x28], OpCode::Data(Data::Text), true);
    a.ws.send(Message::Frame(frame)).await.unwrap();
    let (code, _) = a.expect_close().await;
    assert_eq!(code, 1007);
}

#[tokio::test]
async fn cross_origin_browser_requests_are_refused_unless_allowed() {
    let s = Serve::start(&["--allow-origin", "https://good.example"]);
    let connect = |origin: &'static str| {
        let mut req = s.ws("").into_client_request().unwrap();
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    let err = connect("https://evil.example").await.unwrap_err();
    assert_eq!(refused_status(err), 403);
    assert!(connect("https://good.example").await.is_ok());
    let same = Box::leak(format!("http://{}", s.addr).into_boxed_str());
    assert!(connect(same).await.is_ok(), "same origin is allowed");
    // No Origin header (not a browser): allowed.
    Client::json(&s.ws("")).await;
}

#[tokio::test]
async fn duplicate_id_and_connection_limit_are_refused_with_http_status() {
    let s = Serve::start(&["--max-connections", "2"]);
    let _a = Client::json(&s.ws("id=same")).await;
    let err = tokio_tungstenite::connect_async(s.ws("id=same"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(err), 409);
    let _b = Client::json(&s.ws("")).await;
    let err = tokio_tungstenite::connect_async(s.ws(""))
        .await
        .unwrap_err();
    assert_eq!(refused_status(err), 503);
    let err = tokio_tungstenite::connect_async(s.ws("format=xml"))
        .await
        .unwrap_err();
    assert!(matches!(refused_status(err), 400 | 503));
}

#[tokio::test]
async fn bad_query_is_refused_with_400() {
    let s = Serve::start(&[]);
    let err = tokio_tungstenite::connect_async(s.ws("format=xml"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(err), 400);
    let err = tokio_tungstenite::connect_async(s.ws("channel="))
        .await
        .unwrap_err();
    assert_eq!(refused_status(err), 400);
}

#[tokio::test]
async fn healthz_reports_clients() {
    let s = Serve::start(&[]);
    let _a = Client::json(&s.ws("")).await;
    let h = s.healthz().await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["clients"], 1);
    assert_eq!(h["cluster"], serde_json::Value::Null);
}
