// The DidiHouse web client: sign-in, the room list (live from the user feed) and the room view
// (history, live events, unread counts, presence, sending). Plain DOM, no framework: the page is
// small, and every element a test or a screen reader needs gets a stable hook or label here.
import { ApiError, apiFor, compareIds, devLogin, tokenUser } from './api.js';
import { Live } from './live.js';

const DELETED_TEXT = '삭제된 메시지입니다.';
const app = document.getElementById('app');

/** Everything the page shows; render functions read it, handlers change it. */
const state = {
  me: null,
  api: null,
  live: null,
  connected: false,
  /** roomId → Room (docs/api.md), kept current by the user feed. */
  rooms: new Map(),
  /** The open room's view, or null. */
  view: null,
};

// ---------------------------------------------------------------------------------------------
// small DOM helpers

/** An element with attributes (`on*` become listeners) and children (strings become text). */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'testid') el.dataset.testid = value;
    else el.setAttribute(key, value === true ? '' : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child);
  }
  return el;
}

/** A client message id: random, so a resend after a reconnect is recognised as the same. */
function newClientMessageId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

const byId = (id) => document.getElementById(id);
const timeOf = (iso) =>
  iso ? new Date(iso).toLocaleTimeString('ko-KR', { hour: '2-digit', minute: '2-digit' }) : '';

function roomTitle(room) {
  if (room.name) return room.name;
  const others = room.members.filter((m) => m !== state.me);
  return others.join(', ') || state.me;
}

function showError(e) {
  const text = e instanceof ApiError ? `${e.code}: ${e.message}` : String(e.message ?? e);
  const box = byId('error');
  if (box) box.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// sign-in

function renderLogin(note = '') {
  const userField = h('input', {
    id: 'login-user', testid: 'login-user', name: 'userId', autocomplete: 'username',
    required: true, pattern: '[A-Za-z0-9_.@\\-]{1,128}',
  });
  const tokenField = h('textarea', { id: 'login-token', rows: 3 });
  app.replaceChildren(
    h('main', { class: 'login' },
      h('h1', {}, 'DidiHouse 채팅'),
      h('form', { onsubmit: (e) => { e.preventDefault(); loginDev(userField.value.trim()); } },
        h('label', { for: 'login-user' }, '사용자 ID (개발용 로그인)'),
        userField,
        h('button', { type: 'submit', testid: 'login-submit' }, '로그인')),
      h('form', { onsubmit: (e) => { e.preventDefault(); start(tokenField.value.trim()); } },
        h('label', { for: 'login-token' }, '또는 액세스 토큰 붙여넣기'),
        tokenField,
        h('button', { type: 'submit' }, '토큰으로 로그인')),
      h('p', { id: 'error', role: 'alert' }, note)));
  userField.focus();
}

async function loginDev(userId) {
  try {
    const token = await devLogin(userId);
    if (token) start(token);
    else showError(new Error('이 서버는 개발용 로그인이 꺼져 있습니다. 토큰을 붙여 넣으세요.'));
  } catch (e) {
    showError(e);
  }
}

async function start(token) {
  let me;
  try {
    me = tokenUser(token);
  } catch {
    showError(new Error('토큰 형식이 올바르지 않습니다.'));
    return;
  }
  const api = apiFor(token);
  let rooms;
  try {
    ({ rooms } = await api.rooms());
  } catch (e) {
    showError(e);
    return;
  }
  sessionStorage.setItem('token', token);
  Object.assign(state, { me, api, rooms: new Map(rooms.map((r) => [r.roomId, r])), view: null });
  renderShell();
  state.live = new Live(token, me, {
    onFeed,
    onRoom,
    onReceipt,
    onStatus: (connected) => {
      state.connected = connected;
      renderStatus();
    },
    onError: (message) => showError(new Error(message)),
  });
}

function signOut() {
  state.live?.stop();
  sessionStorage.removeItem('token');
  Object.assign(state, { me: null, api: null, live: null, rooms: new Map(), view: null });
  renderLogin();
}

// ---------------------------------------------------------------------------------------------
// the shell: header, room list, room view

function renderShell() {
  const typeField = h('select', { id: 'new-type', name: 'type' },
    h('option', { value: 'DIRECT' }, '1:1 (DIRECT)'),
    h('option', { value: 'GROUP' }, '그룹 (GROUP)'));
  const usersField = h('input', { id: 'new-users', placeholder: 'bob, carol', required: true });
  const nameField = h('input', { id: 'new-name', placeholder: '그룹 이름 (선택)' });
  app.replaceChildren(
    h('header', { class: 'top' },
      h('h1', {}, 'DidiHouse'),
      h('span', { class: 'me' }, state.me),
      h('span', { id: 'status', role: 'status' }),
      h('span', { testid: 'badge', id: 'badge', class: 'badge' }),
      h('button', { type: 'button', onclick: signOut }, '로그아웃')),
    h('p', { id: 'error', role: 'alert' }),
    h('div', { class: 'panes', id: 'panes' },
      h('nav', { class: 'list-pane', 'aria-label': '채팅방 목록' },
        h('form', { class: 'new-room', onsubmit: (e) => {
          e.preventDefault();
          createRoom(typeField.value, usersField.value, nameField.value.trim());
        } },
          h('label', { for: 'new-type' }, '새 채팅방'), typeField,
          h('label', { for: 'new-users' }, '상대 사용자 ID (쉼표로 구분)'), usersField,
          h('label', { for: 'new-name' }, '그룹 이름'), nameField,
          h('button', { type: 'submit', testid: 'create-room' }, '만들기')),
        h('ul', { testid: 'room-list', id: 'room-list' })),
      h('section', { class: 'room-pane', id: 'room-pane', 'aria-label': '채팅방' },
        h('p', { class: 'empty' }, '채팅방을 고르세요.'))));
  renderStatus();
  renderRooms();
}

function renderStatus() {
  const el = byId('status');
  if (!el) return;
  el.textContent = state.connected ? '연결됨' : '연결 중…';
  el.className = state.connected ? 'status on' : 'status off';
}

function renderRooms() {
  const list = byId('room-list');
  if (!list) return;
  const rooms = [...state.rooms.values()].sort((a, b) => (b.updatedAt ?? '').localeCompare(a.updatedAt ?? ''));
  list.replaceChildren(...rooms.map((room) => {
    const last = room.lastMessage;
    const preview = !last ? '' : last.deleted ? DELETED_TEXT : last.content ?? '';
    const unread = room.unreadCount > 0 ? room.unreadCount : null;
    return h('li', { testid: 'room-item', 'data-room-id': room.roomId },
      h('button', {
        type: 'button', class: 'room-open',
        'aria-current': state.view?.roomId === room.roomId ? 'true' : null,
        'aria-label': `${roomTitle(room)}${unread ? `, 안 읽은 메시지 ${unread}개` : ''}`,
        onclick: () => openRoom(room.roomId),
      },
        h('span', { class: 'room-title' }, roomTitle(room), room.muted ? ' 🔕' : ''),
        h('span', { class: 'room-preview' }, preview),
        unread && h('span', { class: 'room-unread', testid: 'room-unread' }, String(unread))));
  }));
  const total = [...state.rooms.values()].reduce((sum, r) => sum + (r.unreadCount || 0), 0);
  const badge = byId('badge');
  badge.textContent = String(total);
  badge.hidden = total === 0;
  badge.setAttribute('aria-label', `안 읽은 메시지 모두 ${total}개`);
  document.title = total ? `(${total}) DidiHouse 채팅` : 'DidiHouse 채팅';
}

async function createRoom(type, users, name) {
  const userIds = users.split(/[,\s]+/).filter(Boolean);
  try {
    const room = await state.api.createRoom(type, userIds, type === 'GROUP' ? name : undefined);
    byId('new-users').value = '';
    byId('new-name').value = '';
    await refreshRoom(room.roomId);
    openRoom(room.roomId);
  } catch (e) {
    showError(e);
  }
}

/** Reads a room again (with the caller's unreadCount and muted) into the list. */
async function refreshRoom(roomId) {
  const room = await state.api.room(roomId);
  if (state.view?.roomId === roomId) room.unreadCount = 0;
  state.rooms.set(roomId, room);
  renderRooms();
}

// ---------------------------------------------------------------------------------------------
// the user feed

function onFeed(event) {
  const room = state.rooms.get(event.roomId);
  if (event.type === 'INVITE' || !room) {
    refreshRoom(event.roomId).catch(showError);
    return;
  }
  if (event.type === 'CHAT') {
    room.lastMessage = event;
    room.updatedAt = event.sentAt;
    const open = state.view?.roomId === event.roomId;
    room.unreadCount = open ? 0 : event.roomUnreadCount ?? room.unreadCount + 1;
    renderRooms();
  }
}

// ---------------------------------------------------------------------------------------------
// the room view

/** A history entry or a live event as one shape: the Message of docs/api.md. */
function entry(event) {
  switch (event.type) {
    case 'INVITE':
      return { ...event, senderId: event.senderId ?? event.inviterId };
    case 'LEAVE':
      return { ...event, senderId: event.senderId ?? event.userId, userIds: event.userIds ?? [event.userId] };
    default:
      return event;
  }
}

async function openRoom(roomId) {
  if (state.view?.roomId === roomId) return;
  if (state.view) state.live.closeRoom(state.view.roomId);
  const view = {
    roomId, messages: new Map(), pending: [], nextBefore: null, present: new Set([state.me]),
  };
  state.view = view;
  try {
    const page = await state.api.history(roomId);
    if (state.view !== view) return;
    for (const m of page.messages) view.messages.set(m.messageId, entry(m));
    view.nextBefore = page.nextBefore;
  } catch (e) {
    showError(e);
    return;
  }
  const newest = newestId(view);
  state.live.openRoom(roomId, newest);
  const room = state.rooms.get(roomId);
  if (room) room.unreadCount = 0;
  renderRooms();
  renderRoomPane();
  byId('panes').classList.add('in-room');
  byId('composer').focus();
}

function newestId(view) {
  const ids = [...view.messages.keys()].sort(compareIds);
  return ids.length ? ids[ids.length - 1] : null;
}

function closeView() {
  if (state.view) state.live.closeRoom(state.view.roomId);
  state.view = null;
  byId('panes').classList.remove('in-room');
  byId('room-pane').replaceChildren(h('p', { class: 'empty' }, '채팅방을 고르세요.'));
  renderRooms();
}

function renderRoomPane() {
  const view = state.view;
  const room = state.rooms.get(view.roomId);
  const composer = h('textarea', {
    id: 'composer', testid: 'composer', rows: 2, placeholder: '메시지 입력 (Enter로 보내기)',
    onkeydown: (e) => {
      // Enter while a Korean syllable is being composed belongs to the input method.
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        sendFromComposer();
      }
    },
  });
  const inviteField = h('input', { id: 'invite-users', placeholder: 'dave, erin' });
  const list = h('ol', { id: 'messages', class: 'messages', role: 'log', 'aria-label': '메시지', tabindex: 0,
    onscroll: (e) => { if (e.target.scrollTop < 40) loadOlder(); } });
  byId('room-pane').replaceChildren(
    h('header', { class: 'room-head' },
      h('button', { type: 'button', class: 'back', onclick: closeView, 'aria-label': '채팅방 목록으로' }, '←'),
      h('h2', {}, room ? roomTitle(room) : ''),
      h('p', { id: 'present', class: 'present' }),
      h('div', { class: 'room-actions' },
        room?.type === 'GROUP' && h('form', { onsubmit: (e) => {
          e.preventDefault();
          invite(inviteField.value);
          inviteField.value = '';
        } },
          h('label', { for: 'invite-users' }, '초대'), inviteField,
          h('button', { type: 'submit' }, '초대하기')),
        h('button', { type: 'button', 'aria-pressed': room?.muted ? 'true' : 'false', onclick: toggleMute },
          room?.muted ? '알림 켜기' : '알림 끄기'),
        h('button', { type: 'button', onclick: leave }, '나가기'))),
    h('button', { type: 'button', id: 'older', class: 'older', onclick: loadOlder }, '이전 메시지'),
    list,
    h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); sendFromComposer(); } },
      h('label', { for: 'composer', class: 'visually-hidden' }, '메시지'),
      composer,
      h('button', { type: 'submit', testid: 'send' }, '보내기')));
  renderMessages(true);
}

function renderPresent() {
  const el = byId('present');
  if (!el || !state.view) return;
  el.textContent = `지금 이 방에: ${[...state.view.present].sort().join(', ')}`;
}

/** Redraws the messages; stays at the bottom when it was there (or `toBottom`). */
function renderMessages(toBottom = false) {
  const view = state.view;
  const list = byId('messages');
  if (!view || !list) return;
  const atBottom = toBottom || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const fromBottom = list.scrollHeight - list.scrollTop;
  const ids = [...view.messages.keys()].sort(compareIds);
  list.replaceChildren(
    ...ids.map((id) => messageItem(view.messages.get(id))),
    ...view.pending.map((p) => messageItem({ ...p, type: 'CHAT', senderId: state.me })));
  list.scrollTop = atBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
  byId('older').hidden = !view.nextBefore;
  renderPresent();
}

function messageItem(m) {
  if (m.type === 'INVITE' || m.type === 'LEAVE') {
    const who = (m.userIds ?? []).join(', ');
    const text = m.type === 'INVITE'
      ? `${m.senderId}님이 ${who}님을 초대했습니다.`
      : `${who}님이 나갔습니다.`;
    return h('li', { class: 'system', testid: 'system-line', 'data-message-id': m.messageId }, text);
  }
  const mine = m.senderId === state.me;
  const sent = m.messageId !== undefined;
  return h('li', {
    class: `message${mine ? ' mine' : ''}${m.deleted ? ' deleted' : ''}`,
    testid: 'message',
    'data-message-id': m.messageId,
    'data-state': sent ? 'sent' : m.state,
  },
    !mine && h('span', { class: 'sender' }, m.senderId),
    h('span', { class: 'content' }, m.deleted ? DELETED_TEXT : m.content),
    h('span', { class: 'meta' },
      m.unreadCount > 0 && h('span', { testid: 'unread-count', class: 'unread', 'aria-label': `안 읽은 사람 ${m.unreadCount}명` }, String(m.unreadCount)),
      sent ? h('time', { datetime: m.sentAt }, timeOf(m.sentAt))
        : h('span', { class: 'pending' }, m.state === 'sent' ? '전송됨' : '전송 중…'),
      mine && sent && !m.deleted && h('button', {
        type: 'button', class: 'delete', testid: 'delete',
        'aria-label': '이 메시지 삭제', onclick: () => deleteMessage(m.messageId),
      }, '삭제')));
}

async function loadOlder() {
  const view = state.view;
  if (!view?.nextBefore || view.loading) return;
  view.loading = true;
  try {
    const page = await state.api.history(view.roomId, view.nextBefore);
    if (state.view !== view) return;
    for (const m of page.messages) if (!view.messages.has(m.messageId)) view.messages.set(m.messageId, entry(m));
    view.nextBefore = page.nextBefore;
    renderMessages();
  } catch (e) {
    showError(e);
  } finally {
    view.loading = false;
  }
}

function onRoom(event) {
  const view = state.view;
  if (!view || event.roomId !== view.roomId) return;
  switch (event.type) {
    case 'CHAT': {
      if (view.messages.has(event.messageId)) return;
      view.pending = view.pending.filter((p) => p.clientMessageId !== event.clientMessageId || event.senderId !== state.me);
      view.messages.set(event.messageId, entry(event));
      break;
    }
    case 'INVITE': {
      if (view.messages.has(event.messageId)) return;
      view.messages.set(event.messageId, entry(event));
      const room = state.rooms.get(view.roomId);
      if (room) room.members = [...new Set([...room.members, ...event.userIds])].sort();
      break;
    }
    case 'LEAVE': {
      if (view.messages.has(event.messageId)) return;
      view.messages.set(event.messageId, entry(event));
      view.present.delete(event.userId);
      markRead(event.userId, event.messageId, event.readCount);
      if (event.userId === state.me) {
        state.rooms.delete(view.roomId);
        closeView();
        return;
      }
      break;
    }
    case 'DELETE': {
      for (const id of event.messageIds) {
        const m = view.messages.get(id);
        if (m) Object.assign(m, { deleted: true, content: null, unreadCount: 0 });
      }
      // The feed carries no DELETE: the list's preview learns it here.
      const last = state.rooms.get(view.roomId)?.lastMessage;
      if (last && event.messageIds.includes(last.messageId)) {
        Object.assign(last, { deleted: true, content: null });
        renderRooms();
      }
      break;
    }
    case 'INFO':
      view.present.add(event.userId);
      if (event.lastReadMessageId) markRead(event.userId, event.lastReadMessageId, event.readCount);
      break;
    case 'OUT':
      view.present.delete(event.userId);
      break;
    default:
      return;
  }
  renderMessages();
}

/**
 * `reader` just read `count` messages up to `upTo`: those are the newest CHATs up to there that
 * others sent and that still count someone as not having read them, so each loses one.
 */
function markRead(reader, upTo, count) {
  if (!count) return;
  const ids = [...state.view.messages.keys()].filter((id) => compareIds(id, upTo) <= 0).sort(compareIds).reverse();
  let left = count;
  for (const id of ids) {
    if (left === 0) break;
    const m = state.view.messages.get(id);
    if (m.type !== 'CHAT' || m.senderId === reader || !(m.unreadCount > 0)) continue;
    m.unreadCount -= 1;
    left -= 1;
  }
}

function onReceipt(clientMessageId) {
  const p = state.view?.pending.find((x) => x.clientMessageId === clientMessageId);
  if (p) {
    p.state = 'sent';
    renderMessages();
  }
}

function sendFromComposer() {
  const composer = byId('composer');
  const content = composer.value.trim();
  if (!content || !state.view) return;
  const clientMessageId = newClientMessageId();
  state.view.pending.push({ clientMessageId, content, state: 'pending' });
  state.live.send(state.view.roomId, content, clientMessageId);
  composer.value = '';
  renderMessages(true);
}

async function deleteMessage(messageId) {
  try {
    await state.api.deleteMessage(state.view.roomId, messageId);
  } catch (e) {
    showError(e);
  }
}

async function invite(users) {
  const userIds = users.split(/[,\s]+/).filter(Boolean);
  if (!userIds.length) return;
  try {
    await state.api.invite(state.view.roomId, userIds);
  } catch (e) {
    showError(e);
  }
}

async function toggleMute() {
  const room = state.rooms.get(state.view.roomId);
  try {
    const { muted } = await state.api.mute(room.roomId, !room.muted);
    room.muted = muted;
    renderRooms();
    renderRoomPane();
  } catch (e) {
    showError(e);
  }
}

async function leave() {
  const roomId = state.view.roomId;
  try {
    await state.api.leave(roomId);
    state.rooms.delete(roomId);
    if (state.view?.roomId === roomId) closeView();
  } catch (e) {
    showError(e);
  }
}

// ---------------------------------------------------------------------------------------------

// A reload keeps the tab signed in; the login form shows until (and unless) that works.
renderLogin();
const saved = sessionStorage.getItem('token');
if (saved) start(saved);
