#![no_main]
//! A binary frame's SendMsg protobuf.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| wsp_server::fuzzing::sendmsg(data));
