// The DidiHouse web client: sign-in, the room list (live from the user feed) and the room view
// (history, live events, unread counts, presence, typing, replies, reactions, edits, mentions,
// sending). Plain DOM, no framework: the page is small, and every element a test or a screen
// reader needs gets a stable hook or label in the module that draws it.
//
// This module is the session: a token starts it (the page frame and the live connection, whose
// events it hands to the modules that own them) and signing out ends it. The other modules
// depend on each other one way only, bottom first:
//   state, dom → login, rooms (the list) → view (the open room's state, presence, typing, reply
//   bar) → messages (the list of messages and their buttons) → events (room events), actions
//   (send, invite, leave) → room (opening a room, its pane) → main.
import { apiFor, tokenUser } from './api.js';
import { onReceipt, onRefused } from './actions.js';
import { byId, h, showError } from './dom.js';
import { onRoom, onRoomReady, onRoomSubscribing } from './events.js';
import { Live } from './live.js';
import { renderLogin } from './login.js';
import { openRoom } from './room.js';
import { createRoom, onFeed, onFeedReady, openWith, renderRooms, renderStatus } from './rooms.js';
import { state } from './state.js';
import { leaveView } from './view.js';

const app = byId('app');

/**
 * Signs in with `token`: reads the room list (a bad token fails here, on the sign-in form),
 * keeps the token for a reload, draws the page and connects.
 */
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

/** Ends the session: the open room and the connection close, the token is forgotten. */
function signOut() {
  if (state.view) leaveView(state.view);
  state.live?.stop();
  sessionStorage.removeItem('token');
  Object.assign(state, { me: null, api: null, live: null, rooms: new Map(), view: null });
  renderLogin(start);
}

/** The signed-in page's frame: header, the list pane with the new-room form, an empty room pane. */
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

// ---------------------------------------------------------------------------------------------

// Choosing a room in the list opens it: rooms.js is below room.js, so it is told, not importing.
openWith(openRoom);

// A reload keeps the tab signed in; the login form shows until (and unless) that works.
renderLogin(start);
const saved = sessionStorage.getItem('token');
if (saved) start(saved);
