// The open room's actions that ask the edge for something: sending (and what the edge says
// about each send), inviting and leaving. Each redraws through the lower modules; muting, which
// redraws the whole pane, is room.js's.
import { byId, showError } from './dom.js';
import { renderMessages } from './messages.js';
import { mentionsIn } from './model.js';
import { state } from './state.js';
import { closeView, renderReplyBar } from './view.js';

/** A client message id: random, so a resend after a reconnect is recognised as the same. */
function newClientMessageId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

/** The edge stored a message the user sent (its RECEIPT): it shows as 전송됨 until its CHAT comes. */
export function onReceipt(clientMessageId) {
  const p = state.view?.pending.find((x) => x.clientMessageId === clientMessageId);
  if (p) {
    p.state = 'sent';
    renderMessages();
  }
}

/** The edge refused a SEND for good (e.g. INVALID_REPLY): it stays shown as failed. */
export function onRefused(clientMessageId, message) {
  showError(new Error(message));
  const p = state.view?.pending.find((x) => x.clientMessageId === clientMessageId);
  if (p) {
    p.state = 'failed';
    renderMessages();
  }
}

/**
 * Sends the composer's text (with the reply and the members it mentions): it shows at once as
 * pending, and live.js resends it after a reconnect until the edge answers.
 */
export function sendFromComposer() {
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

/** Invites the listed users to the open group room; the INVITE event shows them joining. */
export async function invite(users) {
  const userIds = users.split(/[,\s]+/).filter(Boolean);
  if (!userIds.length) return;
  try {
    await state.api.invite(state.view.roomId, userIds);
  } catch (e) {
    showError(e);
  }
}

/** Leaves the open room: it leaves the list, and the view closes. */
export async function leave() {
  const roomId = state.view.roomId;
  try {
    await state.api.leave(roomId);
    state.rooms.delete(roomId);
    if (state.view?.roomId === roomId) closeView();
  } catch (e) {
    showError(e);
  }
}
