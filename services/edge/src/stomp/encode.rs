//! Frame to bytes: the inverse of `parse`, kept apart from I/O so the connection writer only
//! moves the bytes.

use super::frame::{Command, Frame};
use super::parse::parse_content_length;

/// The bytes of one heart-beat: a single end of line, which the spec allows between frames.
pub const HEART_BEAT: &[u8] = b"\n";

impl Frame {
    /// The wire form of the frame: see [`Frame::encode_into`].
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        self.encode_into(&mut out);
        out
    }

    /// Appends the wire form of the frame to `out`, so a writer can batch frames in one buffer.
    ///
    /// Layout: command, `\n`, one `name:value\n` per header, `\n`, body, NUL. Header names and
    /// values are escaped (`\\`, `\r`, `\n`, `\c`) except in CONNECT and CONNECTED frames, which
    /// the spec says are written verbatim; as those cannot carry an end of line, a CR or LF in
    /// them is written as a space, and a `:` in a name as `_`, so that no header can ever break
    /// out of its line and forge headers or frames.
    ///
    /// `content-length` is kept exact so the body may hold NULs: the first `content-length`
    /// header, if any, is written as is when it already states the body's length and gets that
    /// length as its value otherwise; without one, a non-empty body gets `content-length`
    /// appended after the other headers. So a parsed frame that had a `content-length` encodes
    /// back to a frame that parses to the very same value.
    ///
    /// Encoding never fails; a frame the parser would still refuse (an empty header name, a body
    /// on a command that allows none) is the caller's mistake, not checked here.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.command.as_str().as_bytes());
        out.push(b'\n');
        let escape = self.command.escapes_headers();
        let mut wrote_length = false;
        for (name, value) in &self.headers {
            if name == "content-length" && !wrote_length {
                wrote_length = true;
                if parse_content_length(value) != Ok(self.body.len()) {
                    write_content_length(out, self.body.len());
                    continue;
                }
            }
            write_part(out, name, escape, true);
            out.push(b':');
            write_part(out, value, escape, false);
            out.push(b'\n');
        }
        if !wrote_length && !self.body.is_empty() {
            write_content_length(out, self.body.len());
        }
        out.push(b'\n');
        out.extend_from_slice(&self.body);
        out.push(0);
    }

    /// A capacity good enough to encode without reallocating in the common case.
    fn encoded_len_hint(&self) -> usize {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 2)
            .sum();
        Command::MAX_LEN + headers + 24 + self.body.len() + 2
    }
}

/// `content-length:N\n`.
fn write_content_length(out: &mut Vec<u8>, len: usize) {
    out.extend_from_slice(b"content-length:");
    out.extend_from_slice(len.to_string().as_bytes());
    out.push(b'\n');
}

/// Writes a header name (`is_name`) or value, escaped or made line-safe as described on
/// [`Frame::encode_into`].
fn write_part(out: &mut Vec<u8>, text: &str, escape: bool, is_name: bool) {
    for &b in text.as_bytes() {
        match (escape, b) {
            (true, b'\\') => out.extend_from_slice(b"\\\\"),
            (true, b'\r') => out.extend_from_slice(b"\\r"),
            (true, b'\n') => out.extend_from_slice(b"\\n"),
            (true, b':') => out.extend_from_slice(b"\\c"),
            (false, b'\r' | b'\n') => out.push(b' '),
            (false, b':') if is_name => out.push(b'_'),
            _ => out.push(b),
        }
    }
}
