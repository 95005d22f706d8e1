// The open room's live events, from the room subscription: what each does to the view (new
// messages, invites, leaves, deletes, reactions, edits, presence, typing), and presence read as
// a snapshot plus the changes after it.
import { applyDelete, applyEdit, applyQuoteDeleted, applyReaction, entry, markRead, presentAfter } from './model.js';
import { renderMessages } from './messages.js';
import { renderRooms } from './rooms.js';
import { state } from './state.js';
import { cancelReply, closeView, renderPresent } from './view.js';

/**
 * One event of the open room (`meta`, live.js: its log id, and whether it is the replay that
 * follows the history read): TYPING only redraws the indicator, the others go through ROOM_EVENTS.
 */
export function onRoom(event, meta) {
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
export function onRoomSubscribing(roomId) {
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
export async function onRoomReady(roomId) {
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
