//! # wsp-proto
//!
//! The `SendMsg` envelope that every binary frame of wsp carries. It is wire-compatible with
//! the `SendMsg` of the Go library wsPool: same field numbers, same types (see
//! `proto/sendmsg.proto`, the source of truth).
//!
//! Two views of the same message:
//! - [`SendMsg`], the prost type generated at build time (no system `protoc` needed: the
//!   `.proto` is compiled by protox);
//! - [`descriptor_pool`], the embedded descriptor pool, so tools such as `wsp connect` can
//!   decode any frame dynamically with prost-reflect.
//!
//! ```
//! use wsp_proto::{SendMsg, Message};
//! let msg = SendMsg { cmd: 1, channel: vec!["news".into()], msg: "hi".into(), ..Default::default() };
//! let bytes = msg.encode_to_vec();
//! assert_eq!(SendMsg::decode(bytes.as_slice()).unwrap(), msg);
//! ```
#![deny(missing_docs)]

use std::sync::LazyLock;

pub use prost::Message;
use prost_reflect::{DescriptorPool, MessageDescriptor};

#[allow(missing_docs, clippy::all)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/wsp.rs"));
}

pub use generated::SendMsg;

/// The encoded `FileDescriptorSet` of `sendmsg.proto`, as compiled at build time.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/sendmsg_descriptor.bin"));

/// The text of `sendmsg.proto`, for tools that show or export the schema.
pub const SENDMSG_PROTO: &str = include_str!("../proto/sendmsg.proto");

/// Fully-qualified protobuf name of the envelope.
pub const SENDMSG_NAME: &str = "wsp.SendMsg";

static POOL: LazyLock<DescriptorPool> = LazyLock::new(|| {
    DescriptorPool::decode(FILE_DESCRIPTOR_SET)
        .expect("descriptor set compiled by build.rs is valid")
});

/// The descriptor pool holding `wsp.SendMsg`, decoded once from [`FILE_DESCRIPTOR_SET`].
pub fn descriptor_pool() -> &'static DescriptorPool {
    &POOL
}

/// The message descriptor of `wsp.SendMsg`, for dynamic decoding with prost-reflect.
pub fn sendmsg_descriptor() -> MessageDescriptor {
    POOL.get_message_by_name(SENDMSG_NAME)
        .expect("wsp.SendMsg is in the embedded pool")
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_reflect::{DynamicMessage, ReflectMessage};

    #[test]
    fn field_numbers_match_wspool() {
        let d = sendmsg_descriptor();
        let expect = [
            ("cmd", 1),
            ("timestamp", 2),
            ("from_client_id", 3),
            ("to_client_id", 4),
            ("cmd_data", 5),
            ("status", 6),
            ("priority", 7),
            ("local_id", 8),
            ("server_id", 9),
            ("channel", 10),
            ("msg", 11),
            ("desc", 12),
        ];
        for (name, number) in expect {
            let f = d
                .get_field_by_name(name)
                .unwrap_or_else(|| panic!("field {name}"));
            assert_eq!(f.number(), number, "{name}");
        }
        assert_eq!(d.fields().len(), expect.len());
    }

    #[test]
    fn dynamic_decode_matches_prost() {
        let msg = SendMsg {
            cmd: 7,
            timestamp: 123,
            to_client_id: "b".into(),
            channel: vec!["x".into(), "y".into()],
            cmd_data: vec![1, 2, 3].into(),
            ..Default::default()
        };
        let dynamic =
            DynamicMessage::decode(sendmsg_descriptor(), msg.encode_to_vec().as_slice()).unwrap();
        assert_eq!(dynamic.descriptor().full_name(), SENDMSG_NAME);
        assert_eq!(dynamic.get_field_by_name("cmd").unwrap().as_i32(), Some(7));
        assert_eq!(
            dynamic.get_field_by_name("to_client_id").unwrap().as_str(),
            Some("b")
        );
    }
}
