// Small DOM helpers shared by every part of the page: building elements, finding them, times,
// and the alert line that says why an action failed. They know nothing of the chat.
import { ApiError } from './api.js';

/** An element with attributes (`on*` become listeners) and children (strings become text). */
export function h(tag, attrs = {}, ...children) {
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

/** The element with `id`, or null: most of the page is redrawn, so it is looked up each time. */
export const byId = (id) => document.getElementById(id);

/** A message's time as people in the room read it (Korean, hours and minutes). */
export const timeOf = (iso) =>
  iso ? new Date(iso).toLocaleTimeString('ko-KR', { hour: '2-digit', minute: '2-digit' }) : '';

/** Empties the alert area: the action it was about has since succeeded. */
export function clearError() {
  const box = byId('error');
  if (box) box.textContent = '';
}

/** Says in the alert area why something failed, with the API's `code` when it gave one. */
export function showError(e) {
  const text = e instanceof ApiError ? `${e.code}: ${e.message}` : String(e.message ?? e);
  const box = byId('error');
  if (box) box.textContent = text;
}
