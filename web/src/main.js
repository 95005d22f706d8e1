// The DidiHouse web client: sign-in, the room list (live from the user feed) and the room view
// (history, live events, unread counts, presence, typing, replies, reactions, edits, mentions,
// sending). Plain DOM, no framework: the page is small, and every element a test or a screen
// reader needs gets a stable hook or label here.
import { ApiError, apiFor, compareIds, devLogin, tokenUser } from './api.js';
import { Live } from './live.js';
import {
  DELETED_TEXT, PICKER_EMOJI, applyDelete, applyEdit, applyQuoteDeleted, applyReaction, entry,
  markRead, mentionsIn, presentAfter, splitMentions,
} from './model.js';
import { TypingShown, TypingSignal } from './typing.js';

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

/** Empties the alert area: the action it was about has since succeeded. */
function clearError() {
  const box = byId('error');
  if (box) box.textContent = '';
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
    onFeedReady,
    onRoom,
    onRoomSubscribing,
    onRoomReady,
    onReceipt,
    onRefused,
    onStatus: (connected) => {
      state.connected = connected;
      renderStatus();
    },
    onError: (message) => showError(new Error(message)),
  });
}

function signOut() {
  if (state.view) leaveView(state.view);
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
    const mentioned = room.mentionCount > 0 ? room.mentionCount : null;
    return h('li', { testid: 'room-item', 'data-room-id': room.roomId },
      h('button', {
        type: 'button', class: 'room-open',
        'aria-current': state.view?.roomId === room.roomId ? 'true' : null,
        'aria-label': `${roomTitle(room)}${unread ? `, 안 읽은 메시지 ${unread}개` : ''}`
          + `${mentioned ? `, 나를 언급한 메시지 ${mentioned}개` : ''}`,
        onclick: () => openRoom(room.roomId),
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
async function onFeedReady() {
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
    room.mentionCount = open ? 0 : event.mentionCount ?? room.mentionCount;
    renderRooms();
  }
}

// ---------------------------------------------------------------------------------------------
// the room view

async function openRoom(roomId) {
  if (state.view?.roomId === roomId) return;
  if (state.view) leaveView(state.view);
  const view = newView(roomId);
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
  if (room) Object.assign(room, { unreadCount: 0, mentionCount: 0 });
  renderRooms();
  renderRoomPane();
  byId('panes').classList.add('in-room');
  byId('composer').focus();
}

/** The state of one open room; everything in it ends with the view (timers included). */
function newView(roomId) {
  const view = {
    roomId,
    messages: new Map(),
    pending: [],
    nextBefore: null,
    /** Who is here now; `presenceChanges` buffers INFO/OUT/LEAVE until the snapshot is read. */
    present: new Set([state.me]),
    presenceChanges: null,
    presenceReads: 0,
    /** The message being answered ({ messageId, senderId, content }), or null. */
    replyTo: null,
    /** The message being edited ({ messageId, draft }), or null. */
    editing: null,
    /** The message whose reaction picker is open, or null. */
    picker: null,
  };
  view.typingSignal = new TypingSignal((typing) => state.live.typing(roomId, typing));
  view.typingShown = new TypingShown(renderTyping);
  return view;
}

/** Leaving a room's view: say we stopped typing, drop its timers, end the subscription. */
function leaveView(view) {
  view.typingSignal.stop();
  view.typingShown.clear();
  state.live?.closeRoom(view.roomId);
}

function newestId(view) {
  const ids = [...view.messages.keys()].sort(compareIds);
  return ids.length ? ids[ids.length - 1] : null;
}

function closeView() {
  if (state.view) leaveView(state.view);
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
    'aria-describedby': 'reply-bar',
    onkeydown: composerKey,
    // Typing is said while the field has text, and ends when it is cleared or left.
    oninput: (e) => view.typingSignal.input(e.target.value.trim() !== ''),
    onblur: () => view.typingSignal.stop(),
  });
  const inviteField = h('input', { id: 'invite-users', placeholder: 'dave, erin' });
  const list = h('ol', { id: 'messages', class: 'messages', role: 'log', 'aria-label': '메시지', tabindex: 0,
    onscroll: (e) => { if (e.target.scrollTop < 40) loadOlder(); } });
  byId('room-pane').replaceChildren(
    h('header', { class: 'room-head' },
      h('button', { type: 'button', class: 'back', onclick: closeView, 'aria-label': '채팅방 목록으로' }, '←'),
      h('h2', {}, room ? roomTitle(room) : ''),
      h('p', { id: 'present', class: 'present', testid: 'present' }),
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
    h('p', { id: 'typing', class: 'typing', testid: 'typing', 'aria-live': 'polite', hidden: true }),
    h('div', { id: 'reply-bar', class: 'reply-bar', testid: 'reply-bar', hidden: true }),
    h('form', { class: 'composer', onsubmit: (e) => { e.preventDefault(); sendFromComposer(); } },
      h('label', { for: 'composer', class: 'visually-hidden' }, '메시지'),
      composer,
      h('button', { type: 'submit', testid: 'send' }, '보내기')));
  renderMessages(true);
  renderTyping();
  renderReplyBar();
}

/** Enter sends, Shift+Enter is a new line, Escape drops the reply being written. */
function composerKey(e) {
  // Enter while a Korean syllable is being composed belongs to the input method.
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendFromComposer();
  } else if (e.key === 'Escape' && state.view?.replyTo) {
    e.preventDefault();
    cancelReply();
  }
}

function renderPresent() {
  const el = byId('present');
  if (!el || !state.view) return;
  const present = new Set([state.me, ...state.view.present]);
  el.textContent = `지금 이 방에: ${[...present].sort().join(', ')}`;
}

/** "B님이 입력 중…" for the others typing now; hidden when nobody is. */
function renderTyping() {
  const el = byId('typing');
  if (!el || !state.view) return;
  const names = state.view.typingShown.names();
  el.hidden = names.length === 0;
  el.textContent = names.length ? `${names.map((n) => `${n}님`).join(', ')}이 입력 중…` : '';
}

/** The quote above the composer while a reply is being written, with its cancel button. */
function renderReplyBar() {
  const el = byId('reply-bar');
  if (!el || !state.view) return;
  const quote = state.view.replyTo;
  el.hidden = !quote;
  el.replaceChildren(...(!quote ? [] : [
    h('span', { class: 'reply-to' }, `${quote.senderId}님에게 답장`),
    h('span', { class: 'reply-text' }, quote.content),
    h('button', { type: 'button', testid: 'reply-cancel', 'aria-label': '답장 취소', onclick: cancelReply }, '✕'),
  ]));
}

// ---------------------------------------------------------------------------------------------
// the messages

/**
 * The focused element's `data-key` and caret: the list is redrawn whole, and a redraw must not
 * take the focus (or the text being edited) away from a keyboard user.
 */
function focusedKey() {
  const el = document.activeElement;
  const key = el?.dataset?.key;
  return key ? { key, start: el.selectionStart, end: el.selectionEnd } : null;
}

/** Puts the focus back on the element with `saved.key`, if it is still there. */
function restoreFocus(saved) {
  if (!saved) return;
  const el = document.querySelector(`[data-key="${CSS.escape(saved.key)}"]`);
  if (!el) return;
  el.focus({ preventScroll: true });
  if (typeof saved.start === 'number' && el.setSelectionRange) el.setSelectionRange(saved.start, saved.end);
}

/** Redraws the messages; stays at the bottom when it was there (or `toBottom`). */
function renderMessages(toBottom = false) {
  const view = state.view;
  const list = byId('messages');
  if (!view || !list) return;
  const atBottom = toBottom || list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  const fromBottom = list.scrollHeight - list.scrollTop;
  const focus = focusedKey();
  const ids = [...view.messages.keys()].sort(compareIds);
  list.replaceChildren(
    ...ids.map((id) => messageItem(view.messages.get(id))),
    ...view.pending.map((p) => messageItem({ ...p, type: 'CHAT', senderId: state.me })));
  list.scrollTop = atBottom ? list.scrollHeight : list.scrollHeight - fromBottom;
  restoreFocus(focus);
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
  const editing = sent && state.view.editing?.messageId === m.messageId;
  return h('li', {
    class: `message${mine ? ' mine' : ''}${m.deleted ? ' deleted' : ''}`,
    testid: 'message',
    'data-message-id': m.messageId,
    'data-client-message-id': m.clientMessageId,
    'data-state': sent ? 'sent' : m.state,
  },
    !mine && h('span', { class: 'sender' }, m.senderId),
    m.replyTo && quoteOf(m.replyTo),
    h('span', { class: 'content', hidden: editing }, m.deleted ? DELETED_TEXT : contentOf(m)),
    editing && editor(m),
    m.reactions?.length > 0 && h('div', { class: 'reactions', role: 'group', 'aria-label': '반응' },
      ...m.reactions.map((r) => reactionChip(m, r))),
    h('span', { class: 'meta' },
      m.unreadCount > 0 && h('span', { testid: 'unread-count', class: 'unread', 'aria-label': `안 읽은 사람 ${m.unreadCount}명` }, String(m.unreadCount)),
      sent ? h('time', { datetime: m.sentAt }, timeOf(m.sentAt)) : pendingLabel(m.state),
      m.editedAt && !m.deleted && h('span', { class: 'edited', testid: 'edited', title: m.editedAt }, '(수정됨)'),
      sent && !m.deleted && messageActions(m, mine)),
    state.view.picker === m.messageId && !m.deleted && picker(m));
}

function pendingLabel(stateName) {
  const text = { sent: '전송됨', failed: '전송 실패' }[stateName] ?? '전송 중…';
  return h('span', { class: stateName === 'failed' ? 'pending failed' : 'pending' }, text);
}

/** The quoted message of a reply: who wrote it and what it said (or that it is deleted). */
function quoteOf(quote) {
  return h('blockquote', { class: 'quote', testid: 'reply-quote', 'data-reply-to': quote.messageId },
    h('span', { class: 'quote-sender' }, quote.senderId),
    h('span', { class: 'quote-text' }, quote.deleted ? DELETED_TEXT : quote.content ?? ''));
}

/** The text with each `@id` the sender mentioned marked (the user's own more strongly). */
function contentOf(m) {
  return splitMentions(m.content, m.mentions).map((part) => typeof part === 'string' ? part
    : h('mark', { class: part.mention === state.me ? 'mention me' : 'mention', testid: 'mention' }, `@${part.mention}`));
}

/** 답장, 반응, and for the sender 수정 and 삭제: stored, not deleted messages only. */
function messageActions(m, mine) {
  const id = m.messageId;
  const open = state.view.picker === id;
  return [
    h('button', {
      type: 'button', class: 'act', testid: 'reply', 'data-key': `${id}:reply`,
      'aria-label': '이 메시지에 답장', onclick: () => startReply(m),
    }, '답장'),
    h('button', {
      type: 'button', class: 'act', testid: 'react-open', 'data-key': `${id}:react-open`,
      'aria-label': '반응 추가', 'aria-expanded': open ? 'true' : 'false', 'aria-controls': `picker-${id}`,
      onclick: () => togglePicker(id),
    }, '😊+'),
    mine && h('button', {
      type: 'button', class: 'act', testid: 'edit', 'data-key': `${id}:edit`,
      'aria-label': '이 메시지 수정', onclick: () => startEdit(m),
    }, '수정'),
    mine && h('button', {
      type: 'button', class: 'act delete', testid: 'delete',
      'aria-label': '이 메시지 삭제', onclick: () => deleteMessage(id),
    }, '삭제'),
  ];
}

/** One emoji's chip: "👍 2", pressed when the user is one of them; a click toggles theirs. */
function reactionChip(m, r) {
  return h('button', {
    type: 'button', class: 'chip', testid: 'reaction', 'data-emoji': r.emoji,
    'data-key': `${m.messageId}:chip:${r.emoji}`, 'aria-pressed': r.me ? 'true' : 'false',
    'aria-label': `${r.emoji} ${r.count}명${r.me ? ', 내 반응 포함' : ''}`,
    disabled: m.deleted, onclick: () => react(m, r.emoji),
  }, `${r.emoji} ${r.count}`);
}

/** The reaction picker of one message; Escape closes it and returns to its opener. */
function picker(m) {
  const id = m.messageId;
  return h('div', {
    class: 'picker', id: `picker-${id}`, role: 'group', 'aria-label': '반응 고르기',
    onkeydown: (e) => {
      if (e.key !== 'Escape') return;
      e.preventDefault();
      togglePicker(id);
    },
  }, ...PICKER_EMOJI.map((emoji) => {
    const me = Boolean(m.reactions?.find((r) => r.emoji === emoji)?.me);
    return h('button', {
      type: 'button', class: 'pick', testid: 'react', 'data-emoji': emoji,
      'data-key': `${id}:pick:${emoji}`, 'aria-pressed': me ? 'true' : 'false',
      'aria-label': `${emoji} 반응${me ? ' 취소' : ''}`,
      onclick: () => { togglePicker(id); react(m, emoji); },
    }, emoji);
  }));
}

/** The inline editor of the user's own message: Enter saves, Escape cancels. */
function editor(m) {
  const id = m.messageId;
  const field = h('textarea', {
    id: `edit-${id}`, class: 'edit-input', testid: 'edit-input', rows: 2, 'data-key': `${id}:editor`,
    oninput: (e) => { state.view.editing.draft = e.target.value; },
    onkeydown: (e) => {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
        e.preventDefault();
        saveEdit(m);
      } else if (e.key === 'Escape') {
        e.preventDefault();
        cancelEdit();
      }
    },
  });
  field.value = state.view.editing.draft;
  return h('form', { class: 'editor', onsubmit: (e) => { e.preventDefault(); saveEdit(m); } },
    h('label', { for: `edit-${id}`, class: 'visually-hidden' }, '메시지 수정 (Enter 저장, Esc 취소)'),
    field,
    h('span', { class: 'editor-actions' },
      h('button', { type: 'submit', testid: 'edit-save' }, '저장'),
      h('button', { type: 'button', onclick: cancelEdit }, '취소')));
}

/** Focuses the element with `data-key` = `key` once it is drawn. */
function focusKey(key) {
  restoreFocus({ key });
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

// ---------------------------------------------------------------------------------------------
// room events

function onRoom(event, meta) {
  const view = state.view;
  if (!view || event.roomId !== view.roomId) return;
  if (event.type === 'TYPING') {
    // Live only, and only redraws the indicator.
    view.typingShown.set(event.userId, event.typing);
    return;
  }
  const apply = ROOM_EVENTS[event.type];
  if (!apply || apply(view, event, meta) === false) return;
  renderMessages();
}

/** What each room event does to the open view; `false` means nothing changed. */
const ROOM_EVENTS = {
  CHAT(view, event) {
    if (view.messages.has(event.messageId)) return false;
    view.pending = view.pending.filter((p) => p.clientMessageId !== event.clientMessageId || event.senderId !== state.me);
    view.messages.set(event.messageId, entry(event));
    // Their message is sent: they are no longer typing it, even if the false was lost.
    view.typingShown.set(event.senderId, false);
    return true;
  },
  INVITE(view, event) {
    if (view.messages.has(event.messageId)) return false;
    view.messages.set(event.messageId, entry(event));
    const room = state.rooms.get(view.roomId);
    if (room) room.members = [...new Set([...room.members, ...event.userIds])].sort();
    return true;
  },
  LEAVE(view, event, meta) {
    if (view.messages.has(event.messageId)) return false;
    view.messages.set(event.messageId, entry(event));
    presenceChange(view, event.userId, false, meta.id);
    view.typingShown.set(event.userId, false);
    markRead(view.messages, event.userId, event.messageId, event.readCount);
    if (event.userId === state.me) {
      state.rooms.delete(view.roomId);
      closeView();
      return false;
    }
    return true;
  },
  DELETE(view, event) {
    for (const id of event.messageIds) {
      const m = view.messages.get(id);
      if (m) applyDelete(m);
    }
    for (const m of view.messages.values()) applyQuoteDeleted(m, event.messageIds);
    // A deleted message can be neither edited nor answered (INVALID_REPLY).
    if (event.messageIds.includes(view.editing?.messageId)) view.editing = null;
    if (event.messageIds.includes(view.replyTo?.messageId)) cancelReply();
    // The feed carries no DELETE: the list's preview learns it here.
    const last = state.rooms.get(view.roomId)?.lastMessage;
    if (last && event.messageIds.includes(last.messageId)) {
      Object.assign(last, { deleted: true, content: null });
      renderRooms();
    }
    return true;
  },
  REACTION(view, event, meta) {
    const m = view.messages.get(event.targetId);
    if (!m) return false;
    // The replay right after opening repeats reactions the history read already counted; the
    // user's own are matched exactly by `me`, the others' are taken from the history.
    if (meta.fresh && event.userId !== state.me) return false;
    applyReaction(m, event, state.me);
    return true;
  },
  EDIT(view, event) {
    const m = view.messages.get(event.targetId);
    if (m) applyEdit(m, event);
    // The feed carries no EDIT: the list's preview follows an edit of the latest message here.
    const last = state.rooms.get(view.roomId)?.lastMessage;
    if (last?.messageId === event.targetId && !last.deleted) {
      last.content = event.content;
      renderRooms();
    }
    return Boolean(m);
  },
  INFO(view, event, meta) {
    presenceChange(view, event.userId, true, meta.id);
    if (event.lastReadMessageId) markRead(view.messages, event.userId, event.lastReadMessageId, event.readCount);
    return true;
  },
  OUT(view, event, meta) {
    presenceChange(view, event.userId, false, meta.id);
    view.typingShown.set(event.userId, false);
    return true;
  },
};

// ---------------------------------------------------------------------------------------------
// presence: the snapshot, then the changes after it

/** A (re)subscription starts: presence changes wait for the snapshot from here on. */
function onRoomSubscribing(roomId) {
  const view = state.view;
  if (view?.roomId !== roomId) return;
  view.presenceChanges = [];
  view.presenceReads += 1;
}

/** Someone entered (`here`) or left, at log position `id`: now, or after the snapshot. */
function presenceChange(view, userId, here, id) {
  if (view.presenceChanges) view.presenceChanges.push({ id, userId, here });
  else if (here) view.present.add(userId);
  else view.present.delete(userId);
}

/**
 * The subscription's RECEIPT: the user's presence is in the log, so the snapshot read now
 * includes them; the changes kept meanwhile apply only past its `asOf` (docs/api.md). An edge
 * without the endpoint (404) leaves the old rule: everyone whose INFO arrived.
 */
async function onRoomReady(roomId) {
  const view = state.view;
  if (view?.roomId !== roomId) return;
  const read = view.presenceReads;
  let snapshot = null;
  try {
    snapshot = await state.api.presence(roomId);
  } catch (e) {
    if (e.status !== 404) console.warn('presence snapshot', e);
  }
  // A newer subscription (a reconnect) started meanwhile: its own RECEIPT reads again.
  if (state.view !== view || view.presenceReads !== read) return;
  const base = snapshot ?? { userIds: [...view.present], asOf: '0' };
  view.present = presentAfter(base, view.presenceChanges ?? []);
  view.presenceChanges = null;
  renderPresent();
}

// ---------------------------------------------------------------------------------------------
// sending, replies, reactions, edits

function onReceipt(clientMessageId) {
  const p = state.view?.pending.find((x) => x.clientMessageId === clientMessageId);
  if (p) {
    p.state = 'sent';
    renderMessages();
  }
}

/** The edge refused a SEND for good (e.g. INVALID_REPLY): it stays shown as failed. */
function onRefused(clientMessageId, message) {
  showError(new Error(message));
  const p = state.view?.pending.find((x) => x.clientMessageId === clientMessageId);
  if (p) {
    p.state = 'failed';
    renderMessages();
  }
}

function sendFromComposer() {
  const view = state.view;
  const composer = byId('composer');
  const content = composer.value.trim();
  if (!content || !view) return;
  const clientMessageId = newClientMessageId();
  const members = state.rooms.get(view.roomId)?.members ?? [];
  const mentions = mentionsIn(content, members, state.me);
  const body = { content };
  if (view.replyTo) body.replyTo = view.replyTo.messageId;
  if (mentions.length) body.mentions = mentions;
  view.pending.push({ clientMessageId, content, state: 'pending', replyTo: view.replyTo ?? undefined, mentions });
  state.live.send(view.roomId, body, clientMessageId);
  view.typingSignal.stop();
  composer.value = '';
  view.replyTo = null;
  renderReplyBar();
  renderMessages(true);
}

/** Answers `m`: the composer shows the quote until sent or cancelled. */
function startReply(m) {
  state.view.replyTo = { messageId: m.messageId, senderId: m.senderId, content: m.content };
  renderReplyBar();
  byId('composer').focus();
}

function cancelReply() {
  if (!state.view) return;
  state.view.replyTo = null;
  renderReplyBar();
}

/** Opens (or closes) one message's picker, moving the focus into it (or back to its opener). */
function togglePicker(messageId) {
  const view = state.view;
  const opening = view.picker !== messageId;
  view.picker = opening ? messageId : null;
  renderMessages();
  focusKey(opening ? `${messageId}:pick:${PICKER_EMOJI[0]}` : `${messageId}:react-open`);
}

/**
 * Toggles the user's reaction `emoji` on `m`. The chips change when the REACTION event comes
 * back on the room subscription, the same way for every member.
 */
async function react(m, emoji) {
  const mine = Boolean(m.reactions?.find((r) => r.emoji === emoji)?.me);
  try {
    await state.api.react(state.view.roomId, m.messageId, emoji, !mine);
    clearError();
  } catch (e) {
    showError(e);
  }
}

function startEdit(m) {
  state.view.editing = { messageId: m.messageId, draft: m.content };
  state.view.picker = null;
  renderMessages();
  focusKey(`${m.messageId}:editor`);
}

function cancelEdit() {
  const editing = state.view?.editing;
  if (!editing) return;
  state.view.editing = null;
  renderMessages();
  focusKey(`${editing.messageId}:edit`);
}

/**
 * Saves an edit (`PATCH`); the answer shows at once, the EDIT event tells everyone else. A
 * refusal (EDIT_WINDOW_CLOSED, EMPTY_CONTENT, …) goes to the alert and the editor stays.
 */
async function saveEdit(m) {
  const view = state.view;
  const content = view.editing.draft.trim();
  if (content === m.content) {
    cancelEdit();
    return;
  }
  try {
    const edited = await state.api.editMessage(view.roomId, m.messageId, content);
    applyEdit(m, edited);
    clearError();
    if (state.view !== view) return;
    view.editing = null;
    renderMessages();
    focusKey(`${m.messageId}:edit`);
  } catch (e) {
    showError(e);
  }
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
