// The room view's data rules, apart from the DOM: how history entries and live events
// (docs/api.md, docs/protocol.md) change the messages shown. Kept pure so each rule is one small
// function that says which case of the protocol it handles.
import { compareIds } from './api.js';

export const DELETED_TEXT = '삭제된 메시지입니다.';

/** The emoji of the reaction picker: a short, familiar set. */
export const PICKER_EMOJI = ['👍', '❤️', '😂', '😮', '😢', '🙏'];

/** A history entry or a live event as one shape: the Message of docs/api.md. */
export function entry(event) {
  switch (event.type) {
    case 'INVITE':
      return { ...event, senderId: event.senderId ?? event.inviterId };
    case 'LEAVE':
      return { ...event, senderId: event.senderId ?? event.userId, userIds: event.userIds ?? [event.userId] };
    case 'CHAT':
      // A live CHAT has no `reactions`; history's always do: one shape for rendering.
      return { ...event, reactions: event.reactions ? event.reactions.map((r) => ({ ...r })) : [] };
    default:
      return event;
  }
}

/**
 * Applies a REACTION to a CHAT's chips. The caller's own reactions are matched exactly against
 * `me`, so a replay of one already counted changes nothing; a new emoji goes last, as it is the
 * newest first use.
 */
export function applyReaction(message, { userId, emoji, added }, me) {
  const mine = userId === me;
  const chips = message.reactions ?? (message.reactions = []);
  const chip = chips.find((r) => r.emoji === emoji);
  if (mine && added === Boolean(chip?.me)) return;
  if (added) {
    if (chip) {
      chip.count += 1;
      chip.me ||= mine;
    } else {
      chips.push({ emoji, count: 1, me: mine });
    }
    return;
  }
  if (!chip) return;
  chip.count -= 1;
  if (mine) chip.me = false;
  if (chip.count <= 0) chips.splice(chips.indexOf(chip), 1);
}

/**
 * Applies an EDIT, unless the message already shows a later one (a replay of an edit that
 * history had already read): edits are idempotent and ordered by `editedAt`.
 */
export function applyEdit(message, { content, editedAt }) {
  if (message.deleted) return;
  if (message.editedAt && editedAt && editedAt < message.editedAt) return;
  message.content = content;
  message.editedAt = editedAt;
}

/** A tombstone keeps nothing of the message (docs/api.md: no replyTo, mentions, editedAt). */
export function applyDelete(message) {
  Object.assign(message, { deleted: true, content: null, unreadCount: 0, reactions: [] });
  delete message.replyTo;
  delete message.mentions;
  delete message.editedAt;
}

/** A quote of a deleted message says so instead of its old text (docs/api.md, `replyTo`). */
export function applyQuoteDeleted(message, deletedIds) {
  const quote = message.replyTo;
  if (!quote || !deletedIds.includes(quote.messageId)) return;
  message.replyTo = { messageId: quote.messageId, senderId: quote.senderId, deleted: true };
}

/**
 * The `mentions` of a composer text: every `@id` word naming a member other than the sender.
 * A trailing punctuation mark ("@bob,") is not part of the id when the id without it is a
 * member.
 */
export function mentionsIn(content, members, me) {
  const found = [];
  for (const match of content.matchAll(/(?:^|\s)@([A-Za-z0-9_.@-]+)/g)) {
    let id = match[1];
    while (id && !members.includes(id) && /[.,!?_@-]$/.test(id)) id = id.slice(0, -1);
    if (id && id !== me && members.includes(id) && !found.includes(id)) found.push(id);
  }
  return found;
}

/**
 * Splits a text into plain strings and `{ mention: id }` parts for each `@id` of `mentions`,
 * longest id first so that `@bob.kim` is not read as `@bob`.
 */
export function splitMentions(text, mentions) {
  if (!text || !mentions?.length) return [text ?? ''];
  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\-]/g, '\\$&');
  const ids = [...mentions].sort((a, b) => b.length - a.length).map(escape);
  const parts = [];
  let at = 0;
  for (const match of text.matchAll(new RegExp(`@(${ids.join('|')})`, 'g'))) {
    if (match.index > at) parts.push(text.slice(at, match.index));
    parts.push({ mention: match[1] });
    at = match.index + match[0].length;
  }
  if (at < text.length) parts.push(text.slice(at));
  return parts;
}

/**
 * `reader` just read `count` messages up to `upTo`: those are the newest CHATs up to there that
 * others sent and that still count someone as not having read them, so each loses one.
 */
export function markRead(messages, reader, upTo, count) {
  if (!count) return;
  const ids = [...messages.keys()].filter((id) => compareIds(id, upTo) <= 0).sort(compareIds).reverse();
  let left = count;
  for (const id of ids) {
    if (left === 0) break;
    const m = messages.get(id);
    if (m.type !== 'CHAT' || m.senderId === reader || !(m.unreadCount > 0)) continue;
    m.unreadCount -= 1;
    left -= 1;
  }
}

/**
 * Who is in the room after the snapshot (`userIds` as of `asOf`) and the presence changes
 * that came meanwhile: only those after `asOf`, in order, since the snapshot has the others.
 */
export function presentAfter(snapshot, changes) {
  const present = new Set(snapshot.userIds);
  for (const { id, userId, here } of changes) {
    // A frame without a log position cannot be placed: it is newer than anything read.
    if (/^[0-9]+$/.test(id ?? '') && compareIds(id, snapshot.asOf) <= 0) continue;
    if (here) present.add(userId);
    else present.delete(userId);
  }
  return present;
}
