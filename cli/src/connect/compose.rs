//! What the composer (and each stdin line in pipe mode) turns into a frame:
//!
//! | input | frame |
//! |---|---|
//! | `{…}` with a numeric `cmd` | a binary `SendMsg`, the object in protobuf JSON form (`{"cmd":7,"toClientId":"b","msg":"hi"}`) |
//! | `{…}` with a string `cmd` | a wsrv JSON request, sent verbatim as a text frame (`{"cmd":"ping","seqno":"p1","data":{}}`) |
//! | `/join CH`, `/leave CH` | built-in join / leave |
//! | `/to ID TEXT` | `SendMsg{toClientId: ID, msg: TEXT}` (routed by the server) |
//! | `/ch CH TEXT` | `SendMsg{channel: [CH], msg: TEXT}` |
//! | `/uid UID TEXT`, `/all TEXT` | built-in send_to_uid / send_to_all |
//! | `/bind UID`, `/unbind UID` | built-in bind_uid / unbind_uid |
//! | `/info k=v …` | built-in update_info |
//! | `/cmd NAME [ARGS]` | any built-in or application command, protobuf form; ARGS JSON or `key=value key:=JSON a.b=c` (as `wsp api`) |
//! | `/json NAME [ARGS]` | a wsrv JSON text request `{"cmd","seqno","data"}`, ARGS as for `/cmd` |
//! | `/ping` | built-in ping (round trip shown) |
//! | `/text TEXT` | a raw text frame |
//! | `/b64 BASE64` | a raw binary frame |
//! | `/close [CODE [REASON]]` | a close frame (default 1000) |
//!
//! Requests get a `localId` (or `seqno`) so their reply can be paired with them.

use bytes::Bytes;
use prost_reflect::DynamicMessage;
use serde_json::{json, Value};
use wsp_proto::{Message as _, SendMsg};
use wsp_server::protocol::builtin_number;

/// A frame to send.
#[derive(Debug, Clone, PartialEq)]
pub enum Outgoing {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Bytes),
    /// A close frame.
    Close(u16, String),
}

/// A parsed input: the frame and, for requests, the id its reply will carry.
#[derive(Debug, Clone, PartialEq)]
pub struct Composed {
    /// The frame.
    pub frame: Outgoing,
    /// `localId`/`seqno` to pair the reply with.
    pub request_id: Option<String>,
    /// Short description for the pending list.
    pub label: String,
}

/// `cmd` number used for `/to` and `/ch` messages (an application command).
pub const CHAT_CMD: i32 = 1;

/// Parses one line of input. `next_id` numbers requests.
pub fn parse(input: &str, next_id: &mut u64) -> Result<Composed, String> {
    let input = input.trim();
    if input.is_empty() {
        return Err("nothing to send".into());
    }
    let mut id = || {
        *next_id += 1;
        format!("w{next_id}")
    };
    if input.starts_with('{') {
        if let Some(c) = wsrv_request(input)? {
            return Ok(c);
        }
        let msg = sendmsg_from_json(input)?;
        let rid = if msg.local_id.is_empty() {
            None
        } else {
            Some(msg.local_id.clone())
        };
        return Ok(Composed {
            label: format!("cmd {}", msg.cmd),
            frame: Outgoing::Binary(msg.encode_to_vec().into()),
            request_id: rid,
        });
    }
    let Some(rest) = input.strip_prefix('/') else {
        return Err("type a JSON SendMsg ({\"cmd\":…}) or a /command; /help lists them".into());
    };
    let (word, args) = rest
        .split_once(char::is_whitespace)
        .map(|(w, a)| (w, a.trim()))
        .unwrap_or((rest, ""));
    let need = |what: &str| -> Result<(), String> {
        if args.is_empty() {
            Err(format!("/{word} needs {what}"))
        } else {
            Ok(())
        }
    };
    let split2 = |what: &str| -> Result<(&str, &str), String> {
        args.split_once(char::is_whitespace)
            .map(|(a, b)| (a, b.trim()))
            .ok_or_else(|| format!("/{word} needs {what}"))
    };
    let builtin = |name: &str, data: Value, id: String| -> Composed {
        let msg = SendMsg {
            cmd: builtin_number(name).expect("known built-in"),
            local_id: id.clone(),
            msg: data.to_string(),
            ..Default::default()
        };
        Composed {
            frame: Outgoing::Binary(msg.encode_to_vec().into()),
            request_id: Some(id),
            label: name.into(),
        }
    };
    Ok(match word {
        "join" | "leave" => {
            need("a channel")?;
            builtin(word, json!({ "channel": args }), id())
        }
        "bind" | "unbind" => {
            need("a uid")?;
            builtin(&format!("{word}_uid"), json!({ "uid": args }), id())
        }
        "uid" => {
            let (uid, text) = split2("a uid and a message")?;
            builtin("send_to_uid", json!({ "uid": uid, "data": text }), id())
        }
        "all" => {
            need("a message")?;
            builtin("send_to_all", json!({ "data": args }), id())
        }
        "info" => {
            need("k=v pairs")?;
            let mut info = serde_json::Map::new();
            for kv in args.split_whitespace() {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| format!("/info: {kv:?} is not k=v"))?;
                info.insert(k.into(), v.into());
            }
            builtin("update_info", json!({ "info": info }), id())
        }
        "ping" => builtin("ping", json!({}), id()),
        "to" | "ch" => {
            let (target, text) = split2(if word == "to" {
                "a client id and a message"
            } else {
                "a channel and a message"
            })?;
            let rid = id();
            let mut msg = SendMsg {
                cmd: CHAT_CMD,
                local_id: rid.clone(),
                msg: text.into(),
                ..Default::default()
            };
            if word == "to" {
                msg.to_client_id = target.into();
            } else {
                msg.channel = vec![target.into()];
            }
            Composed {
                frame: Outgoing::Binary(msg.encode_to_vec().into()),
                request_id: Some(rid),
                label: format!("{word} {target}"),
            }
        }
        "cmd" => {
            need("a command name or number")?;
            let (name, data) = name_and_json(word, args)?;
            let number = builtin_number(name)
                .or_else(|| name.parse().ok())
                .ok_or_else(|| format!("/cmd: {name:?} is neither a built-in nor a number"))?;
            let rid = id();
            let msg = SendMsg {
                cmd: number,
                local_id: rid.clone(),
                msg: data.to_string(),
                ..Default::default()
            };
            Composed {
                frame: Outgoing::Binary(msg.encode_to_vec().into()),
                request_id: Some(rid),
                label: name.into(),
            }
        }
        "json" => {
            need("a command name")?;
            let (name, data) = name_and_json(word, args)?;
            let rid = id();
            let text = json!({ "cmd": name, "seqno": rid, "data": data }).to_string();
            Composed {
                frame: Outgoing::Text(text),
                request_id: Some(rid),
                label: name.into(),
            }
        }
        "text" => Composed {
            frame: Outgoing::Text(args.into()),
            request_id: None,
            label: "text".into(),
        },
        "b64" => {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(args)
                .map_err(|e| format!("/b64: not base64: {e}"))?;
            Composed {
                frame: Outgoing::Binary(bytes.into()),
                request_id: None,
                label: "binary".into(),
            }
        }
        "close" => {
            let mut it = args.splitn(2, char::is_whitespace);
            let code = match it.next().filter(|s| !s.is_empty()) {
                Some(c) => c
                    .parse::<u16>()
                    .map_err(|_| format!("/close: {c:?} is not a close code"))?,
                None => 1000,
            };
            Composed {
                frame: Outgoing::Close(code, it.next().unwrap_or("").trim().into()),
                request_id: None,
                label: "close".into(),
            }
        }
        other => return Err(format!("unknown command /{other}; /help lists them")),
    })
}

/// A JSON object whose `cmd` is a string is a wsrv request (`{"cmd":"ping","seqno":"p1",
/// "data":{}}`): sent verbatim as a text frame, paired with its reply by `seqno`. `None` for
/// any other object (a `SendMsg` in protobuf JSON form, whose `cmd` is a number).
fn wsrv_request(input: &str) -> Result<Option<Composed>, String> {
    let value: Value = serde_json::from_str(input).map_err(|e| {
        format!("not JSON ({e}); send a SendMsg ({{\"cmd\":7,…}}), a wsrv request ({{\"cmd\":\"ping\",…}}) or a /command")
    })?;
    let Some(cmd) = value.get("cmd").and_then(Value::as_str) else {
        return Ok(None);
    };
    let request_id = match value.get("seqno") {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    Ok(Some(Composed {
        frame: Outgoing::Text(input.to_string()),
        request_id,
        label: cmd.to_string(),
    }))
}

/// `NAME [ARGS]` of `/cmd` and `/json`: the name, and the arguments (`{}` when absent):
/// JSON, or `key=value` / `key:=JSON` words as `wsp api` takes them.
fn name_and_json<'a>(word: &str, args: &'a str) -> Result<(&'a str, Value), String> {
    let (name, data) = args
        .split_once(char::is_whitespace)
        .map(|(n, d)| (n, d.trim()))
        .unwrap_or((args, ""));
    let data = crate::kv::parse_line(data).map_err(|e| format!("/{word} arguments: {e}"))?;
    Ok((name, data))
}

/// The composer input that sends exactly this message again, to be edited (`wsp proxy`'s
/// intercept): a wsrv JSON request as it is, other text as `/text TEXT`, a SendMsg in its
/// protobuf JSON form when that form encodes back to the same bytes, other binary as
/// `/b64 BASE64`. `None` for a message of another kind.
pub fn editable(frame: &Outgoing) -> Option<String> {
    use base64::Engine as _;
    match frame {
        Outgoing::Text(t) if wsrv_request(t).is_ok_and(|r| r.is_some()) => Some(t.clone()),
        Outgoing::Text(t) => Some(format!("/text {t}")),
        Outgoing::Binary(b) => {
            let as_json = DynamicMessage::decode(wsp_proto::sendmsg_descriptor(), b.as_ref())
                .ok()
                .and_then(|m| serde_json::to_string(&m).ok())
                .filter(|j| sendmsg_from_json(j).is_ok_and(|m| m.encode_to_vec() == b.as_ref()));
            Some(as_json.unwrap_or_else(|| {
                format!(
                    "/b64 {}",
                    base64::engine::general_purpose::STANDARD.encode(b)
                )
            }))
        }
        Outgoing::Close(..) => None,
    }
}

/// A `SendMsg` from its protobuf JSON form (camelCase or snake_case names; `cmdData` base64).
pub fn sendmsg_from_json(text: &str) -> Result<SendMsg, String> {
    let mut de = serde_json::Deserializer::from_str(text);
    let dynamic = DynamicMessage::deserialize(wsp_proto::sendmsg_descriptor(), &mut de)
        .map_err(|e| format!("not a SendMsg: {e}"))?;
    de.end().map_err(|e| format!("trailing input: {e}"))?;
    dynamic
        .transcode_to::<SendMsg>()
        .map_err(|e| format!("not a SendMsg: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(c: &Composed) -> SendMsg {
        match &c.frame {
            Outgoing::Binary(b) => SendMsg::decode(b.as_ref()).unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn slash_commands_build_requests_with_ids() {
        let mut n = 0;
        let c = parse("/join news", &mut n).unwrap();
        let m = binary(&c);
        assert_eq!(
            (m.cmd, m.msg.as_str(), c.request_id.as_deref()),
            (1001, r#"{"channel":"news"}"#, Some("w1"))
        );
        let m = binary(&parse("/to bob hello there", &mut n).unwrap());
        assert_eq!(
            (m.to_client_id.as_str(), m.msg.as_str(), m.local_id.as_str()),
            ("bob", "hello there", "w2")
        );
        let m = binary(&parse("/info name=Ann lang=fr", &mut n).unwrap());
        assert_eq!(m.cmd, 1010);
        assert_eq!(
            serde_json::from_str::<Value>(&m.msg).unwrap(),
            json!({"info": {"name": "Ann", "lang": "fr"}})
        );
        assert_eq!(
            parse("/close 4000 bye now", &mut n).unwrap().frame,
            Outgoing::Close(4000, "bye now".into())
        );
        assert_eq!(
            parse("/close", &mut n).unwrap().frame,
            Outgoing::Close(1000, String::new())
        );
        match parse("/json get_info {\"client_id\":\"a\"}", &mut n)
            .unwrap()
            .frame
        {
            Outgoing::Text(t) => assert_eq!(
                serde_json::from_str::<Value>(&t).unwrap()["data"]["client_id"],
                "a"
            ),
            other => panic!("{other:?}"),
        }
        assert!(parse("/join", &mut n).is_err());
        assert!(parse("/nope", &mut n).is_err());
        assert!(parse("plain words", &mut n).is_err());
    }

    #[test]
    fn wsrv_shaped_json_goes_as_text() {
        let mut n = 0;
        let line = r#"{"cmd":"ping","seqno":"p1","data":{}}"#;
        let c = parse(line, &mut n).unwrap();
        assert_eq!(c.frame, Outgoing::Text(line.into()));
        assert_eq!(c.request_id.as_deref(), Some("p1"));
        let err = parse("{not json", &mut n).unwrap_err();
        assert!(err.starts_with("not JSON"), "{err}");
    }

    #[test]
    fn json_becomes_a_sendmsg() {
        let mut n = 0;
        let c = parse(
            r#"{"cmd": 7, "toClientId": "b", "cmdData": "AAE=", "localId": "x"}"#,
            &mut n,
        )
        .unwrap();
        let m = binary(&c);
        assert_eq!(
            (m.cmd, m.to_client_id.as_str(), &m.cmd_data[..]),
            (7, "b", &[0u8, 1][..])
        );
        assert_eq!(c.request_id.as_deref(), Some("x"));
        assert!(parse(r#"{"cmd": 7, "nope": 1}"#, &mut n).is_err());
    }

    #[test]
    fn editable_input_sends_the_same_message_again() {
        let sendmsg = SendMsg {
            cmd: 101,
            channel: vec!["news".into()],
            cmd_data: vec![0, 1, 2].into(),
            ..Default::default()
        };
        let frames = [
            Outgoing::Text(r#"{"cmd":"ping","seqno":"p1"}"#.into()),
            Outgoing::Text(r#"{"cmd":7} looks like JSON"#.into()),
            Outgoing::Text("plain words".into()),
            Outgoing::Binary(sendmsg.encode_to_vec().into()),
            Outgoing::Binary(vec![0xff, 0x00, 0x13].into()),
        ];
        for frame in frames {
            let input = editable(&frame).expect("data messages are editable");
            let mut n = 0;
            assert_eq!(parse(&input, &mut n).unwrap().frame, frame, "{input}");
        }
        assert!(input_is_json(
            &editable(&Outgoing::Binary(sendmsg.encode_to_vec().into())).unwrap()
        ));
        assert_eq!(editable(&Outgoing::Close(1000, String::new())), None);
    }

    fn input_is_json(s: &str) -> bool {
        serde_json::from_str::<Value>(s).is_ok()
    }
}
