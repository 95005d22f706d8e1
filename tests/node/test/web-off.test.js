'use strict';
// The edge's defaults for the web client: no development login (the path is an unknown
// endpoint), and a web directory that is not built gives a clear 404 and a log line, not a
// failed start.

const assert = require('node:assert/strict');
const fs = require('node:fs');
const { after, before, test } = require('node:test');

const h = require('../harness');

const MISSING = '/nonexistent/web-dist';

before(() => h.startEnv({ CHAT_EDGE__WEB_DIR: MISSING }), { timeout: 120000 });
after(() => h.stopEnv(), { timeout: 90000 });

test('the development login is off by default: 404 NOT_FOUND', async () => {
  const res = await h.api('POST', '/api/dev/login', { body: { userId: h.user('alice') } });
  assert.equal(res.status, 404);
  assert.equal(res.body.error.code, 'NOT_FOUND');
});

test('an unbuilt web client: / says how to build it, the API still works', async () => {
  const res = await h.api('GET', '/');
  assert.equal(res.status, 404);
  assert.equal(res.body.error.code, 'NOT_FOUND');
  assert.match(res.body.error.message, /not built/);
  assert.equal((await h.api('GET', '/app.js')).status, 404);
  await h.expectStatus(h.api('GET', '/api/rooms', { user: h.user('bob') }), 200, 'GET /api/rooms');
  const log = fs.readFileSync(h.env().edge.logFile, 'utf8');
  assert.match(log, /web client not built/);
});
