//! Frame headers (RFC 6455 §5.2): laid out here for outbound frames, parsed by tungstenite's
//! `FrameHeader` for inbound ones; and masking.

use bytes::{BufMut, BytesMut};

/// Continuation opcode.
pub const OP_CONTINUE: u8 = 0x0;
/// Text opcode.
pub const OP_TEXT: u8 = 0x1;
/// Binary opcode.
pub const OP_BINARY: u8 = 0x2;
/// Close opcode.
pub const OP_CLOSE: u8 = 0x8;
/// Ping opcode.
pub const OP_PING: u8 = 0x9;
/// Pong opcode.
pub const OP_PONG: u8 = 0xA;

/// Length of an unmasked header for a payload of `len` bytes.
pub fn len(len: usize) -> usize {
    match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    }
}

/// Writes an unmasked header.
pub fn put(out: &mut BytesMut, opcode: u8, fin: bool, rsv1: bool, len: usize) {
    let first = opcode | if fin { 0x80 } else { 0 } | if rsv1 { 0x40 } else { 0 };
    out.put_u8(first);
    match len {
        0..=125 => out.put_u8(len as u8),
        126..=0xFFFF => {
            out.put_u8(126);
            out.put_u16(len as u16);
        }
        _ => {
            out.put_u8(127);
            out.put_u64(len as u64);
        }
    }
}

/// Writes a masked header (client role), the mask key last.
pub fn put_masked(out: &mut BytesMut, opcode: u8, fin: bool, rsv1: bool, len: usize, key: [u8; 4]) {
    let start = out.len();
    put(out, opcode, fin, rsv1, len);
    out[start + 1] |= 0x80;
    out.put_slice(&key);
}

/// XORs `data` with the 4-byte `key`, starting at key position 0.
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let v = u64::from_ne_bytes(chunk.try_into().expect("8 bytes")) ^ word;
        chunk.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        for (n, head) in [
            (0usize, 2usize),
            (125, 2),
            (126, 4),
            (65535, 4),
            (65536, 10),
        ] {
            let mut b = BytesMut::new();
            put(&mut b, OP_BINARY, true, false, n);
            assert_eq!(b.len(), head);
            assert_eq!(len(n), head);
        }
    }

    #[test]
    fn mask_matches_bytewise() {
        let key = [1, 2, 3, 250];
        let mut data: Vec<u8> = (0..37).collect();
        let expect: Vec<u8> = data
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        apply_mask(&mut data, key);
        assert_eq!(data, expect);
    }
}
