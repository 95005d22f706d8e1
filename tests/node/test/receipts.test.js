'use strict';
// Read receipts as the real @stomp/stompjs client sees them (docs/protocol.md, "Read receipts").

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');

const h = require('../harness');

before(() => h.startEnv(), { timeout: 120000 });
after(() => h.stopEnv(), { timeout: 90000 });

test('unreadCount, INFO when a member enters, OUT when they leave the screen', async (t) => {
  const alice = h.user('alice');
  const bob = h.user('bob');
  const { roomId } = await h.createGroup(alice, [bob]);
  const a = await h.connect(alice);
  t.after(() => a.close());
  const aRoom = await h.subscribed(a, `/sub/rooms/${roomId}`);
  assert.equal((await aRoom.presence.next()).event.userId, alice, 'her own INFO');

  await h.sendHttp(alice, roomId, 'are you there?');
  const chat = await aRoom.nextWithContent('are you there?');
  assert.equal(chat.event.unreadCount, 1, 'bob is away');

  const b = await h.connect(bob);
  const bRoom = await h.subscribed(b, `/sub/rooms/${roomId}`);
  const info = await aRoom.presence.next();
  assert.deepEqual(info.event, {
    type: 'INFO',
    roomId,
    userId: bob,
    readCount: 1,
    lastReadMessageId: chat.event.messageId,
  });
  assert.equal(info.headers['message-id'], info.headers['message-id'].replace(/\D/g, ''));
  bRoom.unsubscribe();
  assert.deepEqual((await aRoom.presence.next()).event, { type: 'OUT', roomId, userId: bob });
  b.close();
});
