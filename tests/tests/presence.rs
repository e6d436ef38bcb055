//! Every presence query and the per-client info, through a real `wsp serve`.

use serde_json::json;
use wsp_tests::{Client, Serve};

/// These cases query and change other clients, GatewayWorker's model: a trusted network's
/// `--client-rights all` (the default lets a client act only on itself; see tests/tests/auth.rs).
const ALL_RIGHTS: &[&str] = &["--client-rights", "all"];

#[tokio::test]
async fn every_presence_query_answers() {
    let s = Serve::start(ALL_RIGHTS);
    let mut a = Client::json(&s.ws("id=a&uid=u1&channel=red")).await;
    let _b = Client::json(&s.ws("id=b&uid=u1&channel=red&channel=blue")).await;
    let _c = Client::json(&s.ws("id=c&uid=u2&channel=blue")).await;
    let _d = Client::json(&s.ws("id=d&channel=blue")).await;

    assert_eq!(
        a.ok("is_online", json!({"client_id": "b"})).await,
        json!({"online": true})
    );
    assert_eq!(
        a.ok("is_online", json!({"client_id": "zz"})).await,
        json!({"online": false})
    );
    assert_eq!(
        a.ok("is_uid_online", json!({"uid": "u2"})).await,
        json!({"online": true})
    );
    assert_eq!(
        a.ok("is_uid_online", json!({"uid": "u9"})).await,
        json!({"online": false})
    );
    assert_eq!(
        a.ok("uid_by_client_id", json!({"client_id": "c"})).await,
        json!({"uid": "u2"})
    );
    assert_eq!(
        a.ok("uid_by_client_id", json!({"client_id": "d"})).await,
        json!({"uid": null})
    );
    assert_eq!(
        a.ok("uid_by_client_id", json!({})).await,
        json!({"uid": "u1"}),
        "defaults to the caller"
    );
    assert_eq!(
        a.ok("client_ids_by_uid", json!({"uid": "u1"})).await,
        json!({"client_ids": ["a", "b"]})
    );
    assert_eq!(
        a.ok("client_ids_by_channel", json!({"channel": "blue"}))
            .await,
        json!({"client_ids": ["b", "c", "d"]})
    );
    assert_eq!(
        a.ok("uids_by_channel", json!({"channel": "blue"})).await,
        json!({"uids": ["u1", "u2"]})
    );
    assert_eq!(a.ok("client_count", json!({})).await, json!({"count": 4}));
    assert_eq!(
        a.ok("channel_client_count", json!({"channel": "blue"}))
            .await,
        json!({"count": 3})
    );
    assert_eq!(
        a.ok("channel_uid_count", json!({"channel": "blue"})).await,
        json!({"count": 2})
    );
    assert_eq!(
        a.ok("channel_client_count", json!({"channel": "none"}))
            .await,
        json!({"count": 0})
    );
    assert_eq!(
        a.ok("all_uids", json!({})).await,
        json!({"uids": ["u1", "u2"]})
    );
    assert_eq!(
        a.ok("all_channels", json!({})).await,
        json!({"channels": ["blue", "red"]})
    );
    let pong = a.ok("ping", json!({})).await;
    assert!(pong["pong"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn presence_follows_disconnects() {
    let s = Serve::start(ALL_RIGHTS);
    let mut a = Client::json(&s.ws("id=a")).await;
    let b = Client::json(&s.ws("id=b&uid=ub&channel=solo")).await;
    assert_eq!(
        a.ok("all_channels", json!({})).await,
        json!({"channels": ["solo"]})
    );
    drop(b);
    let deadline = tokio::time::Instant::now() + wsp_tests::WAIT;
    loop {
        if a.ok("is_online", json!({"client_id": "b"})).await == json!({"online": false}) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "b still online");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(
        a.ok("all_channels", json!({})).await,
        json!({"channels": []})
    );
    assert_eq!(a.ok("all_uids", json!({})).await, json!({"uids": []}));
    assert_eq!(a.ok("client_count", json!({})).await, json!({"count": 1}));
}

#[tokio::test]
async fn info_set_update_get() {
    let s = Serve::start(ALL_RIGHTS);
    let mut a = Client::json(&s.ws("id=a")).await;
    let mut b = Client::json(&s.ws("id=b")).await;
    a.ok(
        "set_info",
        json!({"info": {"name": "Ann", "role": "admin"}}),
    )
    .await;
    a.ok(
        "update_info",
        json!({"info": {"role": "user", "lang": "fr"}}),
    )
    .await;
    let got = b.ok("get_info", json!({"client_id": "a"})).await;
    assert_eq!(
        got,
        json!({"client_id": "a", "info": {"name": "Ann", "role": "user", "lang": "fr"}})
    );
    a.ok("set_info", json!({"info": {"only": "this"}})).await;
    assert_eq!(
        b.ok("get_info", json!({"client_id": "a"})).await["info"],
        json!({"only": "this"})
    );
    let bad = a.call("set_info", json!({"info": {"n": 1}})).await;
    assert_eq!(bad["status"], 400, "{bad}");
    let missing = b.call("get_info", json!({"client_id": "ghost"})).await;
    assert_eq!(missing["status"], 404, "{missing}");
}
