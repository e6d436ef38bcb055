#![no_main]
//! Client bytes read by a server connection that negotiated permessage-deflate.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsp_server::fuzzing::frames(data, true));
