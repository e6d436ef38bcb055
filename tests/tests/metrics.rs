//! `GET /metrics` scraped from a real `wsp serve`: the counters move with the traffic sent.

use serde_json::json;
use wsp_tests::{refused_status, Client, Serve};

/// The value of the sample whose line starts with `series` (name and labels, as written).
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(s: &Serve) -> String {
    let (status, text) = s.get("/metrics").await;
    assert_eq!(status, 200, "{text}");
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    text
}

#[tokio::test]
async fn counters_follow_the_traffic() {
    let s = Serve::start(&["--server-id", "m1"]);
    let before = scrape(&s).await;
    let n = |t: &str, series: &str| sample(t, &format!("wsp_{series}"));
    assert_eq!(n(&before, r#"connections{node="m1"}"#), 0.0);

    let mut a = Client::json(&s.ws("id=a&channel=news")).await;
    let mut b = Client::json(&s.ws("id=b&channel=news")).await;
    // Refused handshakes: a taken id (409) and a foreign origin (403).
    let e = tokio_tungstenite::connect_async(s.ws("id=a"))
        .await
        .unwrap_err();
    assert_eq!(refused_status(e), 409);
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        s.ws("id=c"),
    )
    .unwrap();
    req.headers_mut()
        .insert("Origin", "https://evil.example".parse().unwrap());
    let e = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert_eq!(refused_status(e), 403);

    for i in 0..10 {
        a.ok("send_to_channel", json!({"channel": "news", "data": i}))
            .await;
    }
    for _ in 0..10 {
        b.recv_json().await;
    }
    // Closing itself: the close frame replaces the reply.
    a.send_json(&json!({"cmd": "close_client", "seqno": "c", "data": {}}))
        .await;
    assert_eq!(a.expect_close().await.0, 1000);
    drop(a);

    // The closed connection leaves once its close handshake is done.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let after = loop {
        let t = scrape(&s).await;
        if n(&t, r#"connections{node="m1"}"#) == 1.0 || std::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    let grew = |series: &str, by: f64| {
        let (x, y) = (n(&before, series), n(&after, series));
        assert!(y - x >= by, "{series}: {x} -> {y}, expected +{by}\n{after}");
    };
    grew(r#"handshakes_total{node="m1",result="ok"}"#, 2.0);
    grew(r#"handshakes_total{node="m1",result="409"}"#, 1.0);
    grew(r#"handshakes_total{node="m1",result="403"}"#, 1.0);
    grew(r#"frames_received_total{node="m1",kind="text"}"#, 11.0);
    grew(r#"received_bytes_total{node="m1",kind="text"}"#, 500.0);
    // Welcome frames, replies and 20 channel pushes.
    grew(r#"frames_sent_total{node="m1",kind="text"}"#, 32.0);
    grew(r#"sent_bytes_total{node="m1",kind="text"}"#, 2000.0);
    grew(r#"deliveries_total{node="m1"}"#, 20.0);
    grew(r#"closes_sent_total{node="m1",code="1000"}"#, 1.0);
    grew(
        r#"command_duration_seconds_count{node="m1",cmd="send_to_channel",source="ws"}"#,
        10.0,
    );
    assert_eq!(n(&after, r#"connections{node="m1"}"#), 1.0, "{after}");
    assert_eq!(n(&after, r#"clients{node="m1"}"#), 1.0);
    assert_eq!(n(&after, r#"channels{node="m1"}"#), 1.0);
    drop(b);
}

#[tokio::test]
async fn no_metrics_turns_the_endpoint_off() {
    let s = Serve::start(&["--no-metrics"]);
    let (status, _) = s.get("/metrics").await;
    assert_eq!(status, 404);
}
