//! Properties of every parser that reads untrusted input, on stable Rust (`scripts/test`); the
//! same entry points are fuzzed with `cargo fuzz` (see `fuzz/`).

use proptest::prelude::*;
use wsp_server::fuzzing;

/// A client frame: masked, with any opcode, flags and length field, then some payload.
fn client_frame() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u8>(),
        0u8..=127,
        any::<[u8; 4]>(),
        prop::collection::vec(any::<u8>(), 0..300),
    )
        .prop_map(|(b0, len, mask, body)| {
            let mut f = vec![b0, 0x80 | len];
            match len {
                126 => f.extend_from_slice(&(body.len() as u16).to_be_bytes()),
                127 => f.extend_from_slice(&(body.len() as u64).to_be_bytes()),
                _ => {}
            }
            f.extend_from_slice(&mask);
            f.extend_from_slice(&body);
            f
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_frame_reader_never_panics_and_keeps_its_limit(
        frames in prop::collection::vec(client_frame(), 1..8),
        compressed in any::<bool>(),
    ) {
        fuzzing::frames(&frames.concat(), compressed);
    }

    #[test]
    fn arbitrary_bytes_never_crash_the_reader(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::frames(&data, false);
        fuzzing::frames(&data, true);
    }

    #[test]
    fn inflating_is_bounded(data in prop::collection::vec(any::<u8>(), 0..2048)) {
        fuzzing::inflate(&data);
    }

    #[test]
    fn negotiation_answers_are_accepted_by_clients(
        params in prop::collection::vec(
            prop::sample::select(vec![
                "server_no_context_takeover", "client_no_context_takeover",
                "server_max_window_bits", "client_max_window_bits",
                "server_max_window_bits=8", "server_max_window_bits=9", "server_max_window_bits=15",
                "client_max_window_bits=10", "client_max_window_bits=16", "client_max_window_bits=\"12\"",
                "x=1", "", " ",
            ]),
            0..4,
        ),
    ) {
        let offer = std::iter::once("permessage-deflate").chain(params).collect::<Vec<_>>().join("; ");
        fuzzing::negotiate(&offer);
    }

    #[test]
    fn any_offer_string_is_safe(offer in ".{0,200}") {
        fuzzing::negotiate(&offer);
    }

    #[test]
    fn json_requests_never_panic(text in prop::collection::vec(any::<u8>(), 0..512),
                                 cmd in "[a-z_]{0,12}", data in ".{0,40}") {
        fuzzing::json_request(&text);
        let shaped = format!(r#"{{"cmd":"{cmd}","seqno":1,"data":{data:?}}}"#);
        fuzzing::json_request(shaped.as_bytes());
    }

    #[test]
    fn sendmsg_frames_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        fuzzing::sendmsg(&bytes);
    }

    #[test]
    fn handshake_queries_obey_the_name_rules(query in ".{0,200}", proto in "[ -~]{0,60}") {
        fuzzing::connect_query(&query, &proto);
        fuzzing::connect_query(&format!("id={query}&channel={proto}"), &proto);
    }
}
