//! Routing through a real `wsp serve`: unicast, channels, everyone, uids, protobuf routing.

use serde_json::json;
use wsp_proto::SendMsg;
use wsp_tests::{Client, Serve};

#[tokio::test]
async fn generated_ids_are_unique_and_given_in_the_welcome_frame() {
    let s = Serve::start(&[]);
    let a = Client::json(&s.ws("")).await;
    let b = Client::json(&s.ws("")).await;
    assert!(!a.id.is_empty());
    assert_ne!(a.id, b.id);
    let p = Client::proto(&s.ws("id=fixed&channel=c1")).await;
    assert_eq!(p.id, "fixed");
}

#[tokio::test]
async fn unicast_reaches_only_its_target() {
    let s = Serve::start(&[]);
    let mut a = Client::json(&s.ws("id=a")).await;
    let mut b = Client::json(&s.ws("id=b")).await;
    let mut c = Client::json(&s.ws("id=c")).await;
    let r = a
        .ok(
            "send_to_client",
            json!({"client_id": "b", "data": {"hello": 1}}),
        )
        .await;
    assert_eq!(r["delivered"], 1);
    let m = b.recv_json().await;
    assert_eq!(m["cmd"], "message");
    assert_eq!(
        m["data"],
        json!({"from": "a", "route": "client", "to": "b", "data": {"hello": 1}})
    );
    c.expect_silence(std::time::Duration::from_millis(300))
        .await;
    let miss = a
        .call("send_to_client", json!({"client_id": "nobody", "data": 1}))
        .await;
    assert_eq!(miss["status"], 404, "{miss}");
}

#[tokio::test]
async fn channel_broadcast_reaches_members_once_and_all_reaches_everyone() {
    let s = Serve::start(&[]);
    let mut a = Client::json(&s.ws("id=a&channel=x&channel=y")).await;
    let mut b = Client::json(&s.ws("id=b")).await;
    let mut c = Client::json(&s.ws("id=c")).await;
    b.ok("join", json!({"channel": "y"})).await;
    let r = c
        .ok(
            "send_to_channel",
            json!({"channel": ["x", "y"], "data": "hi"}),
        )
        .await;
    assert_eq!(r["delivered"], 2, "a is in both channels but counts once");
    for cl in [&mut a, &mut b] {
        let m = cl.recv_json().await;
        assert_eq!(m["data"]["data"], "hi");
        assert_eq!(m["data"]["route"], "channel");
    }
    a.expect_silence(std::time::Duration::from_millis(300))
        .await;
    c.expect_silence(std::time::Duration::from_millis(10)).await;

    b.ok("leave", json!({"channel": "y"})).await;
    let r = c
        .ok("send_to_channel", json!({"channel": "y", "data": 2}))
        .await;
    assert_eq!(r["delivered"], 1);
    assert_eq!(a.recv_json().await["data"]["data"], 2);

    let r = a.ok("send_to_all", json!({"data": "all"})).await;
    assert_eq!(r["delivered"], 3, "everyone, the sender included");
    for cl in [&mut a, &mut b, &mut c] {
        assert_eq!(cl.recv_json().await["data"]["route"], "all");
    }
}

#[tokio::test]
async fn a_uid_spans_several_connections() {
    let s = Serve::start(&[]);
    let mut phone = Client::json(&s.ws("id=phone&uid=alice")).await;
    let mut laptop = Client::json(&s.ws("id=laptop")).await;
    let mut bob = Client::json(&s.ws("id=bob&uid=bob")).await;
    laptop.ok("bind_uid", json!({"uid": "alice"})).await;
    let r = bob
        .ok("send_to_uid", json!({"uid": "alice", "data": "ping"}))
        .await;
    assert_eq!(r["delivered"], 2);
    for cl in [&mut phone, &mut laptop] {
        let m = cl.recv_json().await;
        assert_eq!(
            m["data"],
            json!({"from": "bob", "route": "uid", "to": "alice", "data": "ping"})
        );
    }
    phone.ok("unbind_uid", json!({"uid": "alice"})).await;
    let r = bob
        .ok("send_to_uid", json!({"uid": "alice", "data": 2}))
        .await;
    assert_eq!(r["delivered"], 1);
    assert_eq!(laptop.recv_json().await["data"]["data"], 2);
    phone
        .expect_silence(std::time::Duration::from_millis(300))
        .await;
    let bad = phone.call("unbind_uid", json!({"uid": "alice"})).await;
    assert_eq!(bad["status"], 404);
}

#[tokio::test]
async fn protobuf_frames_route_by_to_client_id_and_channel_with_stamped_sender() {
    let s = Serve::start(&[]);
    let mut a = Client::proto(&s.ws("id=a")).await;
    let mut b = Client::proto(&s.ws("id=b&channel=room")).await;
    let mut c = Client::proto(&s.ws("id=c&channel=room")).await;
    // Unicast, with a spoofed sender and no timestamp: both are stamped by the server.
    a.send_proto(&SendMsg {
        cmd: 7,
        from_client_id: "mallory".into(),
        to_client_id: "b".into(),
        cmd_data: vec![1, 2, 3].into(),
        ..Default::default()
    })
    .await;
    let m = b.recv_proto().await;
    assert_eq!(
        (m.cmd, m.from_client_id.as_str(), &m.cmd_data[..]),
        (7, "a", &[1u8, 2, 3][..])
    );
    assert!(m.timestamp > 0);
    // Channel broadcast with an ack (localId set).
    a.send_proto(&SendMsg {
        cmd: 8,
        channel: vec!["room".into()],
        local_id: "req-1".into(),
        timestamp: 42,
        msg: "hello room".into(),
        ..Default::default()
    })
    .await;
    for cl in [&mut b, &mut c] {
        let m = cl.recv_proto().await;
        assert_eq!((m.cmd, m.msg.as_str(), m.timestamp), (8, "hello room", 42));
        assert_eq!(m.channel, vec!["room".to_string()]);
    }
    let ack = a.recv_proto().await;
    assert_eq!(
        (ack.cmd, ack.status, ack.local_id.as_str()),
        (8, 0, "req-1")
    );
    assert_eq!(ack.msg, r#"{"delivered":2}"#);
    // Built-in command in protobuf form: arguments as JSON in `msg`, payload in `cmdData`.
    a.send_proto(&SendMsg {
        cmd: 1006 - 1, // send_to_client
        local_id: "r2".into(),
        msg: r#"{"client_id":"c"}"#.into(),
        cmd_data: b"raw".to_vec().into(),
        ..Default::default()
    })
    .await;
    let m = c.recv_proto().await;
    assert_eq!(
        (m.from_client_id.as_str(), &m.cmd_data[..], m.desc.as_str()),
        ("a", &b"raw"[..], "client")
    );
    let ack = a.recv_proto().await;
    assert_eq!(
        (ack.cmd, ack.status, ack.local_id.as_str()),
        (1005, 0, "r2")
    );
}

#[tokio::test]
async fn wspool_subprotocol_form_sets_id_and_channels() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let s = Serve::start(&[]);
    let mut req = s.ws("").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "wp1_news_sport".parse().unwrap());
    let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "wp1_news_sport");
    drop(ws);
    let mut q = Client::json(&s.ws("")).await;
    // The connection may still be closing; ask until it is gone or confirm membership first.
    let ids = q
        .ok("client_ids_by_channel", json!({"channel": "sport"}))
        .await;
    assert!(ids["client_ids"].as_array().unwrap().len() <= 1);
    let mut req = s.ws("").into_client_request().unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "wp2_news_sport".parse().unwrap());
    let (_ws2, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let ids = q
        .ok("client_ids_by_channel", json!({"channel": "news"}))
        .await;
    assert!(
        ids["client_ids"]
            .as_array()
            .unwrap()
            .contains(&json!("wp2")),
        "{ids}"
    );
}
