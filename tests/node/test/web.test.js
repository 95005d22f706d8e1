'use strict';
// The web client (web/) in headless Chromium, against the real services: two users in two
// browser contexts create a room and chat in Korean, see the unread "1" go when the other enters
// and a deletion reach both, and one user's socket is cut while the other sends 5 messages,
// which then appear exactly once. Also saves docs/web-room.png, a screenshot of the room view.
//
// Chromium is Debian's (`/usr/bin/chromium`, or CHAT_CHROMIUM), driven by puppeteer-core: no
// browser is downloaded. The client must be built first (`npm ci && npm run build` in web/;
// scripts/test does).

const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { after, before, test } = require('node:test');

const puppeteer = require('puppeteer-core');

const h = require('../harness');

const CHROMIUM = process.env.CHAT_CHROMIUM || '/usr/bin/chromium';
const WEB_DIR = path.join(h.ROOT, 'web', 'dist');
const SCREENSHOT = path.join(h.ROOT, 'docs', 'web-room.png');
const WAIT = 15000;

/**
 * A TCP proxy to the edge for one browser context, so a test can cut that user's connections
 * (the socket drops as on a flaky network) and refuse new ones until it is resumed.
 */
async function proxyTo(port) {
  const sockets = new Set();
  let refusing = false;
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(port, '127.0.0.1');
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      a.pipe(b);
      a.on('error', () => b.destroy());
      a.on('close', () => b.destroy());
      sockets.add(a);
      a.on('close', () => sockets.delete(a));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    cut() {
      refusing = true;
      for (const socket of sockets) socket.destroy();
    },
    resume() {
      refusing = false;
    },
    close: () => new Promise((resolve) => { for (const s of sockets) s.destroy(); server.close(resolve); }),
  };
}

let browser;
const proxies = [];

before(async () => {
  assert.ok(
    fs.existsSync(path.join(WEB_DIR, 'index.html')),
    `${WEB_DIR}/index.html is missing: run \`npm ci && npm run build\` in web/ first`,
  );
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing: apt-get install chromium, or set CHAT_CHROMIUM`);
  await h.startEnv({ CHAT_EDGE__DEV_LOGIN: 'true', CHAT_EDGE__WEB_DIR: WEB_DIR });
  browser = await puppeteer.launch({
    executablePath: CHROMIUM,
    headless: true,
    // As root (CI), Chromium needs --no-sandbox; the pages are our own, on loopback.
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--lang=ko-KR'],
  });
}, { timeout: 120000 });

after(async () => {
  await browser?.close();
  await Promise.all(proxies.map((p) => p.close()));
  await h.stopEnv();
}, { timeout: 90000 });

/** A signed-in user in a browser context of their own, behind a proxy of their own. */
async function signIn(name) {
  const userId = h.user(name);
  const proxy = await proxyTo(new URL(h.env().baseUrl).port);
  proxies.push(proxy);
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width: 900, height: 640 });
  page.on('pageerror', (e) => console.error(`${name} page error: ${e.message}`));
  await page.goto(proxy.url, { waitUntil: 'load' });
  await page.type('[data-testid=login-user]', userId);
  await page.click('[data-testid=login-submit]');
  await page.waitForSelector('[data-testid=room-list]', { timeout: WAIT });
  await page.waitForFunction(() => document.getElementById('status')?.textContent === '연결됨', { timeout: WAIT });
  return { userId, page, proxy };
}

/** The texts of the messages shown, in order, with their ids and unread counts. */
function messages(page) {
  return page.$$eval('[data-testid=message]', (els) =>
    els.map((el) => ({
      id: el.dataset.messageId ?? null,
      state: el.dataset.state,
      text: el.querySelector('.content').textContent,
      unread: el.querySelector('[data-testid=unread-count]')?.textContent ?? null,
    })),
  );
}

/** Waits until `predicate(messages)` holds in the page. */
async function waitMessages(page, what, predicate) {
  const deadline = Date.now() + WAIT;
  let last;
  while (Date.now() < deadline) {
    last = await messages(page);
    if (predicate(last)) return last;
    await h.sleep(50); // the poll interval of a bounded wait
  }
  throw new Error(`timed out waiting for ${what}; messages: ${JSON.stringify(last)}`);
}

async function typeAndEnter(page, text) {
  await page.focus('[data-testid=composer]');
  await page.keyboard.sendCharacter(text);
  await page.keyboard.press('Enter');
}

const badge = (page) => page.$eval('[data-testid=badge]', (el) => (el.hidden ? '0' : el.textContent));

test('the edge serves the client at / and the development login hands out working tokens', async () => {
  const page = await fetch(`${h.env().baseUrl}/`);
  assert.equal(page.status, 200);
  assert.match(page.headers.get('content-type'), /^text\/html/);
  const script = await fetch(`${h.env().baseUrl}/app.js`);
  assert.equal(script.status, 200);
  assert.match(script.headers.get('content-type'), /^text\/javascript/);
  const alice = h.user('alice');
  const { token } = await h.expectStatus(
    h.api('POST', '/api/dev/login', { body: { userId: alice } }), 200, 'POST /api/dev/login');
  await h.expectStatus(h.api('GET', '/api/rooms', { token }), 200, 'GET /api/rooms with the token');
  const bad = await h.api('POST', '/api/dev/login', { body: { userId: 'no spaces' } });
  assert.equal(bad.status, 400);
  assert.equal(bad.body.error.code, 'INVALID_USER_ID');
  const unknown = await h.api('GET', '/api/nothing-here');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.body.error.code, 'NOT_FOUND');
});

test('two users chat in Korean: unread, delete, and a dropped socket that misses nothing', async () => {
  const alice = await signIn('alice');
  const bob = await signIn('bob');

  // Alice opens a DIRECT room with Bob; it reaches Bob's list through his feed.
  await alice.page.select('#new-type', 'DIRECT');
  await alice.page.type('#new-users', bob.userId);
  await alice.page.click('[data-testid=create-room]');
  await alice.page.waitForSelector('[data-testid=room-item] [aria-current=true]', { timeout: WAIT });
  const roomId = await alice.page.$eval('[data-testid=room-item]:has([aria-current=true])', (el) => el.dataset.roomId);
  const bobsItem = `[data-testid=room-item][data-room-id="${roomId}"]`;
  await bob.page.waitForSelector(bobsItem, { timeout: WAIT });

  // Bob is not in the room: Alice's message shows "1", and Bob's badge counts it.
  const hello = '안녕하세요, 밥! 이사 잘 하셨어요? 🏠✨';
  await typeAndEnter(alice.page, hello);
  await waitMessages(alice.page, 'the first message, sent, unread by 1', (ms) =>
    ms.length === 1 && ms[0].text === hello && ms[0].id && ms[0].unread === '1');
  await bob.page.waitForFunction(() => document.querySelector('[data-testid=badge]').textContent === '1' &&
    !document.querySelector('[data-testid=badge]').hidden, { timeout: WAIT });

  // Bob enters: the "1" disappears on Alice's side (INFO), his badge goes to 0.
  await bob.page.click(`${bobsItem} button`);
  await waitMessages(bob.page, "Alice's message in Bob's view", (ms) => ms.some((m) => m.text === hello));
  await waitMessages(alice.page, 'the "1" to disappear', (ms) => ms[0].unread === null);
  assert.equal(await badge(bob.page), '0');

  const reply = '네, 덕분에요! 다음 주에 집들이 해요 🎉';
  await typeAndEnter(bob.page, reply);
  await waitMessages(alice.page, "Bob's reply", (ms) => ms.some((m) => m.text === reply && m.unread === null));

  // Alice deletes her first message: both see the tombstone text.
  const doomed = '이 메시지는 곧 지워집니다';
  await typeAndEnter(alice.page, doomed);
  const [sent] = (await waitMessages(alice.page, 'the message to delete', (ms) =>
    ms.some((m) => m.text === doomed && m.id))).filter((m) => m.text === doomed);
  await waitMessages(bob.page, 'the message to delete in Bob\'s view', (ms) => ms.some((m) => m.id === sent.id));
  await alice.page.click(`[data-message-id="${sent.id}"] [data-testid=delete]`);
  for (const { page } of [alice, bob]) {
    await waitMessages(page, 'the tombstone', (ms) =>
      ms.some((m) => m.id === sent.id && m.text === '삭제된 메시지입니다.'));
  }
  await alice.page.screenshot({ path: SCREENSHOT });

  // Bob's socket drops and stays down while Alice sends 5 messages.
  bob.proxy.cut();
  await bob.page.waitForFunction(() => document.getElementById('status').textContent !== '연결됨', { timeout: WAIT });
  const missed = [1, 2, 3, 4, 5].map((n) => `재연결 중에 보낸 메시지 ${n}번 🙂`);
  for (const text of missed) await typeAndEnter(alice.page, text);
  await waitMessages(alice.page, 'the 5 messages stored (RECEIPT, then the event)', (ms) =>
    missed.every((t) => ms.some((m) => m.text === t && m.id)));
  // After the reconnect, one more message marks the end: once Bob has it, everything before
  // it has arrived, so the counts below are final.
  bob.proxy.resume();
  await bob.page.waitForFunction(() => document.getElementById('status').textContent === '연결됨', { timeout: WAIT });
  const marker = '끝 ✅';
  await typeAndEnter(alice.page, marker);
  const shown = await waitMessages(bob.page, 'the marker after the reconnect', (ms) => ms.some((m) => m.text === marker));
  for (const text of missed) {
    assert.equal(shown.filter((m) => m.text === text).length, 1, `"${text}" shown exactly once`);
  }
  const ids = shown.map((m) => m.id);
  assert.equal(new Set(ids).size, ids.length, 'no message id twice');
  assert.deepEqual(shown.slice(-6).map((m) => m.text), [...missed, marker], 'in the order sent');

  // At a phone's width one pane shows at a time: the room, then (back) the list.
  await bob.page.setViewport({ width: 390, height: 760 });
  const composer = await bob.page.$('[data-testid=composer]').then((el) => el.boundingBox());
  assert.ok(composer && composer.x >= 0 && composer.x + composer.width <= 390, 'composer fits the width');
  assert.equal(await bob.page.$('[data-testid=room-list]').then((el) => el.boundingBox()), null, 'list hidden in a room');
  await bob.page.click('.back');
  await bob.page.waitForSelector(`${bobsItem} button`, { visible: true, timeout: WAIT });
});
