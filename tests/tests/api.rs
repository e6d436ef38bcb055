//! The server API over real HTTP against a real `wsp serve` (and two cluster nodes on a real
//! `redis-server`): every command a backend uses, batches, the key, and `wsp api`.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use wsp_tests::{bin, Client, Redis, Serve};

const KEY: &str = "test-api-key-0123456789";

#[tokio::test]
async fn the_api_is_off_without_a_key_and_refuses_a_wrong_one() {
    let off = Serve::start(&[]);
    let (status, r) = off
        .post("/api", Some(KEY), &json!({"cmd": "client_count"}))
        .await;
    assert_eq!(status, 404, "{r}");
    assert!(r["msg"].as_str().unwrap().contains("--api-key"), "{r}");

    let on = Serve::start(&["--api-key", KEY]);
    for key in [None, Some("wrong-key-0123456789")] {
        let (status, r) = on.post("/api", key, &json!({"cmd": "client_count"})).await;
        assert_eq!(status, 401, "{r}");
        assert_eq!(r["status"], 401);
    }
    let (status, r) = on.post("/api", Some(KEY), &json!({"nope": 1})).await;
    assert_eq!(status, 400, "{r}");
    assert_eq!(on.healthz().await["refused"]["api_key"], 2);

    // A short key is refused at start.
    let out = Command::new(bin("wsp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--api-key", "short"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 16"));
}

#[tokio::test]
async fn every_backend_command_works_over_http() {
    let s = Serve::start(&["--api-key", KEY]);
    let mut alice = Client::json(&s.ws("id=alice&uid=ua&channel=news")).await;
    let mut bob = Client::proto(&s.ws("id=bob&channel=news")).await;
    let mut carol = Client::json(&s.ws("id=carol")).await;

    // Sends: the backend is the sender (`from` is null).
    let r = s
        .api(
            KEY,
            "send_to_client",
            json!({"client_id": "alice", "data": {"n": 1}}),
        )
        .await;
    assert_eq!(r["status"], 0, "{r}");
    assert_eq!(r["seqno"], "send_to_client");
    assert_eq!(r["data"]["delivered"], 1);
    let m = alice.recv_json().await;
    assert_eq!(m["cmd"], "message");
    assert_eq!(m["data"]["from"], Value::Null);
    assert_eq!(m["data"]["route"], "client");
    assert_eq!(m["data"]["data"]["n"], 1);

    let r = s
        .api(KEY, "send_to_uid", json!({"uid": "ua", "data": "u"}))
        .await;
    assert_eq!(r["data"]["delivered"], 1, "{r}");
    assert_eq!(alice.recv_json().await["data"]["data"], "u");

    let r = s
        .api(
            KEY,
            "send_to_channel",
            json!({"channel": "news", "data": "n"}),
        )
        .await;
    assert_eq!(r["data"]["delivered"], 2, "{r}");
    assert_eq!(alice.recv_json().await["data"]["data"], "n");
    // Pushes take the sender's form: JSON by default, whatever the recipient speaks.
    assert_eq!(bob.recv_json().await["data"]["data"], "n");

    let r = s.api(KEY, "send_to_all", json!({"data": "all"})).await;
    assert_eq!(r["data"]["delivered"], 3, "{r}");
    assert_eq!(alice.recv_json().await["data"]["data"], "all");
    assert_eq!(carol.recv_json().await["data"]["data"], "all");
    assert_eq!(bob.recv_json().await["data"]["data"], "all");

    // The protobuf form, for wsPool clients: cmd and cmdData of the backend's choosing.
    let r = s
        .api(
            KEY,
            "send_to_client",
            json!({"client_id": "bob", "format": "proto", "cmd": 7, "data_base64": "AAEC/w=="}),
        )
        .await;
    assert_eq!(r["status"], 0, "{r}");
    let p = bob.recv_proto().await;
    assert_eq!((p.cmd, p.cmd_data.as_ref()), (7, &[0u8, 1, 2, 255][..]));
    assert_eq!((p.from_client_id.as_str(), p.desc.as_str()), ("", "client"));
    let r = s
        .api(
            KEY,
            "send_to_client",
            json!({"client_id": "bob", "format": "proto", "data_base64": "%%"}),
        )
        .await;
    assert_eq!(r["status"], 400, "{r}");

    // Membership and info of a named client.
    let ok = |r: Value| {
        assert_eq!(r["status"], 0, "{r}");
        r["data"].clone()
    };
    ok(s.api(
        KEY,
        "join",
        json!({"client_id": "carol", "channel": "sport"}),
    )
    .await);
    ok(
        s.api(KEY, "bind_uid", json!({"client_id": "carol", "uid": "uc"}))
            .await,
    );
    ok(s.api(
        KEY,
        "set_info",
        json!({"client_id": "carol", "info": {"name": "C"}}),
    )
    .await);
    ok(s.api(
        KEY,
        "update_info",
        json!({"client_id": "carol", "info": {"lang": "fr"}}),
    )
    .await);
    let d = ok(s.api(KEY, "get_info", json!({"client_id": "carol"})).await);
    assert_eq!(d["info"], json!({"name": "C", "lang": "fr"}));
    // Carol sees it from her side too.
    assert_eq!(carol.ok("get_info", json!({})).await["info"]["lang"], "fr");

    let q = |cmd: &'static str, args: Value| {
        let s = &s;
        async move { ok(s.api(KEY, cmd, args).await) }
    };
    assert_eq!(
        q("is_online", json!({"client_id": "bob"})).await["online"],
        true
    );
    assert_eq!(
        q("is_uid_online", json!({"uid": "uc"})).await["online"],
        true
    );
    assert_eq!(
        q("uid_by_client_id", json!({"client_id": "carol"})).await["uid"],
        "uc"
    );
    assert_eq!(
        q("client_ids_by_uid", json!({"uid": "ua"})).await["client_ids"],
        json!(["alice"])
    );
    assert_eq!(
        q("client_ids_by_channel", json!({"channel": "news"})).await["client_ids"],
        json!(["alice", "bob"])
    );
    assert_eq!(
        q("uids_by_channel", json!({"channel": "news"})).await["uids"],
        json!(["ua"])
    );
    assert_eq!(q("client_count", json!({})).await["count"], 3);
    assert_eq!(
        q("channel_client_count", json!({"channel": "sport"})).await["count"],
        1
    );
    assert_eq!(
        q("channel_uid_count", json!({"channel": "sport"})).await["count"],
        1
    );
    assert_eq!(q("all_uids", json!({})).await["uids"], json!(["ua", "uc"]));
    assert_eq!(
        q("all_channels", json!({})).await["channels"],
        json!(["news", "sport"])
    );
    ok(s.api(
        KEY,
        "unbind_uid",
        json!({"client_id": "carol", "uid": "uc"}),
    )
    .await);
    ok(s.api(
        KEY,
        "leave",
        json!({"client_id": "carol", "channel": "sport"}),
    )
    .await);
    assert_eq!(
        q("all_channels", json!({})).await["channels"],
        json!(["news"])
    );

    // Errors say what is wrong.
    let r = s.api(KEY, "join", json!({"channel": "x"})).await;
    assert_eq!(r["status"], 400, "{r}");
    assert!(r["msg"].as_str().unwrap().contains("client_id"));
    let r = s
        .api(
            KEY,
            "send_to_client",
            json!({"client_id": "ghost", "data": 1}),
        )
        .await;
    assert_eq!(r["status"], 404, "{r}");
    assert_eq!(s.api(KEY, "nope", json!({})).await["status"], 404);
    assert_eq!(
        s.api(KEY, "refresh", json!({"token": "x"})).await["status"],
        400
    );
    // The per-client limits still hold for what the API changes.
    let r = s
        .api(
            KEY,
            "set_info",
            json!({"client_id": "carol", "info": {"k": "v".repeat(5000)}}),
        )
        .await;
    assert_eq!(r["status"], 413, "{r}");

    // Closing a client, with a code.
    ok(s.api(
        KEY,
        "close_client",
        json!({"client_id": "carol", "code": 4000, "reason": "bye"}),
    )
    .await);
    assert_eq!(carol.expect_close().await, (4000, "bye".to_string()));
}

#[tokio::test]
async fn a_batch_is_answered_in_order() {
    let s = Serve::start(&["--api-key", KEY]);
    let mut a = Client::json(&s.ws("id=a")).await;
    let batch = json!([
        {"cmd": "join", "seqno": 1, "data": {"client_id": "a", "channel": "c"}},
        {"cmd": "send_to_client", "seqno": 2, "data": {"client_id": "ghost", "data": 0}},
        {"cmd": "send_to_channel", "seqno": 3, "data": {"channel": "c", "data": "after join"}},
        {"cmd": "channel_client_count", "seqno": 4, "data": {"channel": "c"}},
    ]);
    let (status, r) = s.post("/api/batch", Some(KEY), &batch).await;
    assert_eq!(status, 200, "{r}");
    let seqnos: Vec<_> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["seqno"].clone())
        .collect();
    assert_eq!(seqnos, vec![json!(1), json!(2), json!(3), json!(4)]);
    let statuses: Vec<_> = r
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].clone())
        .collect();
    assert_eq!(statuses, vec![json!(0), json!(404), json!(0), json!(0)]);
    assert_eq!(r[2]["data"]["delivered"], 1);
    assert_eq!(r[3]["data"]["count"], 1);
    assert_eq!(a.recv_json().await["data"]["data"], "after join");

    let too_many: Vec<Value> = (0..1001).map(|_| json!({"cmd": "client_count"})).collect();
    let (status, r) = s.post("/api/batch", Some(KEY), &json!(too_many)).await;
    assert_eq!(status, 413, "{r}");
    let (status, _) = s.post("/api/batch", Some(KEY), &json!({"cmd": "x"})).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn wsp_api_prints_the_reply_and_exits_with_its_status() {
    let s = Serve::start(&["--api-key", KEY]);
    let mut a = Client::json(&s.ws("id=a&channel=news")).await;
    let url = format!("http://{}", s.addr);
    let run = |args: &[&str]| {
        Command::new(bin("wsp"))
            .arg("api")
            .args(["--url", &url])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--api-key",
        KEY,
        "send_to_channel",
        "channel=news",
        "data.title=hi",
        "data.n:=2",
    ]);
    assert!(out.status.success(), "{out:?}");
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["data"]["delivered"], 1);
    assert_eq!(
        a.recv_json().await["data"]["data"],
        json!({"title": "hi", "n": 2})
    );

    let out = run(&[
        "--api-key",
        KEY,
        "send_to_client",
        "client_id=ghost",
        "data=x",
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let reply: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reply["status"], 404);

    let out = run(&["--api-key", "wrong-key-0123456789", "client_count"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"));

    // The key from the environment, a batch from stdin.
    let mut child = Command::new(bin("wsp"))
        .args(["api", "--url", &url, "--batch", "-"])
        .env("WSP_API_KEY", KEY)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(br#"[{"cmd":"client_count","seqno":"x"},{"cmd":"all_channels","seqno":"y"}]"#)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let replies: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(replies[0]["data"]["count"], 1);
    assert_eq!(replies[1]["data"]["channels"], json!(["news"]));

    // Nothing listening: exit 2 with a hint.
    drop(a);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(bin("wsp"))
        .args([
            "api",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "client_count",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach"));
}

#[tokio::test]
async fn every_call_answers_for_the_whole_cluster() {
    let redis = Redis::start();
    let node = |id: &str| Serve::node(&redis, id, &["--api-key", KEY]);
    let (a, b) = (node("api-a"), node("api-b"));
    let mut b1 = Client::json(&b.ws("id=b1&uid=ub")).await;
    let _a1 = Client::json(&a.ws("id=a1&channel=room")).await;

    // Through node A, act on b1, which is connected to node B.
    let r = a
        .api(
            KEY,
            "send_to_client",
            json!({"client_id": "b1", "data": "via a"}),
        )
        .await;
    assert_eq!(r["data"]["delivered"], 1, "{r}");
    assert_eq!(b1.recv_json().await["data"]["data"], "via a");
    assert_eq!(
        a.api(KEY, "join", json!({"client_id": "b1", "channel": "room"}))
            .await["status"],
        0
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let r = a
            .api(KEY, "client_ids_by_channel", json!({"channel": "room"}))
            .await;
        if r["data"]["client_ids"] == json!(["a1", "b1"]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{r}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = a
        .api(
            KEY,
            "send_to_channel",
            json!({"channel": "room", "data": "room"}),
        )
        .await;
    assert_eq!(r["data"]["delivered"], 2, "{r}");
    assert_eq!(b1.recv_json().await["data"]["data"], "room");
    assert_eq!(
        a.api(KEY, "client_count", json!({})).await["data"]["count"],
        2
    );
    assert_eq!(
        a.api(KEY, "is_uid_online", json!({"uid": "ub"})).await["data"]["online"],
        true
    );
    let r = a
        .api(
            KEY,
            "close_client",
            json!({"client_id": "b1", "code": 4001}),
        )
        .await;
    assert_eq!(r["status"], 0, "{r}");
    assert_eq!(b1.expect_close().await.0, 4001);
}
