// The open room's view: the state made when a room opens and ended when it closes (timers and
// subscription included), and the small lines around its message list drawn from that state:
// who is here, who is typing, and the reply being written.
import { compareIds } from './api.js';
import { byId, h } from './dom.js';
import { renderRooms } from './rooms.js';
import { state } from './state.js';
import { TypingShown, TypingSignal } from './typing.js';

/** The state of one open room; everything in it ends with the view (timers included). */
export function newView(roomId) {
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
export function leaveView(view) {
  view.typingSignal.stop();
  view.typingShown.clear();
  state.live?.closeRoom(view.roomId);
}

/** The newest message read so far: the room subscription's `since`, so nothing is missed. */
export function newestId(view) {
  const ids = [...view.messages.keys()].sort(compareIds);
  return ids.length ? ids[ids.length - 1] : null;
}

/** Back to the list (the back button, leaving, or being removed): no room is open any more. */
export function closeView() {
  if (state.view) leaveView(state.view);
  state.view = null;
  byId('panes').classList.remove('in-room');
  byId('room-pane').replaceChildren(h('p', { class: 'empty' }, '채팅방을 고르세요.'));
  renderRooms();
}

/** "지금 이 방에: …": who is in the room now, the user always among them. */
export function renderPresent() {
  const el = byId('present');
  if (!el || !state.view) return;
  const present = new Set([state.me, ...state.view.present]);
  el.textContent = `지금 이 방에: ${[...present].sort().join(', ')}`;
}

/** "B님이 입력 중…" for the others typing now; hidden when nobody is. */
export function renderTyping() {
  const el = byId('typing');
  if (!el || !state.view) return;
  const names = state.view.typingShown.names();
  el.hidden = names.length === 0;
  el.textContent = names.length ? `${names.map((n) => `${n}님`).join(', ')}이 입력 중…` : '';
}

// ---------------------------------------------------------------------------------------------
// the reply being written

/** The quote above the composer while a reply is being written, with its cancel button. */
export function renderReplyBar() {
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

/** Answers `m`: the composer shows the quote until sent or cancelled. */
export function startReply(m) {
  state.view.replyTo = { messageId: m.messageId, senderId: m.senderId, content: m.content };
  renderReplyBar();
  byId('composer').focus();
}

/** Drops the reply being written (✕, Escape, or its message deleted); the draft text stays. */
export function cancelReply() {
  if (!state.view) return;
  state.view.replyTo = null;
  renderReplyBar();
}
