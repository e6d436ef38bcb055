//! permessage-deflate (RFC 7692): negotiation, compressing a message, inflating one with a
//! bound.
//!
//! The server always answers with `server_no_context_takeover` and `client_no_context_takeover`
//! (both are the server's to set, RFC 7692 §7.1.1): every message is compressed on its own, so
//! a connection keeps no zlib state between messages. That is what keeps an idle compressed
//! connection as small as a plain one (a zlib deflate context is about 256 KiB) and what lets
//! one compressed broadcast frame serve every recipient. The compressor and decompressor are
//! per worker thread, reset for each message. The price is a lower ratio on streams of small,
//! similar messages; gorilla/websocket makes the same choice.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

/// The extension token.
pub const EXTENSION: &str = "permessage-deflate";

/// The four bytes every sync-flushed deflate block ends with; RFC 7692 drops them on the wire.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// The parameters a connection agreed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// The server resets its compression context for every message.
    pub server_no_context_takeover: bool,
    /// The client resets its compression context for every message.
    pub client_no_context_takeover: bool,
    /// LZ77 window of what the server sends (8 to 15).
    pub server_max_window_bits: u8,
    /// LZ77 window of what the client sends (8 to 15).
    pub client_max_window_bits: u8,
}

impl Default for Params {
    /// What this server agrees to with an offer that asks for nothing.
    fn default() -> Self {
        Self {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        }
    }
}

impl Params {
    /// The `Sec-WebSocket-Extensions` response value for these parameters (as a server).
    pub fn response(&self) -> String {
        let mut s = String::from(EXTENSION);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.server_max_window_bits < 15 {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.client_max_window_bits < 15 {
            s.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        s
    }
}

/// One parsed extension offer: its name and its parameters (values unquoted).
type Offer<'a> = (&'a str, Vec<(&'a str, Option<&'a str>)>);

/// Splits a `Sec-WebSocket-Extensions` value into offers.
fn offers(header: &str) -> impl Iterator<Item = Offer<'_>> {
    header.split(',').filter_map(|offer| {
        let mut parts = offer.split(';').map(str::trim);
        let name = parts.next().filter(|n| !n.is_empty())?;
        let params = parts
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (k.trim(), Some(v.trim().trim_matches('"'))),
                None => (p, None),
            })
            .collect();
        Some((name, params))
    })
}

fn window_bits(v: Option<&str>) -> Option<u8> {
    let bits: u8 = v?.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

/// As a server: the parameters for the first permessage-deflate offer in `headers` (every
/// `Sec-WebSocket-Extensions` value, in order) that this server can honour, or `None` (the
/// connection goes on uncompressed). An offer with an unknown, repeated or out-of-range
/// parameter is declined, as RFC 7692 §5 requires, and the next one is tried.
pub fn negotiate<'a>(headers: impl IntoIterator<Item = &'a str>) -> Option<Params> {
    'offer: for (name, params) in headers.into_iter().flat_map(offers) {
        if !name.eq_ignore_ascii_case(EXTENSION) {
            continue;
        }
        let mut p = Params::default();
        let mut seen: Vec<&str> = Vec::new();
        for (key, value) in params {
            if seen.contains(&key) {
                continue 'offer;
            }
            seen.push(key);
            match (key, value) {
                ("server_no_context_takeover", None) | ("client_no_context_takeover", None) => {}
                ("server_max_window_bits", v) => match window_bits(v) {
                    Some(bits) => p.server_max_window_bits = bits,
                    None => continue 'offer,
                },
                // Without a value the client only says it supports the parameter; we do not
                // need to limit its window (we inflate with the largest one).
                ("client_max_window_bits", None) => {}
                ("client_max_window_bits", v) => match window_bits(v) {
                    Some(bits) => p.client_max_window_bits = bits,
                    None => continue 'offer,
                },
                _ => continue 'offer,
            }
        }
        return Some(p);
    }
    None
}

/// As a client: the offer this crate's clients send.
pub const CLIENT_OFFER: &str = "permessage-deflate; client_max_window_bits";

/// As a client: the parameters in a server's response, or why they cannot be used.
pub fn accept_response(header: &str) -> Result<Option<Params>, String> {
    let mut found = None;
    for (name, params) in offers(header) {
        if !name.eq_ignore_ascii_case(EXTENSION) {
            return Err(format!(
                "server chose extension {name:?}, which was not offered"
            ));
        }
        if found.is_some() {
            return Err("server chose permessage-deflate twice".into());
        }
        let mut p = Params {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: 15,
            client_max_window_bits: 15,
        };
        for (key, value) in params {
            match (key, value) {
                ("server_no_context_takeover", None) => p.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => p.client_no_context_takeover = true,
                ("server_max_window_bits", v) => {
                    p.server_max_window_bits =
                        window_bits(v).ok_or("bad server_max_window_bits in the response")?
                }
                ("client_max_window_bits", v) => {
                    p.client_max_window_bits =
                        window_bits(v).ok_or("bad client_max_window_bits in the response")?
                }
                (k, _) => return Err(format!("unknown permessage-deflate parameter {k:?}")),
            }
        }
        found = Some(p);
    }
    Ok(found)
}

/// A connection's compression settings, on the sending side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deflate {
    /// The window this side compresses with (8: never compress, zlib cannot make raw 256-byte
    /// windows; sending uncompressed is always allowed).
    window: u8,
    level: u32,
    min_size: usize,
    /// The negotiated parameters.
    pub params: Params,
}

impl Deflate {
    /// The server side of `params`, compressing at `level` (0 to 9) messages of at least
    /// `min_size` bytes.
    pub fn server(params: Params, level: u32, min_size: usize) -> Self {
        Self {
            window: params.server_max_window_bits,
            level: level.min(9),
            min_size,
            params,
        }
    }

    /// The client side of `params` (the server's response).
    pub fn client(params: Params, level: u32, min_size: usize) -> Self {
        Self {
            window: params.client_max_window_bits,
            level: level.min(9),
            min_size,
            params,
        }
    }

    /// Whether a payload of `len` bytes gets compressed.
    pub fn worth_compressing(&self, len: usize) -> bool {
        self.window > 8 && len >= self.min_size.max(1)
    }

    /// Whether frames compressed for these settings can be shared with every connection that
    /// has the common ones (15-bit window). The level is server-wide.
    pub(crate) fn is_shared_params(&self) -> bool {
        self.window == 15
    }
}

thread_local! {
    /// One compressor per window size per thread, reset for every message (no context
    /// takeover), created on first use.
    static COMPRESSORS: RefCell<[Option<(u32, Compress)>; 8]> = const { RefCell::new([const { None }; 8]) };
    /// One decompressor per thread (15-bit window inflates every smaller window too).
    static DECOMPRESSOR: RefCell<Option<Decompress>> = const { RefCell::new(None) };
}

/// Compresses `payload` into a complete server frame (FIN, RSV1, `opcode`); `None` when the
/// result would not be smaller than the plain frame.
pub(crate) fn compress_frame(d: &Deflate, opcode: u8, payload: &[u8]) -> Option<Bytes> {
    let body = compress(d, payload)?;
    Some(super::write::frame(
        super::Role::Server,
        opcode,
        &body,
        true,
        true,
    ))
}

/// The compressed body of one message (the sync-flush tail removed); `None` when it would not
/// be smaller than `payload`.
pub fn compress(d: &Deflate, payload: &[u8]) -> Option<Vec<u8>> {
    if d.window <= 8 {
        return None;
    }
    COMPRESSORS.with(|cell| {
        let mut slots = cell.borrow_mut();
        let slot = &mut slots[(d.window - 8) as usize];
        if !matches!(slot, Some((level, _)) if *level == d.level) {
            *slot = Some((
                d.level,
                Compress::new_with_window_bits(Compression::new(d.level), false, d.window),
            ));
        }
        let (_, c) = slot.as_mut().expect("just set");
        c.reset();
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let mut input = payload;
        loop {
            let before_in = c.total_in();
            if out.capacity() - out.len() < 64 {
                out.reserve(out.capacity().max(256));
            }
            c.compress_vec(input, &mut out, FlushCompress::Sync).ok()?;
            input = &input[(c.total_in() - before_in) as usize..];
            // Done when all input is in and the flush left room to spare (no more output).
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        (out.len() < payload.len()).then_some(out)
    })
}

/// Why inflating failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InflateError {
    /// The inflated message would pass this many bytes.
    TooBig(usize),
    /// The compressed data is not valid deflate.
    Corrupt(String),
}

/// A peer's inflate context: per thread when the peer resets its context per message, or the
/// connection's own (boxed: about 40 KiB) when it takes the context over between messages.
#[derive(Default)]
pub struct Inflater {
    own: Option<Box<Decompress>>,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("takes_over_context", &self.own.is_some())
            .finish()
    }
}

impl Inflater {
    /// An inflater for a peer that keeps its context between messages (`takeover`) or not.
    pub fn new(takeover: bool) -> Self {
        Self {
            own: takeover.then(|| Box::new(Decompress::new_with_window_bits(false, 15))),
        }
    }

    /// Inflates one message's compressed body, refusing to produce more than `max` bytes: the
    /// output grows only as far as the limit, so a deflate bomb costs at most `max` bytes.
    pub fn inflate(&mut self, body: &[u8], max: usize) -> Result<Bytes, InflateError> {
        match &mut self.own {
            Some(d) => inflate_with(d, body, max),
            None => DECOMPRESSOR.with(|cell| {
                let mut slot = cell.borrow_mut();
                let d = slot.get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
                d.reset(false);
                inflate_with(d, body, max)
            }),
        }
    }
}

fn inflate_with(d: &mut Decompress, body: &[u8], max: usize) -> Result<Bytes, InflateError> {
    let mut out: Vec<u8> = Vec::with_capacity((body.len() * 3).clamp(64, max.max(64)));
    for input in [body, &TAIL[..]] {
        let mut input = input;
        let mut ended = false;
        loop {
            if out.len() == out.capacity() {
                if out.len() > max {
                    return Err(InflateError::TooBig(max));
                }
                // Grow at most one byte past the limit: enough to know it was passed.
                let room = out.capacity().max(1024).min(max + 1 - out.len());
                out.reserve_exact(room);
            }
            let before_in = d.total_in();
            let before_out = out.len();
            let status = d
                .decompress_vec(input, &mut out, FlushDecompress::Sync)
                .map_err(|e| InflateError::Corrupt(e.to_string()))?;
            input = &input[(d.total_in() - before_in) as usize..];
            if out.len() > max {
                return Err(InflateError::TooBig(max));
            }
            let progressed = out.len() > before_out || d.total_in() > before_in;
            if matches!(status, Status::StreamEnd) {
                // A final block (BFINAL): nothing may follow, the tail included.
                ended = true;
                break;
            }
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
            if !progressed && out.len() < out.capacity() {
                return Err(InflateError::Corrupt(
                    "deflate data does not progress".into(),
                ));
            }
        }
        if ended {
            break;
        }
    }
    Ok(out.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_answers_offers() {
        assert_eq!(negotiate(["permessage-deflate"]), Some(Params::default()));
        let p = negotiate(["permessage-deflate; client_max_window_bits"]).unwrap();
        assert_eq!(
            p.response(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
        let p =
            negotiate(["permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"])
                .unwrap();
        assert_eq!(p.server_max_window_bits, 10);
        assert_eq!(p.client_max_window_bits, 9);
        assert!(p.response().contains("server_max_window_bits=10"));
        // Unknown, repeated, out of range: declined; the next offer is taken.
        assert_eq!(negotiate(["permessage-deflate; foo"]), None);
        assert_eq!(
            negotiate(["permessage-deflate; server_max_window_bits=7"]),
            None
        );
        assert_eq!(
            negotiate(["permessage-deflate; server_max_window_bits"]),
            None
        );
        assert_eq!(
            negotiate([
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            ]),
            None
        );
        let p = negotiate(["x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=7, permessage-deflate; server_max_window_bits=\"12\""]).unwrap();
        assert_eq!(p.server_max_window_bits, 12);
        assert_eq!(negotiate(["x-webkit-deflate-frame"]), None);
    }

    #[test]
    fn client_reads_responses() {
        let p = accept_response(
            "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
        )
        .unwrap()
        .unwrap();
        assert!(p.server_no_context_takeover && !p.client_no_context_takeover);
        assert_eq!(p.client_max_window_bits, 10);
        assert!(accept_response("permessage-deflate; bogus").is_err());
        assert!(accept_response("other").is_err());
        assert_eq!(accept_response("").unwrap(), None);
    }

    #[test]
    fn round_trip_and_bound() {
        let d = Deflate::server(Params::default(), 6, 0);
        let text = "the quick brown fox ".repeat(500);
        let body = compress(&d, text.as_bytes()).unwrap();
        assert!(body.len() < 200);
        let mut inf = Inflater::new(false);
        assert_eq!(&inf.inflate(&body, 1 << 20).unwrap()[..], text.as_bytes());
        assert_eq!(inf.inflate(&body, 9_999), Err(InflateError::TooBig(9_999)));
        assert!(matches!(
            inf.inflate(&[0xff, 0xff, 0xff], 1000),
            Err(InflateError::Corrupt(_))
        ));
        // Random bytes do not shrink: not compressed.
        let noise: Vec<u8> = (0..600).map(|_| rand::random::<u8>()).collect();
        assert_eq!(compress(&d, &noise), None);
    }

    #[test]
    fn a_deflate_bomb_stops_at_the_limit() {
        let d = Deflate::server(Params::default(), 9, 0);
        let zeros = vec![0u8; 50 << 20];
        let body = compress(&d, &zeros).unwrap();
        assert!(body.len() < 100_000);
        let mut inf = Inflater::new(false);
        assert_eq!(
            inf.inflate(&body, 1 << 20),
            Err(InflateError::TooBig(1 << 20))
        );
    }
}
