'use strict';
// STOMP 1.2 over WebSocket, as docs/protocol.md describes it, with the real @stomp/stompjs client
// (and a raw `ws` socket where stompjs cannot produce the bytes).

const assert = require('node:assert/strict');
const { after, before, describe, test } = require('node:test');

const h = require('../harness');

before(() => h.startEnv(), { timeout: 120000 });
after(() => h.stopEnv(), { timeout: 90000 });

const SENT_AT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
const MESSAGE_ID = /^[1-9][0-9]*$/;

function assertMessageFrame(message, { destination, subscription }) {
  assert.equal(message.command, 'MESSAGE');
  assert.equal(message.headers.destination, destination);
  assert.equal(message.headers.subscription, subscription);
  assert.equal(message.headers['content-type'], 'application/json');
  assert.ok(message.event, `body is not JSON: ${message.body}`);
  assert.equal(message.headers['message-id'], message.event.messageId);
  assert.match(message.event.messageId, MESSAGE_ID);
}

function assertChat(message, { destination, subscription, roomId, senderId, content, clientMessageId }) {
  assertMessageFrame(message, { destination, subscription });
  const expected = {
    type: 'CHAT',
    roomId,
    messageId: message.event.messageId,
    senderId,
    content,
    sentAt: message.event.sentAt,
    ...(clientMessageId !== undefined ? { clientMessageId } : {}),
  };
  const { unreadCount, roomUnreadCount, mentionCount, ...event } = message.event;
  assert.ok(Number.isInteger(unreadCount) && unreadCount >= 0, `unreadCount ${unreadCount}`);
  if (destination.startsWith('/sub/users/')) {
    assert.ok(Number.isInteger(roomUnreadCount) && roomUnreadCount >= 0, 'roomUnreadCount');
    assert.ok(Number.isInteger(mentionCount) && mentionCount >= 0, 'mentionCount');
  } else {
    assert.equal(roomUnreadCount, undefined, 'roomUnreadCount is for the feed only');
    assert.equal(mentionCount, undefined, 'mentionCount is for the feed only');
  }
  assert.deepEqual(event, expected);
  assert.match(message.event.sentAt, SENT_AT);
}

const byId = (a, b) => (BigInt(a) < BigInt(b) ? -1 : BigInt(a) > BigInt(b) ? 1 : 0);

describe('connection', () => {
  test('CONNECT with an Authorization header answers CONNECTED 1.2 with the user', async (t) => {
    const alice = h.user('alice');
    const conn = await h.open(t, alice, { heartbeatIncoming: 1000, heartbeatOutgoing: 1000 });
    const { headers } = conn.connectedFrame;
    assert.equal(headers.version, '1.2');
    assert.equal(headers['user-name'], alice);
    assert.match(headers.server || '', /^chat-edge\/\S+$/);
    assert.ok(headers.session, 'CONNECTED has a session header');
    // The edge sends every 10 s and wants to hear every 10 s. Offering 1000,1000 the negotiated
    // values are max(10000, 1000) both ways, so "the negotiated heart-beat" and the server's own
    // values (STOMP's reading) are the same header here.
    assert.equal(headers['heart-beat'], '10000,10000');
    assert.equal(conn.webSocket.protocol, 'v12.stomp');
  });

  async function negotiated(protocols) {
    const raw = new h.RawConnection(protocols);
    try {
      await raw.opened;
      return raw.ws.protocol;
    } finally {
      raw.close();
    }
  }

  test('v12.stomp is echoed when offered first', async () => {
    assert.equal(await negotiated(['v12.stomp', 'v11.stomp', 'v10.stomp']), 'v12.stomp');
    assert.equal(await negotiated(['v12.stomp']), 'v12.stomp');
  });

  test('the subprotocol the client asks for first is echoed', async () => {
    for (const protocols of [['v11.stomp', 'v12.stomp'], ['v10.stomp', 'v12.stomp'], ['v10.stomp']]) {
      assert.equal(await negotiated(protocols), protocols[0], `offered ${protocols.join(', ')}`);
    }
  });

  test('heart-beats: the edge sends them and the idle connection stays open', { timeout: 20000 }, async (t) => {
    const alice = h.user('alice');
    const conn = await h.open(t, alice, { heartbeatIncoming: 1000, heartbeatOutgoing: 1000 });
    const start = Date.now();
    // The edge sends every max(10000, 1000) ms: the first heart-beat is due within 10 s.
    const pinged = () => conn.debugLog.some((line) => line.endsWith('>>> PING'));
    while ((conn.heartbeatsReceived === 0 || !pinged()) && Date.now() - start < 12500 && conn.isOpen) {
      await h.sleep(100);
    }
    assert.ok(conn.isOpen, `the connection was closed: ${JSON.stringify(conn.closeEvent)}`);
    assert.ok(
      conn.heartbeatsReceived >= 1,
      `no heart-beat from the edge within ${Date.now() - start} ms; client log:\n${conn.debugLog.slice(-10).join('\n')}`,
    );
    assert.ok(pinged(), 'stompjs sent its own heart-beat (every 10 s)');
    // Still a working session after a silent heart-beat interval.
    const room = await h.createGroup(alice, [h.user('bob')]);
    await conn.sendWithReceipt(room.roomId, { content: 'still here' });
  });

  test('STOMP works like CONNECT; login, passcode and host are ignored', async () => {
    const alice = h.user('alice');
    const raw = new h.RawConnection();
    try {
      await raw.opened;
      raw.send(
        `STOMP\naccept-version:1.2\nhost:elsewhere\nlogin:mallory\npasscode:x\n` +
          `Authorization:Bearer ${h.tokenFor(alice)}\n\n\0`,
      );
      const frame = await raw.next();
      assert.equal(frame.command, 'CONNECTED');
      assert.equal(frame.headers.version, '1.2');
      assert.equal(frame.headers['user-name'], alice);
      assert.deepEqual(raw.problems, []);
    } finally {
      raw.close();
    }
  });

  test('DISCONNECT with a receipt gets its RECEIPT, then the edge closes', async () => {
    const raw = new h.RawConnection();
    try {
      await raw.connect(h.user('alice'));
      raw.send('DISCONNECT\nreceipt:bye-1\n\n\0');
      const frame = await raw.next();
      assert.equal(frame.command, 'RECEIPT');
      assert.equal(frame.headers['receipt-id'], 'bye-1');
      await raw.closed();
      assert.deepEqual(raw.problems, []);
    } finally {
      raw.close();
    }
  });

  test('frames split over WebSocket messages, several in one message, and binary messages', async () => {
    const alice = h.user('alice');
    const room = await h.createGroup(alice, [h.user('bob')]);
    const raw = new h.RawConnection();
    try {
      await raw.opened;
      const connect = `CONNECT\naccept-version:1.2\nAuthorization:Bearer ${h.tokenFor(alice)}\n\n\0`;
      raw.send(connect.slice(0, 10));
      raw.send(connect.slice(10, 40));
      raw.send(connect.slice(40));
      const connected = await raw.next();
      assert.equal(connected.command, 'CONNECTED');
      assert.equal(connected.headers['user-name'], alice);
      // Two frames (and heart-beat newlines) in one text message.
      raw.send(
        `SUBSCRIBE\nid:s1\ndestination:/sub/rooms/${room.roomId}\nreceipt:r1\n\n\0\n` +
          `SUBSCRIBE\nid:s2\ndestination:/sub/users/${alice}\nreceipt:r2\n\n\0\n\n`,
      );
      // A binary message, itself split.
      const send = Buffer.from(
        `SEND\ndestination:/pub/rooms/${room.roomId}/messages\nreceipt:r3\ncontent-type:application/json\n\n` +
          `${JSON.stringify({ content: 'binary ✓' })}\0`,
      );
      raw.send(send.subarray(0, 20), { binary: true });
      raw.send(send.subarray(20), { binary: true });
      const frames = [];
      // r1, r2, r3 and two MESSAGEs (room and feed), in any order; alice's own INFO aside.
      while (frames.length < 5) {
        const frame = await raw.next();
        if (frame.command === 'MESSAGE' && JSON.parse(frame.body).type === 'INFO') continue;
        frames.push(frame);
      }
      const receipts = frames.filter((f) => f.command === 'RECEIPT').map((f) => f.headers['receipt-id']);
      assert.deepEqual(receipts.sort(), ['r1', 'r2', 'r3']);
      const messages = frames.filter((f) => f.command === 'MESSAGE');
      assert.deepEqual(messages.map((m) => m.headers.subscription).sort(), ['s1', 's2']);
      for (const m of messages) assert.equal(JSON.parse(m.body).content, 'binary ✓');
      assert.deepEqual(raw.problems, []);
    } finally {
      raw.close();
    }
  });
});

describe('messages', () => {
  test('SEND with a receipt reaches every subscriber and the feeds', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const room = await h.createGroup(alice, [bob]);
    const { roomId } = room;
    const a = await h.open(t, alice);
    const b = await h.open(t, bob);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const aFeed = await h.subscribed(a, `/sub/users/${alice}`);
    const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);
    const bFeed = await h.subscribed(b, `/sub/users/${bob}`);

    const clientMessageId = h.uniqueId('c');
    const receiptId = h.uniqueId('r');
    const receipt = a.receipt(receiptId);
    a.send(roomId, { content: 'hello bob', clientMessageId }, { receipt: receiptId });
    const frame = await receipt;
    assert.equal(frame.headers['receipt-id'], receiptId);

    // The RECEIPT comes after the projections show the message.
    const history = await h.historyHttp(bob, roomId);
    const stored = history.filter((m) => m.type === 'CHAT');
    assert.equal(stored.length, 1, `history after the RECEIPT: ${JSON.stringify(history)}`);
    assert.equal(stored[0].content, 'hello bob');
    assert.equal(stored[0].clientMessageId, clientMessageId);

    const expected = { roomId, senderId: alice, content: 'hello bob', clientMessageId };
    const onA = await aRoom.next();
    assertChat(onA, { ...expected, destination: `/sub/rooms/${roomId}`, subscription: aRoom.id });
    assert.equal(onA.event.messageId, stored[0].messageId);
    assert.equal(onA.event.sentAt, stored[0].sentAt);
    const onB = await bRoom.next();
    assertChat(onB, { ...expected, destination: `/sub/rooms/${roomId}`, subscription: bRoom.id });
    assert.deepEqual(onB.event, onA.event);
    assert.equal(onA.event.unreadCount, 0, 'both members are in the room');
    const onBFeed = await bFeed.next();
    assertChat(onBFeed, { ...expected, destination: `/sub/users/${bob}`, subscription: bFeed.id });
    const { roomUnreadCount, mentionCount, ...feedEvent } = onBFeed.event;
    assert.equal(roomUnreadCount, 0, "bob's unread messages in the room");
    assert.equal(mentionCount, 0, 'nothing mentions bob');
    assert.deepEqual(feedEvent, onA.event);
    const onAFeed = await aFeed.next();
    assertChat(onAFeed, { ...expected, destination: `/sub/users/${alice}`, subscription: aFeed.id });

    // Once each.
    await Promise.all([aRoom.none(300), bRoom.none(300), bFeed.none(300), aFeed.none(300)]);
  });

  test('UNSUBSCRIBE ends a subscription; the others go on', async (t) => {
    const alice = h.user('alice');
    const { roomId } = await h.createGroup(alice, [h.user('bob')]);
    const a = await h.open(t, alice);
    const gone = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const kept = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const receipt = a.receipt('unsub');
    gone.unsubscribe({ receipt: 'unsub' });
    await receipt;
    await h.sendHttp(alice, roomId, 'after unsubscribe');
    await kept.nextWithContent('after unsubscribe');
    await gone.none(500);
    assert.ok(a.isOpen);
  });

  test('a CHAT without clientMessageId has none in its MESSAGE', async (t) => {
    const alice = h.user('alice');
    const { roomId } = await h.createGroup(alice, [h.user('bob')]);
    const a = await h.open(t, alice);
    const sub = await h.subscribed(a, `/sub/rooms/${roomId}`);
    await a.sendWithReceipt(roomId, { content: 'no id' });
    const m = await sub.next();
    assertChat(m, { destination: `/sub/rooms/${roomId}`, subscription: sub.id, roomId, senderId: alice, content: 'no id' });
  });

  test('a SEND retried with the same clientMessageId yields one message', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob]);
    const a = await h.open(t, alice);
    const b = await h.open(t, bob);
    const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);
    const clientMessageId = h.uniqueId('c');
    // Two racing SENDs, then one after both receipts, on two connections of the sender.
    const a2 = await h.open(t, alice);
    await Promise.all([
      a.sendWithReceipt(roomId, { content: 'once', clientMessageId }),
      a2.sendWithReceipt(roomId, { content: 'once', clientMessageId }),
    ]);
    await a.sendWithReceipt(roomId, { content: 'once, again', clientMessageId });

    const m = await bRoom.next();
    assert.equal(m.event.content, 'once');
    assert.equal(m.event.clientMessageId, clientMessageId);
    await bRoom.none(1000);
    const chats = (await h.historyHttp(bob, roomId)).filter((x) => x.type === 'CHAT');
    assert.equal(chats.length, 1, JSON.stringify(chats));
    assert.equal(chats[0].messageId, m.event.messageId);
  });

  test('an INVITE reaches the feeds of the new members, also at creation', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const carol = h.user('carol');
    const b = await h.open(t, bob);
    const c = await h.open(t, carol);
    const bFeed = await h.subscribed(b, `/sub/users/${bob}`);
    const cFeed = await h.subscribed(c, `/sub/users/${carol}`);

    const { roomId } = await h.createGroup(alice, [bob]);
    const created = await bFeed.next();
    assertMessageFrame(created, { destination: `/sub/users/${bob}`, subscription: bFeed.id });
    assert.equal(created.event.type, 'INVITE');
    assert.equal(created.event.roomId, roomId);
    assert.equal(created.event.inviterId, alice);
    assert.ok(created.event.userIds.includes(bob), JSON.stringify(created.event));

    await h.inviteHttp(alice, roomId, [carol]);
    const invited = await cFeed.next();
    assertMessageFrame(invited, { destination: `/sub/users/${carol}`, subscription: cFeed.id });
    assert.deepEqual(invited.event, {
      type: 'INVITE',
      roomId,
      messageId: invited.event.messageId,
      inviterId: alice,
      userIds: [carol],
    });
    const history = await h.historyHttp(carol, roomId);
    assert.deepEqual(
      history.map((m) => [m.type, m.messageId]),
      [
        ['INVITE', created.event.messageId],
        ['INVITE', invited.event.messageId],
      ],
    );
    // The feed carries only the INVITEs that add its user.
    await Promise.all([cFeed.none(300), bFeed.none(300)]);
  });

  test('LEAVE: the leaver gets their own LEAVE last on every subscription; the connection stays', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob], 'left');
    const other = await h.createGroup(alice, [bob], 'kept');
    const a = await h.open(t, alice);
    const b = await h.open(t, bob);
    const b2 = await h.open(t, bob);
    const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
    const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);
    const b2Room = await h.subscribed(b2, `/sub/rooms/${roomId}`);
    const bFeed = await h.subscribed(b, `/sub/users/${bob}`);

    await h.leaveHttp(bob, roomId);
    const leave = { type: 'LEAVE', roomId, userId: bob };
    for (const [sub, conn] of [[bRoom, b], [b2Room, b2], [aRoom, a]]) {
      const m = await sub.next();
      assertMessageFrame(m, { destination: `/sub/rooms/${roomId}`, subscription: sub.id });
      const expectedLeave = { ...leave, messageId: m.event.messageId, readCount: 0 };
      assert.deepEqual(m.event, expectedLeave, `on ${conn.userId}'s subscription`);
    }
    const history = await h.historyHttp(alice, roomId);
    assert.equal(history.at(-1).type, 'LEAVE');

    // Alice's later message reaches her, and neither of Bob's ended subscriptions nor his feed.
    await h.sendHttp(alice, roomId, 'after bob left');
    await aRoom.nextWithContent('after bob left');
    await Promise.all([bRoom.none(1000), b2Room.none(1000)]);
    await assert.rejects(bFeed.nextWithContent('after bob left', 10), /timed out/);

    // Bob's connections are open and his other subscriptions go on.
    assert.ok(b.isOpen && b2.isOpen);
    await h.sendHttp(alice, other.roomId, 'in the other room');
    const m = await bFeed.nextWithContent('in the other room');
    assert.equal(m.event.roomId, other.roomId);
    // Unsubscribing the ended subscription is not an error.
    bRoom.unsubscribe();
    await b.sendWithReceipt(other.roomId, { content: 'bob still talks' });
    assert.ok(b.isOpen);
    await b.errors.none(200);
  });

  test('SUBSCRIBE with since, after missing N messages, delivers exactly those N in order', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const { roomId } = await h.createGroup(alice, [bob]);
    const destination = `/sub/rooms/${roomId}`;

    const first = await h.open(t, bob);
    const sub = await h.subscribed(first, destination);
    await h.sendHttp(alice, roomId, 'seen');
    const seen = await sub.next();
    await first.close();

    const missed = [];
    for (let i = 0; i < 5; i += 1) missed.push(await h.sendHttp(alice, roomId, `missed ${i}`));

    const again = await h.open(t, bob);
    const resumed = again.subscribe(destination, { since: seen.event.messageId });
    const got = [];
    for (let i = 0; i < missed.length; i += 1) got.push(await resumed.next());
    for (const m of got) assertMessageFrame(m, { destination, subscription: resumed.id });
    assert.deepEqual(
      got.map((m) => [m.event.messageId, m.event.content]),
      missed.map((m) => [m.messageId, m.content]),
    );
    await resumed.none(500);
    // Then live events, with no gap and no duplicate at the seam.
    const live = await h.sendHttp(alice, roomId, 'live');
    const m = await resumed.next();
    assert.equal(m.event.messageId, live.messageId);
    await resumed.none(300);
  });

  test('since replays every kind of stored event: CHAT, INVITE, LEAVE, DELETE', async (t) => {
    const alice = h.user('alice');
    const bob = h.user('bob');
    const carol = h.user('carol');
    const { roomId } = await h.createGroup(alice, [bob]);
    const start = await h.sendHttp(alice, roomId, 'start');
    const m1 = await h.sendHttp(bob, roomId, 'one');
    await h.inviteHttp(alice, roomId, [carol]);
    const m2 = await h.sendHttp(carol, roomId, 'two');
    await h.leaveHttp(carol, roomId);
    await h.expectStatus(
      h.api('DELETE', `/api/rooms/${roomId}/messages/${m1.messageId}`, { user: bob }),
      200,
      'DELETE message',
    );
    const history = await h.historyHttp(alice, roomId);
    const invite = history.find((m) => m.type === 'INVITE' && m.userIds.includes(carol));
    const leave = history.find((m) => m.type === 'LEAVE');

    const a = await h.open(t, alice);
    const sub = a.subscribe(`/sub/rooms/${roomId}`, { since: start.messageId });
    const got = [];
    for (let i = 0; i < 5; i += 1) got.push((await sub.next()).event);
    // Replayed CHATs carry their current unreadCount: m1 is deleted (0); m2 was unread by
    // alice and bob, and alice reads it by entering, which the replay may or may not see yet.
    const [c1, c2] = got.filter((e) => e.type === 'CHAT').map((e) => e.unreadCount);
    assert.equal(c1, 0);
    assert.ok(c2 === 1 || c2 === 2, `m2 unreadCount ${c2}`);
    for (const e of got) delete e.unreadCount;
    assert.deepEqual(got.slice(0, 4), [
      { type: 'CHAT', roomId, messageId: m1.messageId, senderId: bob, content: 'one', sentAt: m1.sentAt },
      { type: 'INVITE', roomId, messageId: invite.messageId, inviterId: alice, userIds: [carol] },
      { type: 'CHAT', roomId, messageId: m2.messageId, senderId: carol, content: 'two', sentAt: m2.sentAt },
      { type: 'LEAVE', roomId, messageId: leave.messageId, userId: carol },
    ]);
    assert.equal(got[4].type, 'DELETE');
    assert.deepEqual(got[4].messageIds, [m1.messageId]);
    assert.equal(byId(got[4].messageId, leave.messageId), 1, 'DELETE comes after the LEAVE');
    await sub.none(500);
  });

  test('since the latest event: nothing replayed, then live', async (t) => {
    const alice = h.user('alice');
    const { roomId } = await h.createGroup(alice, [h.user('bob')]);
    const last = await h.sendHttp(alice, roomId, 'last');
    const a = await h.open(t, alice);
    const sub = await h.subscribed(a, `/sub/rooms/${roomId}`, { since: last.messageId });
    await sub.none(300);
    const live = await h.sendHttp(alice, roomId, 'next');
    assert.equal((await sub.next()).event.messageId, live.messageId);
  });
});
