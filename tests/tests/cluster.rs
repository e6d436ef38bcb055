//! Cluster mode: a real `redis-server` and three real `wsp serve` nodes, clients on each.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use wsp_tests::{Client, Redis, RedisClusterProcs, Serve};

/// A cluster node. These tests drive the whole Hub API across nodes from clients, acting on
/// each other (GatewayWorker's model), so the nodes run with `--client-rights all`.
fn node(redis: &Redis, id: &str) -> Serve {
    Serve::node(redis, id, &["--client-rights", "all"])
}

/// Asks `q` a command until its data equals `want`, for at most `limit`.
async fn until(q: &mut Client, limit: Duration, cmd: &str, args: Value, want: Value) {
    let deadline = Instant::now() + limit;
    loop {
        let r = q.call(cmd, args.clone()).await;
        if r["status"] == 0 && r["data"] == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {cmd} {args} = {want}; last reply {r}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn data(m: &Value) -> &Value {
    &m["data"]["data"]
}

#[tokio::test]
async fn every_send_and_presence_api_works_across_three_nodes() {
    let redis = Redis::start();
    let (a, b, c) = (node(&redis, "na"), node(&redis, "nb"), node(&redis, "nc"));
    let mut a1 = Client::json(&a.ws("id=a1&uid=u1&channel=red")).await;
    let mut b1 = Client::json(&b.ws("id=b1&uid=u1&channel=red&channel=blue")).await;
    let mut c1 = Client::json(&c.ws("id=c1&uid=u2&channel=blue")).await;

    // Unicast to another node.
    assert_eq!(
        a1.ok("send_to_client", json!({"client_id": "c1", "data": "hi c"}))
            .await["delivered"],
        1
    );
    assert_eq!(data(&c1.recv_json().await), "hi c");
    // A uid spanning two nodes.
    assert_eq!(
        c1.ok("send_to_uid", json!({"uid": "u1", "data": "to u1"}))
            .await["delivered"],
        2
    );
    assert_eq!(data(&a1.recv_json().await), "to u1");
    assert_eq!(data(&b1.recv_json().await), "to u1");
    // A channel spanning two nodes.
    assert_eq!(
        c1.ok("send_to_channel", json!({"channel": "red", "data": 1}))
            .await["delivered"],
        2
    );
    assert_eq!(data(&a1.recv_json().await), 1);
    assert_eq!(data(&b1.recv_json().await), 1);
    // Several channels: b1 is in both and gets it once.
    assert_eq!(
        a1.ok(
            "send_to_channel",
            json!({"channel": ["red", "blue"], "data": 2})
        )
        .await["delivered"],
        3
    );
    for cl in [&mut a1, &mut b1, &mut c1] {
        assert_eq!(data(&cl.recv_json().await), 2);
    }
    // Everyone.
    assert_eq!(
        b1.ok("send_to_all", json!({"data": 3})).await["delivered"],
        3
    );
    for cl in [&mut a1, &mut b1, &mut c1] {
        assert_eq!(data(&cl.recv_json().await), 3);
    }
    for cl in [&mut a1, &mut b1, &mut c1] {
        cl.expect_silence(Duration::from_millis(200)).await;
    }

    let h = a.healthz().await;
    assert_eq!(
        h["cluster"],
        json!({"backend": "redis", "connected": true}),
        "{h}"
    );
    assert_eq!(h["clients"], 1, "healthz counts this node's clients");

    // Presence, asked on node A about all nodes.
    let q = &mut a1;
    assert_eq!(q.ok("client_count", json!({})).await, json!({"count": 3}));
    assert_eq!(
        q.ok("is_online", json!({"client_id": "c1"})).await,
        json!({"online": true})
    );
    assert_eq!(
        q.ok("is_uid_online", json!({"uid": "u2"})).await,
        json!({"online": true})
    );
    assert_eq!(
        q.ok("uid_by_client_id", json!({"client_id": "b1"})).await,
        json!({"uid": "u1"})
    );
    assert_eq!(
        q.ok("client_ids_by_uid", json!({"uid": "u1"})).await,
        json!({"client_ids": ["a1", "b1"]})
    );
    assert_eq!(
        q.ok("client_ids_by_channel", json!({"channel": "blue"}))
            .await,
        json!({"client_ids": ["b1", "c1"]})
    );
    assert_eq!(
        q.ok("uids_by_channel", json!({"channel": "blue"})).await,
        json!({"uids": ["u1", "u2"]})
    );
    assert_eq!(
        q.ok("channel_client_count", json!({"channel": "red"}))
            .await,
        json!({"count": 2})
    );
    assert_eq!(
        q.ok("channel_uid_count", json!({"channel": "blue"})).await,
        json!({"count": 2})
    );
    assert_eq!(
        q.ok("all_uids", json!({})).await,
        json!({"uids": ["u1", "u2"]})
    );
    assert_eq!(
        q.ok("all_channels", json!({})).await,
        json!({"channels": ["blue", "red"]})
    );

    // Info set on C, read on A.
    c1.ok("set_info", json!({"info": {"name": "Cee"}})).await;
    assert_eq!(
        a1.ok("get_info", json!({"client_id": "c1"})).await["info"],
        json!({"name": "Cee"})
    );

    // A changes a client of C: joins it to a channel, binds it, then closes it.
    a1.ok("join", json!({"client_id": "c1", "channel": "green"}))
        .await;
    until(
        &mut a1,
        Duration::from_secs(5),
        "client_ids_by_channel",
        json!({"channel": "green"}),
        json!({"client_ids": ["c1"]}),
    )
    .await;
    let n = b1
        .ok("send_to_channel", json!({"channel": "green", "data": "g"}))
        .await["delivered"]
        .clone();
    assert_eq!(n, 1);
    assert_eq!(data(&c1.recv_json().await), "g");

    // Ids are unique across the cluster.
    let err = tokio_tungstenite::connect_async(b.ws("id=a1"))
        .await
        .unwrap_err();
    assert_eq!(wsp_tests::refused_status(err), 409);

    a1.ok(
        "close_client",
        json!({"client_id": "c1", "code": 4000, "reason": "bye"}),
    )
    .await;
    assert_eq!(c1.expect_close().await, (4000, "bye".into()));
    drop((a, b, c));
}

#[tokio::test]
async fn a_killed_nodes_clients_leave_presence_in_time() {
    let redis = Redis::start();
    let a = node(&redis, "ka");
    let mut b = node(&redis, "kb");
    let mut watcher = Client::json(&a.ws("id=w")).await;
    let _gone = Client::json(&b.ws("id=doomed&uid=ud&channel=cx")).await;
    assert_eq!(
        watcher
            .ok("is_online", json!({"client_id": "doomed"}))
            .await,
        json!({"online": true})
    );
    b.kill();
    let killed = Instant::now();
    // node_ttl is 1 s; the janitor runs every ttl/3: gone within about 1.5 s.
    let deadline = Duration::from_secs(4);
    loop {
        let r = watcher
            .ok("is_online", json!({"client_id": "doomed"}))
            .await;
        if r == json!({"online": false}) {
            break;
        }
        assert!(
            killed.elapsed() < deadline,
            "the dead node's client is still online"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        watcher.ok("all_channels", json!({})).await,
        json!({"channels": []})
    );
    assert_eq!(watcher.ok("all_uids", json!({})).await, json!({"uids": []}));
    assert_eq!(
        watcher.ok("client_count", json!({})).await,
        json!({"count": 1})
    );

    // A node restarted with the same id leaves no ghosts either.
    let b2 = node(&redis, "kb");
    let _fresh = Client::json(&b2.ws("id=fresh")).await;
    assert_eq!(
        watcher.ok("client_count", json!({})).await,
        json!({"count": 2})
    );
}

#[tokio::test]
async fn a_redis_restart_is_survived() {
    if Redis::clustered() {
        eprintln!("skipped with WSP_TEST_REDIS=cluster: it restarts one redis-server");
        return;
    }
    let mut redis = Redis::start();
    let port = redis.port;
    let (a, b) = (node(&redis, "ra"), node(&redis, "rb"));
    let mut a1 = Client::json(&a.ws("id=a1&channel=x")).await;
    let mut b1 = Client::json(&b.ws("id=b1&channel=x&uid=ub")).await;
    assert_eq!(a1.ok("client_count", json!({})).await, json!({"count": 2}));

    redis.kill();
    // During the outage local clients are still served.
    a1.ok("join", json!({"channel": "local-only"})).await;
    assert!(a1.ok("ping", json!({})).await["pong"].is_i64());

    let _redis2 = Redis::start_on(port);
    // The nodes reconnect, re-register their clients and resubscribe.
    let limit = Duration::from_secs(20);
    until(
        &mut a1,
        limit,
        "client_ids_by_channel",
        json!({"channel": "x"}),
        json!({"client_ids": ["a1", "b1"]}),
    )
    .await;
    until(
        &mut a1,
        limit,
        "uid_by_client_id",
        json!({"client_id": "b1"}),
        json!({"uid": "ub"}),
    )
    .await;
    until(
        &mut a1,
        limit,
        "channel_client_count",
        json!({"channel": "local-only"}),
        json!({"count": 1}),
    )
    .await;
    // b1 (node B) hears a broadcast sent on node A: B resubscribed.
    a1.ok("send_to_channel", json!({"channel": "x", "data": "after"}))
        .await;
    loop {
        let m = b1.recv_json().await;
        if data(&m) == "after" {
            break;
        }
    }
}

#[tokio::test]
async fn a_redis_cluster_with_sharded_pubsub_works() {
    if Redis::clustered() {
        eprintln!("skipped with WSP_TEST_REDIS=cluster: every test here runs on a cluster then");
        return;
    }
    let rc = RedisClusterProcs::start();
    let url = |i: usize| format!("redis://127.0.0.1:{}", rc.ports[i]);
    let (u0, u1) = (url(0), url(1));
    let a = Serve::start(&[
        "--redis",
        &u0,
        "--redis-cluster",
        "--server-id",
        "ca",
        "--node-ttl",
        "1s",
    ]);
    let b = Serve::start(&[
        "--redis",
        &u1,
        "--redis-cluster",
        "--server-id",
        "cb",
        "--node-ttl",
        "1s",
    ]);
    let mut a1 = Client::json(&a.ws("id=a1&uid=ua")).await;
    let mut b1 = Client::json(&b.ws("id=b1&channel=news&uid=ub")).await;
    let mut b2 = Client::json(&b.ws("id=b2&channel=sport")).await;
    assert_eq!(a1.ok("client_count", json!({})).await, json!({"count": 3}));
    assert_eq!(
        a1.ok("send_to_channel", json!({"channel": "news", "data": "n"}))
            .await["delivered"],
        1
    );
    assert_eq!(data(&b1.recv_json().await), "n");
    assert_eq!(
        a1.ok("send_to_uid", json!({"uid": "ub", "data": "u"}))
            .await["delivered"],
        1
    );
    assert_eq!(data(&b1.recv_json().await), "u");
    assert_eq!(
        b2.ok("send_to_client", json!({"client_id": "a1", "data": "c"}))
            .await["delivered"],
        1
    );
    assert_eq!(data(&a1.recv_json().await), "c");
    assert_eq!(
        a1.ok("send_to_all", json!({"data": "all"})).await["delivered"],
        3
    );
    for cl in [&mut a1, &mut b1, &mut b2] {
        assert_eq!(data(&cl.recv_json().await), "all");
    }
    assert_eq!(
        a1.ok("all_channels", json!({})).await,
        json!({"channels": ["news", "sport"]})
    );
}
