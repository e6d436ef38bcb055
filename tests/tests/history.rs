//! Channel history and lossless reconnects, over real sockets against real `wsp serve`
//! processes (and two cluster nodes on a real `redis-server`): a subscriber's connection is cut
//! while messages keep flowing, and the reconnect recovers every message exactly once, in order.

use std::time::Duration;

use serde_json::{json, Value};
use wsp_proto::SendMsg;
use wsp_tests::{Client, Redis, Serve};

/// Publishes `from..=to` to `channel`, one every `gap`, from its own connection.
fn publisher(
    url: String,
    channel: &'static str,
    from: u64,
    to: u64,
    gap: Duration,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut p = Client::json(&url).await;
        for n in from..=to {
            p.ok("send_to_channel", json!({"channel": channel, "data": n}))
                .await;
            tokio::time::sleep(gap).await;
        }
    })
}

/// Reads channel pushes until the one carrying `last`; returns (offset, payload) of each.
async fn read_until(c: &mut Client, last: u64) -> Vec<(u64, u64)> {
    let mut got = Vec::new();
    loop {
        let m = c.recv_json().await;
        if m["cmd"] != "message" {
            continue;
        }
        let n = m["data"]["data"].as_u64().unwrap();
        got.push((m["data"]["offset"].as_u64().expect("offset"), n));
        if n == last {
            return got;
        }
    }
}

/// Asserts every payload in `from..=to` came exactly once, in order, at consecutive offsets.
fn exactly_once_in_order(got: &[(u64, u64)], from: u64, to: u64) {
    let payloads: Vec<u64> = got.iter().map(|g| g.1).collect();
    let want: Vec<u64> = (from..=to).collect();
    assert_eq!(payloads, want, "payloads");
    for w in got.windows(2) {
        assert_eq!(w[1].0, w[0].0 + 1, "offsets must be consecutive: {w:?}");
    }
}

/// Cuts a client's TCP connection without a close handshake.
fn cut(c: Client) {
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_subscriber_recovers_every_message_exactly_once() {
    let s = Serve::start(&["--history-size", "500"]);
    let mut sub = Client::json(&s.ws("")).await;
    let j = sub.ok("join", json!({"channel": "news"})).await;
    let epoch = j["epoch"]
        .as_str()
        .expect("join reports the epoch")
        .to_string();
    assert_eq!(j["offset"], 0);

    let pubs = publisher(s.ws(""), "news", 1, 300, Duration::from_millis(3));
    let before = read_until(&mut sub, 40).await;
    let (last_offset, _) = *before.last().unwrap();
    cut(sub);
    tokio::time::sleep(Duration::from_millis(200)).await; // messages keep flowing

    let mut back = Client::json(&s.ws("")).await;
    let r = back
        .call(
            "join",
            json!({"channel": "news", "since": {"epoch": epoch, "offset": last_offset}}),
        )
        .await;
    assert_eq!(r["status"], 0, "{r}");
    assert_eq!(r["data"]["recovered"], true, "{r}");
    assert!(r["data"]["missed"].as_u64().unwrap() > 0, "{r}");
    let after = read_until(&mut back, 300).await;
    pubs.await.unwrap();
    let mut all = before.clone();
    all.extend(after);
    exactly_once_in_order(&all, 1, 300);

    // The last messages, oldest first.
    let h = back
        .ok("history", json!({"channel": "news", "limit": 3}))
        .await;
    assert_eq!(h["epoch"], epoch);
    assert_eq!(h["offset"], 300);
    let offsets: Vec<_> = h["publications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["offset"].clone())
        .collect();
    assert_eq!(offsets, vec![json!(298), json!(299), json!(300)]);
    assert_eq!(h["publications"][2]["push"]["data"]["data"], 300);
}

#[tokio::test]
async fn what_cannot_be_recovered_says_so() {
    let s = Serve::start(&["--history-size", "5"]);
    let mut p = Client::json(&s.ws("")).await;
    for n in 1..=12 {
        p.ok("send_to_channel", json!({"channel": "c", "data": n}))
            .await;
    }
    let epoch = p.ok("history", json!({"channel": "c"})).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = Client::json(&s.ws("")).await;
    // Offset 3: 4 to 7 have left the 5-message window.
    let r = c
        .call(
            "join",
            json!({"channel": "c", "since": {"epoch": epoch, "offset": 3}}),
        )
        .await;
    assert_eq!(
        (r["data"]["recovered"].clone(), r["data"]["offset"].clone()),
        (json!(false), json!(12)),
        "{r}"
    );
    c.ok("leave", json!({"channel": "c"})).await;
    // Another epoch.
    let r = c
        .call(
            "join",
            json!({"channel": "c", "since": {"epoch": "nope", "offset": 11}}),
        )
        .await;
    assert_eq!(r["data"]["recovered"], false);
    c.ok("leave", json!({"channel": "c"})).await;
    // Within the window: recovered, and the two missed messages follow the reply.
    let r = c
        .call(
            "join",
            json!({"channel": "c", "since": {"epoch": epoch, "offset": 10}}),
        )
        .await;
    assert_eq!(r["data"]["recovered"], true);
    assert_eq!(c.recv_json().await["data"]["data"], 11);
    assert_eq!(c.recv_json().await["data"]["data"], 12);
    // Bad arguments.
    let r = c
        .call("join", json!({"channel": "d", "since": {"epoch": 1}}))
        .await;
    assert_eq!(r["status"], 400, "{r}");
    assert_eq!(
        c.call("history", json!({"channel": "c", "limit": 0})).await["status"],
        400
    );
}

#[tokio::test]
async fn a_restarted_node_has_a_new_epoch() {
    let s = Serve::start(&["--history-size", "50"]);
    let mut c = Client::json(&s.ws("")).await;
    c.ok("join", json!({"channel": "c"})).await;
    c.ok("send_to_channel", json!({"channel": "c", "data": 1}))
        .await;
    let m = c.recv_json().await;
    let (epoch, offset) = (m["data"]["epoch"].clone(), m["data"]["offset"].clone());
    assert_eq!(offset, 1);
    drop(c);
    drop(s); // killed

    let s2 = Serve::start(&["--history-size", "50"]);
    let mut c = Client::json(&s2.ws("")).await;
    let r = c
        .call(
            "join",
            json!({"channel": "c", "since": {"epoch": epoch, "offset": offset}}),
        )
        .await;
    assert_eq!(r["data"]["recovered"], false, "{r}");
    assert_ne!(r["data"]["epoch"], epoch);
}

#[tokio::test]
async fn without_history_nothing_is_recovered_and_pushes_have_no_offset() {
    let s = Serve::start(&[]);
    let mut c = Client::json(&s.ws("")).await;
    let r = c
        .call(
            "join",
            json!({"channel": "c", "since": {"epoch": "e", "offset": 1}}),
        )
        .await;
    assert_eq!(
        (r["status"].clone(), r["data"]["recovered"].clone()),
        (json!(0), json!(false)),
        "{r}"
    );
    c.ok("send_to_channel", json!({"channel": "c", "data": 1}))
        .await;
    let m = c.recv_json().await;
    assert!(m["data"].get("offset").is_none(), "{m}");
    let r = c.call("history", json!({"channel": "c"})).await;
    assert_eq!(r["status"], 400);
    assert!(r["msg"].as_str().unwrap().contains("--history-size"), "{r}");
}

#[tokio::test]
async fn protobuf_clients_recover_too() {
    let s = Serve::start(&["--history-size", "50"]);
    let mut p = Client::proto(&s.ws("")).await;
    for n in 1..=4 {
        p.send_proto(&SendMsg {
            cmd: 7,
            channel: vec!["room".into()],
            msg: format!("m{n}"),
            local_id: format!("p{n}"),
            ..Default::default()
        })
        .await;
    }
    for n in 1..=4 {
        assert_eq!(
            p.recv_proto().await.local_id,
            format!("p{n}"),
            "acks in order"
        );
    }
    let mut c = Client::proto(&s.ws("")).await;
    c.send_proto(&SendMsg {
        cmd: 1026,
        local_id: "h".into(),
        msg: json!({"channel": "room"}).to_string(),
        ..Default::default()
    })
    .await;
    let h = c.recv_proto().await;
    let h: Value = serde_json::from_str(&h.msg).unwrap();
    let epoch = h["epoch"].as_str().unwrap().to_string();
    assert_eq!(h["offset"], 4);
    c.send_proto(&SendMsg {
        cmd: 1001,
        local_id: "j".into(),
        msg: json!({"channel": "room", "since": {"epoch": epoch, "offset": 2}}).to_string(),
        ..Default::default()
    })
    .await;
    let reply = c.recv_proto().await;
    assert_eq!(reply.local_id, "j");
    let d: Value = serde_json::from_str(&reply.msg).unwrap();
    assert_eq!(d["recovered"], true, "{d}");
    for (n, offset) in [(3, 3), (4, 4)] {
        let m = c.recv_proto().await;
        assert_eq!(m.msg, format!("m{n}"));
        assert_eq!(m.server_id, format!("{epoch}:{offset}"));
        let pos = wsp_server::publication::positions_of(&m).unwrap();
        assert_eq!(pos[0].offset, offset);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_recovers_on_another_cluster_node() {
    let redis = Redis::start();
    let node = |id: &str| Serve::node(&redis, id, &["--history-size", "500"]);
    let (a, b) = (node("ha"), node("hb"));
    let mut sub = Client::json(&a.ws("")).await;
    let j = sub.ok("join", json!({"channel": "news"})).await;
    let epoch = j["epoch"].as_str().unwrap().to_string();

    // Published through node B, received on node A.
    let pubs = publisher(b.ws(""), "news", 1, 250, Duration::from_millis(4));
    let before = read_until(&mut sub, 30).await;
    let (last, _) = *before.last().unwrap();
    cut(sub);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Reconnect to the other node.
    let mut back = Client::json(&b.ws("")).await;
    let r = back
        .call(
            "join",
            json!({"channel": "news", "since": {"epoch": epoch, "offset": last}}),
        )
        .await;
    assert_eq!(r["data"]["recovered"], true, "{r}");
    let after = read_until(&mut back, 250).await;
    pubs.await.unwrap();
    let mut all = before;
    all.extend(after);
    exactly_once_in_order(&all, 1, 250);

    // The history answers from Redis on either node.
    let h = back
        .ok("history", json!({"channel": "news", "limit": 2}))
        .await;
    assert_eq!(
        (h["epoch"].as_str(), h["offset"].as_u64()),
        (Some(epoch.as_str()), Some(250))
    );
    let mut q = Client::json(&a.ws("")).await;
    let h = q
        .ok("history", json!({"channel": "news", "limit": 2}))
        .await;
    assert_eq!(h["publications"][1]["offset"], 250);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_lost_its_data_gives_a_new_epoch() {
    if Redis::clustered() {
        eprintln!("skipped with WSP_TEST_REDIS=cluster: it restarts one redis-server");
        return;
    }
    let mut redis = Redis::start();
    let port = redis.port;
    let a = Serve::start(&[
        "--redis",
        &redis.url,
        "--server-id",
        "ea",
        "--history-size",
        "50",
    ]);
    let mut c = Client::json(&a.ws("")).await;
    let j = c.ok("join", json!({"channel": "c"})).await;
    let epoch = j["epoch"].clone();
    c.ok("send_to_channel", json!({"channel": "c", "data": 1}))
        .await;
    assert_eq!(c.recv_json().await["data"]["offset"], 1);
    drop(c);

    redis.kill();
    let _redis = Redis::start_on(port); // empty: no persistence
    let mut c = loop {
        let mut c = Client::json(&a.ws("")).await;
        let r = c
            .call(
                "join",
                json!({"channel": "c", "since": {"epoch": epoch, "offset": 1}}),
            )
            .await;
        if r["status"] == 0 {
            assert_eq!(r["data"]["recovered"], false, "{r}");
            assert_ne!(r["data"]["epoch"], epoch);
            break c;
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // still reconnecting to Redis
    };
    c.ok("send_to_channel", json!({"channel": "c", "data": 2}))
        .await;
    let m = c.recv_json().await;
    assert_eq!(
        m["data"]["offset"], 1,
        "offsets start over in the new epoch: {m}"
    );
}

/// History on a real three-master Redis Cluster with sharded pub/sub: the script's keys and
/// topics share one slot, so assigning, keeping and publishing stay one atomic step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_works_on_a_redis_cluster() {
    if Redis::clustered() {
        eprintln!("skipped with WSP_TEST_REDIS=cluster: every test here runs on a cluster then");
        return;
    }
    let rc = wsp_tests::RedisClusterProcs::start();
    let node = |i: usize, id: &str| {
        let url = format!("redis://127.0.0.1:{}", rc.ports[i]);
        Serve::start(&[
            "--redis",
            &url,
            "--redis-cluster",
            "--server-id",
            id,
            "--history-size",
            "100",
        ])
    };
    let (a, b) = (node(0, "rca"), node(1, "rcb"));
    let mut sub = Client::json(&a.ws("")).await;
    let epoch = sub.ok("join", json!({"channel": "news"})).await["epoch"]
        .as_str()
        .unwrap()
        .to_string();
    let mut p = Client::json(&b.ws("")).await;
    for n in 1..=3 {
        p.ok("send_to_channel", json!({"channel": "news", "data": n}))
            .await;
    }
    let got = read_until(&mut sub, 3).await;
    assert_eq!(got, vec![(1, 1), (2, 2), (3, 3)]);
    drop(sub);
    for n in 4..=5 {
        p.ok("send_to_channel", json!({"channel": "news", "data": n}))
            .await;
    }
    let mut back = Client::json(&b.ws("")).await;
    let r = back
        .call(
            "join",
            json!({"channel": "news", "since": {"epoch": epoch, "offset": 3}}),
        )
        .await;
    assert_eq!(r["data"]["recovered"], true, "{r}");
    assert_eq!(read_until(&mut back, 5).await, vec![(4, 4), (5, 5)]);
}
