//! A deliberately faulty websocket-shootout server, to prove that `wsp bench` catches a server
//! that drops, duplicates or reorders messages. Real sockets; runs on its own thread.

use std::sync::{Arc, Mutex};

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

/// What the server does wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Nothing: a correct server.
    None,
    /// Every 10th broadcast never reaches the first client.
    Drop,
    /// Every 10th broadcast is sent twice.
    Duplicate,
    /// Every 10th broadcast is held back and sent after the next one.
    Reorder,
}

type Clients = Arc<Mutex<Vec<mpsc::Sender<Message>>>>;

/// Starts the server on a free loopback port; returns its `ws://` URL. It lives as long as the
/// test process.
pub fn start(fault: Fault) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("ws://{}/", listener.local_addr().unwrap())).unwrap();
            let clients: Clients = Arc::default();
            let counter = Arc::new(Mutex::new((0u64, None::<String>)));
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let (clients, counter) = (clients.clone(), counter.clone());
                tokio::spawn(async move {
                    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
                    let (mut sink, mut stream) = ws.split();
                    let (out_tx, mut out_rx) = mpsc::channel::<Message>(100_000);
                    clients.lock().unwrap().push(out_tx.clone());
                    tokio::spawn(async move {
                        while let Some(m) = out_rx.recv().await {
                            if sink.send(m).await.is_err() {
                                break;
                            }
                        }
                    });
                    while let Some(Ok(Message::Text(t))) = stream.next().await {
                        let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                        if v["type"] != "broadcast" {
                            continue;
                        }
                        let out = serde_json::json!({"type": "broadcast", "payload": v["payload"]}).to_string();
                        let targets = clients.lock().unwrap().clone();
                        let mut plan: Vec<(usize, String)> = Vec::new();
                        {
                            let mut c = counter.lock().unwrap();
                            c.0 += 1;
                            let nth = c.0 % 10 == 0;
                            match fault {
                                Fault::Reorder if nth => c.1 = Some(out.clone()),
                                Fault::Reorder => {
                                    plan.push((usize::MAX, out.clone()));
                                    if let Some(held) = c.1.take() {
                                        plan.push((usize::MAX, held));
                                    }
                                }
                                Fault::Duplicate if nth => {
                                    plan.push((usize::MAX, out.clone()));
                                    plan.push((usize::MAX, out.clone()));
                                }
                                Fault::Drop if nth => plan.push((0, out.clone())),
                                _ => plan.push((usize::MAX, out.clone())),
                            }
                        }
                        for (skip, text) in plan {
                            for (i, c) in targets.iter().enumerate() {
                                if i != skip {
                                    let _ = c.try_send(Message::text(text.clone()));
                                }
                            }
                        }
                        let result = serde_json::json!({"type": "broadcastResult", "payload": v["payload"], "listenCount": targets.len()});
                        let _ = out_tx.try_send(Message::text(result.to_string()));
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}
