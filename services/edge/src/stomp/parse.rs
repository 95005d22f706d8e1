//! Bytes to frames: an incremental STOMP 1.2 parser that owns no socket.
//!
//! WebSocket messages may carry part of a frame, one frame or several, so the parser is a state
//! machine fed arbitrary chunks: it keeps only the partial frame it is building (bounded by
//! [`Limits`]) and never rescans bytes it has already consumed. Errors are fatal, as the spec
//! wants for a protocol error: the connection answers with an ERROR frame and closes.

use std::mem;

use super::frame::{Command, Frame};

/// Default cap on a whole frame (command line, headers, body and NUL): 64 KiB, large enough for
/// any chat message and small enough that a client cannot make an edge buffer much.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 64 * 1024;

/// Default cap on the number of headers of one frame.
pub const DEFAULT_MAX_HEADERS: usize = 64;

/// Default cap on one header line, escapes included, end of line excluded: 8 KiB.
pub const DEFAULT_MAX_HEADER_LINE: usize = 8 * 1024;

/// What the parser accepts before giving up, so that memory per connection stays bounded.
///
/// Every limit is checked as soon as it can be: a frame that grows past `max_frame_size` fails
/// at the byte that crosses it, not when (or if) its NUL arrives, and a `content-length` over
/// the limit fails when the header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes in one frame, from the command's first byte to the NUL included.
    pub max_frame_size: usize,
    /// Most headers in one frame, repeats included.
    pub max_headers: usize,
    /// Most bytes in one header line, escapes included, end of line excluded.
    pub max_header_line: usize,
    /// Most bytes in one body; the frame limit applies too.
    pub max_body_size: usize,
}

impl Default for Limits {
    /// The `DEFAULT_*` constants; the body may use the whole frame size.
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_headers: DEFAULT_MAX_HEADERS,
            max_header_line: DEFAULT_MAX_HEADER_LINE,
            max_body_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

/// Why a byte stream is not valid STOMP 1.2 (or exceeds the [`Limits`]).
///
/// The `Display` text is meant for the `message` header of the ERROR frame sent back before
/// closing, so it is short and names the rule broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame grew past [`Limits::max_frame_size`].
    #[error("frame larger than {limit} bytes")]
    FrameTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// The body (or the `content-length`) is over [`Limits::max_body_size`].
    #[error("body larger than {limit} bytes")]
    BodyTooLarge {
        /// The limit in force.
        limit: usize,
    },
    /// A header line is longer than [`Limits::max_header_line`].
    #[error("header line longer than {limit} bytes")]
    HeaderLineTooLong {
        /// The limit in force.
        limit: usize,
    },
    /// The frame has more than [`Limits::max_headers`] headers.
    #[error("more than {limit} headers")]
    TooManyHeaders {
        /// The limit in force.
        limit: usize,
    },
    /// A backslash in a header not followed by `r`, `n`, `c` or `\` (the spec makes this fatal).
    #[error("invalid header escape")]
    InvalidHeaderEscape,
    /// A header line without `:`, with an empty name, or with a bare carriage return.
    #[error("malformed header: expected name:value")]
    MalformedHeader,
    /// The first line is not one of the spec's commands (the text is cut to a few bytes).
    #[error("unknown command {0:?}")]
    UnknownCommand(String),
    /// `content-length` is not a plain decimal number.
    #[error("invalid content-length header")]
    InvalidContentLength,
    /// The `content-length` bytes of body are not followed by a NUL.
    #[error("frame body not terminated by NUL")]
    MissingNul,
    /// The command or a header is not UTF-8, which the spec requires.
    #[error("command or header is not valid UTF-8")]
    InvalidUtf8,
    /// A body on a command other than SEND, MESSAGE or ERROR.
    #[error("{0} frames must not have a body")]
    BodyNotAllowed(Command),
    /// A `heart-beat` header that is not two decimal numbers separated by a comma.
    #[error("invalid heart-beat header {0:?}")]
    InvalidHeartBeat(String),
}

/// One thing read from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A complete frame.
    Frame(Frame),
    /// A bare end of line (`\n` or `\r\n`) between frames: a heart-beat, or one of the optional
    /// EOLs after a frame's NUL (the spec allows both; either just proves the peer is alive).
    HeartBeat,
}

/// Where the parser is inside the current frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the command line (or a heart-beat); `line` holds what came so far.
    Command,
    /// Reading header lines of a frame with this command.
    Headers(Command),
    /// Reading a body framed by `content-length`, `remaining` bytes to go.
    BodyLen { command: Command, remaining: usize },
    /// Reading a body up to the first NUL.
    BodyNul(Command),
    /// After a `content-length` body: the next byte must be NUL.
    Nul(Command),
}

/// Incremental STOMP 1.2 parser: feed it bytes as they arrive, get frames and heart-beats.
///
/// One per connection. After an error it stays failed and returns that error again, because
/// the spec treats protocol errors as fatal to the connection.
#[derive(Debug, Clone)]
pub struct Parser {
    limits: Limits,
    state: State,
    /// The partial command or header line.
    line: Vec<u8>,
    /// Bytes of the current frame consumed so far (0 before its command line ends).
    frame_len: usize,
    headers: Vec<(String, String)>,
    /// The first `content-length` of the current frame, once read.
    content_length: Option<usize>,
    body: Vec<u8>,
    failed: Option<FrameError>,
}

impl Parser {
    /// A parser enforcing `limits`, positioned between frames.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Command,
            line: Vec::new(),
            frame_len: 0,
            headers: Vec::new(),
            content_length: None,
            body: Vec::new(),
            failed: None,
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether the parser sits between frames with nothing buffered, so a connection closing
    /// now loses no partial frame.
    pub fn is_idle(&self) -> bool {
        self.failed.is_none() && self.state == State::Command && self.line.is_empty()
    }

    /// Consumes bytes from the front of `input` until one item is complete or `input` runs out.
    ///
    /// Returns how many bytes were consumed and the item, if one was completed; the caller
    /// passes the rest (`&input[consumed..]`) again, then the next chunk. Bytes consumed without
    /// completing an item are kept inside the parser, so nothing needs re-sending. When `input`
    /// is not empty, at least one byte is consumed.
    pub fn parse(&mut self, input: &[u8]) -> Result<(usize, Option<Parsed>), FrameError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        match self.step(input) {
            Ok(done) => Ok(done),
            Err(error) => {
                self.failed = Some(error.clone());
                Err(error)
            }
        }
    }

    /// Parses a whole chunk (e.g. one WebSocket message), appending every completed item to
    /// `out`; a partial frame at the end stays buffered for the next chunk.
    ///
    /// On error, the items completed before the bad one are already in `out`, so the caller may
    /// still act on them before sending the ERROR frame.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<Parsed>) -> Result<(), FrameError> {
        let mut rest = chunk;
        while !rest.is_empty() {
            let (consumed, item) = self.parse(rest)?;
            if let Some(item) = item {
                out.push(item);
            } else if consumed == 0 {
                break; // cannot happen (see `parse`); guards against looping forever
            }
            rest = rest.get(consumed..).unwrap_or_default();
        }
        Ok(())
    }

    /// `parse` without the failure bookkeeping.
    fn step(&mut self, input: &[u8]) -> Result<(usize, Option<Parsed>), FrameError> {
        let mut pos = 0;
        while let Some(rest) = input.get(pos..).filter(|r| !r.is_empty()) {
            match self.state {
                State::Command => {
                    let (take, line_done) = split_line(rest);
                    let seg = &rest[..take];
                    if line_overflow(&self.line, seg, Command::MAX_LEN).is_some() {
                        // No command is that long: show what came, cut to a few bytes.
                        let mut seen = mem::take(&mut self.line);
                        seen.extend_from_slice(seg);
                        seen.truncate(Command::MAX_LEN + 1);
                        return Err(FrameError::UnknownCommand(
                            String::from_utf8_lossy(&seen).into_owned(),
                        ));
                    }
                    self.line.extend_from_slice(seg);
                    pos += take + usize::from(line_done);
                    if line_done {
                        let raw_len = self.line.len() + 1;
                        let line = take_line(&mut self.line);
                        if line.is_empty() {
                            return Ok((pos, Some(Parsed::HeartBeat)));
                        }
                        let text = String::from_utf8(line).map_err(|_| FrameError::InvalidUtf8)?;
                        let command: Command = text.parse()?;
                        self.frame_len = 0;
                        self.grow(raw_len)?;
                        self.state = State::Headers(command);
                    }
                }
                State::Headers(command) => {
                    let (take, line_done) = split_line(rest);
                    let seg = &rest[..take];
                    let consumed = take + usize::from(line_done);
                    let limit = self.limits.max_header_line;
                    if let Some(error) = earliest([
                        self.frame_overflow(consumed),
                        line_overflow(&self.line, seg, limit)
                            .map(|at| (at, FrameError::HeaderLineTooLong { limit })),
                    ]) {
                        return Err(error);
                    }
                    self.frame_len += consumed;
                    self.line.extend_from_slice(seg);
                    pos += consumed;
                    if line_done {
                        let line = take_line(&mut self.line);
                        if line.is_empty() {
                            self.end_headers(command)?;
                        } else {
                            self.header_line(command, line)?;
                        }
                    }
                }
                State::BodyLen { command, remaining } => {
                    let take = remaining.min(rest.len());
                    self.grow(take)?;
                    self.body.extend_from_slice(&rest[..take]);
                    pos += take;
                    self.state = match remaining - take {
                        0 => State::Nul(command),
                        remaining => State::BodyLen { command, remaining },
                    };
                }
                State::Nul(command) => {
                    if rest[0] != 0 {
                        return Err(FrameError::MissingNul);
                    }
                    self.grow(1)?;
                    return Ok((pos + 1, Some(self.finish(command))));
                }
                State::BodyNul(command) => {
                    let nul = rest.iter().position(|&b| b == 0);
                    let take = nul.unwrap_or(rest.len());
                    let consumed = take + usize::from(nul.is_some());
                    let body_room = self.limits.max_body_size.saturating_sub(self.body.len());
                    let limit = self.limits.max_body_size;
                    if let Some(error) = earliest([
                        self.frame_overflow(consumed),
                        (take > 0 && !command.allows_body())
                            .then_some((0, FrameError::BodyNotAllowed(command))),
                        (take > body_room)
                            .then_some((body_room, FrameError::BodyTooLarge { limit })),
                    ]) {
                        return Err(error);
                    }
                    self.frame_len += consumed;
                    self.body.extend_from_slice(&rest[..take]);
                    pos += consumed;
                    if nul.is_some() {
                        return Ok((pos, Some(self.finish(command))));
                    }
                }
            }
        }
        Ok((pos, None))
    }

    /// Where, among the next `n` bytes of the current frame, the frame limit would be crossed.
    fn frame_overflow(&self, n: usize) -> Option<(usize, FrameError)> {
        let room = self.limits.max_frame_size.saturating_sub(self.frame_len);
        (n > room).then_some((
            room,
            FrameError::FrameTooLarge {
                limit: self.limits.max_frame_size,
            },
        ))
    }

    /// Counts `n` more bytes of the current frame against the frame limit.
    fn grow(&mut self, n: usize) -> Result<(), FrameError> {
        self.frame_len = self.frame_len.saturating_add(n);
        let limit = self.limits.max_frame_size;
        if self.frame_len > limit {
            return Err(FrameError::FrameTooLarge { limit });
        }
        Ok(())
    }

    /// Parses one complete, non-empty header line (end of line removed) and records it.
    fn header_line(&mut self, command: Command, line: Vec<u8>) -> Result<(), FrameError> {
        let limit = self.limits.max_headers;
        if self.headers.len() >= limit {
            return Err(FrameError::TooManyHeaders { limit });
        }
        let text = String::from_utf8(line).map_err(|_| FrameError::InvalidUtf8)?;
        if text.contains('\r') {
            return Err(FrameError::MalformedHeader);
        }
        // The first colon separates name and value; later colons belong to the value, as most
        // brokers accept (escaped frames should send them as `\c`, but verbatim CONNECT headers
        // such as `host:example.com:61613` cannot).
        let (name, value) = text.split_once(':').ok_or(FrameError::MalformedHeader)?;
        if name.is_empty() {
            return Err(FrameError::MalformedHeader);
        }
        let (name, value) = if command.escapes_headers() {
            (unescape(name)?, unescape(value)?)
        } else {
            (name.to_owned(), value.to_owned())
        };
        if name == "content-length" && self.content_length.is_none() {
            let length = parse_content_length(&value)?;
            self.check_body_length(command, length)?;
            self.content_length = Some(length);
        }
        self.headers.push((name, value));
        Ok(())
    }

    /// Checks a declared body length against the limits and the command, before reading it.
    fn check_body_length(&self, command: Command, length: usize) -> Result<(), FrameError> {
        if length > 0 && !command.allows_body() {
            return Err(FrameError::BodyNotAllowed(command));
        }
        if length > self.limits.max_body_size {
            return Err(FrameError::BodyTooLarge {
                limit: self.limits.max_body_size,
            });
        }
        // The body and its NUL must still fit after the bytes read so far.
        if self.frame_len.saturating_add(length).saturating_add(1) > self.limits.max_frame_size {
            return Err(FrameError::FrameTooLarge {
                limit: self.limits.max_frame_size,
            });
        }
        Ok(())
    }

    /// The blank line after the headers: chooses how the body is read.
    fn end_headers(&mut self, command: Command) -> Result<(), FrameError> {
        self.state = match self.content_length {
            Some(length) => {
                self.check_body_length(command, length)?;
                self.body.reserve_exact(length); // within the limits, just checked
                match length {
                    0 => State::Nul(command),
                    remaining => State::BodyLen { command, remaining },
                }
            }
            None => State::BodyNul(command),
        };
        Ok(())
    }

    /// Hands out the completed frame and gets ready for the next one.
    fn finish(&mut self, command: Command) -> Parsed {
        self.state = State::Command;
        self.frame_len = 0;
        self.content_length = None;
        Parsed::Frame(Frame {
            command,
            headers: mem::take(&mut self.headers),
            body: mem::take(&mut self.body),
        })
    }
}

impl Default for Parser {
    /// A parser with the default [`Limits`].
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// How many bytes of `rest` belong to the current line, and whether a LF ends it there (the LF
/// itself is not counted).
fn split_line(rest: &[u8]) -> (usize, bool) {
    match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (i, true),
        None => (rest.len(), false),
    }
}

/// Where in `seg` (bytes that continue the partial `line`, no LF among them) the line becomes
/// longer than `max` bytes, if it does. A CR right after the `max`th byte is allowed, as it
/// may be the first half of a CRLF; since `seg` holds no LF, any byte after that CR is not.
fn line_overflow(line: &[u8], seg: &[u8], max: usize) -> Option<usize> {
    let total = line.len() + seg.len();
    if total <= max {
        return None;
    }
    let byte_at = |i: usize| match i.checked_sub(line.len()) {
        None => line.get(i).copied(),
        Some(j) => seg.get(j).copied(),
    };
    let at = if byte_at(max) == Some(b'\r') {
        max.saturating_add(1)
    } else {
        max
    };
    // `line` is never over the limit itself, so `at` is not before its end.
    (at < total).then(|| at.saturating_sub(line.len()))
}

/// The error of the violation at the smallest byte offset; at the same offset the first one
/// listed wins. That is the order in which byte-at-a-time input would hit them, so the error
/// reported never depends on how the input was split into chunks.
fn earliest<const N: usize>(violations: [Option<(usize, FrameError)>; N]) -> Option<FrameError> {
    let mut first: Option<(usize, FrameError)> = None;
    for (at, error) in violations.into_iter().flatten() {
        if first.as_ref().is_none_or(|(best, _)| at < *best) {
            first = Some((at, error));
        }
    }
    first.map(|(_, error)| error)
}

/// Takes the completed line out of the buffer, without the CR of a CRLF.
fn take_line(line: &mut Vec<u8>) -> Vec<u8> {
    let mut line = mem::take(line);
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    line
}

/// `content-length` must be ASCII digits only; a number too big for `usize` is over any limit.
pub(super) fn parse_content_length(value: &str) -> Result<usize, FrameError> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FrameError::InvalidContentLength);
    }
    Ok(value.parse().unwrap_or(usize::MAX))
}

/// Undoes the STOMP 1.2 header escapes; any other backslash sequence is fatal per the spec.
fn unescape(text: &str) -> Result<String, FrameError> {
    if !text.contains('\\') {
        return Ok(text.to_owned());
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next() {
            Some('r') => '\r',
            Some('n') => '\n',
            Some('c') => ':',
            Some('\\') => '\\',
            _ => return Err(FrameError::InvalidHeaderEscape),
        });
    }
    Ok(out)
}
