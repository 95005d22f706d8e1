// The open room's message list: drawing it (items, system lines, quotes, mentions, reaction
// chips, the picker, the inline editor, older pages) and what its own buttons do. The list is
// redrawn whole from state.view, so the focus and caret are kept across a redraw.
import { compareIds } from './api.js';
import { byId, clearError, h, showError, timeOf } from './dom.js';
import { DELETED_TEXT, PICKER_EMOJI, applyEdit, entry, splitMentions } from './model.js';
import { state } from './state.js';
import { renderPresent, startReply } from './view.js';

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
export function renderMessages(toBottom = false) {
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

/** One message: a system line (INVITE, LEAVE), or a CHAT with its quote, chips, state and buttons. */
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

/** Where a message the user sent is while it has no id yet: sending, sent (RECEIPT), or failed. */
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

/** The page before the oldest shown (`nextBefore`): scrolling to the top or 이전 메시지 asks for it. */
export async function loadOlder() {
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
// what the messages' own buttons do

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

/** Opens the inline editor on the user's own message, with its text as the draft. */
function startEdit(m) {
  state.view.editing = { messageId: m.messageId, draft: m.content };
  state.view.picker = null;
  renderMessages();
  focusKey(`${m.messageId}:editor`);
}

/** Closes the editor without saving; the focus goes back to its 수정 button. */
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

/** Deletes the user's own message; the DELETE event redraws it, for everyone alike. */
async function deleteMessage(messageId) {
  try {
    await state.api.deleteMessage(state.view.roomId, messageId);
  } catch (e) {
    showError(e);
  }
}
