// The STOMP connection (docs/protocol.md): one socket per signed-in tab, reconnected with
// exponential backoff. After every (re)connect it subscribes again to the user feed and to each
// open room with `since` = the last stored event seen, and resends every SEND that got no
// RECEIPT with its `clientMessageId`, so nothing is missed and nothing is stored twice.
import { Client, ReconnectionTimeMode } from '@stomp/stompjs';
import { compareIds } from './api.js';

/** The kinds of room events that are stored in the log, so that `since` may name them. */
const STORED = new Set(['CHAT', 'INVITE', 'LEAVE', 'DELETE']);

export class Live {
  /**
   * `handlers`: onFeed(event), onRoom(event), onReceipt(clientMessageId), onStatus(connected),
   * onError(message).
   */
  constructor(token, userId, handlers) {
    this.userId = userId;
    this.handlers = handlers;
    /** roomId → { since, subscription } for every open room. */
    this.rooms = new Map();
    /** clientMessageId → { roomId, content }: SENDs still waiting for their RECEIPT. */
    this.outbox = new Map();
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
      onStompError: (frame) => handlers.onError(frame.headers.message ?? 'STOMP ERROR'),
    });
    this.client.activate();
  }

  #connected() {
    this.handlers.onStatus(true);
    this.client.subscribe(`/sub/users/${this.userId}`, (m) => this.handlers.onFeed(JSON.parse(m.body)));
    for (const roomId of this.rooms.keys()) this.#subscribeRoom(roomId);
    for (const [clientMessageId, { roomId, content }] of this.outbox) {
      this.#send(roomId, content, clientMessageId);
    }
  }

  /** Opens a room: its events from after `since` (a stored message id, or null) on. */
  openRoom(roomId, since) {
    this.rooms.set(roomId, { since, subscription: null });
    if (this.client.connected) this.#subscribeRoom(roomId);
  }

  /** Closes a room: the user is no longer in it (OUT for the others). */
  closeRoom(roomId) {
    const room = this.rooms.get(roomId);
    this.rooms.delete(roomId);
    if (room?.subscription && this.client.connected) room.subscription.unsubscribe();
  }

  #subscribeRoom(roomId) {
    const room = this.rooms.get(roomId);
    const headers = room.since ? { since: room.since } : {};
    room.subscription = this.client.subscribe(
      `/sub/rooms/${roomId}`,
      (m) => {
        const event = JSON.parse(m.body);
        const id = m.headers['message-id'];
        if (STORED.has(event.type) && (!room.since || compareIds(id, room.since) > 0)) {
          room.since = id;
        }
        this.handlers.onRoom(event);
      },
      headers,
    );
  }

  /** Sends a CHAT; it stays in the outbox, and is resent after a reconnect, until its RECEIPT. */
  send(roomId, content, clientMessageId) {
    this.outbox.set(clientMessageId, { roomId, content });
    if (this.client.connected) this.#send(roomId, content, clientMessageId);
  }

  #send(roomId, content, clientMessageId) {
    const receipt = `send-${clientMessageId}`;
    this.client.watchForReceipt(receipt, () => {
      this.outbox.delete(clientMessageId);
      this.handlers.onReceipt(clientMessageId);
    });
    this.client.publish({
      destination: `/pub/rooms/${roomId}/messages`,
      headers: { receipt, 'content-type': 'application/json' },
      body: JSON.stringify({ content, clientMessageId }),
    });
  }

  /** Ends the connection for good (sign-out). */
  stop() {
    this.client.deactivate();
  }
}
