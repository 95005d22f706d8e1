//! STOMP 1.2 framing: the frame model, an incremental parser and the encoder, with no I/O and no
//! command handling (the WebSocket connection feeds bytes in and writes bytes out; what a SEND or
//! SUBSCRIBE *means* is decided elsewhere).
//!
//! Split like mini-redis's codec so each half can be tested (and fuzzed, see `services/edge/fuzz`)
//! on plain byte slices: [`Parser`] turns chunks into [`Parsed`] items under explicit [`Limits`],
//! [`Frame::encode`] turns frames back into bytes, and [`negotiate_heart_beat`] settles the
//! heart-beat intervals of a new session. `docs/stomp-frames.md` lists what is accepted.

mod encode;
mod frame;
mod parse;
#[cfg(test)]
mod tests;

pub use encode::HEART_BEAT;
pub use frame::{negotiate_heart_beat, parse_heart_beat, Command, Frame};
pub use parse::{
    FrameError, Limits, Parsed, Parser, DEFAULT_MAX_FRAME_SIZE, DEFAULT_MAX_HEADERS,
    DEFAULT_MAX_HEADER_LINE,
};
