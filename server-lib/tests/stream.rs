//! Streaming and typed writes (gows' `NextWriter` and `WriteJSON`) on a real server, read by a
//! third-party client (tokio-tungstenite).

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use wsp_server::Kind;
use wsp_server::{App, Context, Frame, Hub, Reply, Server, ServerConfig};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PART: usize = 64 * 1024;
const TOTAL: usize = 5 * 1024 * 1024;

/// The byte at position `i` of the streamed message: text, and no two parts alike.
fn byte_at(i: usize) -> u8 {
    b'a' + ((i / 7 + i / PART) % 26) as u8
}

async fn start(app: App) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let server = Server::new(Hub::new(ServerConfig::default()), app).unwrap();
    tokio::spawn(server.run(listener, std::future::pending()));
    url
}

async fn next(ws: &mut Ws) -> Message {
    tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("a message within 10 s")
        .expect("open")
        .expect("valid")
}

async fn json(ws: &mut Ws) -> Value {
    match next(ws).await {
        Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn a_5_mb_message_streamed_in_64_kib_parts_arrives_whole_and_alone() {
    let app = App::new()
        .handle("stream", |ctx: Context| async move {
            let client = ctx.client().clone();
            // The writer waits for the connection to take its parts: run it beside the
            // connection, as an application would.
            tokio::spawn(async move {
                let mut w = client.message_writer(Kind::Text).expect("writer");
                // A frame queued while the message is being written must wait for its end.
                client.send(Frame::text("after"));
                for start in (0..TOTAL).step_by(PART) {
                    let part: Vec<u8> = (start..start + PART).map(byte_at).collect();
                    w.write(part).await.expect("part written");
                }
                w.close().await.expect("message finished");
            });
            Reply::ok(json!({"streaming": TOTAL}))
        })
        .handle("typed", |ctx: Context| async move {
            #[derive(serde::Serialize)]
            struct Point {
                x: i32,
                label: &'static str,
            }
            ctx.client()
                .send_json(&vec![
                    Point { x: 1, label: "a" },
                    Point { x: 2, label: "b" },
                ])
                .expect("serializes");
            Reply::ok(Value::Null)
        });
    let url = start(app).await;
    let config = WebSocketConfig::default().max_message_size(Some(8 << 20));
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
        format!("{url}?format=json"),
        Some(config),
        false,
    )
    .await
    .unwrap();
    assert_eq!(json(&mut ws).await["cmd"], "welcome");

    ws.send(Message::text(r#"{"cmd":"typed","seqno":"t"}"#))
        .await
        .unwrap();
    assert_eq!(
        json(&mut ws).await,
        json!([{"x": 1, "label": "a"}, {"x": 2, "label": "b"}])
    );
    assert_eq!(json(&mut ws).await["status"], 0);

    ws.send(Message::text(r#"{"cmd":"stream","seqno":"s"}"#))
        .await
        .unwrap();
    let mut got_reply = false;
    let big = loop {
        match next(&mut ws).await {
            Message::Text(t) if t.len() == TOTAL => break t,
            Message::Text(t) if t.contains(r#""seqno":"s""#) => got_reply = true,
            other => panic!("unexpected before the streamed message: {other:?}"),
        }
    };
    assert!(big
        .as_bytes()
        .iter()
        .enumerate()
        .all(|(i, b)| *b == byte_at(i)));
    // The frame queued during the stream came after it, not inside it.
    match next(&mut ws).await {
        Message::Text(t) if t.as_str() == "after" => {}
        Message::Text(t) if !got_reply && t.contains(r#""seqno":"s""#) => {
            assert_eq!(next(&mut ws).await, Message::text("after"));
        }
        other => panic!("expected the frame queued during the stream, got {other:?}"),
    }
}
