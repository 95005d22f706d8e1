'use strict';
// Test harness: an isolated environment (chat-testenv), a projector, a receipts worker and an
// edge started as real processes from target/debug, HS256 tokens signed here, and small helpers
// around the real @stomp/stompjs client and a raw `ws` socket.
//
// Every wait is bounded (DEFAULT_TIMEOUT unless said otherwise), so a missing or broken /ws
// endpoint makes tests fail quickly with a message saying what was awaited.

const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const readline = require('node:readline');

const WebSocket = require('ws');
const { Client } = require('@stomp/stompjs');

// stompjs opens its socket with `new WebSocket(url, ['v12.stomp', 'v11.stomp', 'v10.stomp'])`.
Object.assign(global, { WebSocket });

const ROOT = path.resolve(__dirname, '..', '..');
const BIN_DIR = process.env.CHAT_BIN_DIR || path.join(ROOT, 'target', 'debug');
const LOG_DIR = path.join(__dirname, '.logs');
const DEFAULT_TIMEOUT = 5000;

// ---------------------------------------------------------------------------------------------
// small utilities

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves with `promise`, or rejects after `ms` with an error naming `what`. */
function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

function uniqueId(prefix = 'x') {
  return `${prefix}-${crypto.randomUUID()}`;
}

/** A user id unique to this run, so tests never share state by accident. */
function user(name) {
  return `${name}.${crypto.randomBytes(4).toString('hex')}`;
}

/** STOMP 1.2 header unescaping (`\r`, `\n`, `\c`, `\\`). */
function unescapeHeader(value) {
  return value.replace(/\\([rnc\\])/g, (_, c) => ({ r: '\r', n: '\n', c: ':', '\\': '\\' })[c]);
}

// ---------------------------------------------------------------------------------------------
// tokens

function b64url(data) {
  return Buffer.from(data).toString('base64url');
}

/**
 * An HS256 JWT. `claims` overrides the defaults `{sub, exp: now + 1 h}`; `secret` defaults to the
 * suite's secret (pass another one for a wrongly signed token).
 */
function signToken(sub, { ttlSeconds = 3600, claims = {}, secret } = {}) {
  const header = { alg: 'HS256', typ: 'JWT' };
  const payload = { sub, exp: Math.floor(Date.now() / 1000) + ttlSeconds, ...claims };
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  const signature = crypto
    .createHmac('sha256', secret || env().secret)
    .update(signingInput)
    .digest('base64url');
  return `${signingInput}.${signature}`;
}

const tokenFor = (sub) => signToken(sub);
const expiredToken = (sub) => signToken(sub, { ttlSeconds: -60 });
const wronglySignedToken = (sub) => signToken(sub, { secret: 'not-the-secret-' + crypto.randomUUID() });

// ---------------------------------------------------------------------------------------------
// the environment: chat-testenv + projector + edge

let current = null;
const children = new Set();

// Children never outlive the test process, even when it crashes; chat-testenv then sees its
// standard input close and removes the environment.
process.on('exit', () => {
  for (const child of children) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
});

function binary(name) {
  const file = path.join(BIN_DIR, name);
  if (!fs.existsSync(file)) {
    throw new Error(
      `${file} is missing: run \`cargo build --workspace\` at the repository root first ` +
        '(scripts/test does)',
    );
  }
  return file;
}

function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

function logFile(name) {
  fs.mkdirSync(LOG_DIR, { recursive: true });
  // One log per test file and service, overwritten by the next run.
  const suite = path.basename((require.main && require.main.filename) || 'suite', '.js');
  const file = path.join(LOG_DIR, `${suite}.${name}.log`);
  return { file, fd: fs.openSync(file, 'w') };
}

/** Spawns chat-testenv and resolves with its CHAT_* variables. */
function startTestEnv() {
  const child = track(
    spawn(binary('chat-testenv'), [], { stdio: ['pipe', 'pipe', 'inherit'], cwd: ROOT }),
  );
  const line = new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.once('line', (text) => {
      lines.close();
      try {
        resolve(JSON.parse(text));
      } catch (e) {
        reject(new Error(`chat-testenv printed ${JSON.stringify(text)}: ${e.message}`));
      }
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      reject(new Error(`chat-testenv exited (${code}) before printing its environment; ` +
        'are the servers running? (scripts/servers up)')),
    );
  });
  return withTimeout(line, 60000, 'chat-testenv to print its environment').then((vars) => ({
    child,
    vars,
  }));
}

function spawnService(name, vars, args = []) {
  const log = logFile(name);
  const child = track(
    spawn(binary(name), args, {
      env: { ...process.env, ...vars },
      stdio: ['ignore', log.fd, log.fd],
      cwd: ROOT,
    }),
  );
  fs.closeSync(log.fd);
  child.logFile = log.file;
  return child;
}

async function waitHealthy(baseUrl, edge) {
  const deadline = Date.now() + 30000;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (edge.exitCode !== null) {
      throw new Error(`edge exited with ${edge.exitCode}; see ${edge.logFile}`);
    }
    try {
      const res = await fetch(`${baseUrl}/healthz`, { signal: AbortSignal.timeout(1000) });
      if (res.ok) return;
      last = `status ${res.status}`;
    } catch (e) {
      last = e.message;
    }
    await sleep(100);
  }
  throw new Error(`edge at ${baseUrl} not healthy within 30 s (${last}); see ${edge.logFile}`);
}

/**
 * Starts everything; call from `before()`. Resolves with the environment. `extraVars` are more
 * CHAT_* settings for the services (the web test turns on the development login with them).
 */
async function startEnv(extraVars = {}) {
  if (current) return current;
  const { child: testenv, vars } = await startTestEnv();
  const port = await freePort();
  const secret = crypto.randomBytes(32).toString('hex');
  const serviceVars = {
    ...vars,
    CHAT_JWT_SECRET: secret,
    CHAT_EDGE__LISTEN: `127.0.0.1:${port}`,
    ...extraVars,
  };
  const projector = spawnService('projector', serviceVars);
  const receipts = spawnService('receipts', serviceVars);
  const edge = spawnService('edge', serviceVars);
  const baseUrl = `http://127.0.0.1:${port}`;
  current = {
    testenv,
    projector,
    receipts,
    edge,
    vars: serviceVars,
    secret,
    baseUrl,
    wsUrl: `ws://127.0.0.1:${port}/ws`,
  };
  await waitHealthy(baseUrl, edge);
  return current;
}

function env() {
  if (!current) throw new Error('startEnv() has not run (call it in before())');
  return current;
}

function waitExit(child, ms) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return withTimeout(new Promise((resolve) => child.once('exit', resolve)), ms, 'exit').catch(
    () => child.kill('SIGKILL'),
  );
}

/** Stops the edge and the workers, then lets chat-testenv clean up; call from `after()`. */
async function stopEnv() {
  if (!current) return;
  const { edge, projector, receipts, testenv } = current;
  current = null;
  for (const child of [edge, projector, receipts]) child.kill('SIGTERM');
  await Promise.all([waitExit(edge, 5000), waitExit(projector, 5000), waitExit(receipts, 5000)]);
  testenv.stdin.end();
  await waitExit(testenv, 60000);
}

// ---------------------------------------------------------------------------------------------
// HTTP API

async function api(method, urlPath, { token, user: asUser, body, headers = {} } = {}) {
  const auth = token !== undefined ? token : asUser !== undefined ? tokenFor(asUser) : undefined;
  const res = await fetch(`${env().baseUrl}${urlPath}`, {
    method,
    headers: {
      ...(auth !== undefined ? { authorization: `Bearer ${auth}` } : {}),
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
    },
    body: body !== undefined ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(15000),
  });
  const text = await res.text();
  let json = null;
  if (text) {
    try {
      json = JSON.parse(text);
    } catch {
      json = text;
    }
  }
  return { status: res.status, headers: res.headers, body: json };
}

async function expectStatus(promise, expected, what) {
  const res = await promise;
  if (res.status !== expected) {
    throw new Error(`${what}: expected HTTP ${expected}, got ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

/** Creates a GROUP room of `creator` and `members`; resolves with the Room. */
function createGroup(creator, members, name = 'room') {
  return expectStatus(
    api('POST', '/api/rooms', { user: creator, body: { type: 'GROUP', name, userIds: members } }),
    201,
    'POST /api/rooms',
  );
}

/** Sends a CHAT through HTTP; resolves with the Message. */
function sendHttp(sender, roomId, content, clientMessageId) {
  return expectStatus(
    api('POST', `/api/rooms/${roomId}/messages`, {
      user: sender,
      body: clientMessageId === undefined ? { content } : { content, clientMessageId },
    }),
    201,
    'POST /api/rooms/{roomId}/messages',
  );
}

function inviteHttp(inviter, roomId, userIds) {
  return expectStatus(
    api('POST', `/api/rooms/${roomId}/members`, { user: inviter, body: { userIds } }),
    200,
    'POST /api/rooms/{roomId}/members',
  );
}

function leaveHttp(leaver, roomId) {
  return expectStatus(
    api('DELETE', `/api/rooms/${roomId}/members/me`, { user: leaver }),
    204,
    'DELETE /api/rooms/{roomId}/members/me',
  );
}

/** The room's whole history, oldest first. */
async function historyHttp(asUser, roomId) {
  const all = [];
  let before = null;
  for (;;) {
    const query = before ? `?limit=100&before=${before}` : '?limit=100';
    const page = await expectStatus(
      api('GET', `/api/rooms/${roomId}/messages${query}`, { user: asUser }),
      200,
      'GET /api/rooms/{roomId}/messages',
    );
    all.push(...page.messages);
    if (!page.nextBefore) break;
    before = page.nextBefore;
  }
  return all.reverse();
}

// ---------------------------------------------------------------------------------------------
// an async queue with bounded waits

class Queue {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    const waiter = this.waiters.findIndex((w) => w.predicate(item));
    if (waiter >= 0) {
      const [w] = this.waiters.splice(waiter, 1);
      w.resolve(item);
    } else {
      this.items.push(item);
    }
  }

  /** The next item (matching `predicate`, earlier non-matching ones are dropped). */
  next(timeout = DEFAULT_TIMEOUT, predicate = () => true, what = this.what) {
    while (this.items.length) {
      const item = this.items.shift();
      if (predicate(item)) return Promise.resolve(item);
    }
    let waiter;
    const promise = new Promise((resolve) => {
      waiter = { predicate, resolve };
      this.waiters.push(waiter);
    });
    return withTimeout(promise, timeout, what).catch((e) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw e;
    });
  }

  /** Fails when an item arrives within `ms`. */
  async none(ms, what = this.what) {
    if (this.items.length) {
      throw new Error(`expected no ${what}, got ${JSON.stringify(this.items[0])}`);
    }
    let item;
    try {
      item = await this.next(ms);
    } catch {
      return;
    }
    throw new Error(`expected no ${what} within ${ms} ms, got ${describe(item)}`);
  }
}

function describe(item) {
  if (item && item.command) {
    return `${item.command} ${JSON.stringify(item.headers)} ${item.body}`;
  }
  return JSON.stringify(item);
}

// ---------------------------------------------------------------------------------------------
// stompjs connections

/** A MESSAGE frame of a subscription, with its JSON body parsed into `event`. */
function toMessage(frame) {
  let event;
  try {
    event = JSON.parse(frame.body);
  } catch {
    event = undefined;
  }
  return { command: frame.command, headers: { ...frame.headers }, body: frame.body, event };
}

class Subscription {
  constructor(conn, destination, headers) {
    this.conn = conn;
    this.destination = destination;
    this.messages = new Queue(`a MESSAGE on ${destination}`);
    // Presence (INFO, OUT) comes on its own queue, so tests about other events ignore it.
    this.presence = new Queue(`an INFO or OUT on ${destination}`);
    this.stomp = conn.client.subscribe(
      destination,
      (frame) => {
        const message = toMessage(frame);
        const type = message.event && message.event.type;
        (type === 'INFO' || type === 'OUT' ? this.presence : this.messages).push(message);
      },
      headers,
    );
    this.id = this.stomp.id;
  }

  /** The next MESSAGE (optionally the next one matching `predicate`). */
  next(timeout = DEFAULT_TIMEOUT, predicate) {
    return this.messages.next(timeout, predicate);
  }

  /** The next MESSAGE whose event has `content` (others are skipped). */
  nextWithContent(content, timeout = DEFAULT_TIMEOUT) {
    return this.messages.next(
      timeout,
      (m) => m.event && m.event.content === content,
      `a MESSAGE with content ${JSON.stringify(content)} on ${this.destination}`,
    );
  }

  none(ms) {
    return this.messages.none(ms);
  }

  unsubscribe(headers) {
    this.stomp.unsubscribe(headers);
  }
}

class Connection {
  /**
   * Opens a stompjs client. `token` (or a token for `user`) goes into the CONNECT frame's
   * Authorization header unless `opts.connectHeaders` is given. Does not wait for CONNECTED:
   * use `connect()` for that.
   */
  constructor({ userId, token, connectHeaders, heartbeatIncoming = 0, heartbeatOutgoing = 0, ...rest } = {}) {
    this.userId = userId;
    this.debugLog = [];
    this.frames = new Queue('a frame');
    this.errors = new Queue('an ERROR frame');
    this.receipts = new Queue('a RECEIPT frame');
    this.heartbeatsReceived = 0;
    this.closeEvent = null;
    const headers =
      connectHeaders !== undefined
        ? connectHeaders
        : { Authorization: `Bearer ${token !== undefined ? token : tokenFor(userId)}` };

    let onConnected;
    let onClosed;
    this.connectedPromise = new Promise((resolve, reject) => {
      onConnected = resolve;
      this.rejectConnected = reject;
    });
    this.connectedPromise.catch(() => {});
    this.closedPromise = new Promise((resolve) => {
      onClosed = resolve;
    });

    this.client = new Client({
      brokerURL: env().wsUrl,
      connectHeaders: headers,
      reconnectDelay: 0,
      heartbeatIncoming,
      heartbeatOutgoing,
      debug: (msg) => this.debugLog.push(`${Date.now()} ${msg}`),
      onConnect: (frame) => {
        this.connectedFrame = frame;
        onConnected(frame);
      },
      onStompError: (frame) => {
        // stompjs unescapes headers only once it knows the session is STOMP 1.2: an ERROR
        // answering CONNECT arrives before that.
        const headersOut = { ...frame.headers };
        if (!this.connectedFrame) {
          for (const k of Object.keys(headersOut)) headersOut[k] = unescapeHeader(headersOut[k]);
        }
        const error = { command: 'ERROR', headers: headersOut, body: frame.body };
        this.errors.push(error);
        this.rejectConnected(new Error(`ERROR instead of CONNECTED: ${describe(error)}`));
      },
      onUnhandledReceipt: (frame) => {
        this.receipts.push({ command: 'RECEIPT', headers: { ...frame.headers }, body: frame.body });
      },
      onUnhandledMessage: (frame) => {
        this.frames.push(toMessage(frame));
      },
      onUnhandledFrame: (frame) => {
        this.frames.push({ command: frame.command, headers: { ...frame.headers }, body: frame.body });
      },
      onHeartbeatReceived: () => {
        this.heartbeatsReceived += 1;
      },
      onWebSocketClose: (event) => {
        this.closeEvent = { code: event.code, reason: String(event.reason || '') };
        this.rejectConnected(
          new Error(`WebSocket closed (code ${event.code}) before CONNECTED; client log:\n  ${this.debugLog.slice(-8).join('\n  ')}`),
        );
        onClosed(this.closeEvent);
      },
      onWebSocketError: (event) => {
        // followed by onWebSocketClose
        this.debugLog.push(`${Date.now()} WebSocket error: ${(event && event.message) || event}`);
      },
      ...rest,
    });
    this.client.activate();
  }

  get webSocket() {
    return this.client.webSocket;
  }

  /** Resolves with the CONNECTED frame. */
  connected(timeout = DEFAULT_TIMEOUT) {
    return withTimeout(this.connectedPromise, timeout, `CONNECTED for ${this.userId}`);
  }

  subscribe(destination, headers = {}) {
    return new Subscription(this, destination, headers);
  }

  /** SENDs a chat message to a room. */
  send(roomId, body, headers = {}) {
    this.client.publish({
      destination: `/pub/rooms/${roomId}/messages`,
      body: typeof body === 'string' ? body : JSON.stringify(body),
      headers,
    });
  }

  /** Resolves with the RECEIPT whose receipt-id is `receiptId`. */
  receipt(receiptId, timeout = DEFAULT_TIMEOUT) {
    const promise = new Promise((resolve) => {
      this.client.watchForReceipt(receiptId, (frame) =>
        resolve({ command: 'RECEIPT', headers: { ...frame.headers }, body: frame.body }),
      );
    });
    return withTimeout(promise, timeout, `RECEIPT ${receiptId}`);
  }

  /** SENDs with a receipt and waits for it. */
  async sendWithReceipt(roomId, body, timeout = DEFAULT_TIMEOUT) {
    const receiptId = uniqueId('r');
    const receipt = this.receipt(receiptId, timeout);
    this.send(roomId, body, { receipt: receiptId });
    return receipt;
  }

  /** Resolves with the next ERROR frame. */
  error(timeout = DEFAULT_TIMEOUT) {
    return this.errors.next(timeout);
  }

  /** Resolves when the WebSocket is closed. */
  closed(timeout = DEFAULT_TIMEOUT) {
    return withTimeout(this.closedPromise, timeout, 'the WebSocket to close');
  }

  get isOpen() {
    return this.closeEvent === null && this.webSocket && this.webSocket.readyState === WebSocket.OPEN;
  }

  async close() {
    try {
      await withTimeout(this.client.deactivate({ force: !this.isOpen }), 3000, 'deactivate');
    } catch {
      await this.client.deactivate({ force: true }).catch(() => {});
    }
  }
}

/** Opens a connection and waits for CONNECTED. */
async function connect(userId, opts = {}) {
  const conn = new Connection({ userId, ...opts });
  try {
    await conn.connected(opts.timeout);
  } catch (e) {
    await conn.close();
    throw e;
  }
  return conn;
}

/** Opens a connection that is closed again when the test `t` ends. */
async function open(t, userId, opts) {
  const conn = await connect(userId, opts);
  t.after(() => conn.close());
  return conn;
}

/**
 * SUBSCRIBEs with a receipt and waits for it, so the subscription (and, for a room, the user's
 * presence) is in place before the test goes on.
 */
async function subscribed(conn, destination, headers = {}) {
  const receiptId = uniqueId('sub');
  const receipt = conn.receipt(receiptId);
  const sub = conn.subscribe(destination, { ...headers, receipt: receiptId });
  await receipt;
  return sub;
}

// ---------------------------------------------------------------------------------------------
// raw WebSocket connections (for frames stompjs cannot produce)

/** Parses one server frame (the edge sends exactly one frame, or "\n", per message). */
function parseFrame(text) {
  if (text === '\n' || text === '\r\n') return { command: 'HEARTBEAT', headers: {}, body: '' };
  const nul = text.indexOf('\0');
  if (nul < 0) throw new Error(`frame without NUL: ${JSON.stringify(text)}`);
  if (text.slice(nul + 1).replace(/[\r\n]/g, '') !== '') {
    throw new Error(`more than one frame in one WebSocket message: ${JSON.stringify(text)}`);
  }
  const headEnd = text.search(/\r?\n\r?\n/);
  const head = text.slice(0, headEnd);
  const bodyStart = text.slice(headEnd).match(/^\r?\n\r?\n/)[0].length + headEnd;
  const [command, ...lines] = head.split(/\r?\n/);
  const headers = {};
  const verbatim = command === 'CONNECTED';
  for (const line of lines) {
    const colon = line.indexOf(':');
    const name = verbatim ? line.slice(0, colon) : unescapeHeader(line.slice(0, colon));
    const value = verbatim ? line.slice(colon + 1) : unescapeHeader(line.slice(colon + 1));
    if (!(name in headers)) headers[name] = value;
  }
  return { command, headers, body: text.slice(bodyStart, nul) };
}

class RawConnection {
  constructor(protocols = ['v12.stomp']) {
    this.frames = new Queue('a frame');
    this.problems = [];
    this.closeEvent = null;
    this.ws = new WebSocket(env().wsUrl, protocols);
    this.opened = withTimeout(
      new Promise((resolve, reject) => {
        this.ws.once('open', resolve);
        this.ws.once('error', reject);
      }),
      DEFAULT_TIMEOUT,
      'the WebSocket to open',
    );
    this.opened.catch(() => {});
    this.closedPromise = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        this.closeEvent = { code, reason: reason.toString() };
        resolve(this.closeEvent);
      });
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      const text = data.toString('utf8');
      if (isBinary) this.problems.push(`binary WebSocket message from the edge: ${JSON.stringify(text)}`);
      try {
        const frame = parseFrame(text);
        if (frame.command !== 'HEARTBEAT') this.frames.push(frame);
      } catch (e) {
        this.problems.push(e.message);
      }
    });
  }

  /** Sends `data` (a string or Buffer) as one WebSocket message. */
  send(data, { binary = false } = {}) {
    this.ws.send(data, { binary });
  }

  /** Sends CONNECT for `userId` and waits for CONNECTED. */
  async connect(userId, extraHeaders = '') {
    await this.opened;
    this.send(`CONNECT\naccept-version:1.2\nAuthorization:Bearer ${tokenFor(userId)}\n${extraHeaders}\n\0`);
    const frame = await this.next();
    if (frame.command !== 'CONNECTED') throw new Error(`expected CONNECTED, got ${describe(frame)}`);
    return frame;
  }

  next(timeout = DEFAULT_TIMEOUT) {
    return this.frames.next(timeout);
  }

  closed(timeout = DEFAULT_TIMEOUT) {
    return withTimeout(this.closedPromise, timeout, 'the WebSocket to close');
  }

  close() {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) {
      this.ws.terminate();
    }
  }
}

module.exports = {
  DEFAULT_TIMEOUT,
  Connection,
  RawConnection,
  api,
  connect,
  createGroup,
  env,
  expectStatus,
  expiredToken,
  historyHttp,
  inviteHttp,
  leaveHttp,
  open,
  parseFrame,
  sendHttp,
  signToken,
  sleep,
  ROOT,
  startEnv,
  stopEnv,
  subscribed,
  tokenFor,
  uniqueId,
  unescapeHeader,
  user,
  withTimeout,
  wronglySignedToken,
};
