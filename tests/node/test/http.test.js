'use strict';
// Smoke test of the harness through the HTTP API: the services start, tokens signed here are
// accepted, and the ones made wrong on purpose are refused with the documented codes.

const assert = require('node:assert/strict');
const { after, before, test } = require('node:test');

const h = require('../harness');

before(() => h.startEnv(), { timeout: 120000 });
after(() => h.stopEnv(), { timeout: 90000 });

test('healthz answers', async () => {
  const res = await fetch(`${h.env().baseUrl}/healthz`);
  assert.equal(res.status, 200);
});

test('create a room, send a message, read the history', async () => {
  const alice = h.user('alice');
  const bob = h.user('bob');
  const room = await h.createGroup(alice, [bob], 'smoke');
  assert.equal(room.type, 'GROUP');
  assert.deepEqual(room.members, [alice, bob].sort());
  const clientMessageId = h.uniqueId('c');
  const message = await h.sendHttp(alice, room.roomId, 'hello', clientMessageId);
  assert.equal(message.content, 'hello');
  assert.equal(message.senderId, alice);
  assert.equal(message.clientMessageId, clientMessageId);
  assert.match(message.messageId, /^[1-9][0-9]*$/);
  const history = await h.historyHttp(bob, room.roomId);
  assert.deepEqual(history.map((m) => m.type), ['INVITE', 'CHAT']);
  assert.equal(history[1].messageId, message.messageId);
});

test('tokens signed by the harness: expired and wrongly signed ones are refused', async () => {
  const alice = h.user('alice');
  const cases = [
    [h.tokenFor(alice), 200, null],
    [h.expiredToken(alice), 401, 'TOKEN_EXPIRED'],
    [h.wronglySignedToken(alice), 401, 'INVALID_TOKEN'],
    ['not-a-jwt', 401, 'INVALID_TOKEN'],
  ];
  for (const [token, status, code] of cases) {
    const res = await h.api('GET', '/api/rooms', { token });
    assert.equal(res.status, status, JSON.stringify(res.body));
    if (code) assert.equal(res.body.error.code, code);
  }
  const none = await h.api('GET', '/api/rooms');
  assert.equal(none.status, 401);
  assert.equal(none.body.error.code, 'UNAUTHORIZED');
});
