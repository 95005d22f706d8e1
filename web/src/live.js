// The STOMP connection (docs/protocol.md): one socket per signed-in tab, reconnected with
// exponential backoff. After every (re)connect it subscribes again to the user feed and to each
// open room with `since` = the last stored event seen, and resends every SEND that got no
// RECEIPT with its `clientMessageId`, so nothing is missed and nothing is stored twice.
import { Client, ReconnectionTimeMode } from '@stomp/stompjs';
import { compareIds } from './api.js';

/** The kinds of room events that are stored in the log, so that `since` may name them. */
const STORED = new Set(['CHAT', 'INVITE', 'LEAVE', 'DELETE', 'REACTION', 'EDIT']);

/** ERROR codes after which a SEND may have been stored: resend it (docs/protocol.md). */
const UNKNOWN_OUTCOME = new Set(['UNAVAILABLE']);

export class Live {
  /**
   * `handlers`: onFeed(event), onFeedReady(), onRoom(event, meta), onRoomSubscribing(roomId),
   * onRoomReady(roomId), onReceipt(clientMessageId), onRefused(clientMessageId, message),
   * onStatus(connected), onError(message). `meta` is { id, catchUp, fresh }: the frame's
   * `message-id`; whether it came before the subscription's RECEIPT (the `since` replay); and
   * whether that replay follows the history read when the room was opened (not a reconnect).
   */
  constructor(token, userId, handlers) {
    this.userId = userId;
    this.handlers = handlers;
    /** roomId → { since, subscription, fresh } for every open room. */
    this.rooms = new Map();
    /** clientMessageId → { roomId, body }: SENDs still waiting for their RECEIPT. */
    this.outbox = new Map();
    /** Numbers the room subscriptions' receipts, so an old one never answers a new one. */
    this.receipts = 0;
    const url = new URL('/ws', location.href);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    this.client = new Client({
      brokerURL: url.href,
      connectHeaders: { Authorization: `Bearer ${token}` },
      heartbeatIncoming: 10000,
      heartbeatOutgoing: 10000,
      reconnectDelay: 500,
      maxReconnectDelay: 8000,
      reconnectTimeMode: ReconnectionTimeMode.EXPONENTIAL,
      onConnect: () => this.#connected(),
      onWebSocketClose: () => handlers.onStatus(false),
      onStompError: (frame) => this.#stompError(frame),
    });
    this.client.activate();
  }

  /**
   * The feed has no `since`: what it said before its subscription (at sign-in, or while the
   * socket was down) is lost. Its RECEIPT is when the room list can be read again with nothing
   * missed, and when the page says it is connected.
   */
  #connected() {
    const feedReceipt = `feed-${++this.receipts}`;
    this.client.watchForReceipt(feedReceipt, () => {
      this.handlers.onStatus(true);
      this.handlers.onFeedReady();
    });
    this.client.subscribe(`/sub/users/${this.userId}`, (m) => this.handlers.onFeed(JSON.parse(m.body)),
      { receipt: feedReceipt });
    for (const roomId of this.rooms.keys()) this.#subscribeRoom(roomId);
    for (const [clientMessageId, { roomId, body }] of this.outbox) {
      this.#send(roomId, body, clientMessageId);
    }
  }

  /**
   * An ERROR that refuses a SEND means it is not stored and never will be: resending it would
   * only be refused again (docs/protocol.md, "After an ERROR"), so it leaves the outbox.
   */
  #stompError(frame) {
    const message = frame.headers.message ?? 'STOMP ERROR';
    const code = message.split(':')[0].trim();
    const receiptId = frame.headers['receipt-id'] ?? '';
    const clientMessageId = receiptId.startsWith('send-') ? receiptId.slice(5) : null;
    if (clientMessageId && this.outbox.has(clientMessageId) && !UNKNOWN_OUTCOME.has(code)) {
      this.outbox.delete(clientMessageId);
      this.handlers.onRefused(clientMessageId, message);
      return;
    }
    this.handlers.onError(message);
  }

  /** Opens a room: its events from after `since` (a stored message id, or null) on. */
  openRoom(roomId, since) {
    this.rooms.set(roomId, { since, subscription: null, fresh: true });
    if (this.client.connected) this.#subscribeRoom(roomId);
  }

  /** Closes a room: the user is no longer in it (OUT for the others). */
  closeRoom(roomId) {
    const room = this.rooms.get(roomId);
    this.rooms.delete(roomId);
    if (room?.subscription && this.client.connected) room.subscription.unsubscribe();
  }

  /**
   * Subscribes with a receipt: the edge sends the `since` replay before the RECEIPT and live
   * events after it, and answers it once the user's presence is in the room's log, which is
   * when a presence snapshot can be read (docs/protocol.md, docs/api.md).
   */
  #subscribeRoom(roomId) {
    const room = this.rooms.get(roomId);
    const receipt = `room-${roomId}-${++this.receipts}`;
    const headers = room.since ? { since: room.since, receipt } : { receipt };
    let catchUp = true;
    this.handlers.onRoomSubscribing(roomId);
    this.client.watchForReceipt(receipt, () => {
      catchUp = false;
      if (this.rooms.get(roomId) !== room) return;
      room.fresh = false;
      this.handlers.onRoomReady(roomId);
    });
    room.subscription = this.client.subscribe(
      `/sub/rooms/${roomId}`,
      (m) => {
        const event = JSON.parse(m.body);
        const id = m.headers['message-id'];
        if (STORED.has(event.type) && (!room.since || compareIds(id, room.since) > 0)) {
          room.since = id;
        }
        this.handlers.onRoom(event, { id, catchUp, fresh: catchUp && room.fresh });
      },
      headers,
    );
  }

  /**
   * Sends a CHAT (`body`: content, optional replyTo and mentions); it stays in the outbox, and
   * is resent after a reconnect, until its RECEIPT.
   */
  send(roomId, body, clientMessageId) {
    this.outbox.set(clientMessageId, { roomId, body });
    if (this.client.connected) this.#send(roomId, body, clientMessageId);
  }

  #send(roomId, body, clientMessageId) {
    const receipt = `send-${clientMessageId}`;
    this.client.watchForReceipt(receipt, () => {
      this.outbox.delete(clientMessageId);
      this.handlers.onReceipt(clientMessageId);
    });
    this.client.publish({
      destination: `/pub/rooms/${roomId}/messages`,
      headers: { receipt, 'content-type': 'application/json' },
      body: JSON.stringify({ ...body, clientMessageId }),
    });
  }

  /**
   * Says the user is (or stopped) typing in a room. Live only and best effort: while the socket
   * is down there is nobody to tell, and the edge ends a stale signal itself after 6 s.
   */
  typing(roomId, typing) {
    if (!this.client.connected) return;
    this.client.publish({
      destination: `/pub/rooms/${roomId}/typing`,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ typing }),
    });
  }

  /** Ends the connection for good (sign-out). */
  stop() {
    this.client.deactivate();
  }
}
