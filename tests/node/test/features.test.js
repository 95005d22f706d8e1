'use strict';
// Replies, reactions, edits and mentions end to end (docs/api.md, docs/protocol.md "MESSAGE
// frames" and "Resume without gaps"), with the real @stomp/stompjs client and the HTTP API:
// the exact shapes live, in history, on the room-list feed and in a resume with `since`, and
// every refusal with its status and code.

const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { after, before, describe, test } = require('node:test');

const h = require('../harness');

before(() => h.startEnv(), { timeout: 120000 });
after(() => h.stopEnv(), { timeout: 90000 });

const TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MESSAGE_ID = /^[1-9][0-9]*$/;

// ---------------------------------------------------------------------------------------------
// helpers

/** The next MESSAGE of `sub`, checked as a stored event's frame; resolves with its event. */
async function nextEvent(sub, timeout) {
  const m = await sub.next(timeout);
  assert.equal(m.command, 'MESSAGE');
  assert.equal(m.headers.destination, sub.destination);
  assert.equal(m.headers.subscription, sub.id);
  assert.equal(m.headers['content-type'], 'application/json');
  assert.ok(m.event, `body is not JSON: ${m.body}`);
  assert.match(m.event.messageId, MESSAGE_ID);
  assert.equal(m.headers['message-id'], m.event.messageId, 'message-id is the stored event id');
  return m.event;
}

const byId = (a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);

const codeOf = (res) => [res.status, res.body && res.body.error && res.body.error.code];

function post(userId, roomId, body) {
  return h.api('POST', `/api/rooms/${roomId}/messages`, { user: userId, body });
}

function sent(userId, roomId, body) {
  return h.expectStatus(post(userId, roomId, body), 201, 'POST /api/rooms/{roomId}/messages');
}

function reaction(method, userId, roomId, messageId, emoji) {
  return h.api(
    method,
    `/api/rooms/${roomId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`,
    { user: userId },
  );
}

async function react(method, userId, roomId, messageId, emoji) {
  const res = await reaction(method, userId, roomId, messageId, emoji);
  assert.equal(res.status, 204, `${method} reaction ${emoji}: ${JSON.stringify(res.body)}`);
  assert.equal(res.body, null, '204 has no body');
}

function edit(userId, roomId, messageId, content) {
  return h.api('PATCH', `/api/rooms/${roomId}/messages/${messageId}`, {
    user: userId,
    body: { content },
  });
}

function deleteMessage(userId, roomId, messageId) {
  return h.expectStatus(
    h.api('DELETE', `/api/rooms/${roomId}/messages/${messageId}`, { user: userId }),
    200,
    'DELETE /api/rooms/{roomId}/messages/{messageId}',
  );
}

/** The history entry `messageId` as `userId` sees it. */
async function entry(userId, roomId, messageId) {
  const found = (await h.historyHttp(userId, roomId)).find((m) => m.messageId === messageId);
  assert.ok(found, `${messageId} is not in the history of ${roomId}`);
  return found;
}

/** The room as `GET /api/rooms` shows it to `userId`. */
async function listed(userId, roomId) {
  const { rooms } = await h.expectStatus(h.api('GET', '/api/rooms', { user: userId }), 200, 'GET /api/rooms');
  const room = rooms.find((r) => r.roomId === roomId);
  assert.ok(room, `${roomId} is not in the room list of ${userId}`);
  return room;
}

/**
 * Polls `read` until `check(value)` holds (the receipts worker applies events milliseconds after
 * they are stored); fails after `timeout` ms with the last value.
 */
async function eventually(read, check, what, timeout = h.DEFAULT_TIMEOUT) {
  const deadline = Date.now() + timeout;
  let value;
  for (;;) {
    value = await read();
    if (check(value)) return value;
    if (Date.now() > deadline) {
      assert.fail(`${what} within ${timeout} ms; last: ${JSON.stringify(value)}`);
    }
    await h.sleep(50);
  }
}

/** An ERROR frame of the contract: `message` "CODE: …", JSON body, receipt-id; then the close. */
async function expectStompError(conn, code, receiptId) {
  const frame = await conn.error();
  assert.equal(frame.command, 'ERROR');
  assert.ok(
    frame.headers.message.startsWith(`${code}: `),
    `message header ${JSON.stringify(frame.headers.message)} should start with "${code}: "`,
  );
  const body = JSON.parse(frame.body);
  assert.equal(body.error.code, code, frame.body);
  assert.ok(typeof body.error.message === 'string' && body.error.message.length > 0);
  assert.equal(frame.headers['receipt-id'], receiptId);
  await conn.closed();
}

/** SENDs `body` on a fresh connection of `userId` and expects the ERROR `code` for it. */
async function sendRefused(t, userId, roomId, body, code) {
  const conn = await h.open(t, userId);
  const receiptId = h.uniqueId('bad');
  conn.send(roomId, body, { receipt: receiptId });
  await expectStompError(conn, code, receiptId);
}

/** The fields every Message has (docs/api.md), without the optional ones. */
function summary(message) {
  const { messageId, roomId, type, senderId, content, deleted, sentAt } = message;
  return { messageId, roomId, type, senderId, content, deleted, sentAt };
}

/** The CHAT event of a room subscription, with the optional fields only when given. */
function chatEvent(roomId, message, extra = {}) {
  return {
    type: 'CHAT',
    roomId,
    messageId: message.messageId,
    senderId: message.senderId,
    content: message.content,
    sentAt: message.sentAt,
    ...extra,
  };
}

// ---------------------------------------------------------------------------------------------
// a minimal NATS client (text protocol over TCP), for the one case no API can produce: a CHAT
// sent more than 24 hours ago. tests/tests/api_replies_reactions_edits.rs appends it to the log
// the same way: a copy of a stored CHAT's envelope with an earlier `at`.

/** Control lines (INFO, PONG, -ERR) in arrival order. */
class Lines {
  constructor() {
    this.items = [];
    this.waiters = [];
  }

  push(line) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(line);
    else this.items.push(line);
  }

  next(what) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    return h.withTimeout(new Promise((resolve) => this.waiters.push(resolve)), h.DEFAULT_TIMEOUT, what);
  }
}

class Nats {
  static async connect(url) {
    const { hostname, port } = new URL(url.split(',')[0].trim());
    const socket = net.connect(Number(port) || 4222, hostname);
    const nats = new Nats(socket);
    socket.on('error', (e) => nats.lines.push(`-ERR ${e.message}`));
    const info = await nats.lines.next('the NATS INFO line');
    assert.match(info, /^INFO /);
    socket.write(
      `CONNECT ${JSON.stringify({ verbose: false, pedantic: false, headers: true, no_responders: true, lang: 'node-test', version: '0', protocol: 1 })}\r\nPING\r\n`,
    );
    const pong = await nats.lines.next('PONG from NATS');
    assert.equal(pong, 'PONG', 'NATS accepted the connection');
    socket.write(`SUB ${nats.inbox}.* 1\r\n`);
    return nats;
  }

  constructor(socket) {
    this.socket = socket;
    this.buffer = Buffer.alloc(0);
    this.inbox = `_INBOX.${crypto.randomBytes(8).toString('hex')}`;
    this.replies = new Map();
    this.requests = 0;
    this.lines = new Lines();
    socket.on('data', (data) => this.onData(data));
  }

  onData(data) {
    this.buffer = Buffer.concat([this.buffer, data]);
    for (;;) {
      const eol = this.buffer.indexOf('\r\n');
      if (eol < 0) return;
      const line = this.buffer.subarray(0, eol).toString('utf8');
      const [op, ...args] = line.split(' ');
      if (op === 'MSG' || op === 'HMSG') {
        const total = Number(args[args.length - 1]);
        const headerBytes = op === 'HMSG' ? Number(args[args.length - 2]) : 0;
        if (this.buffer.length < eol + 2 + total + 2) return;
        const start = eol + 2;
        const headers = this.buffer.subarray(start, start + headerBytes).toString('utf8');
        const payload = Buffer.from(this.buffer.subarray(start + headerBytes, start + total));
        this.buffer = this.buffer.subarray(start + total + 2);
        const reply = this.replies.get(args[0]);
        if (reply) {
          this.replies.delete(args[0]);
          reply({ headers, payload });
        }
        continue;
      }
      this.buffer = this.buffer.subarray(eol + 2);
      if (op === 'PING') this.socket.write('PONG\r\n');
      else if (op !== '+OK') this.lines.push(line);
    }
  }

  /** Publishes `payload` to `subject` and resolves with the reply's payload. */
  async request(subject, payload) {
    this.requests += 1;
    const inbox = `${this.inbox}.${this.requests}`;
    const reply = new Promise((resolve) => this.replies.set(inbox, resolve));
    this.socket.write(`PUB ${subject} ${inbox} ${payload.length}\r\n`);
    this.socket.write(Buffer.concat([payload, Buffer.from('\r\n')]));
    const { headers, payload: answer } = await h.withTimeout(reply, h.DEFAULT_TIMEOUT, `a reply on ${subject}`);
    assert.ok(!/^NATS\/1\.0 [45]\d\d/.test(headers), `NATS answered ${JSON.stringify(headers)} to ${subject}`);
    return answer;
  }

  close() {
    this.socket.destroy();
  }
}

/** Offset of the value of the msgpack map key `key` (a fixstr), whose first byte is in `types`. */
function msgpackValue(data, key, types) {
  const pattern = Buffer.concat([Buffer.from([0xa0 | key.length]), Buffer.from(key)]);
  for (let i = data.indexOf(pattern); i >= 0; i = data.indexOf(pattern, i + 1)) {
    if (types.includes(data[i + pattern.length])) return i + pattern.length;
  }
  return assert.fail(`no ${key} of type ${types.map((x) => x.toString(16))} in the stored envelope`);
}

/**
 * Appends to the log a copy of the stored CHAT `messageId` (its MessagePack envelope, see
 * schemas/src/codec.rs) with a fresh event id and `at` moved `ageMs` into the past; resolves
 * with the new message's id and its `at` in milliseconds.
 */
async function appendBackdatedCopy(messageId, ageMs) {
  const stream = h.env().vars.CHAT_NATS__STREAM;
  const nats = await Nats.connect(h.env().vars.CHAT_NATS__URL);
  try {
    const got = JSON.parse(
      await nats.request(`$JS.API.STREAM.MSG.GET.${stream}`, Buffer.from(JSON.stringify({ seq: Number(messageId) }))),
    );
    assert.ok(got.message && got.message.data, `STREAM.MSG.GET answered ${JSON.stringify(got)}`);
    const data = Buffer.from(got.message.data, 'base64');
    // `at`: i64 milliseconds, a uint64 (0xcf) or int64 (0xd3) at today's values.
    const at = msgpackValue(data, 'at', [0xcf, 0xd3]) + 1;
    const backdated = data.readBigInt64BE(at) - BigInt(ageMs);
    data.writeBigInt64BE(backdated, at);
    // `event_id`: a UUID, as 16 bytes (bin8) or its 36-character text (str8).
    const id = msgpackValue(data, 'event_id', [0xc4, 0xd9]);
    if (data[id] === 0xc4) {
      assert.equal(data[id + 1], 16);
      crypto.randomBytes(16).copy(data, id + 2);
    } else {
      assert.equal(data[id + 1], 36);
      data.write(crypto.randomUUID(), id + 2, 'latin1');
    }
    const ack = JSON.parse(await nats.request(got.message.subject, data));
    assert.equal(ack.stream, stream, `publish answered ${JSON.stringify(ack)}`);
    return { messageId: String(ack.seq), at: Number(backdated) };
  } finally {
    nats.close();
  }
}

// ---------------------------------------------------------------------------------------------

describe('replies', () => {
  test('a reply carries its quote (cut to 100 characters) live and in history; deleted once the quoted CHAT is', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob]);
    const a = await h.open(t, alice);
    const b = await h.open(t, bob);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);

    const long = '저녁은 일곱 시에 강남역 근처에서 먹을까요? '.repeat(6); // 150 characters
    assert.equal([...long].length, 150);
    const asked = await sent(alice, roomId, { content: long });
    assert.deepEqual(await nextEvent(aRoom), chatEvent(roomId, asked, { unreadCount: 0 }));
    assert.deepEqual(await nextEvent(bRoom), chatEvent(roomId, asked, { unreadCount: 0 }));

    // A reply through SEND (replyTo as a number), with a clientMessageId.
    const quote = { messageId: asked.messageId, senderId: alice, content: [...long].slice(0, 100).join('') };
    assert.equal([...quote.content].length, 100);
    const clientMessageId = h.uniqueId('c');
    await b.sendWithReceipt(roomId, { content: '좋아요!', replyTo: Number(asked.messageId), clientMessageId });
    const replyLive = await nextEvent(aRoom);
    assert.deepEqual(replyLive, {
      type: 'CHAT',
      roomId,
      messageId: replyLive.messageId,
      senderId: bob,
      content: '좋아요!',
      sentAt: replyLive.sentAt,
      clientMessageId,
      replyTo: quote,
      unreadCount: 0,
    });
    assert.match(replyLive.sentAt, TIME);
    assert.deepEqual(await nextEvent(bRoom), replyLive);

    // A reply through POST (replyTo as a string) to the reply.
    const second = await sent(alice, roomId, { content: '그럼 7시에', replyTo: replyLive.messageId });
    const secondQuote = { messageId: replyLive.messageId, senderId: bob, content: '좋아요!' };
    assert.deepEqual(second, {
      messageId: second.messageId,
      roomId,
      type: 'CHAT',
      senderId: alice,
      content: '그럼 7시에',
      deleted: false,
      sentAt: second.sentAt,
      replyTo: secondQuote,
      reactions: [],
    });
    assert.deepEqual(await nextEvent(aRoom), chatEvent(roomId, second, { replyTo: secondQuote, unreadCount: 0 }));
    assert.deepEqual(await nextEvent(bRoom), chatEvent(roomId, second, { replyTo: secondQuote, unreadCount: 0 }));

    const reply = {
      messageId: replyLive.messageId,
      roomId,
      type: 'CHAT',
      senderId: bob,
      content: '좋아요!',
      deleted: false,
      sentAt: replyLive.sentAt,
      clientMessageId,
      unreadCount: 0,
      reactions: [],
    };
    assert.deepEqual(await entry(alice, roomId, reply.messageId), { ...reply, replyTo: quote });

    // Once the quoted CHAT is deleted, the quote says so and loses its content.
    await deleteMessage(alice, roomId, asked.messageId);
    const deletedQuote = { messageId: asked.messageId, senderId: alice, deleted: true };
    assert.deepEqual(await entry(bob, roomId, reply.messageId), { ...reply, replyTo: deletedQuote });
    assert.deepEqual(await entry(alice, roomId, reply.messageId), { ...reply, replyTo: deletedQuote });
    // The other reply's quote is untouched.
    assert.deepEqual((await entry(bob, roomId, second.messageId)).replyTo, secondQuote);
    // The DELETE itself is the next event; nothing else (no re-sent reply).
    const del = await nextEvent(bRoom);
    assert.deepEqual(del, { type: 'DELETE', roomId, messageId: del.messageId, messageIds: [asked.messageId] });
    await bRoom.none(300);
  });

  test('a bad replyTo: HTTP 400 INVALID_REPLY, over STOMP an ERROR INVALID_REPLY; nothing is stored', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const carol = h.user('carol');
    const { roomId } = await h.createGroup(alice, [bob]);
    const other = await h.createGroup(carol, [alice]);
    const elsewhere = await sent(carol, other.roomId, { content: 'in the other room' });
    const kept = await sent(alice, roomId, { content: 'kept' });
    const gone = await sent(alice, roomId, { content: 'gone' });
    await deleteMessage(alice, roomId, gone.messageId);
    const invite = (await h.historyHttp(alice, roomId)).find((m) => m.type === 'INVITE');
    assert.ok(invite, "the room's INVITE entry");
    // A REACTION is a stored event of the room, but not a CHAT.
    const a = await h.open(t, alice);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    await react('PUT', bob, roomId, kept.messageId, '👍');
    const reactionEvent = await nextEvent(aRoom);
    assert.equal(reactionEvent.type, 'REACTION');

    const bad = {
      'an unknown id': '999999999',
      'a non-CHAT (INVITE)': invite.messageId,
      'a non-CHAT (REACTION)': reactionEvent.messageId,
      "another room's message": elsewhere.messageId,
      'a deleted CHAT': gone.messageId,
      'not an id': 'x',
      zero: 0,
      'a negative number': -1,
      'an object': { messageId: kept.messageId },
    };
    for (const [what, replyTo] of Object.entries(bad)) {
      const res = await post(bob, roomId, { content: 're', replyTo });
      assert.deepEqual(codeOf(res), [400, 'INVALID_REPLY'], `${what}: ${JSON.stringify(res.body)}`);
    }
    for (const what of ['an unknown id', "another room's message", 'a non-CHAT (INVITE)', 'a deleted CHAT']) {
      await sendRefused(t, bob, roomId, { content: 're', replyTo: bad[what] }, 'INVALID_REPLY');
    }

    const history = await h.historyHttp(alice, roomId);
    assert.deepEqual(history.filter((m) => m.content === 're'), [], 'nothing refused was stored');
    assert.deepEqual(
      history.map((m) => [m.type, m.messageId]),
      [['INVITE', invite.messageId], ['CHAT', kept.messageId], ['CHAT', gone.messageId]],
    );
    await aRoom.none(300);
  });
});

describe('reactions', () => {
  test('PUT and DELETE: 204, idempotent, REACTION live on every member, history ordered by first use', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob]);
    const a = await h.open(t, alice);
    const b = await h.open(t, bob);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);
    const msg = await sent(alice, roomId, { content: '저녁 7시?' });
    await nextEvent(aRoom);
    await nextEvent(bRoom);
    const id = msg.messageId;

    /** The next REACTION on both subscriptions: the same event, exactly as documented. */
    async function expectReaction(userId, emoji, added) {
      const onA = await nextEvent(aRoom);
      assert.deepEqual(onA, { type: 'REACTION', roomId, messageId: onA.messageId, targetId: id, userId, emoji, added });
      assert.deepEqual(await nextEvent(bRoom), onA);
      assert.equal(byId(onA.messageId, id), 1, 'after the CHAT in the log');
      return onA;
    }

    // Twice the same PUT: one event.
    await react('PUT', bob, roomId, id, '👍');
    await react('PUT', bob, roomId, id, '👍');
    await expectReaction(bob, '👍', true);
    await Promise.all([aRoom.none(300), bRoom.none(300)]);

    // A multi-codepoint emoji (thumbs up with a skin tone), then the first one again by alice.
    await react('PUT', alice, roomId, id, '👍🏽');
    await expectReaction(alice, '👍🏽', true);
    await react('PUT', alice, roomId, id, '👍');
    await expectReaction(alice, '👍', true);
    await react('PUT', bob, roomId, id, '🇰🇷');
    await expectReaction(bob, '🇰🇷', true);

    const reactionsOf = async (userId) => (await entry(userId, roomId, id)).reactions;
    assert.deepEqual(await reactionsOf(alice), [
      { emoji: '👍', count: 2, me: true },
      { emoji: '👍🏽', count: 1, me: true },
      { emoji: '🇰🇷', count: 1, me: false },
    ]);
    assert.deepEqual(await reactionsOf(bob), [
      { emoji: '👍', count: 2, me: true },
      { emoji: '👍🏽', count: 1, me: false },
      { emoji: '🇰🇷', count: 1, me: true },
    ]);

    // Bob takes his 👍 back, twice: one event. 👍's oldest standing reaction is now alice's,
    // which came after her 👍🏽: the order follows.
    await react('DELETE', bob, roomId, id, '👍');
    await react('DELETE', bob, roomId, id, '👍');
    await expectReaction(bob, '👍', false);
    await Promise.all([aRoom.none(300), bRoom.none(300)]);
    assert.deepEqual(await reactionsOf(bob), [
      { emoji: '👍🏽', count: 1, me: false },
      { emoji: '👍', count: 1, me: false },
      { emoji: '🇰🇷', count: 1, me: true },
    ]);
    assert.deepEqual(await reactionsOf(alice), [
      { emoji: '👍🏽', count: 1, me: true },
      { emoji: '👍', count: 1, me: true },
      { emoji: '🇰🇷', count: 1, me: false },
    ]);

    // Taking back a reaction that is not there: 204, no event.
    await react('DELETE', alice, roomId, id, '😂');
    await Promise.all([aRoom.none(300), bRoom.none(300)]);

    // The whole history: the CHAT and its INVITE only; reactions are not entries.
    const history = await h.historyHttp(bob, roomId);
    assert.deepEqual(history.map((m) => m.type), ['INVITE', 'CHAT']);
    // A room's lastMessage has no reactions.
    const room = await listed(bob, roomId);
    assert.equal(room.lastMessage.messageId, id);
    assert.equal('reactions' in room.lastMessage, false, JSON.stringify(room.lastMessage));
  });

  test('reactions change no unread count and never reach the room-list feed', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const carol = h.user('carol');
    const { roomId } = await h.createGroup(alice, [bob, carol]);
    const c = await h.open(t, carol);
    const cFeed = await h.subscribed(c, `/sub/users/${carol}`);
    const b = await h.open(t, bob);
    const bFeed = await h.subscribed(b, `/sub/users/${bob}`);
    const msg = await sent(alice, roomId, { content: '투표해 주세요' });
    const chatOnFeed = await nextEvent(cFeed);
    assert.equal(chatOnFeed.messageId, msg.messageId);
    assert.equal(chatOnFeed.roomUnreadCount, 1);
    assert.equal((await nextEvent(bFeed)).messageId, msg.messageId);

    const unreadPath = `/api/rooms/${roomId}/messages/${msg.messageId}/unread`;
    const unreadOf = () => h.expectStatus(h.api('GET', unreadPath, { user: alice }), 200, 'GET …/unread');
    const both = [bob, carol].sort();
    await eventually(unreadOf, (u) => JSON.stringify(u.userIds) === JSON.stringify(both), 'both unread');
    await eventually(() => listed(carol, roomId), (r) => r.unreadCount === 1, "carol's unreadCount 1");
    await eventually(
      () => h.api('GET', '/api/users/me/unread', { user: carol }),
      (r) => r.status === 200 && r.body.unreadCount === 1,
      "carol's badge 1",
    );

    await react('PUT', bob, roomId, msg.messageId, '❤️');
    await react('PUT', carol, roomId, msg.messageId, '😂');
    await react('DELETE', bob, roomId, msg.messageId, '❤️');

    // No feed entry for any of them, CHAT or otherwise.
    await Promise.all([cFeed.none(500), bFeed.none(500)]);
    // Reacting is not reading, and no count moved: a later CHAT is counted from the same base.
    assert.deepEqual(await unreadOf(), { userIds: both });
    const next = await sent(alice, roomId, { content: 'next' });
    const nextOnFeed = await nextEvent(cFeed);
    assert.equal(nextOnFeed.messageId, next.messageId);
    assert.equal(nextOnFeed.roomUnreadCount, 2, 'the reactions changed no count');
    assert.equal(nextOnFeed.unreadCount, 2);
    const room = await eventually(() => listed(carol, roomId), (r) => r.unreadCount === 2, "carol's unreadCount 2");
    assert.equal(room.mentionCount, 0);
    assert.deepEqual(await unreadOf(), { userIds: both });
    assert.deepEqual((await entry(alice, roomId, msg.messageId)).reactions, [{ emoji: '😂', count: 1, me: false }]);
    assert.equal((await entry(alice, roomId, msg.messageId)).unreadCount, 2);
  });

  test('bad reactions: 400 INVALID_REACTION, 403 NOT_A_MEMBER, 404 MESSAGE_NOT_FOUND, 409 MESSAGE_DELETED', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const dave = h.user('dave');
    const { roomId } = await h.createGroup(alice, [bob]);
    const a = await h.open(t, alice);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const msg = await sent(alice, roomId, { content: 'react to me' });
    await nextEvent(aRoom);
    const invite = (await h.historyHttp(alice, roomId)).find((m) => m.type === 'INVITE');

    const family = '👨‍👩‍👧'; // one grapheme cluster, 18 bytes
    assert.equal(Buffer.byteLength(family), 18);
    for (const method of ['PUT', 'DELETE']) {
      for (const emoji of ['👍👍', family, 'ok', 'a', '한', '👍 ']) {
        const res = await reaction(method, bob, roomId, msg.messageId, emoji);
        assert.deepEqual(codeOf(res), [400, 'INVALID_REACTION'], `${method} ${JSON.stringify(emoji)}: ${JSON.stringify(res.body)}`);
      }
      const outsider = await reaction(method, dave, roomId, msg.messageId, '👍');
      assert.deepEqual(codeOf(outsider), [403, 'NOT_A_MEMBER'], JSON.stringify(outsider.body));
      for (const target of ['999999999', invite.messageId]) {
        const res = await reaction(method, bob, roomId, target, '👍');
        assert.deepEqual(codeOf(res), [404, 'MESSAGE_NOT_FOUND'], `${method} on ${target}: ${JSON.stringify(res.body)}`);
      }
    }
    await aRoom.none(300);
    assert.deepEqual((await entry(bob, roomId, msg.messageId)).reactions, []);

    await react('PUT', bob, roomId, msg.messageId, '👍');
    await nextEvent(aRoom);
    await deleteMessage(alice, roomId, msg.messageId);
    assert.equal((await nextEvent(aRoom)).type, 'DELETE');
    for (const method of ['PUT', 'DELETE']) {
      const res = await reaction(method, bob, roomId, msg.messageId, '👍');
      assert.deepEqual(codeOf(res), [409, 'MESSAGE_DELETED'], `${method}: ${JSON.stringify(res.body)}`);
    }
    await aRoom.none(300);
    // The tombstone has an empty reaction list.
    const tombstone = await entry(bob, roomId, msg.messageId);
    assert.deepEqual(
      { deleted: tombstone.deleted, content: tombstone.content, reactions: tombstone.reactions },
      { deleted: true, content: null, reactions: [] },
    );
  });
});

describe('edits', () => {
  test('the sender edits: EDIT live; history shows the new content and editedAt, the room list the new content', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const carol = h.user('carol');
    const { roomId } = await h.createGroup(alice, [bob, carol]);
    const a = await h.open(t, alice);
    const b = await h.open(t, bob);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);
    const c = await h.open(t, carol);
    const cFeed = await h.subscribed(c, `/sub/users/${carol}`);
    const earlier = await sent(alice, roomId, { content: '먼저 보낸 것' });
    const msg = await sent(alice, roomId, { content: '7시에 봐요', clientMessageId: 'edit-me' });
    for (const sub of [aRoom, bRoom]) {
      assert.equal((await nextEvent(sub)).messageId, earlier.messageId);
      assert.equal((await nextEvent(sub)).messageId, msg.messageId);
    }
    await nextEvent(cFeed);
    await nextEvent(cFeed);

    const res = await edit(alice, roomId, msg.messageId, '8시에 봐요');
    assert.equal(res.status, 200, JSON.stringify(res.body));
    const edited = res.body;
    assert.match(edited.editedAt, TIME);
    assert.ok(edited.editedAt >= msg.sentAt, `editedAt ${edited.editedAt} before sentAt ${msg.sentAt}`);
    assert.deepEqual(edited, {
      messageId: msg.messageId,
      roomId,
      type: 'CHAT',
      senderId: alice,
      content: '8시에 봐요',
      deleted: false,
      sentAt: msg.sentAt,
      clientMessageId: 'edit-me',
      editedAt: edited.editedAt,
      reactions: [],
    });

    const live = await nextEvent(aRoom);
    assert.deepEqual(live, {
      type: 'EDIT',
      roomId,
      messageId: live.messageId,
      targetId: msg.messageId,
      content: '8시에 봐요',
      editedAt: edited.editedAt,
    });
    assert.deepEqual(await nextEvent(bRoom), live);
    await Promise.all([aRoom.none(300), bRoom.none(300), cFeed.none(300)]);

    // History: the new content and editedAt, in its place; unread counts unchanged (carol).
    const history = await h.historyHttp(bob, roomId);
    assert.deepEqual(
      history.map((m) => [m.type, m.messageId]),
      [['INVITE', history[0].messageId], ['CHAT', earlier.messageId], ['CHAT', msg.messageId]],
    );
    assert.deepEqual(history[2], { ...edited, unreadCount: 1 });
    assert.equal('editedAt' in history[1], false, 'the other message is not edited');

    // The room list follows the edit of its latest CHAT (its whole preview shape: "room list"
    // below).
    const room = await listed(bob, roomId);
    const asLastMessage = summary(edited);
    assert.deepEqual(summary(room.lastMessage), asLastMessage);
    assert.deepEqual(
      await h.expectStatus(h.api('GET', `/api/rooms/${roomId}`, { user: carol }), 200, 'GET /api/rooms/{roomId}'),
      { ...room, unreadCount: 2, mentionCount: 0 },
    );

    // The same content again: 200 with the message as it is, no event.
    const again = await edit(alice, roomId, msg.messageId, '8시에 봐요');
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual(again.body, edited);
    await Promise.all([aRoom.none(300), bRoom.none(300)]);

    // Editing an older CHAT leaves lastMessage alone.
    const older = await edit(alice, roomId, earlier.messageId, '먼저 보낸 것 (고침)');
    assert.equal(older.status, 200, JSON.stringify(older.body));
    const olderLive = await nextEvent(bRoom);
    assert.deepEqual(olderLive, {
      type: 'EDIT',
      roomId,
      messageId: olderLive.messageId,
      targetId: earlier.messageId,
      content: '먼저 보낸 것 (고침)',
      editedAt: older.body.editedAt,
    });
    assert.deepEqual(summary((await listed(bob, roomId)).lastMessage), asLastMessage);
  });

  test('refused edits: 403 NOT_THE_SENDER, 409 MESSAGE_DELETED, NOT_EDITABLE and EDIT_WINDOW_CLOSED, 400 EMPTY_CONTENT', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob]);
    const a = await h.open(t, alice);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const msg = await sent(alice, roomId, { content: 'mine' });
    await nextEvent(aRoom);
    const invite = (await h.historyHttp(alice, roomId)).find((m) => m.type === 'INVITE');

    assert.deepEqual(codeOf(await edit(bob, roomId, msg.messageId, 'mine now')), [403, 'NOT_THE_SENDER']);
    assert.deepEqual(codeOf(await edit(alice, roomId, msg.messageId, '   ')), [400, 'EMPTY_CONTENT']);
    assert.deepEqual(codeOf(await edit(alice, roomId, invite.messageId, 'no')), [409, 'NOT_EDITABLE']);
    assert.deepEqual(codeOf(await edit(h.user('dave'), roomId, msg.messageId, 'x')), [403, 'NOT_A_MEMBER']);
    assert.deepEqual(codeOf(await edit(alice, roomId, '999999999', 'x')), [404, 'MESSAGE_NOT_FOUND']);

    // A CHAT sent 25 hours ago.
    const template = await sent(alice, roomId, { content: 'yesterday' });
    await nextEvent(aRoom);
    const old = await appendBackdatedCopy(template.messageId, 25 * 3600 * 1000);
    const oldLive = await nextEvent(aRoom);
    assert.equal(oldLive.messageId, old.messageId);
    assert.equal(oldLive.sentAt, new Date(old.at).toISOString());
    const oldEntry = await eventually(
      () => h.historyHttp(alice, roomId),
      (history) => history.some((m) => m.messageId === old.messageId),
      'the backdated CHAT in history',
    ).then((history) => history.find((m) => m.messageId === old.messageId));
    assert.equal(oldEntry.sentAt, new Date(old.at).toISOString());
    assert.ok(Date.now() - Date.parse(oldEntry.sentAt) > 24 * 3600 * 1000);
    assert.deepEqual(codeOf(await edit(alice, roomId, old.messageId, 'too late')), [409, 'EDIT_WINDOW_CLOSED']);
    // The same message sent now is still editable.
    assert.equal((await edit(alice, roomId, template.messageId, 'today')).status, 200);
    assert.equal((await nextEvent(aRoom)).type, 'EDIT');

    await deleteMessage(alice, roomId, msg.messageId);
    assert.equal((await nextEvent(aRoom)).type, 'DELETE');
    assert.deepEqual(codeOf(await edit(alice, roomId, msg.messageId, 'after delete')), [409, 'MESSAGE_DELETED']);

    await aRoom.none(300);
    const history = await h.historyHttp(bob, roomId);
    assert.deepEqual(
      history.map((m) => [m.messageId, m.content, m.editedAt !== undefined]),
      [
        [invite.messageId, null, false],
        [msg.messageId, null, false],
        [template.messageId, 'today', true],
        [old.messageId, 'yesterday', false],
      ],
    );
  });
});

describe('mentions', () => {
  test("a mention counts in the absent member's feed and room list until they enter the room", async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const carol = h.user('carol');
    const { roomId } = await h.createGroup(alice, [bob, carol]);
    const b = await h.open(t, bob);
    const bFeed = await h.subscribed(b, `/sub/users/${bob}`);
    const a = await h.open(t, alice);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);

    // Over SEND, with a repeat that is dropped.
    await a.sendWithReceipt(roomId, { content: '@bob 저녁 어때?', mentions: [bob, bob] });
    const onRoom = await nextEvent(aRoom);
    const expected = {
      type: 'CHAT',
      roomId,
      messageId: onRoom.messageId,
      senderId: alice,
      content: '@bob 저녁 어때?',
      sentAt: onRoom.sentAt,
      mentions: [bob],
      unreadCount: 2,
    };
    assert.deepEqual(onRoom, expected);
    assert.deepEqual(await nextEvent(bFeed), { ...expected, roomUnreadCount: 1, mentionCount: 1 });
    assert.deepEqual((await entry(alice, roomId, onRoom.messageId)).mentions, [bob]);

    const room = await eventually(
      () => listed(bob, roomId),
      (r) => r.unreadCount === 1 && r.mentionCount === 1,
      "bob's room with unreadCount 1 and mentionCount 1",
    );
    assert.equal(room.lastMessage.messageId, onRoom.messageId);
    const carolsRoom = await eventually(() => listed(carol, roomId), (r) => r.unreadCount === 1, "carol's unreadCount 1");
    assert.equal(carolsRoom.mentionCount, 0, 'carol is not mentioned');

    // A plain CHAT: unread, not a mention. A second mention (over POST, with carol), then
    // deleted: it stops counting.
    const plain = await sent(alice, roomId, { content: 'plain' });
    assert.deepEqual(await nextEvent(bFeed), {
      ...chatEvent(roomId, plain, { unreadCount: 2 }),
      roomUnreadCount: 2,
      mentionCount: 1,
    });
    const both = await sent(alice, roomId, { content: '둘 다', mentions: [carol, bob] });
    assert.deepEqual(both.mentions, [carol, bob]);
    assert.deepEqual(await nextEvent(bFeed), {
      ...chatEvent(roomId, both, { mentions: [carol, bob], unreadCount: 2 }),
      roomUnreadCount: 3,
      mentionCount: 2,
    });
    await eventually(
      () => listed(bob, roomId),
      (r) => r.unreadCount === 3 && r.mentionCount === 2,
      "bob's room with unreadCount 3 and mentionCount 2",
    );
    await deleteMessage(alice, roomId, both.messageId);
    await eventually(
      () => listed(bob, roomId),
      (r) => r.unreadCount === 2 && r.mentionCount === 1,
      "bob's room with unreadCount 2 and mentionCount 1 after the delete",
    );
    await eventually(
      () => h.expectStatus(h.api('GET', `/api/rooms/${roomId}`, { user: bob }), 200, 'GET /api/rooms/{roomId}'),
      (r) => r.unreadCount === 2 && r.mentionCount === 1,
      'the same in GET /api/rooms/{roomId}',
    );

    // Bob enters the room: both counts are cleared.
    await h.subscribed(b, `/sub/rooms/${roomId}`);
    await eventually(
      () => listed(bob, roomId),
      (r) => r.unreadCount === 0 && r.mentionCount === 0,
      "bob's room with no unread and no mention after entering",
    );
    // Carol's are hers.
    const carolsNow = await listed(carol, roomId);
    assert.deepEqual([carolsNow.unreadCount, carolsNow.mentionCount], [2, 0]);
    await bFeed.none(300);
  });

  test('invalid mentions: 400 INVALID_MENTIONS over HTTP, an ERROR over STOMP; nothing is stored', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob]);
    const a = await h.open(t, alice);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const outsider = h.user('carol');
    const many = Array.from({ length: 51 }, (_, i) => `u${i}.${crypto.randomBytes(3).toString('hex')}`);
    const bad = {
      'a non-member': [bob, outsider],
      'an invalid user id': ['not a user'],
      'more than 50': many,
    };
    for (const [what, mentions] of Object.entries(bad)) {
      const res = await post(alice, roomId, { content: 'hey', mentions });
      assert.deepEqual(codeOf(res), [400, 'INVALID_MENTIONS'], `${what}: ${JSON.stringify(res.body)}`);
    }
    // 50 distinct ids is the limit, not 50 entries: repeats of one member pass.
    const repeated = await sent(alice, roomId, { content: 'repeats', mentions: Array(60).fill(bob) });
    assert.deepEqual(repeated.mentions, [bob]);
    assert.equal((await nextEvent(aRoom)).messageId, repeated.messageId);

    await sendRefused(t, alice, roomId, { content: 'hey', mentions: [outsider] }, 'INVALID_MENTIONS');
    await sendRefused(t, alice, roomId, { content: 'hey', mentions: many }, 'INVALID_MENTIONS');

    await aRoom.none(300);
    const chats = (await h.historyHttp(bob, roomId)).filter((m) => m.type === 'CHAT');
    assert.deepEqual(chats.map((m) => m.content), ['repeats'], 'nothing refused was stored');
  });
});

describe('resume', () => {
  test('since replays the later CHAT, REACTION and EDIT events in log order, once, as they were live', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob]);
    const destination = `/sub/rooms/${roomId}`;
    // Bob has the room open throughout, so every CHAT (all alice's) is read by everyone at once.
    const b = await h.open(t, bob);
    const bRoom = await h.subscribed(b, destination);
    const start = await sent(alice, roomId, { content: 'start' });
    assert.equal((await nextEvent(bRoom)).messageId, start.messageId);

    const a = await h.open(t, alice);
    await a.sendWithReceipt(roomId, { content: '7시 어때요?', mentions: [bob], clientMessageId: 'resume-1' });
    const m1 = await nextEvent(bRoom);
    await react('PUT', bob, roomId, m1.messageId, '👍');
    await react('PUT', alice, roomId, m1.messageId, '❤️');
    assert.equal((await edit(alice, roomId, m1.messageId, '8시 어때요?')).status, 200);
    await react('DELETE', bob, roomId, m1.messageId, '👍');
    const m2 = await sent(alice, roomId, { content: '답장', replyTo: m1.messageId });
    assert.equal((await edit(alice, roomId, m2.messageId, '답장 (고침)')).status, 200);

    const live = [m1];
    for (let i = 0; i < 6; i += 1) live.push(await nextEvent(bRoom));
    await bRoom.none(300);
    const [, up, heart, edit1, down, chat2, edit2] = live;
    assert.deepEqual(live, [
      {
        type: 'CHAT', roomId, messageId: m1.messageId, senderId: alice, content: '7시 어때요?',
        sentAt: m1.sentAt, clientMessageId: 'resume-1', mentions: [bob], unreadCount: 0,
      },
      { type: 'REACTION', roomId, messageId: up.messageId, targetId: m1.messageId, userId: bob, emoji: '👍', added: true },
      { type: 'REACTION', roomId, messageId: heart.messageId, targetId: m1.messageId, userId: alice, emoji: '❤️', added: true },
      { type: 'EDIT', roomId, messageId: edit1.messageId, targetId: m1.messageId, content: '8시 어때요?', editedAt: edit1.editedAt },
      { type: 'REACTION', roomId, messageId: down.messageId, targetId: m1.messageId, userId: bob, emoji: '👍', added: false },
      {
        type: 'CHAT', roomId, messageId: m2.messageId, senderId: alice, content: '답장', sentAt: m2.sentAt,
        replyTo: { messageId: m1.messageId, senderId: alice, content: '8시 어때요?' }, unreadCount: 0,
      },
      { type: 'EDIT', roomId, messageId: edit2.messageId, targetId: m2.messageId, content: '답장 (고침)', editedAt: edit2.editedAt },
    ]);
    assert.equal(chat2.messageId, m2.messageId);
    for (let i = 1; i < live.length; i += 1) {
      assert.equal(byId(live[i - 1].messageId, live[i].messageId), -1, 'live events come in log order');
    }

    // Alice resumes from `start`: exactly the seven, in order, with the live shapes.
    const resumed = a.subscribe(destination, { since: start.messageId });
    const replayed = [];
    for (let i = 0; i < live.length; i += 1) replayed.push(await nextEvent(resumed));
    assert.deepEqual(replayed, live);
    await resumed.none(500);

    // From the middle (an EDIT's id is a stored event of the room too): the three after it.
    const c = await h.open(t, alice);
    const fromEdit = c.subscribe(destination, { since: edit1.messageId });
    const tail = [];
    for (let i = 0; i < 3; i += 1) tail.push(await nextEvent(fromEdit));
    assert.deepEqual(tail, [down, chat2, edit2]);
    await fromEdit.none(500);

    // Then live, with no gap and no duplicate at the seam, on every subscription.
    await react('PUT', bob, roomId, m2.messageId, '😂');
    const next = await nextEvent(resumed);
    assert.deepEqual(next, {
      type: 'REACTION', roomId, messageId: next.messageId, targetId: m2.messageId, userId: bob, emoji: '😂', added: true,
    });
    assert.deepEqual(await nextEvent(fromEdit), next);
    assert.deepEqual(await nextEvent(bRoom), next);
    await Promise.all([resumed.none(300), fromEdit.none(300), bRoom.none(300)]);
  });
});

describe('room list', () => {
  // docs/api.md: a Room's `lastMessage` is a preview of the latest CHAT: messageId, roomId, type,
  // senderId, content (the latest, after an edit), deleted and sentAt, nothing else.
  test("a Room's lastMessage is the latest CHAT's preview, its content following an edit", async () => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob]);
    const asked = await sent(bob, roomId, { content: '몇 시?' });
    const msg = await sent(alice, roomId, {
      content: '7시',
      clientMessageId: h.uniqueId('c'),
      replyTo: asked.messageId,
      mentions: [bob],
    });
    assert.equal((await edit(alice, roomId, msg.messageId, '8시')).status, 200);
    const full = await entry(bob, roomId, msg.messageId);
    const expected = {
      messageId: full.messageId,
      roomId,
      type: 'CHAT',
      senderId: alice,
      content: '8시',
      deleted: false,
      sentAt: full.sentAt,
    };
    assert.deepEqual((await listed(bob, roomId)).lastMessage, expected);
    assert.deepEqual(
      (await h.expectStatus(h.api('GET', `/api/rooms/${roomId}`, { user: alice }), 200, 'GET /api/rooms/{roomId}'))
        .lastMessage,
      expected,
    );
  });
});
