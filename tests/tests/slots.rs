//! Key scheme 2 on a real three-master Redis Cluster: every script touches one slot (the
//! masters answer no command with an error, whatever the operation), and the work of a pool
//! spreads over the masters — 2 wsp nodes, 1,000 history channels, 5,000 clients joining and
//! publishing — for plain, `room:N` and `0`…`999` channel names alike.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{stream, StreamExt};
use serde_json::{json, Value};
use wsp_tests::{Client, RedisClusterProcs, Serve};

const KEY: &str = "slots-test-api-key";

fn cli(port: u16, args: &[&str]) -> String {
    let out = std::process::Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// `INFO <section>` of one master as `field → value`.
fn info(port: u16, section: &str) -> BTreeMap<String, String> {
    cli(port, &["INFO", section])
        .lines()
        .filter_map(|l| l.trim().split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Commands a master ran for the pool (not the test's own INFO/CONFIG, nor connection set-up).
fn pool_commands(port: u16) -> u64 {
    const ADMIN: &[&str] = &[
        "info", "config", "cluster", "ping", "client", "hello", "command", "select", "readonly",
        "auth", "script", "flushall",
    ];
    info(port, "commandstats")
        .iter()
        .filter_map(|(k, v)| {
            let name = k.strip_prefix("cmdstat_")?;
            let base = name.split('|').next().unwrap_or(name);
            if ADMIN.contains(&base) {
                return None;
            }
            v.split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

/// Errors a master answered, by kind, leaving out NOSCRIPT (a script's first run on a master:
/// the client loads it and runs it again).
fn errors(port: u16) -> Vec<String> {
    info(port, "errorstats")
        .into_iter()
        .filter(|(k, _)| k.starts_with("errorstat_") && k != "errorstat_NOSCRIPT")
        .map(|(k, v)| format!("{k}:{v}"))
        .collect()
}

fn node(rc: &RedisClusterProcs, master: usize, id: &str) -> Serve {
    let url = format!("redis://127.0.0.1:{}", rc.ports[master]);
    Serve::start(&[
        "--redis",
        &url,
        "--redis-cluster",
        "--server-id",
        id,
        "--node-ttl",
        "1s",
        "--history-size",
        "20",
        "--max-messages-per-sec",
        "0",
        "--max-connections-per-ip",
        "0",
        "--api-key",
        KEY,
    ])
}

async fn redis_errors(s: &Serve) -> f64 {
    let (_, text) = s.get("/metrics").await;
    text.lines()
        .find(|l| l.starts_with("wsp_redis_errors_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Every operation the scripts have, on the cluster: connect, join (URL and command), leave,
/// bind and rebind, unbind, info, a remote client's footprint, history publish to one and to
/// several channels, recovery read, `history`, disconnect, and reaping a killed node.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_script_touches_one_slot_on_a_redis_cluster() {
    let rc = RedisClusterProcs::start();
    let a = node(&rc, 0, "sa");
    let mut b = node(&rc, 1, "sb");
    let mut a1 = Client::json(&a.ws("id=a1&uid=ua&channel=news")).await;
    let mut b1 = Client::json(&b.ws("id=b1&uid=ub&channel=news&channel=sport")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    a1.ok("join", json!({"channel": "room:7"})).await;
    a1.ok("leave", json!({"channel": "room:7"})).await;
    a1.ok("bind_uid", json!({"uid": "ua2"})).await;
    a1.ok("unbind_uid", json!({"uid": "ua2"})).await;
    a1.ok("set_info", json!({"info": {"k": "v"}})).await;
    // Changes to a client of the other node (its footprint is checked first).
    let r = a
        .api(KEY, "join", json!({"client_id": "b1", "channel": "extra"}))
        .await;
    assert_eq!(r["status"], 0, "{r}");
    let r = a
        .api(
            KEY,
            "set_info",
            json!({"client_id": "b1", "info": {"x": "1"}}),
        )
        .await;
    assert_eq!(r["status"], 0, "{r}");
    let one = a1
        .ok("send_to_channel", json!({"channel": "news", "data": "one"}))
        .await;
    assert_eq!(one["delivered"], 2, "{one}");
    // A send to several channels: b1 is in both, it gets it once.
    let many = a1
        .ok(
            "send_to_channel",
            json!({"channel": ["news", "sport", "0", "room:1"], "data": "many"}),
        )
        .await;
    assert_eq!(many["delivered"], 2, "{many}");
    let mut got = Vec::new();
    for _ in 0..2 {
        let m = b1.recv_json().await;
        got.push(m["data"]["data"].clone());
    }
    assert_eq!(got, [json!("one"), json!("many")]);
    b1.expect_silence(Duration::from_millis(300)).await;
    let h = a1
        .ok("history", json!({"channel": "sport", "limit": 10}))
        .await;
    assert_eq!(h["publications"].as_array().map(Vec::len), Some(1), "{h}");
    // A recovery read: rejoin "news" from before both messages.
    let epoch = h["epoch"].as_str().unwrap_or_default().to_string();
    let news = a1
        .ok("history", json!({"channel": "news", "limit": 10}))
        .await;
    let news_epoch = news["epoch"].as_str().unwrap().to_string();
    let mut c = Client::json(&b.ws("id=c1")).await;
    let r = c
        .ok(
            "join",
            json!({"channel": "news", "since": {"epoch": news_epoch, "offset": 0}}),
        )
        .await;
    assert_eq!(r["recovered"], true, "{r} (sport epoch {epoch})");
    // Queries that read many slots.
    assert_eq!(a1.ok("client_count", json!({})).await["count"], 3);
    let chans = a1.ok("all_channels", json!({})).await;
    for ch in ["news", "sport", "extra"] {
        assert!(chans.to_string().contains(ch), "{chans}");
    }
    // A killed node: its clients are reaped, and its ids can be claimed again.
    drop(b1);
    drop(c);
    b.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(a1.ok("client_count", json!({})).await["count"], 1);
    let _b1_again = Client::json(&a.ws("id=b1")).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    assert_eq!(redis_errors(&a).await, 0.0);
    for &p in &rc.ports {
        assert_eq!(
            errors(p),
            Vec::<String>::new(),
            "master {p} answered errors"
        );
    }
}

/// 2 nodes, 1,000 history channels, 5,000 clients (each joins one channel through its URL and
/// publishes one message to it): each master's share of the commands within ±25% of the mean.
async fn spread(rc: &RedisClusterProcs, shape: &str, name: fn(usize) -> String) -> Vec<u64> {
    for &p in &rc.ports {
        cli(p, &["FLUSHALL"]);
        cli(p, &["CONFIG", "RESETSTAT"]);
    }
    let nodes = [
        node(rc, 0, &format!("{shape}-a")),
        node(rc, 1, &format!("{shape}-b")),
    ];
    let urls: Vec<String> = (0..5000)
        .map(|i| {
            let ch = urlencode(&name(i % 1000));
            nodes[i % 2].ws(&format!("channel={ch}&uid=u{i}"))
        })
        .collect();
    let mut clients: Vec<Client> = stream::iter(urls)
        .map(|u| async move { Client::json(&u).await })
        .buffer_unordered(100)
        .collect()
        .await;
    let sent: Vec<Value> = stream::iter(clients.iter_mut().enumerate())
        .map(|(i, c)| async move {
            c.call(
                "send_to_channel",
                json!({"channel": name(i % 1000), "data": i}),
            )
            .await
        })
        .buffer_unordered(100)
        .collect()
        .await;
    for r in &sent {
        assert_eq!(r["status"], 0, "{r}");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let counts: Vec<u64> = rc.ports.iter().map(|&p| pool_commands(p)).collect();
    for s in &nodes {
        assert_eq!(
            redis_errors(s).await,
            0.0,
            "{shape}: a node's Redis operation failed"
        );
    }
    for &p in &rc.ports {
        assert_eq!(
            errors(p),
            Vec::<String>::new(),
            "{shape}: master {p} answered errors"
        );
    }
    drop(clients);
    counts
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_pool_spreads_over_every_master() {
    let rc = RedisClusterProcs::start();
    type Shape = (&'static str, fn(usize) -> String);
    let shapes: [Shape; 3] = [
        ("chat", |i| format!("chat-{i:x}-lobby")),
        ("room", |i| format!("room:{}", i + 1)),
        ("number", |i| i.to_string()),
    ];
    let mut failed = Vec::new();
    eprintln!("| channel names | master 1 | master 2 | master 3 | worst vs mean |");
    eprintln!("|---|---|---|---|---|");
    for (shape, name) in shapes {
        let counts = spread(&rc, shape, name).await;
        let mean = counts.iter().sum::<u64>() as f64 / counts.len() as f64;
        let worst = counts
            .iter()
            .map(|&c| (c as f64 - mean) / mean * 100.0)
            .fold(0.0f64, |w, d| if d.abs() > w.abs() { d } else { w });
        let cells: Vec<String> = counts
            .iter()
            .map(|&c| format!("{c} ({:.1}%)", c as f64 * 100.0 / (3.0 * mean)))
            .collect();
        eprintln!("| {shape} | {} | {worst:+.1}% |", cells.join(" | "));
        if worst.abs() > 25.0 {
            failed.push(format!(
                "{shape}: {counts:?}, worst {worst:+.1}% of the mean"
            ));
        }
    }
    assert!(failed.is_empty(), "uneven spread: {failed:?}");
}

/// Upgrading: a node of key scheme 2 refuses to join a pool whose live nodes write scheme 1
/// (`{wsp}:…`), and says what to do; once they are gone it starts.
#[test]
fn a_node_refuses_to_join_a_pool_of_older_nodes() {
    let redis = wsp_tests::Redis::start();
    // What a running scheme-1 node leaves in Redis: its name in `{wsp}:nodes`, its liveness key.
    redis.cli(&["SADD", "{wsp}:nodes", "old-1"]);
    redis.cli(&["SET", "{wsp}:alive:old-1", "1", "PX", "60000"]);
    let out = std::process::Command::new(wsp_tests::bin("wsp"))
        .args(["serve", "--listen", "127.0.0.1:0", "--redis", &redis.url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("old-1") && err.contains("key scheme 1") && err.contains("--redis-prefix"),
        "{err}"
    );
    // The old node is gone (its liveness key expired): the new one starts.
    redis.cli(&["DEL", "{wsp}:alive:old-1"]);
    let s = wsp_tests::Serve::node(&redis, "new-1", &[]);
    assert!(s.url.starts_with("ws://"));
    let mut scheme = String::new();
    for _ in 0..50 {
        scheme = redis.cli(&["GET", "wsp:scheme"]);
        if !scheme.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(scheme, "2");
}
