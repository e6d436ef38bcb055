//! Decoding frames for display: every `SendMsg` field through prost-reflect, `cmdData` with the
//! user's schema (`--proto`/`--protoset` and `--cmd-type N=pkg.Message`), else as JSON, UTF-8
//! text or a hex dump.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use serde_json::Value;

/// How `cmdData` was understood.
#[derive(Debug, Clone, PartialEq)]
pub enum CmdData {
    /// Empty.
    Empty,
    /// Decoded with a message type of the user's schema.
    Message {
        /// Fully-qualified type name.
        type_name: String,
        /// The message as JSON.
        json: Value,
    },
    /// The bytes are JSON.
    Json(Value),
    /// The bytes are UTF-8 text.
    Text(String),
    /// Anything else, as hex.
    Hex(String),
}

impl CmdData {
    /// As JSON for `--print` / `--record`.
    pub fn to_json(&self) -> Value {
        match self {
            CmdData::Empty => Value::Null,
            CmdData::Message { type_name, json } => {
                serde_json::json!({ "type": type_name, "value": json })
            }
            CmdData::Json(v) => serde_json::json!({ "json": v }),
            CmdData::Text(t) => serde_json::json!({ "text": t }),
            CmdData::Hex(h) => serde_json::json!({ "hex": h }),
        }
    }
}

/// Knows the envelope and, optionally, the user's payload types.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    types: HashMap<i32, MessageDescriptor>,
}

/// The flags that give the user's schema, shared by `wsp connect` and `wsp proxy`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct SchemaArgs {
    /// `.proto` file(s) describing `cmdData` payloads (compiled in-process; no protoc needed).
    #[arg(long = "proto")]
    pub protos: Vec<PathBuf>,
    /// Import directory for --proto (repeatable).
    #[arg(short = 'I', long = "include")]
    pub includes: Vec<PathBuf>,
    /// A compiled FileDescriptorSet instead of --proto.
    #[arg(long)]
    pub protoset: Option<PathBuf>,
    /// Decode `cmdData` of command N as a message type, e.g. `101=chat.Message` (repeatable).
    #[arg(long = "cmd-type")]
    pub cmd_types: Vec<String>,
}

impl SchemaArgs {
    /// The decoder these flags describe.
    pub fn load(&self) -> anyhow::Result<Decoder> {
        Decoder::load(
            &self.protos,
            &self.includes,
            self.protoset.as_deref(),
            &self.cmd_types,
        )
    }
}

impl Decoder {
    /// Loads the user's schema: `.proto` files compiled in-process (protox, no `protoc`), or a
    /// compiled descriptor set; `cmd_types` maps `cmd` numbers to message names in it.
    pub fn load(
        protos: &[PathBuf],
        includes: &[PathBuf],
        protoset: Option<&Path>,
        cmd_types: &[String],
    ) -> anyhow::Result<Self> {
        let pool = if let Some(path) = protoset {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            Some(
                DescriptorPool::decode(bytes.as_slice())
                    .with_context(|| format!("{} is not a FileDescriptorSet", path.display()))?,
            )
        } else if !protos.is_empty() {
            let mut inc: Vec<PathBuf> = includes.to_vec();
            for p in protos {
                if let Some(dir) = p.parent() {
                    let dir = if dir.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        dir
                    };
                    if !inc.iter().any(|i| i == dir) {
                        inc.push(dir.to_path_buf());
                    }
                }
            }
            let set = protox::compile(protos, &inc)
                .map_err(|e| anyhow::anyhow!("compiling the .proto files: {e}"))?;
            Some(
                DescriptorPool::from_file_descriptor_set(set)
                    .context("building the descriptor pool")?,
            )
        } else {
            None
        };
        let mut types = HashMap::new();
        for spec in cmd_types {
            let (cmd, name) = spec.split_once('=').with_context(|| {
                format!("--cmd-type {spec:?}: write CMD=package.Message, e.g. 101=chat.Message")
            })?;
            let cmd: i32 = cmd
                .trim()
                .parse()
                .with_context(|| format!("--cmd-type {spec:?}: {cmd:?} is not a number"))?;
            let Some(pool) = &pool else {
                bail!("--cmd-type needs a schema: give --proto FILE or --protoset FILE");
            };
            let desc = pool.get_message_by_name(name.trim()).with_context(|| {
                format!("--cmd-type {spec:?}: no message {name:?} in the schema")
            })?;
            types.insert(cmd, desc);
        }
        Ok(Self { types })
    }

    /// Every field of a `SendMsg` as JSON (proto field names, defaults included), or `None`
    /// when the bytes are not a `SendMsg`.
    pub fn sendmsg_json(&self, bytes: &[u8]) -> Option<Value> {
        let msg = DynamicMessage::decode(wsp_proto::sendmsg_descriptor(), bytes).ok()?;
        let opts = SerializeOptions::new()
            .skip_default_fields(false)
            .use_proto_field_name(true);
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        msg.serialize_with_options(&mut ser, &opts).ok()?;
        serde_json::from_slice(&out).ok()
    }

    /// Decodes `cmdData` of a frame with command number `cmd`.
    pub fn cmd_data(&self, cmd: i32, data: &[u8]) -> CmdData {
        if data.is_empty() {
            return CmdData::Empty;
        }
        if let Some(desc) = self.types.get(&cmd) {
            if let Ok(m) = DynamicMessage::decode(desc.clone(), data) {
                if let Ok(json) = serde_json::to_value(&m) {
                    return CmdData::Message {
                        type_name: desc.full_name().to_string(),
                        json,
                    };
                }
            }
        }
        if let Ok(v) = serde_json::from_slice::<Value>(data) {
            if v.is_object() || v.is_array() {
                return CmdData::Json(v);
            }
        }
        match std::str::from_utf8(data) {
            Ok(t) if !t.chars().any(|c| c.is_control() && !c.is_whitespace()) => {
                CmdData::Text(t.to_string())
            }
            _ => CmdData::Hex(hex(data)),
        }
    }
}

/// Lower-case hex with a space every 4 bytes.
pub fn hex(data: &[u8]) -> String {
    let mut s = String::with_capacity(data.len() * 3);
    for (i, b) in data.iter().enumerate() {
        if i > 0 && i % 4 == 0 {
            s.push(' ');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_schema_decodes_cmd_data() {
        let dir = std::env::temp_dir().join(format!("wsp-decode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let proto = dir.join("chat.proto");
        std::fs::write(
            &proto,
            "syntax = \"proto3\"; package chat; message Message { string text = 1; int32 n = 2; }",
        )
        .unwrap();
        let d = Decoder::load(&[proto], &[], None, &["101=chat.Message".into()]).unwrap();
        // text = "hi", n = 5
        let bytes = [0x0a, 0x02, b'h', b'i', 0x10, 0x05];
        match d.cmd_data(101, &bytes) {
            CmdData::Message { type_name, json } => {
                assert_eq!(type_name, "chat.Message");
                assert_eq!(json, serde_json::json!({"text": "hi", "n": 5}));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            d.cmd_data(7, b"{\"a\":1}"),
            CmdData::Json(serde_json::json!({"a": 1}))
        );
        assert_eq!(d.cmd_data(7, b"hello"), CmdData::Text("hello".into()));
        assert_eq!(
            d.cmd_data(7, &[0, 1, 2, 3, 4]),
            CmdData::Hex("00010203 04".into())
        );
        assert!(Decoder::load(&[], &[], None, &["101=chat.Message".into()]).is_err());
    }

    #[test]
    fn every_sendmsg_field_is_shown() {
        use wsp_proto::Message as _;
        let m = wsp_proto::SendMsg {
            cmd: 3,
            ..Default::default()
        };
        let v = Decoder::default().sendmsg_json(&m.encode_to_vec()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 12, "{v}");
        assert_eq!(v["cmd"], 3);
    }
}
