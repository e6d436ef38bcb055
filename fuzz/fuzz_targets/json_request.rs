#![no_main]
//! A text frame's JSON request.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsp_server::fuzzing::json_request(data));
