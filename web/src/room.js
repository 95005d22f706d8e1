// The room pane: opening a room (history, subscription, counts to 0) and drawing its pane —
// header with invite, mute and leave, the message list, the typing line, the reply bar and the
// composer. It is the top of the room's modules: it wires their functions to its buttons.
import { invite, leave, sendFromComposer } from './actions.js';
import { byId, h, showError } from './dom.js';
import { loadOlder, renderMessages } from './messages.js';
import { entry } from './model.js';
import { renderRooms, roomTitle } from './rooms.js';
import { state } from './state.js';
import { cancelReply, closeView, leaveView, newestId, newView, renderReplyBar, renderTyping } from './view.js';

/**
 * Opens a room: its latest history page, then its subscription from the newest message read
 * (so nothing is missed between the two); its counts go to 0 and the composer takes the focus.
 */
export async function openRoom(roomId) {
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

/** Draws the open room's pane whole (on opening, and when muting changes its header). */
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

/** Mutes or unmutes the room's pushes; the list's 🔕 and the pane's button follow the answer. */
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
