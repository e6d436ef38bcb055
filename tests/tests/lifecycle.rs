//! Heartbeats, slow readers, close handshakes and graceful shutdown, through a real
//! `wsp serve`.

use std::time::Duration;

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use wsp_tests::{Client, Serve, WAIT};

#[tokio::test]
async fn silent_peer_is_closed_after_the_heartbeat_timeout_and_empty_frames_keep_alive() {
    let s = Serve::start(&["--ping-interval", "200ms", "--heartbeat-timeout", "1s"]);
    let mut silent = Client::json(&s.ws("id=silent")).await;
    let mut alive = Client::json(&s.ws("id=alive")).await;
    let start = std::time::Instant::now();
    // `alive` sends an empty frame (wsrv heartbeat) every 300 ms without reading anything;
    // `silent` neither reads (so never answers pings) nor sends.
    for _ in 0..8 {
        alive.ws.send(Message::text("")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let (code, reason) = silent.expect_close().await;
    assert_eq!(code, 1008, "{reason}");
    assert!(reason.contains("heartbeat"), "{reason}");
    assert!(start.elapsed() >= Duration::from_millis(1000));
    // `alive` lived through 2.4 s with a 1 s timeout.
    assert_eq!(
        alive.ok("is_online", json!({"client_id": "silent"})).await,
        json!({"online": false})
    );
    assert_eq!(
        alive.ok("is_online", json!({"client_id": "alive"})).await,
        json!({"online": true})
    );
}

#[tokio::test]
async fn slow_reader_is_cut_off_and_others_get_everything() {
    let s = Serve::start(&[
        "--outbound-queue",
        "64",
        "--write-timeout",
        "1s",
        "--max-message-size",
        "200000",
        // The publisher sends 300 frames as fast as the replies come back: on a fast machine
        // that is past the default burst (200) within a second, and the rate limit, not the
        // slow reader, would be what the test sees.
        "--max-messages-per-sec",
        "10000",
    ]);
    let _slow = Client::json(&s.ws("id=slow&channel=feed")).await; // never reads again
    let mut fast = Client::json(&s.ws("id=fast&channel=feed")).await;
    let mut publisher = Client::json(&s.ws("id=pub")).await;
    let blob = "x".repeat(64 * 1024);
    let n = 300; // ~19 MB for the slow reader: far past its socket buffers
    let reader = tokio::spawn(async move {
        for i in 0..n {
            let m = fast.recv_json().await;
            assert_eq!(
                m["data"]["data"]["i"], i,
                "fast reader lost or reordered a frame"
            );
        }
        fast
    });
    // Paced by the replies, so a reader that keeps up never has 64 frames waiting.
    let mut slowest = Duration::ZERO;
    for i in 0..n {
        let t = std::time::Instant::now();
        publisher
            .ok(
                "send_to_channel",
                json!({"channel": "feed", "data": {"i": i, "blob": blob}}),
            )
            .await;
        slowest = slowest.max(t.elapsed());
    }
    // The soak loop (scripts/soak) collects this line: a stall shows here long before it
    // reaches the 10 s that fails the test.
    eprintln!("soak: slowest send_to_channel reply {slowest:?}");
    let mut fast = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("fast reader starved")
        .unwrap();
    // The slow reader is gone from the pool (queue full → 1008, or write timeout).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let r = fast.ok("is_online", json!({"client_id": "slow"})).await;
        if r == json!({"online": false}) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow reader was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn big_broadcasts_a_reader_takes_slowly_arrive_whole_among_its_pongs_and_its_close() {
    // The fan-out sends broadcasts to a socket itself until the socket is full; the rest of a
    // frame it sent in part is the task's to write, before the task's own pongs and close.
    let s = Serve::start(&[
        "--client-rights",
        "all",
        "--max-message-size",
        "200000",
        "--max-messages-per-sec",
        "0",
        "--outbound-queue",
        "256",
    ]);
    let mut reader = Client::json(&s.ws("id=reader&channel=feed")).await;
    let mut publisher = Client::json(&s.ws("id=pub")).await;
    let blob = "y".repeat(100 * 1024);
    let n = 100; // 10 MB while the reader reads nothing: far past its socket buffers
    for i in 0..n {
        publisher
            .ok(
                "send_to_channel",
                json!({"channel": "feed", "data": {"i": i, "blob": blob}}),
            )
            .await;
    }
    // A ping before every frame it reads: the pongs are written while the queue drains.
    for i in 0..n {
        reader
            .ws
            .send(Message::Ping(vec![i as u8].into()))
            .await
            .unwrap();
        let m = reader.recv_json().await;
        assert_eq!(m["data"]["data"]["i"], i, "a frame was lost or reordered");
        assert_eq!(
            m["data"]["data"]["blob"].as_str().map(str::len),
            Some(blob.len())
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    publisher
        .ok(
            "close_client",
            json!({"client_id": "reader", "code": 4002, "reason": "done"}),
        )
        .await;
    assert_eq!(reader.expect_close().await, (4002, "done".to_string()));
}

#[tokio::test]
async fn drop_policy_keeps_the_slow_reader_and_counts_drops() {
    let s = Serve::start(&[
        "--outbound-queue",
        "2",
        "--slow-policy",
        "drop",
        "--write-timeout",
        "30s",
        // This case is about the outbound queue, not the inbound rate limit.
        "--max-messages-per-sec",
        "0",
    ]);
    let mut burst = Client::json(&s.ws("id=burst")).await;
    // Ask for many replies without reading: 2 queued at most, the rest dropped for this client.
    for _ in 0..20000 {
        burst.send_json(&json!({"cmd": "ping", "seqno": "p"})).await;
    }
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let h = s.healthz().await;
        if h["dropped_frames"].as_u64().unwrap() > 0 {
            assert_eq!(h["clients"], 1, "drop policy keeps the client: {h}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no drops counted: {h}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn close_client_sends_a_close_frame_and_the_handshake_completes() {
    // Closing another client takes rights: on a trusted network, `--client-rights all`.
    let s = Serve::start(&["--client-rights", "all"]);
    let mut admin = Client::json(&s.ws("id=admin")).await;
    let mut victim = Client::json(&s.ws("id=victim")).await;
    admin
        .ok(
            "close_client",
            json!({"client_id": "victim", "code": 4001, "reason": "bye"}),
        )
        .await;
    assert_eq!(victim.expect_close().await, (4001, "bye".to_string()));
    let bad = admin
        .call("close_client", json!({"client_id": "admin", "code": 1006}))
        .await;
    assert_eq!(bad["status"], 400, "reserved codes are refused: {bad}");
}

#[tokio::test]
async fn client_initiated_close_is_answered_with_the_same_code() {
    let s = Serve::start(&[]);
    let mut a = Client::json(&s.ws("")).await;
    a.ws.close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: 1000u16.into(),
        reason: "done".into(),
    }))
    .await
    .unwrap();
    let (code, _) = a.expect_close().await;
    assert_eq!(code, 1000);
}

#[tokio::test]
async fn sigterm_closes_every_client_with_1001_then_exits() {
    let mut s = Serve::start(&[]);
    let mut clients = Vec::new();
    for _ in 0..3 {
        clients.push(Client::json(&s.ws("")).await);
    }
    s.terminate();
    for c in &mut clients {
        assert_eq!(c.expect_close().await.0, 1001);
    }
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            assert!(status.success(), "wsp serve exited with {status}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "wsp serve did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn welcome_message_follows_the_welcome_frame() {
    let s = Serve::start(&["--welcome-message", r#"{"code":2000,"msg":"connected"}"#]);
    let mut a = Client::json(&s.ws("")).await;
    assert_eq!(
        a.recv_json().await,
        json!({"code": 2000, "msg": "connected"})
    );
}

#[tokio::test]
async fn a_frame_sent_with_the_upgrade_request_in_one_write_is_read() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    // The server takes the TCP stream back from hyper after the upgrade: whatever hyper read
    // past the request head must reach the WebSocket reader.
    let s = Serve::start(&["--echo"]);
    let mut tcp = tokio::net::TcpStream::connect(&s.addr).await.unwrap();
    let mut out = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        s.addr
    )
    .into_bytes();
    let payload = b"early-bird";
    let mask = [1u8, 2, 3, 4];
    out.extend([0x81, 0x80 | payload.len() as u8]);
    out.extend(mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    tcp.write_all(&out).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(WAIT, async {
        while !got.windows(payload.len()).any(|w| w == payload) {
            let n = tcp.read(&mut buf).await.unwrap();
            assert!(
                n > 0,
                "closed before the echo: {:?}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .expect("the early frame was echoed");
    assert!(
        got.starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
}
