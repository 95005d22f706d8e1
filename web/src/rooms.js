// The room list: drawing it (with the unread badge and the page title), keeping it current from
// the user feed, and the new-room form's request. Opening a room is room.js's, which redraws
// this list; so a click here goes through `openWith` instead of an import, and the two modules
// do not import each other.
import { byId, h, showError } from './dom.js';
import { DELETED_TEXT } from './model.js';
import { state } from './state.js';

/** What choosing a room does; main.js sets it to room.js's openRoom at start-up. */
let choose = () => {};

/** Sets what choosing (or creating) a room does: set once, by main.js. */
export function openWith(fn) {
  choose = fn;
}

/** A room's name, or for a room without one (DIRECT) who else is in it. */
export function roomTitle(room) {
  if (room.name) return room.name;
  const others = room.members.filter((m) => m !== state.me);
  return others.join(', ') || state.me;
}

/** The header's connection line: the user should know when what they see may be stale. */
export function renderStatus() {
  const el = byId('status');
  if (!el) return;
  el.textContent = state.connected ? '연결됨' : '연결 중…';
  el.className = state.connected ? 'status on' : 'status off';
}

/** Redraws the list, newest first, with each room's counts, the badge and the page title. */
export function renderRooms() {
  const list = byId('room-list');
  if (!list) return;
  const rooms = [...state.rooms.values()].sort((a, b) => (b.updatedAt ?? '').localeCompare(a.updatedAt ?? ''));
  list.replaceChildren(...rooms.map((room) => {
    const last = room.lastMessage;
    const preview = !last ? '' : last.deleted ? DELETED_TEXT : last.content ?? '';
    const unread = room.unreadCount > 0 ? room.unreadCount : null;
    const mentioned = room.mentionCount > 0 ? room.mentionCount : null;
    return h('li', { testid: 'room-item', 'data-room-id': room.roomId },
      h('button', {
        type: 'button', class: 'room-open',
        'aria-current': state.view?.roomId === room.roomId ? 'true' : null,
        'aria-label': `${roomTitle(room)}${unread ? `, 안 읽은 메시지 ${unread}개` : ''}`
          + `${mentioned ? `, 나를 언급한 메시지 ${mentioned}개` : ''}`,
        onclick: () => choose(room.roomId),
      },
        h('span', { class: 'room-title' }, roomTitle(room), room.muted ? ' 🔕' : ''),
        h('span', { class: 'room-preview' }, preview),
        h('span', { class: 'room-counts' },
          mentioned && h('span', { class: 'room-mention', testid: 'mention-count' }, `@${mentioned}`),
          unread && h('span', { class: 'room-unread', testid: 'room-unread' }, String(unread)))));
  }));
  const total = [...state.rooms.values()].reduce((sum, r) => sum + (r.unreadCount || 0), 0);
  const badge = byId('badge');
  badge.textContent = String(total);
  badge.hidden = total === 0;
  badge.setAttribute('aria-label', `안 읽은 메시지 모두 ${total}개`);
  document.title = total ? `(${total}) DidiHouse 채팅` : 'DidiHouse 채팅';
}

/** The new-room form: creates the room, lists it, and opens it; the form is cleared for the next. */
export async function createRoom(type, users, name) {
  const userIds = users.split(/[,\s]+/).filter(Boolean);
  try {
    const room = await state.api.createRoom(type, userIds, type === 'GROUP' ? name : undefined);
    byId('new-users').value = '';
    byId('new-name').value = '';
    await refreshRoom(room.roomId);
    choose(room.roomId);
  } catch (e) {
    showError(e);
  }
}

/** Reads a room again (with the caller's unreadCount and muted) into the list. */
export async function refreshRoom(roomId) {
  const room = await state.api.room(roomId);
  if (state.view?.roomId === roomId) Object.assign(room, { unreadCount: 0, mentionCount: 0 });
  state.rooms.set(roomId, room);
  renderRooms();
}

// ---------------------------------------------------------------------------------------------
// the user feed

/**
 * The feed is subscribed (again): the room list is read once more, since an INVITE or CHAT sent
 * before the subscription (between sign-in and connect, or while the socket was down) never
 * comes. The open room keeps counting 0.
 */
export async function onFeedReady() {
  const api = state.api;
  let rooms;
  try {
    ({ rooms } = await api.rooms());
  } catch (e) {
    showError(e);
    return;
  }
  if (state.api !== api) return;
  // Merged, not replaced: a room created or joined while the read was under way stays listed.
  for (const room of rooms) state.rooms.set(room.roomId, room);
  const open = state.view && state.rooms.get(state.view.roomId);
  if (open) Object.assign(open, { unreadCount: 0, mentionCount: 0 });
  renderRooms();
}

/** How long a room the feed announced may take to show in the API's room reads. */
const VISIBLE_WITHIN_MS = 10000;

/**
 * Reads a room the feed announced into the list. The feed comes from the receipts worker and
 * the room read from the projection, which may be a moment behind it (more so under load): a
 * 404 or 403 then means "not there yet", so the read is tried again, with a growing pause,
 * until the room shows or VISIBLE_WITHIN_MS passed.
 */
async function refreshAnnouncedRoom(roomId) {
  const api = state.api;
  const deadline = Date.now() + VISIBLE_WITHIN_MS;
  for (let pause = 100; ; pause = Math.min(pause * 2, 1000)) {
    try {
      return await refreshRoom(roomId);
    } catch (e) {
      const notYet = e.code === 'ROOM_NOT_FOUND' || e.code === 'NOT_A_MEMBER';
      if (!notYet || Date.now() + pause > deadline || state.api !== api) throw e;
    }
    await new Promise((resolve) => setTimeout(resolve, pause));
  }
}

/**
 * One user-feed event: a CHAT moves its room up with its counts (0 for the open room); an
 * INVITE, or anything about a room not listed yet, reads that room into the list.
 */
export function onFeed(event) {
  const room = state.rooms.get(event.roomId);
  if (event.type === 'INVITE' || !room) {
    refreshAnnouncedRoom(event.roomId).catch(showError);
    return;
  }
  if (event.type === 'CHAT') {
    room.lastMessage = event;
    room.updatedAt = event.sentAt;
    const open = state.view?.roomId === event.roomId;
    room.unreadCount = open ? 0 : event.roomUnreadCount ?? room.unreadCount + 1;
    room.mentionCount = open ? 0 : event.mentionCount ?? room.mentionCount;
    renderRooms();
  }
}
