'use strict';
// The errors of docs/protocol.md: each is an ERROR frame whose `message` header is the code
// followed by an explanation, with `receipt-id` when the offending frame asked for a receipt and
// a JSON body {"error":{"code","message"}}; then the edge closes that connection, and nothing else
// is affected: two watchers (one of them the same user as most offenders) keep receiving.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { after, before, describe, test } = require('node:test');

const h = require('../harness');

let alice;
let bob;
let roomId;
let watchers;

before(async () => {
  await h.startEnv();
  alice = h.user('alice');
  bob = h.user('bob');
  ({ roomId } = await h.createGroup(alice, [bob], 'errors'));
  watchers = [];
  for (const who of [alice, bob]) {
    const conn = await h.connect(who);
    const receiptId = h.uniqueId('w');
    const receipt = conn.receipt(receiptId);
    const sub = conn.subscribe(`/sub/rooms/${roomId}`, { receipt: receiptId });
    await receipt;
    watchers.push({ conn, sub });
  }
}, { timeout: 120000 });

after(async () => {
  for (const w of watchers || []) await w.conn.close();
  await h.stopEnv();
}, { timeout: 90000 });

/** The other connections go on: both watchers are open and receive a new message. */
async function assertOthersUnaffected() {
  const content = `still there ${crypto.randomUUID()}`;
  await h.sendHttp(bob, roomId, content);
  for (const w of watchers) {
    assert.ok(w.conn.isOpen, `watcher ${w.conn.userId} was disconnected`);
    await w.sub.nextWithContent(content);
  }
}

/** Checks an ERROR frame against the contract. */
function assertError(frame, code, receiptId) {
  assert.equal(frame.command, 'ERROR', `expected ERROR ${code}, got ${JSON.stringify(frame)}`);
  const message = frame.headers.message;
  assert.ok(
    typeof message === 'string' && message.startsWith(`${code}: `) && message.length > code.length + 2,
    `message header ${JSON.stringify(message)} should be "${code}: <explanation>"`,
  );
  let body;
  try {
    body = JSON.parse(frame.body);
  } catch {
    assert.fail(`ERROR body is not JSON: ${JSON.stringify(frame.body)}`);
  }
  assert.equal(body.error && body.error.code, code, `body ${frame.body}`);
  assert.equal(typeof body.error.message, 'string');
  assert.ok(body.error.message.length > 0);
  if (receiptId !== undefined) {
    assert.equal(frame.headers['receipt-id'], receiptId, 'ERROR carries the receipt-id');
  }
}

/** A stompjs connection gets ERROR `code`, is closed by the edge, and others are unaffected. */
async function expectStompError(conn, code, receiptId) {
  try {
    const frame = await conn.error();
    assertError(frame, code, receiptId);
    await conn.closed();
    await conn.errors.none(0);
  } finally {
    await conn.close();
  }
  await assertOthersUnaffected();
}

/** Same for a raw WebSocket connection. */
async function expectRawError(raw, code, receiptId) {
  try {
    const frame = await raw.next();
    assertError(frame, code, receiptId);
    await raw.closed();
    assert.deepEqual(raw.problems, []);
  } finally {
    raw.close();
  }
  await assertOthersUnaffected();
}

/** A connection refused at CONNECT: never CONNECTED. */
async function expectRefused(opts, code) {
  const conn = new h.Connection(opts);
  await expectStompError(conn, code);
  assert.equal(conn.connectedFrame, undefined, 'no CONNECTED before the ERROR');
}

describe('CONNECT refused', () => {
  test('wrongly signed token: INVALID_TOKEN', () =>
    expectRefused({ userId: alice, token: h.wronglySignedToken(alice) }, 'INVALID_TOKEN'));

  test('malformed token: INVALID_TOKEN', () =>
    expectRefused({ userId: alice, token: 'not-a-jwt' }, 'INVALID_TOKEN'));

  test('expired token: TOKEN_EXPIRED', () =>
    expectRefused({ userId: alice, token: h.expiredToken(alice) }, 'TOKEN_EXPIRED'));

  test('no Authorization header: UNAUTHORIZED', () =>
    expectRefused({ userId: alice, connectHeaders: {} }, 'UNAUTHORIZED'));
});

describe('SUBSCRIBE refused', () => {
  test('a room the user is not in: NOT_A_MEMBER (with receipt-id)', async () => {
    const dave = await h.connect(h.user('dave'));
    dave.subscribe(`/sub/rooms/${roomId}`, { receipt: 'not-mine' });
    await expectStompError(dave, 'NOT_A_MEMBER', 'not-mine');
  });

  test('a room that does not exist: ROOM_NOT_FOUND', async () => {
    const conn = await h.connect(alice);
    conn.subscribe(`/sub/rooms/${crypto.randomUUID()}`);
    await expectStompError(conn, 'ROOM_NOT_FOUND');
  });

  test("another user's feed: FORBIDDEN", async () => {
    const conn = await h.connect(alice);
    conn.subscribe(`/sub/users/${bob}`);
    await expectStompError(conn, 'FORBIDDEN');
  });

  test('an unknown destination: UNKNOWN_DESTINATION', async () => {
    const conn = await h.connect(alice);
    conn.subscribe('/topic/everything');
    await expectStompError(conn, 'UNKNOWN_DESTINATION');
  });

  test('a duplicate subscription id: PROTOCOL_ERROR', async () => {
    const conn = await h.connect(alice);
    const receipt = conn.receipt('first');
    conn.subscribe(`/sub/rooms/${roomId}`, { id: 'same', receipt: 'first' });
    await receipt;
    conn.subscribe(`/sub/users/${alice}`, { id: 'same' });
    await expectStompError(conn, 'PROTOCOL_ERROR');
  });

  test('an unsupported ack mode: PROTOCOL_ERROR', async () => {
    const conn = await h.connect(alice);
    conn.subscribe(`/sub/rooms/${roomId}`, { ack: 'client' });
    await expectStompError(conn, 'PROTOCOL_ERROR');
  });

  test('more than 64 subscriptions: TOO_MANY_SUBSCRIPTIONS', async () => {
    const conn = await h.connect(alice);
    const receipt = conn.receipt('sixty-four');
    for (let i = 1; i <= 64; i += 1) {
      conn.subscribe(`/sub/rooms/${roomId}`, i === 64 ? { receipt: 'sixty-four' } : {});
    }
    await receipt; // 64 are allowed
    assert.ok(conn.isOpen);
    conn.subscribe(`/sub/users/${alice}`);
    await expectStompError(conn, 'TOO_MANY_SUBSCRIPTIONS');
  });

  test('since that is not a stored event: UNKNOWN_SINCE', async () => {
    const conn = await h.connect(alice);
    conn.subscribe(`/sub/rooms/${roomId}`, { since: '999999999' });
    await expectStompError(conn, 'UNKNOWN_SINCE');
  });

  test("since that is another room's event: UNKNOWN_SINCE", async () => {
    const other = await h.createGroup(alice, [bob], 'other');
    const elsewhere = await h.sendHttp(alice, other.roomId, 'elsewhere');
    const conn = await h.connect(alice);
    conn.subscribe(`/sub/rooms/${roomId}`, { since: elsewhere.messageId });
    await expectStompError(conn, 'UNKNOWN_SINCE');
  });
});

describe('SEND refused', () => {
  test('a frame over 64 KiB: FRAME_TOO_LARGE', async () => {
    const conn = await h.connect(alice);
    conn.send(roomId, { content: 'x'.repeat(70 * 1024) });
    await expectStompError(conn, 'FRAME_TOO_LARGE');
  });

  test('a room the user is not in: NOT_A_MEMBER (with receipt-id)', async () => {
    const dave = await h.connect(h.user('dave'));
    dave.send(roomId, { content: 'let me in' }, { receipt: 'dave-send' });
    await expectStompError(dave, 'NOT_A_MEMBER', 'dave-send');
  });

  test('a body that is not JSON: BAD_REQUEST (with receipt-id)', async () => {
    const conn = await h.connect(alice);
    conn.send(roomId, 'not json', { receipt: 'bad-body' });
    await expectStompError(conn, 'BAD_REQUEST', 'bad-body');
  });

  test('empty content: EMPTY_CONTENT, as in the HTTP API', async () => {
    const conn = await h.connect(alice);
    conn.send(roomId, { content: '  \n ' });
    await expectStompError(conn, 'EMPTY_CONTENT');
  });

  test('content over 4000 characters: CONTENT_TOO_LARGE, as in the HTTP API', async () => {
    const conn = await h.connect(alice);
    conn.send(roomId, { content: '가'.repeat(4001) });
    await expectStompError(conn, 'CONTENT_TOO_LARGE');
  });

  test('an unknown destination: UNKNOWN_DESTINATION', async () => {
    const conn = await h.connect(alice);
    conn.client.publish({ destination: '/pub/elsewhere', body: JSON.stringify({ content: 'hi' }) });
    await expectStompError(conn, 'UNKNOWN_DESTINATION');
  });

  test('a burst of 40 SENDs is allowed', async () => {
    const busy = await h.createGroup(alice, [bob], 'busy');
    const conn = await h.connect(alice);
    try {
      const receipts = [];
      for (let i = 0; i < 40; i += 1) {
        receipts.push(conn.receipt(`b${i}`, 15000));
        conn.send(busy.roomId, { content: `burst ${i}` }, { receipt: `b${i}` });
      }
      await Promise.all(receipts);
      assert.ok(conn.isOpen);
      await conn.errors.none(100);
    } finally {
      await conn.close();
    }
    const chats = (await h.historyHttp(alice, busy.roomId)).filter((m) => m.type === 'CHAT');
    assert.deepEqual(chats.map((m) => m.content), [...Array(40).keys()].map((i) => `burst ${i}`));
  });

  test('a burst of 100 SENDs: RATE_LIMITED', async () => {
    const busy = await h.createGroup(alice, [bob], 'busy');
    const conn = await h.connect(alice);
    const start = Date.now();
    for (let i = 0; i < 100; i += 1) conn.send(busy.roomId, { content: `burst ${i}` });
    const frame = await conn.error();
    const elapsed = (Date.now() - start) / 1000;
    assertError(frame, 'RATE_LIMITED');
    await conn.closed();
    await conn.close();
    await assertOthersUnaffected();
    // No more got through than a burst of 40 plus 20/s for as long as the burst took to refuse.
    const allowed = 40 + Math.ceil(20 * elapsed) + 1;
    const chats = (await h.historyHttp(alice, busy.roomId)).filter((m) => m.type === 'CHAT');
    assert.ok(
      chats.length <= allowed,
      `${chats.length} messages stored; expected at most ${allowed} after ${elapsed} s`,
    );
  });
});

describe('frames stompjs cannot produce (raw WebSocket)', () => {
  test('an invalid header escape: MALFORMED_FRAME', async () => {
    const raw = new h.RawConnection();
    await raw.connect(alice);
    raw.send(`SEND\ndestination:/pub/rooms/${roomId}/messages\nx-note:bad\\tescape\n\n{"content":"hi"}\0`);
    await expectRawError(raw, 'MALFORMED_FRAME');
  });

  test('a header line without a colon: MALFORMED_FRAME', async () => {
    const raw = new h.RawConnection();
    await raw.connect(alice);
    raw.send(`SUBSCRIBE\nid:1\ndestination:/sub/rooms/${roomId}\nno colon here\n\n\0`);
    await expectRawError(raw, 'MALFORMED_FRAME');
  });

  test('a SUBSCRIBE without id: MISSING_HEADER', async () => {
    const raw = new h.RawConnection();
    await raw.connect(alice);
    raw.send(`SUBSCRIBE\ndestination:/sub/rooms/${roomId}\n\n\0`);
    await expectRawError(raw, 'MISSING_HEADER');
  });

  test('a frame before CONNECT: PROTOCOL_ERROR', async () => {
    const raw = new h.RawConnection();
    await raw.opened;
    raw.send(`SUBSCRIBE\nid:1\ndestination:/sub/rooms/${roomId}\n\n\0`);
    await expectRawError(raw, 'PROTOCOL_ERROR');
  });

  test('no CONNECT within 10 s: the connection is closed', { timeout: 20000 }, async () => {
    const raw = new h.RawConnection();
    try {
      await raw.opened;
      const start = Date.now();
      const closed = await raw.closed(13000);
      const waited = Date.now() - start;
      assert.ok(waited >= 9000, `closed after ${waited} ms, before the 10 s`);
      assert.ok(closed);
      assert.deepEqual(raw.problems, []);
      // An ERROR before closing is allowed; none is required.
    } finally {
      raw.close();
    }
    await assertOthersUnaffected();
  });

  test('a second CONNECT: PROTOCOL_ERROR', async () => {
    const raw = new h.RawConnection();
    await raw.connect(alice);
    raw.send(`CONNECT\naccept-version:1.2\nAuthorization:Bearer ${h.tokenFor(alice)}\n\n\0`);
    await expectRawError(raw, 'PROTOCOL_ERROR');
  });
});
