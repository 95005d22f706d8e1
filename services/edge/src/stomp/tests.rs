//! Codec tests: spec examples, chunking, escaping, limits, errors and round trips.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use super::*;

// ---------------------------------------------------------------- helpers

/// Feeds `chunks` in order to a fresh parser with `limits`.
fn parse_chunks_with(limits: Limits, chunks: &[&[u8]]) -> Result<Vec<Parsed>, FrameError> {
    let mut parser = Parser::new(limits);
    let mut out = Vec::new();
    for chunk in chunks {
        parser.feed(chunk, &mut out)?;
    }
    Ok(out)
}

fn parse_all(input: &[u8]) -> Result<Vec<Parsed>, FrameError> {
    parse_chunks_with(Limits::default(), &[input])
}

fn parse_err(input: &[u8]) -> FrameError {
    parse_all(input).unwrap_err()
}

fn parse_err_with(limits: Limits, input: &[u8]) -> FrameError {
    parse_chunks_with(limits, &[input]).unwrap_err()
}

/// The single frame `input` holds (trailing heart-beats ignored).
fn one_frame(input: &[u8]) -> Frame {
    let items = parse_all(input).unwrap();
    let frames: Vec<Frame> = items
        .into_iter()
        .filter_map(|p| match p {
            Parsed::Frame(f) => Some(f),
            Parsed::HeartBeat => None,
        })
        .collect();
    assert_eq!(frames.len(), 1, "expected one frame in {input:?}");
    frames.into_iter().next().unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// A stream mixing frames, heart-beats, CRLF, content-length bodies with NULs and escapes.
const STREAM: &[u8] = b"\n\
CONNECT\naccept-version:1.2\nhost:stomp.github.org\nlogin:a\\b\n\n\0\
\r\n\
SEND\r\ndestination:/queue/a\r\ncontent-type:text/plain\r\n\r\nhello queue a\0\n\n\
SEND\ndestination:/queue/b\ncontent-length:5\n\na\0b\0c\0\
SUBSCRIBE\nid:0\ndestination:/queue/we\\cird\nack:client\n\n\0\r\n\
DISCONNECT\nreceipt:77\n\n\0";

fn stream_expected() -> Vec<Parsed> {
    vec![
        Parsed::HeartBeat,
        Parsed::Frame(Frame {
            command: Command::Connect,
            headers: headers(&[
                ("accept-version", "1.2"),
                ("host", "stomp.github.org"),
                ("login", "a\\b"),
            ]),
            body: vec![],
        }),
        Parsed::HeartBeat,
        Parsed::Frame(Frame {
            command: Command::Send,
            headers: headers(&[("destination", "/queue/a"), ("content-type", "text/plain")]),
            body: b"hello queue a".to_vec(),
        }),
        Parsed::HeartBeat,
        Parsed::HeartBeat,
        Parsed::Frame(Frame {
            command: Command::Send,
            headers: headers(&[("destination", "/queue/b"), ("content-length", "5")]),
            body: b"a\0b\0c".to_vec(),
        }),
        Parsed::Frame(Frame {
            command: Command::Subscribe,
            headers: headers(&[
                ("id", "0"),
                ("destination", "/queue/we:ird"),
                ("ack", "client"),
            ]),
            body: vec![],
        }),
        Parsed::HeartBeat,
        Parsed::Frame(Frame {
            command: Command::Disconnect,
            headers: headers(&[("receipt", "77")]),
            body: vec![],
        }),
    ]
}

// ---------------------------------------------------------------- spec examples

#[test]
fn spec_connect_frame() {
    let f = one_frame(b"CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0");
    assert_eq!(f.command, Command::Connect);
    assert_eq!(f.header("accept-version"), Some("1.2"));
    assert_eq!(f.header("host"), Some("stomp.github.org"));
    assert!(f.body.is_empty());
}

#[test]
fn spec_stomp_frame_with_crlf() {
    let f = one_frame(b"STOMP\r\naccept-version:1.2\r\nhost:stomp.github.org\r\n\r\n\0");
    assert_eq!(f.command, Command::Stomp);
    assert_eq!(
        f.headers,
        headers(&[("accept-version", "1.2"), ("host", "stomp.github.org")])
    );
}

#[test]
fn spec_send_frame_body_up_to_nul() {
    let f = one_frame(b"SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0");
    assert_eq!(f.command, Command::Send);
    assert_eq!(f.header("destination"), Some("/queue/a"));
    assert_eq!(f.header("content-type"), Some("text/plain"));
    assert_eq!(f.body, b"hello queue a\n");
}

#[test]
fn spec_subscribe_unsubscribe_ack_nack_transactions() {
    let cases: &[(&[u8], Command)] = &[
        (
            b"SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0",
            Command::Subscribe,
        ),
        (b"UNSUBSCRIBE\nid:0\n\n\0", Command::Unsubscribe),
        (b"ACK\nid:12345\ntransaction:tx1\n\n\0", Command::Ack),
        (b"NACK\nid:12345\ntransaction:tx1\n\n\0", Command::Nack),
        (b"BEGIN\ntransaction:tx1\n\n\0", Command::Begin),
        (b"COMMIT\ntransaction:tx1\n\n\0", Command::Commit),
        (b"ABORT\ntransaction:tx1\n\n\0", Command::Abort),
        (b"DISCONNECT\nreceipt:77\n\n\0", Command::Disconnect),
        (b"RECEIPT\nreceipt-id:77\n\n\0", Command::Receipt),
        (b"CONNECTED\nversion:1.2\n\n\0", Command::Connected),
    ];
    for (input, command) in cases {
        assert_eq!(one_frame(input).command, *command, "{input:?}");
    }
}

#[test]
fn spec_message_frame() {
    let f = one_frame(
        b"MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\0",
    );
    assert_eq!(f.command, Command::Message);
    assert_eq!(f.header("message-id"), Some("007"));
    assert_eq!(f.header("subscription"), Some("0"));
    assert_eq!(f.body, b"hello queue a");
}

#[test]
fn spec_error_frame_with_content_length() {
    let body = b"The message:\n-----\nMESSAGE\ndestined:/queue/a\n\nHello queue a!\n-----\nDid not contain a destination header, which is REQUIRED\nfor message propagation.\n";
    let mut input = format!(
        "ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:{}\nmessage:malformed frame received\n\n",
        body.len()
    )
    .into_bytes();
    input.extend_from_slice(body);
    input.push(0);
    let f = one_frame(&input);
    assert_eq!(f.command, Command::Error);
    assert_eq!(f.header("message"), Some("malformed frame received"));
    assert_eq!(f.body, body);
}

#[test]
fn spec_repeated_header_first_wins() {
    let f = one_frame(b"MESSAGE\nfoo:World\nfoo:Hello\n\n\0");
    assert_eq!(f.header("foo"), Some("World"));
    assert_eq!(f.headers, headers(&[("foo", "World"), ("foo", "Hello")]));
    assert_eq!(f.header("bar"), None);
    // Names are case-sensitive.
    assert_eq!(f.header("Foo"), None);
}

#[test]
fn repeated_content_length_first_wins() {
    let f = one_frame(b"SEND\ncontent-length:3\ncontent-length:1\n\nabc\0");
    assert_eq!(f.body, b"abc");
    // Later repeats are not even validated, since they do not count.
    let f = one_frame(b"SEND\ncontent-length:3\ncontent-length:zzz\n\na\0c\0");
    assert_eq!(f.body, b"a\0c");
}

#[test]
fn header_values_keep_spaces_and_colons_and_may_be_empty() {
    let f = one_frame(b"SEND\nx: padded \ntime:12:30:00\nempty:\n\n\0");
    assert_eq!(f.header("x"), Some(" padded "));
    assert_eq!(f.header("time"), Some("12:30:00"));
    assert_eq!(f.header("empty"), Some(""));
}

#[test]
fn utf8_headers_and_binary_body() {
    let mut input = "SEND\ndestination:/rooms/日本\nnote:ünïcödé ✓\ncontent-length:4\n\n"
        .as_bytes()
        .to_vec();
    input.extend_from_slice(&[0xff, 0x00, 0xfe, 0x80, 0x00]);
    let f = one_frame(&input);
    assert_eq!(f.header("destination"), Some("/rooms/日本"));
    assert_eq!(f.header("note"), Some("ünïcödé ✓"));
    assert_eq!(f.body, [0xff, 0x00, 0xfe, 0x80]);
}

#[test]
fn content_length_zero_and_empty_body() {
    let f = one_frame(b"SEND\ncontent-length:0\n\n\0");
    assert!(f.body.is_empty());
    let f = one_frame(b"DISCONNECT\ncontent-length:0\n\n\0");
    assert_eq!(f.command, Command::Disconnect);
}

#[test]
fn content_length_leading_zeros_are_decimal() {
    let input = b"SEND\ncontent-length:003\n\nabc\0";
    let f = one_frame(input);
    assert_eq!(f.body, b"abc");
    // A correct content-length is re-encoded as it was.
    assert_eq!(f.encode(), input);
}

// ---------------------------------------------------------------- escaping

#[test]
fn escapes_are_decoded_in_names_and_values() {
    let f = one_frame(b"SEND\na\\cb:x\\\\y\\nz\\r\\c\n\n\0");
    assert_eq!(f.headers, headers(&[("a:b", "x\\y\nz\r:")]));
}

#[test]
fn escaping_round_trips_byte_for_byte() {
    let input: &[u8] = b"MESSAGE\nweird\\c\\\\name:v\\na\\rl\\cue\\\\\nplain:ok\n\n\0";
    let f = one_frame(input);
    assert_eq!(f.header("weird:\\name"), Some("v\na\rl:ue\\"));
    assert_eq!(f.encode(), input);
}

#[test]
fn connect_and_connected_are_not_unescaped() {
    let f = one_frame(b"CONNECT\nlogin:a\\nb\npasscode:x\\ty\\\nhost:h:61613\n\n\0");
    assert_eq!(f.header("login"), Some("a\\nb"));
    assert_eq!(f.header("passcode"), Some("x\\ty\\"));
    assert_eq!(f.header("host"), Some("h:61613"));

    let f = one_frame(b"CONNECTED\nserver:a\\cb\\t\n\n\0");
    assert_eq!(f.header("server"), Some("a\\cb\\t"));

    // STOMP is a 1.1+ command, so the 1.0 exemption does not apply to it.
    assert_eq!(
        parse_err(b"STOMP\nlogin:x\\ty\n\n\0"),
        FrameError::InvalidHeaderEscape
    );
}

#[test]
fn connect_headers_are_encoded_verbatim() {
    let f = Frame::new(Command::Connect)
        .with_header("login", "a\\b")
        .with_header("host", "h:1");
    assert_eq!(f.encode(), b"CONNECT\nlogin:a\\b\nhost:h:1\n\n\0");
    assert_eq!(one_frame(&f.encode()), f);
}

#[test]
fn verbatim_headers_cannot_inject_lines() {
    let f = Frame::connected("1.2", (0, 0), Some("eve\nMESSAGE\r\nx:y")).with_header("a:b\nc", "v");
    let bytes = f.encode();
    let back = one_frame(&bytes);
    assert_eq!(back.header("user-name"), Some("eve MESSAGE  x:y"));
    assert_eq!(back.header("a_b c"), Some("v"));
    assert_eq!(back.headers.len(), 4);
}

#[test]
fn undefined_escapes_are_errors() {
    for input in [
        &b"SEND\nx:a\\tb\n\n\0"[..],
        b"SEND\nx:ends\\\n\n\0",
        b"SEND\nx\\t:v\n\n\0",
        b"MESSAGE\nx:\\C\n\n\0",
        b"SEND\nx:\\\\\\\n\n\0",
    ] {
        assert_eq!(
            parse_err(input),
            FrameError::InvalidHeaderEscape,
            "{input:?}"
        );
    }
    assert_eq!(
        FrameError::InvalidHeaderEscape.to_string(),
        "invalid header escape"
    );
}

// ---------------------------------------------------------------- chunking and heart-beats

#[test]
fn stream_parses_whole() {
    assert_eq!(parse_all(STREAM).unwrap(), stream_expected());
}

#[test]
fn stream_parses_one_byte_at_a_time() {
    let chunks: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(
        parse_chunks_with(Limits::default(), &chunks).unwrap(),
        stream_expected()
    );
}

#[test]
fn stream_parses_in_every_two_chunk_split() {
    let expected = stream_expected();
    for at in 0..=STREAM.len() {
        let (a, b) = STREAM.split_at(at);
        assert_eq!(
            parse_chunks_with(Limits::default(), &[a, b]).unwrap(),
            expected,
            "split at {at}"
        );
    }
}

#[test]
fn stream_parses_in_every_three_chunk_split() {
    let expected = stream_expected();
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let chunks = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
            assert_eq!(
                parse_chunks_with(Limits::default(), &chunks).unwrap(),
                expected,
                "split at {i}, {j}"
            );
        }
    }
}

#[test]
fn parse_consumes_one_item_at_a_time() {
    let mut parser = Parser::default();
    let mut rest = STREAM;
    let mut items = Vec::new();
    while !rest.is_empty() {
        let (consumed, item) = parser.parse(rest).unwrap();
        assert!(consumed > 0);
        rest = &rest[consumed..];
        // A call returns at the end of an item, not later.
        assert_eq!(item.is_some(), parser.is_idle());
        items.extend(item);
    }
    assert_eq!(items, stream_expected());
}

#[test]
fn heart_beats_between_frames() {
    let items = parse_all(b"\n\r\n\nSEND\n\nx\0\r\n\n\n").unwrap();
    let frame = Parsed::Frame(Frame::new(Command::Send).with_body("x"));
    assert_eq!(
        items,
        vec![
            Parsed::HeartBeat,
            Parsed::HeartBeat,
            Parsed::HeartBeat,
            frame,
            Parsed::HeartBeat,
            Parsed::HeartBeat,
            Parsed::HeartBeat,
        ]
    );
}

#[test]
fn partial_crlf_heart_beat_waits_for_lf() {
    let mut parser = Parser::default();
    let mut out = Vec::new();
    parser.feed(b"\r", &mut out).unwrap();
    assert!(out.is_empty());
    assert!(!parser.is_idle());
    parser.feed(b"\n", &mut out).unwrap();
    assert_eq!(out, vec![Parsed::HeartBeat]);
    assert!(parser.is_idle());
}

#[test]
fn is_idle_only_between_frames() {
    let mut parser = Parser::default();
    let mut out = Vec::new();
    assert!(parser.is_idle());
    parser.feed(b"SEND\nx:1\n\nbo", &mut out).unwrap();
    assert!(!parser.is_idle());
    parser.feed(b"dy\0", &mut out).unwrap();
    assert!(parser.is_idle());
    assert_eq!(out.len(), 1);
}

#[test]
fn feed_keeps_frames_before_an_error() {
    let mut parser = Parser::default();
    let mut out = Vec::new();
    let err = parser
        .feed(b"SEND\n\na\0\nBOGUS\n\n\0SEND\n\nb\0", &mut out)
        .unwrap_err();
    assert_eq!(err, FrameError::UnknownCommand("BOGUS".into()));
    assert_eq!(
        out,
        vec![
            Parsed::Frame(Frame::new(Command::Send).with_body("a")),
            Parsed::HeartBeat
        ]
    );
}

#[test]
fn parser_stays_failed() {
    let mut parser = Parser::default();
    let mut out = Vec::new();
    let err = parser.feed(b"NOPE\n", &mut out).unwrap_err();
    assert_eq!(parser.feed(b"SEND\n\n\0", &mut out), Err(err.clone()));
    assert_eq!(parser.parse(b"\n"), Err(err));
    assert!(out.is_empty());
    assert!(!parser.is_idle());
}

// ---------------------------------------------------------------- errors

#[test]
fn unknown_commands() {
    for (input, shown) in [
        (&b"FOO\n\n\0"[..], "FOO"),
        (b"send\n\n\0", "send"),
        (b" SEND\n\n\0", " SEND"),
        (b"SEND \n\n\0", "SEND "),
        (b"SE\rND\n\n\0", "SE\rND"),
        (b"\r\rSEND\n\n\0", "\r\rSEND"),
    ] {
        assert_eq!(
            parse_err(input),
            FrameError::UnknownCommand(shown.into()),
            "{input:?}"
        );
    }
    assert_eq!(
        FrameError::UnknownCommand("FOO".into()).to_string(),
        "unknown command \"FOO\""
    );
}

#[test]
fn long_first_line_fails_before_its_end() {
    // An HTTP request on the STOMP socket: rejected after a dozen bytes, no LF needed.
    let err = parse_chunks_with(Limits::default(), &[b"GET / HTTP/1.1"]).unwrap_err();
    assert_eq!(err, FrameError::UnknownCommand("GET / HTTP/1".into()));
    // Byte by byte, too: the error comes with the 12th byte, which no command has.
    let mut parser = Parser::default();
    let mut out = Vec::new();
    let input = [b'A'; 100];
    let failed_at = input
        .iter()
        .position(|b| parser.feed(&[*b], &mut out).is_err())
        .unwrap();
    assert_eq!(failed_at, Command::MAX_LEN);
    // The longest command with CRLF is fine.
    assert_eq!(
        one_frame(b"UNSUBSCRIBE\r\nid:1\r\n\r\n\0").command,
        Command::Unsubscribe
    );
}

#[test]
fn malformed_headers() {
    for input in [
        &b"SEND\nno-colon\n\n\0"[..],
        b"SEND\n:value\n\n\0",
        b"CONNECT\n:value\n\n\0",
        b"SEND\nx:a\rb\n\n\0",
        b"SEND\nx\r:a\n\n\0",
        b"SEND\nx:a\r\r\n\n\0",
    ] {
        assert_eq!(parse_err(input), FrameError::MalformedHeader, "{input:?}");
    }
}

#[test]
fn invalid_utf8() {
    for input in [
        &b"SE\xffND\n\n\0"[..],
        b"SEND\nna\xc3me:v\n\n\0",
        b"SEND\nname:\xed\xa0\x80\n\n\0",
        b"CONNECT\nlogin:\xfe\n\n\0",
    ] {
        assert_eq!(parse_err(input), FrameError::InvalidUtf8, "{input:?}");
    }
}

#[test]
fn invalid_content_length() {
    for value in ["abc", "-1", "+5", " 5", "5 ", "", "0x10", "1.0", "５"] {
        let input = format!("SEND\ncontent-length:{value}\n\n\0");
        assert_eq!(
            parse_err(input.as_bytes()),
            FrameError::InvalidContentLength,
            "{value:?}"
        );
    }
}

#[test]
fn content_length_over_limits() {
    let limits = Limits {
        max_frame_size: 100,
        max_body_size: 50,
        ..Limits::default()
    };
    // Over the body limit: rejected at the header, before any body byte.
    assert_eq!(
        parse_err_with(limits, b"SEND\ncontent-length:51\n"),
        FrameError::BodyTooLarge { limit: 50 }
    );
    // A number too big for usize is over any limit, not a parse failure.
    assert_eq!(
        parse_err_with(limits, b"SEND\ncontent-length:99999999999999999999999999\n"),
        FrameError::BodyTooLarge { limit: 50 }
    );
    // Within the body limit but the frame would not fit: also rejected up front.
    let limits = Limits {
        max_frame_size: 40,
        ..Limits::default()
    };
    assert_eq!(
        parse_err_with(limits, b"SEND\ncontent-length:30\n"),
        FrameError::FrameTooLarge { limit: 40 }
    );
    // Headers after content-length that push the frame over: rejected at the blank line at
    // the latest.
    assert_eq!(
        parse_err_with(limits, b"SEND\ncontent-length:10\nabc:0123456\n\n"),
        FrameError::FrameTooLarge { limit: 40 }
    );
}

#[test]
fn missing_nul_after_content_length() {
    assert_eq!(
        parse_err(b"SEND\ncontent-length:1\n\nab\0"),
        FrameError::MissingNul
    );
    assert_eq!(
        parse_err(b"SEND\ncontent-length:0\n\n\n"),
        FrameError::MissingNul
    );
}

#[test]
fn body_only_on_send_message_error() {
    assert_eq!(
        parse_err(b"SUBSCRIBE\nid:1\n\nx\0"),
        FrameError::BodyNotAllowed(Command::Subscribe)
    );
    assert_eq!(
        parse_err(b"RECEIPT\ncontent-length:1\n"),
        FrameError::BodyNotAllowed(Command::Receipt)
    );
    assert_eq!(
        FrameError::BodyNotAllowed(Command::Subscribe).to_string(),
        "SUBSCRIBE frames must not have a body"
    );
    for command in Command::ALL {
        let input = format!("{command}\ncontent-length:1\n\nx\0");
        let result = parse_all(input.as_bytes());
        assert_eq!(result.is_ok(), command.allows_body(), "{command}");
    }
}

#[test]
fn too_many_headers() {
    let limits = Limits {
        max_headers: 3,
        ..Limits::default()
    };
    let ok = b"SEND\na:1\nb:2\na:3\n\n\0";
    assert_eq!(parse_chunks_with(limits, &[ok]).unwrap().len(), 1);
    assert_eq!(
        parse_err_with(limits, b"SEND\na:1\nb:2\na:3\nc:4\n"),
        FrameError::TooManyHeaders { limit: 3 }
    );
    // The default limit applies too.
    let mut input = b"SEND\n".to_vec();
    for i in 0..=DEFAULT_MAX_HEADERS {
        input.extend_from_slice(format!("h{i}:v\n").as_bytes());
    }
    assert_eq!(
        parse_err(&input),
        FrameError::TooManyHeaders {
            limit: DEFAULT_MAX_HEADERS
        }
    );
}

#[test]
fn header_line_limit() {
    let limits = Limits {
        max_header_line: 10,
        ..Limits::default()
    };
    // Exactly 10 bytes, with LF or CRLF: fine.
    for eol in ["\n", "\r\n"] {
        let input = format!("SEND{eol}abcd:12345{eol}{eol}\0");
        assert_eq!(
            parse_chunks_with(limits, &[input.as_bytes()])
                .unwrap()
                .len(),
            1
        );
    }
    // 11 bytes: rejected, even before the LF arrives, and even in a single huge chunk.
    assert_eq!(
        parse_err_with(limits, b"SEND\nabcd:123456"),
        FrameError::HeaderLineTooLong { limit: 10 }
    );
    assert_eq!(
        parse_err_with(limits, b"SEND\nabcd:12345\r\r\n"),
        FrameError::HeaderLineTooLong { limit: 10 }
    );
    let mut huge = b"SEND\nx:".to_vec();
    huge.resize(1 << 20, b'y');
    assert_eq!(
        parse_err_with(limits, &huge),
        FrameError::HeaderLineTooLong { limit: 10 }
    );
    assert_eq!(
        parse_err(&huge),
        FrameError::HeaderLineTooLong {
            limit: DEFAULT_MAX_HEADER_LINE
        }
    );
}

#[test]
fn endless_frame_without_nul_fails_at_the_limit() {
    // Fed one kibibyte at a time, forever: the error comes once the frame passes 64 KiB.
    let mut parser = Parser::default();
    let mut out = Vec::new();
    parser.feed(b"SEND\ndestination:/q\n\n", &mut out).unwrap();
    let chunk = [b'a'; 1024];
    let mut fed = 0usize;
    let err = loop {
        match parser.feed(&chunk, &mut out) {
            Ok(()) => fed += chunk.len(),
            Err(err) => break err,
        }
        assert!(fed <= DEFAULT_MAX_FRAME_SIZE, "no error after {fed} bytes");
    };
    assert_eq!(
        err,
        FrameError::FrameTooLarge {
            limit: DEFAULT_MAX_FRAME_SIZE
        }
    );
    assert_eq!(
        err.to_string(),
        format!("frame larger than {DEFAULT_MAX_FRAME_SIZE} bytes")
    );
    assert!(out.is_empty());
}

#[test]
fn frame_size_limit_is_exact() {
    let frame = b"SEND\nx:1\n\nbody\0";
    let limits = Limits {
        max_frame_size: frame.len(),
        ..Limits::default()
    };
    assert_eq!(parse_chunks_with(limits, &[frame]).unwrap().len(), 1);
    let limits = Limits {
        max_frame_size: frame.len() - 1,
        ..Limits::default()
    };
    // Fails at the byte that crosses the limit: every byte before it is accepted.
    let mut parser = Parser::new(limits);
    let mut out = Vec::new();
    let failed_at = frame
        .iter()
        .position(|b| parser.feed(&[*b], &mut out).is_err())
        .unwrap();
    assert_eq!(failed_at, frame.len() - 1);
    // Heart-beats between frames do not count towards the frame.
    let limits = Limits {
        max_frame_size: frame.len(),
        ..Limits::default()
    };
    let mut input = b"\r\n\n\r\n".to_vec();
    input.extend_from_slice(frame);
    input.extend_from_slice(b"\n\n");
    input.extend_from_slice(frame);
    assert_eq!(parse_chunks_with(limits, &[&input]).unwrap().len(), 7);
}

#[test]
fn body_size_limit() {
    let limits = Limits {
        max_body_size: 4,
        ..Limits::default()
    };
    assert_eq!(
        parse_chunks_with(limits, &[b"SEND\n\nabcd\0"])
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        parse_err_with(limits, b"SEND\n\nabcde"),
        FrameError::BodyTooLarge { limit: 4 }
    );
}

#[test]
fn full_size_default_frame_is_accepted() {
    let head = b"SEND\ndestination:/q\n\n";
    let body = vec![b'z'; DEFAULT_MAX_FRAME_SIZE - head.len() - 1];
    let mut input = head.to_vec();
    input.extend_from_slice(&body);
    input.push(0);
    assert_eq!(one_frame(&input).body, body);
    // One byte more does not fit.
    input.insert(head.len(), b'z');
    assert_eq!(
        parse_err(&input),
        FrameError::FrameTooLarge {
            limit: DEFAULT_MAX_FRAME_SIZE
        }
    );
}

// ---------------------------------------------------------------- encoder

#[test]
fn encode_server_frames() {
    assert_eq!(
        Frame::connected("1.2", (10000, 0), Some("alice")).encode(),
        b"CONNECTED\nversion:1.2\nheart-beat:10000,0\nuser-name:alice\n\n\0"
    );
    assert_eq!(
        Frame::connected("1.2", (0, 0), None).encode(),
        b"CONNECTED\nversion:1.2\nheart-beat:0,0\n\n\0"
    );
    assert_eq!(
        Frame::message("/rooms/r:1", "sub-0", "m-1", Some("application/json"), "{}").encode(),
        b"MESSAGE\ndestination:/rooms/r\\c1\nmessage-id:m-1\nsubscription:sub-0\ncontent-type:application/json\ncontent-length:2\n\n{}\0"
    );
    assert_eq!(
        Frame::message("/q", "s", "1", None, Vec::new()).encode(),
        b"MESSAGE\ndestination:/q\nmessage-id:1\nsubscription:s\n\n\0"
    );
    assert_eq!(
        Frame::receipt("77").encode(),
        b"RECEIPT\nreceipt-id:77\n\n\0"
    );
    assert_eq!(
        Frame::error("bad frame", Some("r-1"), "line 1\nline 2").encode(),
        b"ERROR\nmessage:bad frame\nreceipt-id:r-1\ncontent-type:text/plain\ncontent-length:13\n\nline 1\nline 2\0"
    );
    assert_eq!(
        Frame::error(&FrameError::InvalidHeaderEscape.to_string(), None, "").encode(),
        b"ERROR\nmessage:invalid header escape\n\n\0"
    );
    assert_eq!(HEART_BEAT, b"\n");
}

#[test]
fn encode_fixes_content_length() {
    // A stale content-length is rewritten in place; repeats after it are left alone.
    let f = Frame::new(Command::Send)
        .with_header("content-length", "99")
        .with_header("x", "1")
        .with_header("content-length", "7")
        .with_body("a\0b");
    assert_eq!(
        f.encode(),
        b"SEND\ncontent-length:3\nx:1\ncontent-length:7\n\na\0b\0"
    );
    // An empty body keeps an explicit content-length (as 0) but gets none added.
    let f = Frame::new(Command::Send).with_header("content-length", "5");
    assert_eq!(f.encode(), b"SEND\ncontent-length:0\n\n\0");
    assert_eq!(Frame::new(Command::Send).encode(), b"SEND\n\n\0");
}

#[test]
fn encode_into_appends() {
    let mut out = b"\n".to_vec();
    Frame::receipt("1").encode_into(&mut out);
    Frame::receipt("2").encode_into(&mut out);
    let items = parse_all(&out).unwrap();
    assert_eq!(
        items,
        vec![
            Parsed::HeartBeat,
            Parsed::Frame(Frame::receipt("1")),
            Parsed::Frame(Frame::receipt("2")),
        ]
    );
}

#[test]
fn reencoding_parsed_frames_is_stable() {
    for item in parse_all(STREAM).unwrap() {
        let Parsed::Frame(f) = item else { continue };
        let bytes = f.encode();
        let again = one_frame(&bytes);
        assert_eq!(again.command, f.command);
        assert_eq!(again.body, f.body);
        assert_eq!(again.encode(), bytes, "encoding is a fixed point");
    }
}

/// Generates frames from combinations of commands, awkward headers and bodies, and checks
/// that `parse(encode(f))` gives `f` back, plus the `content-length` the encoder adds.
#[test]
fn encode_parse_round_trip_property() {
    let names = ["destination", "a:b", "back\\slash", "nl\nname", "ü", "x"];
    let values = [
        "",
        "plain",
        " spaced ",
        "a:b:c",
        "\\",
        "\\c\\n",
        "line\nbreak\r\n",
        "日本語 ✓",
        "\0nul",
    ];
    let bodies: Vec<Vec<u8>> = vec![
        vec![],
        b"hello".to_vec(),
        vec![0],
        b"a\0b\0\0".to_vec(),
        (0..=255u8).collect(),
        vec![b'\n'; 100],
        vec![7; 5000],
    ];
    let mut checked = 0;
    for (ci, command) in Command::ALL.into_iter().enumerate() {
        for header_count in 0..4 {
            for (bi, body) in bodies.iter().enumerate() {
                let mut f = Frame::new(command);
                for h in 0..header_count {
                    let seed = ci * 7 + header_count * 3 + h * 5 + bi;
                    let mut name = names[seed % names.len()].to_owned();
                    let mut value = values[(seed * 11 + h) % values.len()].to_owned();
                    if !command.escapes_headers() {
                        // Verbatim headers cannot carry these; see verbatim_headers_cannot_inject_lines.
                        name = name.replace([':', '\n', '\r'], "_");
                        value = value.replace(['\n', '\r'], " ");
                    }
                    f.headers.push((name, value));
                }
                // A repeated header, to check order and first-wins survive.
                if header_count == 3 {
                    f.headers.push(("x".into(), "second".into()));
                }
                if command.allows_body() {
                    f.body = body.clone();
                } else if bi > 0 {
                    continue;
                }
                let mut expected = f.clone();
                if !f.body.is_empty() {
                    expected
                        .headers
                        .push(("content-length".into(), f.body.len().to_string()));
                }
                let bytes = f.encode();
                assert_eq!(one_frame(&bytes), expected, "{bytes:?}");
                // Also one byte at a time, surrounded by heart-beats.
                let mut stream = b"\r\n".to_vec();
                stream.extend_from_slice(&bytes);
                stream.extend_from_slice(HEART_BEAT);
                let chunks: Vec<&[u8]> = stream.chunks(1).collect();
                assert_eq!(
                    parse_chunks_with(Limits::default(), &chunks).unwrap(),
                    vec![
                        Parsed::HeartBeat,
                        Parsed::Frame(expected),
                        Parsed::HeartBeat
                    ]
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 100, "only {checked} frames checked");
}

// ---------------------------------------------------------------- commands

#[test]
fn commands_round_trip_through_text() {
    for command in Command::ALL {
        assert_eq!(command.as_str().parse::<Command>(), Ok(command));
        assert_eq!(command.to_string(), command.as_str());
        assert!(command.as_str().len() <= Command::MAX_LEN);
    }
    let client: Vec<_> = Command::ALL.into_iter().filter(|c| c.is_client()).collect();
    assert_eq!(client.len(), 11);
    assert!(!Command::Connect.escapes_headers() && !Command::Connected.escapes_headers());
    assert!(Command::Stomp.escapes_headers());
}

// ---------------------------------------------------------------- heart-beat negotiation

#[test]
fn heart_beat_negotiation() {
    let ms = |n| Some(Duration::from_millis(n));
    // No header means 0,0: nothing either way.
    assert_eq!(negotiate_heart_beat(None, (10000, 10000)), Ok((None, None)));
    assert_eq!(
        negotiate_heart_beat(Some("0,0"), (10000, 10000)),
        Ok((None, None))
    );
    // Client can send every 1 s and wants something every 2 s; server can send every 0.5 s
    // and wants something every 3 s.
    assert_eq!(
        negotiate_heart_beat(Some("1000,2000"), (500, 3000)),
        Ok((ms(2000), ms(3000)))
    );
    // One direction only.
    assert_eq!(
        negotiate_heart_beat(Some("0,5000"), (4000, 4000)),
        Ok((ms(5000), None))
    );
    assert_eq!(
        negotiate_heart_beat(Some("5000,0"), (4000, 4000)),
        Ok((None, ms(5000)))
    );
    // The server not offering a direction turns it off whatever the client says.
    assert_eq!(
        negotiate_heart_beat(Some("100,100"), (0, 0)),
        Ok((None, None))
    );
    assert_eq!(parse_heart_beat("0010,20"), Ok((10, 20)));
}

#[test]
fn invalid_heart_beat_headers() {
    for value in [
        "",
        "1",
        "a,b",
        "1,2,3",
        "-1,2",
        " 1,2",
        "1, 2",
        "1,",
        ",1",
        "1.5,2",
        "99999999999999999999999,1",
    ] {
        assert_eq!(
            negotiate_heart_beat(Some(value), (1, 1)),
            Err(FrameError::InvalidHeartBeat(value.into())),
            "{value:?}"
        );
    }
    assert_eq!(
        FrameError::InvalidHeartBeat("x".into()).to_string(),
        "invalid heart-beat header \"x\""
    );
}

/// Items and outcome of feeding `chunks` in order.
fn outcome(limits: Limits, chunks: &[&[u8]]) -> (Vec<Parsed>, Result<(), FrameError>) {
    let mut parser = Parser::new(limits);
    let mut out = Vec::new();
    let result = chunks
        .iter()
        .try_for_each(|chunk| parser.feed(chunk, &mut out));
    (out, result)
}

#[test]
fn errors_do_not_depend_on_chunking() {
    let tight = Limits {
        max_frame_size: 40,
        max_headers: 2,
        max_header_line: 18,
        max_body_size: 8,
    };
    let cases: &[(&[u8], FrameError)] = &[
        // Line limit and frame limit both crossed within one header line: the line first...
        (
            b"SEND\nabcdefghijklmnopqrstuvwxyz0123456789\n\n\0",
            FrameError::HeaderLineTooLong { limit: 18 },
        ),
        // ... the frame first.
        (
            b"SEND\nh:0123456789abcdef\nabcdefghijklmnopqrstuvwxyz\n\n\0",
            FrameError::FrameTooLarge { limit: 40 },
        ),
        // A CR just past the line limit, then not an LF.
        (
            b"SEND\nabcdefghijklmnopqr\r\r\n\n\0",
            FrameError::HeaderLineTooLong { limit: 18 },
        ),
        // A body on a command without one, well before the frame limit...
        (
            b"SEND\n\nx\0DISCONNECT\n\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\0",
            FrameError::BodyNotAllowed(Command::Disconnect),
        ),
        // ... and at the very byte that crosses it.
        (
            b"DISCONNECT\na:0123456789abcd\nb:01234567\n\nx\0",
            FrameError::FrameTooLarge { limit: 40 },
        ),
        // Body limit before frame limit, and the other way round.
        (
            b"SEND\nab:c\n\n0123456789abcdefghijklmnopqrstuvwxyz\0",
            FrameError::BodyTooLarge { limit: 8 },
        ),
        (
            b"SEND\nabcdefghijklmno:1\nx:0123456789\n\n012345678\0",
            FrameError::FrameTooLarge { limit: 40 },
        ),
        (
            b"SEND\na:1\nb:2\nc:3\n\n\0",
            FrameError::TooManyHeaders { limit: 2 },
        ),
        (
            b"\nSUBSCRIBEXYZW\n",
            FrameError::UnknownCommand("SUBSCRIBEXYZ".into()),
        ),
        (
            b"SEND\ncontent-length:x\n\n\0",
            FrameError::InvalidContentLength,
        ),
        (b"SEND\ncontent-length:2\n\nabc\0", FrameError::MissingNul),
        (
            b"SEND\ncontent-length:9\n\n",
            FrameError::BodyTooLarge { limit: 8 },
        ),
    ];
    for (input, error) in cases {
        let whole = outcome(tight, &[input]);
        assert_eq!(whole.1, Err(error.clone()), "{input:?}");
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(outcome(tight, &bytes), whole, "{input:?} byte by byte");
        for at in 0..=input.len() {
            let (a, b) = input.split_at(at);
            assert_eq!(outcome(tight, &[a, b]), whole, "{input:?} split at {at}");
        }
    }
}
