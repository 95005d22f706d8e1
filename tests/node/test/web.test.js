'use strict';
// The web client (web/) in headless Chromium, against the real services: two users in two
// browser contexts create a room and chat in Korean, see the unread "1" go when the other enters
// and a deletion reach both, and one user's socket is cut while the other sends 5 messages,
// which then appear exactly once. Then typing, a reply, reactions and an edit reach both users;
// who is in the room comes from the presence snapshot, also after a reconnect; and a message
// written while the sender's socket is down is stored once after the reconnect. Also saves
// docs/web-room.png, a screenshot of the room view.
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

/**
 * The messages shown, in order: ids, texts and unread counts, and the reply quote, the edited
 * mark, the reaction chips and the mentions of each.
 */
function messages(page) {
  return page.$$eval('[data-testid=message]', (els) =>
    els.map((el) => ({
      id: el.dataset.messageId ?? null,
      clientMessageId: el.dataset.clientMessageId ?? null,
      state: el.dataset.state,
      text: el.querySelector('.content').textContent,
      unread: el.querySelector('[data-testid=unread-count]')?.textContent ?? null,
      quote: el.querySelector('[data-testid=reply-quote]')?.textContent ?? null,
      edited: Boolean(el.querySelector('[data-testid=edited]')),
      reactions: [...el.querySelectorAll('[data-testid=reaction]')].map((chip) => ({
        emoji: chip.dataset.emoji,
        text: chip.textContent,
        me: chip.getAttribute('aria-pressed') === 'true',
      })),
      mentions: [...el.querySelectorAll('[data-testid=mention]')].map((m) => m.textContent),
    })),
  );
}

/**
 * Reads `read(page)` until `predicate` holds of it and resolves with it; after WAIT, fails
 * naming `what` and the last reading (`label`).
 */
async function waitReading(page, read, label, what, predicate) {
  const deadline = Date.now() + WAIT;
  let last;
  while (Date.now() < deadline) {
    last = await read(page);
    if (predicate(last)) return last;
    await h.sleep(50); // the poll interval of a bounded wait
  }
  throw new Error(`timed out waiting for ${what}; ${label}: ${JSON.stringify(last)}`);
}

/** Waits until `predicate(messages)` holds in the page. */
function waitMessages(page, what, predicate) {
  return waitReading(page, messages, 'messages', what, predicate);
}

async function typeAndEnter(page, text) {
  await page.focus('[data-testid=composer]');
  await page.keyboard.sendCharacter(text);
  await page.keyboard.press('Enter');
}

const badge = (page) => page.$eval('[data-testid=badge]', (el) => (el.hidden ? '0' : el.textContent));

/** Waits until the page's status line says the socket is up (or, with `up` false, down). */
function waitConnected(page, up = true) {
  return page.waitForFunction(
    (want) => (document.getElementById('status')?.textContent === '연결됨') === want,
    { timeout: WAIT }, up);
}

/** The user ids the room header lists as here now. */
async function present(page) {
  const text = await page.evaluate(() => document.querySelector('[data-testid=present]')?.textContent ?? '');
  return text.replace(/^[^:]*:\s*/, '').split(', ').filter(Boolean);
}

/** Waits until `predicate(present ids)` holds in the page. */
function waitPresent(page, what, predicate) {
  return waitReading(page, present, 'present', what, predicate);
}

/**
 * Alice creates a DIRECT room with Bob in the page (so she is in it); Bob opens it too unless
 * `bobOpens` is false. Resolves with the room id and the selector of Bob's list entry.
 */
async function directRoom(alice, bob, { bobOpens = true } = {}) {
  await alice.page.select('#new-type', 'DIRECT');
  await alice.page.type('#new-users', bob.userId);
  await alice.page.click('[data-testid=create-room]');
  await alice.page.waitForSelector('[data-testid=room-item] [aria-current=true]', { timeout: WAIT });
  const roomId = await alice.page.$eval('[data-testid=room-item]:has([aria-current=true])', (el) => el.dataset.roomId);
  const bobsItem = `[data-testid=room-item][data-room-id="${roomId}"]`;
  await bob.page.waitForSelector(bobsItem, { timeout: WAIT });
  if (bobOpens) {
    await bob.page.click(`${bobsItem} button`);
    await bob.page.waitForSelector('[data-testid=composer]', { timeout: WAIT });
  }
  return { roomId, bobsItem };
}

/** Sends `text` from the page and resolves with the stored message once both pages show it. */
async function sendAndSee(from, to, text) {
  await typeAndEnter(from.page, text);
  const stored = (ms) => ms.find((m) => m.text === text && m.id);
  const mine = stored(await waitMessages(from.page, `"${text}" stored`, stored));
  await waitMessages(to.page, `"${text}" on the other side`, (ms) => ms.some((m) => m.id === mine.id));
  return mine;
}

/** The selector of an element inside the message `id`. */
const inMessage = (id, testid) => `[data-testid=message][data-message-id="${id}"] [data-testid=${testid}]`;

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

  // Bob is not in the room: Alice's message (it mentions him) shows "1", and Bob's badge counts
  // it, his room list entry the mention.
  const hello = `안녕하세요, @${bob.userId} 님! 이사 잘 하셨어요? 🏠✨`;
  await typeAndEnter(alice.page, hello);
  await waitMessages(alice.page, 'the first message, sent, unread by 1', (ms) =>
    ms.length === 1 && ms[0].text === hello && ms[0].id && ms[0].unread === '1');
  await bob.page.waitForFunction(() => document.querySelector('[data-testid=badge]').textContent === '1' &&
    !document.querySelector('[data-testid=badge]').hidden, { timeout: WAIT });
  await bob.page.waitForSelector(`${bobsItem} [data-testid=mention-count]`, { timeout: WAIT });
  assert.equal(await bob.page.$eval(`${bobsItem} [data-testid=mention-count]`, (el) => el.textContent), '@1');

  // Bob enters: the "1" disappears on Alice's side (INFO), his badge and mention count go to 0,
  // and the mention of him is marked.
  await bob.page.click(`${bobsItem} button`);
  const [greeting] = (await waitMessages(bob.page, "Alice's message in Bob's view", (ms) =>
    ms.some((m) => m.text === hello))).filter((m) => m.text === hello);
  assert.deepEqual(greeting.mentions, [`@${bob.userId}`]);
  await waitMessages(alice.page, 'the "1" to disappear', (ms) => ms[0].unread === null);
  assert.equal(await badge(bob.page), '0');
  assert.equal(await bob.page.$(`${bobsItem} [data-testid=mention-count]`), null, 'no mention count in the room');

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

test('typing, a reply, reactions and an edit reach both users', async () => {
  const alice = await signIn('alice');
  const bob = await signIn('bob');
  await directRoom(alice, bob);
  const question = '이번 주 토요일 저녁 7시에 집들이 어때요? 🍕';
  const asked = await sendAndSee(alice, bob, question);

  // Bob answers Alice's message: the composer shows the quote while he types, and Alice sees
  // that he is typing until he sends.
  await bob.page.click(inMessage(asked.id, 'reply'));
  await bob.page.waitForSelector('[data-testid=reply-bar]:not([hidden])', { timeout: WAIT });
  await bob.page.focus('[data-testid=composer]');
  const answer = `@${alice.userId} 좋아요! 케이크는 제가 가져갈게요 🎂`;
  for (const ch of answer) await bob.page.keyboard.sendCharacter(ch);
  await alice.page.waitForFunction(
    (who) => {
      const el = document.querySelector('[data-testid=typing]');
      return el && !el.hidden && el.textContent === `${who}님이 입력 중…`;
    },
    { timeout: WAIT }, bob.userId);
  await bob.page.keyboard.press('Enter');
  const sentAt = Date.now();
  await alice.page.waitForFunction(() => document.querySelector('[data-testid=typing]').hidden, { timeout: WAIT });
  assert.ok(Date.now() - sentAt < 3000, 'the indicator goes with the send, not by its 7 s timeout');
  assert.ok(await bob.page.$eval('[data-testid=reply-bar]', (el) => el.hidden), 'the quote left the composer');
  const quote = `${alice.userId}${question}`;
  let reply;
  for (const { page } of [alice, bob]) {
    const shown = await waitMessages(page, 'the reply with its quote', (ms) => ms.some((m) => m.text === answer && m.id));
    reply = shown.find((m) => m.text === answer);
    assert.equal(reply.quote, quote);
    assert.deepEqual(reply.mentions, [`@${alice.userId}`]);
  }

  // Alice reacts with 👍 from the picker: one chip for both, pressed only for her. Bob adds
  // his by the chip (2), then takes it back (1 again).
  await alice.page.click(inMessage(reply.id, 'react-open'));
  await alice.page.click(`${inMessage(reply.id, 'react')}[data-emoji="👍"]`);
  const chips = (page, expected, what) => waitMessages(page, what, (ms) =>
    JSON.stringify(ms.find((m) => m.id === reply.id).reactions) === JSON.stringify(expected));
  await chips(alice.page, [{ emoji: '👍', text: '👍 1', me: true }], "Alice's chip, hers");
  await chips(bob.page, [{ emoji: '👍', text: '👍 1', me: false }], "Alice's chip in Bob's view");
  await bob.page.click(`${inMessage(reply.id, 'reaction')}[data-emoji="👍"]`);
  await chips(bob.page, [{ emoji: '👍', text: '👍 2', me: true }], "Bob's reaction added");
  await chips(alice.page, [{ emoji: '👍', text: '👍 2', me: true }], "Bob's reaction in Alice's view");
  await bob.page.click(`${inMessage(reply.id, 'reaction')}[data-emoji="👍"]`);
  await chips(bob.page, [{ emoji: '👍', text: '👍 1', me: false }], "Bob's reaction taken back");
  await chips(alice.page, [{ emoji: '👍', text: '👍 1', me: true }], "Bob's reaction gone in Alice's view");

  // Alice edits her question inline (Enter saves): the new text and (수정됨) for both. An
  // empty edit is refused by the API, whose error shows in the alert area.
  await alice.page.click(inMessage(asked.id, 'edit'));
  await alice.page.waitForSelector('[data-testid=edit-input]', { timeout: WAIT });
  await alice.page.keyboard.down('Control');
  await alice.page.keyboard.press('KeyA');
  await alice.page.keyboard.up('Control');
  await alice.page.keyboard.press('Backspace');
  await alice.page.keyboard.press('Enter');
  await alice.page.waitForFunction(() => /EMPTY_CONTENT/.test(document.getElementById('error').textContent), { timeout: WAIT });
  const edited = '이번 주 토요일 저녁 8시에 집들이 어때요? 🍕';
  await alice.page.keyboard.sendCharacter(edited);
  await alice.page.keyboard.press('Enter');
  for (const { page } of [alice, bob]) {
    await waitMessages(page, 'the edited text', (ms) => ms.some((m) => m.id === asked.id && m.text === edited && m.edited));
  }
  assert.equal(await alice.page.$('[data-testid=edit-input]'), null, 'the editor closed');
  assert.equal(await alice.page.$eval('#error', (el) => el.textContent), '', 'the alert cleared by the saved edit');

  await alice.page.focus('[data-testid=composer]');
  await alice.page.screenshot({ path: SCREENSHOT });
});

test('who is here comes from the presence snapshot, also after a reconnect', async () => {
  const alice = await signIn('alice');
  const bob = await signIn('bob');
  await directRoom(alice, bob, { bobOpens: false });
  // Alice had the room open before Bob opened it: no INFO of hers reaches him, the snapshot does.
  await bob.page.click(`[data-testid=room-item] button`);
  await waitPresent(bob.page, 'Alice in Bob\'s list', (ids) => ids.includes(alice.userId) && ids.includes(bob.userId));
  await waitPresent(alice.page, 'Bob in Alice\'s list', (ids) => ids.includes(bob.userId));

  // Alice's socket is cut: Bob sees her go (OUT). Meanwhile Bob goes back to the list (OUT that
  // Alice misses). After her reconnect her list is the new snapshot's: Bob is gone, and she is
  // back in his.
  alice.proxy.cut();
  await waitConnected(alice.page, false);
  await waitPresent(bob.page, 'Alice gone from Bob\'s list', (ids) => !ids.includes(alice.userId));
  await bob.page.setViewport({ width: 390, height: 760 });
  await bob.page.click('.back');
  await bob.page.waitForSelector('[data-testid=room-item] button', { visible: true, timeout: WAIT });
  alice.proxy.resume();
  await waitConnected(alice.page);
  await waitPresent(alice.page, 'the snapshot after the reconnect', (ids) => !ids.includes(bob.userId));
  await bob.page.click('[data-testid=room-item] button');
  await waitPresent(bob.page, 'Alice back in Bob\'s list', (ids) => ids.includes(alice.userId));
  await waitPresent(alice.page, 'Bob back in Alice\'s list', (ids) => ids.includes(bob.userId));
});

test('a message written while the sender is offline is stored once after the reconnect', async () => {
  const alice = await signIn('alice');
  const bob = await signIn('bob');
  await directRoom(alice, bob);
  await sendAndSee(alice, bob, '곧 지하철 타요 🚇');

  // Alice's socket is down when she sends: the message waits as pending, with its client id.
  alice.proxy.cut();
  await waitConnected(alice.page, false);
  const offline = '터널이라 신호가 약해요, 도착하면 연락할게요 📶';
  await typeAndEnter(alice.page, offline);
  const [waiting] = (await waitMessages(alice.page, 'the pending copy', (ms) =>
    ms.some((m) => m.text === offline && m.state === 'pending'))).filter((m) => m.text === offline);
  assert.equal(waiting.id, null);
  assert.ok(waiting.clientMessageId, 'the pending copy has its clientMessageId');

  // After the reconnect the outbox resends it with the same clientMessageId: one stored copy.
  alice.proxy.resume();
  await waitConnected(alice.page);
  const marker = '도착 ✅';
  await sendAndSee(alice, bob, marker);
  for (const { page } of [alice, bob]) {
    const shown = await waitMessages(page, 'the resent message, stored', (ms) =>
      ms.some((m) => m.text === offline && m.id) && ms.some((m) => m.text === marker && m.id));
    const copies = shown.filter((m) => m.text === offline);
    assert.equal(copies.length, 1, 'exactly one copy');
    assert.equal(copies[0].clientMessageId, waiting.clientMessageId);
    assert.equal(copies[0].state, 'sent');
    assert.ok(copies[0].id);
    assert.equal(new Set(shown.map((m) => m.id)).size, shown.length, 'no message id twice');
  }
});
