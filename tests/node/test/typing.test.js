'use strict';
// Typing signals as the real @stomp/stompjs client sees them (docs/protocol.md, "Typing"):
// live only, to the room's other subscribers, ended by the edge, at most two a second.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');

const h = require('../harness');

before(() => h.startEnv(), { timeout: 120000 });
after(() => h.stopEnv(), { timeout: 90000 });

/** SENDs a typing signal and waits for its RECEIPT. */
async function typing(conn, roomId, isTyping) {
  const receiptId = h.uniqueId('typing');
  const receipt = conn.receipt(receiptId);
  conn.client.publish({
    destination: `/pub/rooms/${roomId}/typing`,
    body: JSON.stringify({ typing: isTyping }),
    headers: { receipt: receiptId },
  });
  await receipt;
}

test('TYPING reaches the other member and ends when the typist stops or goes away', async (t) => {
  const alice = h.user('alice');
  const bob = h.user('bob');
  const { roomId } = await h.createGroup(alice, [bob]);
  const a = await h.connect(alice);
  const b = await h.connect(bob);
  t.after(() => b.close());
  const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
  const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);

  await typing(a, roomId, true);
  const started = await bRoom.next();
  assert.deepEqual(started.event, { type: 'TYPING', roomId, userId: alice, typing: true });
  assert.match(started.headers['message-id'], /^typing-\d+$/, 'never a stored event id');
  await typing(a, roomId, false);
  assert.equal((await bRoom.next()).event.typing, false);
  await aRoom.none(300);

  await h.sleep(1000); // two signals a second: let the connection's allowance refill
  await typing(a, roomId, true);
  assert.equal((await bRoom.next()).event.typing, true);
  a.close();
  const ended = await bRoom.next(3000);
  assert.deepEqual(ended.event, { type: 'TYPING', roomId, userId: alice, typing: false });
});

test('a burst of typing signals passes at most two', async (t) => {
  const alice = h.user('alice');
  const bob = h.user('bob');
  const { roomId } = await h.createGroup(alice, [bob]);
  const a = await h.connect(alice);
  const b = await h.connect(bob);
  t.after(() => {
    a.close();
    b.close();
  });
  const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);
  const began = Date.now();
  await Promise.all([1, 2, 3, 4, 5].map(() => typing(a, roomId, true)));
  const allowed = 2 + Math.floor((Date.now() - began) / 500);
  await bRoom.next();
  await bRoom.next();
  let more = 0;
  for (;;) {
    try {
      await bRoom.next(400);
      more += 1;
    } catch {
      break;
    }
  }
  assert.ok(2 + more <= allowed, `${2 + more} signals passed, at most ${allowed} allowed`);
});
