//! Compiles `proto/sendmsg.proto` with protox (pure Rust: no system `protoc`) and generates the
//! prost types; the encoded descriptor set is written beside them for prost-reflect.

use std::{env, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto/sendmsg.proto");
    let files = protox::compile(["sendmsg.proto"], ["proto"])?;
    let set_path = out.join("sendmsg_descriptor.bin");
    fs::write(&set_path, prost::Message::encode_to_vec(&files))?;
    prost_build::Config::new().bytes(["."]).compile_fds(files)?;
    Ok(())
}
