//! The library's application API (wsrv handlers and middleware, wsPool callbacks) on a real
//! server over real sockets.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use wsp_server::{App, Context, Hub, Next, Reply, Server, ServerConfig};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn start(app: App) -> (String, Hub) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws", listener.local_addr().unwrap());
    let server = Server::new(Hub::new(ServerConfig::default()), app).unwrap();
    let hub = server.hub().clone();
    tokio::spawn(server.run(listener, std::future::pending()));
    (url, hub)
}

async fn recv(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Message::Text(t) = m {
            return serde_json::from_str(t.as_str()).unwrap();
        }
    }
}

async fn call(ws: &mut Ws, cmd: &str, data: Value) -> Value {
    ws.send(Message::text(
        json!({"cmd": cmd, "seqno": cmd, "data": data}).to_string(),
    ))
    .await
    .unwrap();
    loop {
        let v = recv(ws).await;
        if v["seqno"] == cmd {
            return v;
        }
    }
}

async fn connect(url: &str) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}?format=json"))
        .await
        .unwrap();
    assert_eq!(recv(&mut ws).await["cmd"], "welcome");
    ws
}

#[tokio::test]
async fn middleware_guards_handlers_bind_session_and_push() {
    let app = App::new()
        .middleware(|ctx: Context, next: Next| async move {
            if ctx.cmd() != "register" && ctx.get::<u64>("uid").is_none() {
                return Reply::error(403, "register first");
            }
            let mut reply = next.run(ctx).await;
            if reply.status == 0 {
                reply.msg = "ok (checked)".into();
            }
            reply
        })
        .handle("register", |ctx: Context| async move {
            #[derive(serde::Deserialize)]
            struct Body {
                uid: u64,
            }
            let body: Body = match ctx.bind() {
                Ok(b) => b,
                Err(reply) => return reply,
            };
            ctx.set("uid", body.uid);
            ctx.push("user_register", json!({"uid": body.uid}));
            Reply::ok(json!({"uid": body.uid}))
        })
        .handle("whoami", |ctx: Context| async move {
            Reply::ok(json!({"uid": ctx.get::<u64>("uid")}))
        })
        // An application handler replaces the built-in of the same name.
        .handle("client_count", |_ctx: Context| async move {
            Reply::error(403, "not for you")
        });
    let (url, _hub) = start(app).await;
    let mut ws = connect(&url).await;

    let r = call(&mut ws, "whoami", json!({})).await;
    assert_eq!(
        (r["status"].as_i64(), r["msg"].as_str()),
        (Some(403), Some("register first"))
    );
    let r = call(&mut ws, "register", json!({"uid": "not a number"})).await;
    assert_eq!(r["status"], 400, "{r}");
    let push = {
        ws.send(Message::text(
            json!({"cmd": "register", "seqno": 1, "data": {"uid": 7}}).to_string(),
        ))
        .await
        .unwrap();
        recv(&mut ws).await
    };
    assert_eq!(
        push["cmd"], "user_register",
        "the push is queued before the reply"
    );
    assert_eq!(push["data"], json!({"uid": 7}));
    let r = recv(&mut ws).await;
    assert_eq!(
        (r["seqno"].as_i64(), r["msg"].as_str()),
        (Some(1), Some("ok (checked)"))
    );
    let r = call(&mut ws, "whoami", json!({})).await;
    assert_eq!(r["data"], json!({"uid": 7}));
    assert_eq!(
        call(&mut ws, "client_count", json!({})).await["status"],
        403
    );
    // Built-ins still pass through the middleware.
    assert_eq!(
        call(&mut ws, "all_channels", json!({})).await["msg"],
        "ok (checked)"
    );

    // Session values belong to one connection.
    let mut other = connect(&url).await;
    assert_eq!(call(&mut other, "whoami", json!({})).await["status"], 403);
}

#[tokio::test]
async fn callbacks_fire_and_the_hub_api_reaches_clients() {
    let opened = Arc::new(AtomicUsize::new(0));
    let closed = Arc::new(AtomicUsize::new(0));
    let messages = Arc::new(AtomicUsize::new(0));
    let (o, c, m) = (opened.clone(), closed.clone(), messages.clone());
    let app = App::new()
        .on_open(move |_hub, _client| {
            o.fetch_add(1, Ordering::SeqCst);
        })
        .on_message(move |_hub, _client, msg| {
            assert_eq!(msg.cmd, 3);
            m.fetch_add(1, Ordering::SeqCst);
        })
        .on_close(move |_hub, _id| {
            c.fetch_add(1, Ordering::SeqCst);
        });
    let (url, hub) = start(app).await;
    let mut a = connect(&url).await;
    let b = connect(&url).await;
    assert_eq!(opened.load(Ordering::SeqCst), 2);
    assert_eq!(hub.online_count(), 2);

    // wsPool OnMessage: a SendMsg with no route is handed to the hook, no error comes back.
    use wsp_proto::Message as _;
    let msg = wsp_proto::SendMsg {
        cmd: 3,
        ..Default::default()
    };
    a.send(Message::binary(msg.encode_to_vec())).await.unwrap();

    // The server side pushes through the hub (GatewayWorker Api.SendToAll).
    let n = hub
        .send_to_all(wsp_server::Frame::text(r#"{"cmd":"news"}"#))
        .await
        .unwrap();
    assert_eq!(n, 2);
    assert_eq!(recv(&mut a).await["cmd"], "news");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while messages.load(Ordering::SeqCst) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "on_message not called"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Handled by the hook: no error reply was sent back.
    let ping = call(&mut a, "ping", json!({})).await;
    assert_eq!(ping["status"], 0);

    drop(b);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while closed.load(Ordering::SeqCst) < 1 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "on_close not called"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(hub.online_count(), 1);
}
