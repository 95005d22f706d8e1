//! Fuzzes the STOMP parser: arbitrary bytes, fed whole, one byte at a time and in pseudo-random
//! chunks, must never panic and must give the same items and the same error every time; every
//! frame parsed must encode to bytes that parse back to the same frame (plus the
//! `content-length` the encoder adds to a body that had none); and the ERROR frame built from
//! any error must round-trip too.
//!
//! Input layout: the first byte picks the limits (bit 0: default or tight) and seeds the
//! chunking; the rest is the byte stream.

#![no_main]

use edge::stomp::{Frame, FrameError, Limits, Parsed, Parser};
use libfuzzer_sys::fuzz_target;

/// Small enough that libFuzzer reaches every limit quickly.
const TIGHT: Limits = Limits {
    max_frame_size: 256,
    max_headers: 4,
    max_header_line: 48,
    max_body_size: 128,
};

/// Large enough that re-encoding (escapes, an added `content-length`) never hits a limit.
const LOOSE: Limits = Limits {
    max_frame_size: 1 << 24,
    max_headers: 1 << 16,
    max_header_line: 1 << 24,
    max_body_size: 1 << 24,
};

type Outcome = (Vec<Parsed>, Result<(), FrameError>);

fn run(limits: Limits, chunks: &[&[u8]]) -> Outcome {
    let mut parser = Parser::new(limits);
    let mut items = Vec::new();
    let result = chunks
        .iter()
        .try_for_each(|chunk| parser.feed(chunk, &mut items));
    (items, result)
}

/// Splits `stream` into chunks of 1 to `max` bytes, sizes from a xorshift seeded by `seed`.
fn chunk(stream: &[u8], seed: u8, max: usize) -> Vec<&[u8]> {
    let mut state = u32::from(seed).wrapping_mul(2_654_435_761) | 1;
    let mut chunks = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let size = (state as usize % max + 1).min(rest.len());
        let (head, tail) = rest.split_at(size);
        chunks.push(head);
        rest = tail;
    }
    chunks
}

/// `parse(encode(frame))` must be `frame`, with `content-length` appended if it had a body and
/// none.
fn assert_round_trip(frame: &Frame) {
    let mut expected = frame.clone();
    if frame.header("content-length").is_none() && !frame.body.is_empty() {
        expected
            .headers
            .push(("content-length".to_owned(), frame.body.len().to_string()));
    }
    let bytes = frame.encode();
    assert_eq!(
        run(LOOSE, &[&bytes]),
        (vec![Parsed::Frame(expected)], Ok(())),
        "re-encoded as {bytes:?}"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let limits = if seed & 1 == 0 {
        Limits::default()
    } else {
        TIGHT
    };

    let whole = run(limits, &[stream]);
    let bytes: Vec<&[u8]> = stream.chunks(1).collect();
    assert_eq!(run(limits, &bytes), whole, "byte by byte");
    for max in [2, 7, 64] {
        assert_eq!(
            run(limits, &chunk(stream, seed, max)),
            whole,
            "chunks of 1..={max}"
        );
    }

    for item in &whole.0 {
        if let Parsed::Frame(frame) = item {
            assert_round_trip(frame);
        }
    }
    if let Err(error) = &whole.1 {
        assert_round_trip(&Frame::error(&error.to_string(), Some("r-1"), ""));
    }
});
