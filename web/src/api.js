// The HTTP API (docs/api.md) with the signed-in user's token; errors carry the API's `code`.

/** An error answer of the API: `code` is what to switch on, `message` is for people. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Calls `path` as JSON; resolves with the parsed body (null for 204). */
export async function call(method, path, { token, body } = {}) {
  const headers = {};
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok) {
    const error = json?.error ?? {};
    throw new ApiError(res.status, error.code ?? 'HTTP_' + res.status, error.message ?? text);
  }
  return json;
}

/** The API as one user. */
export function apiFor(token) {
  const as = (method, path, body) => call(method, path, { token, body });
  return {
    rooms: () => as('GET', '/api/rooms'),
    room: (roomId) => as('GET', `/api/rooms/${roomId}`),
    createRoom: (type, userIds, name) =>
      as('POST', '/api/rooms', name ? { type, userIds, name } : { type, userIds }),
    history: (roomId, before) =>
      as('GET', `/api/rooms/${roomId}/messages?limit=30${before ? `&before=${before}` : ''}`),
    deleteMessage: (roomId, messageId) =>
      as('DELETE', `/api/rooms/${roomId}/messages/${messageId}`),
    editMessage: (roomId, messageId, content) =>
      as('PATCH', `/api/rooms/${roomId}/messages/${messageId}`, { content }),
    /** Adds (`on`) or takes back the caller's reaction; the emoji is URL-encoded in the path. */
    react: (roomId, messageId, emoji, on) =>
      as(on ? 'PUT' : 'DELETE',
        `/api/rooms/${roomId}/messages/${messageId}/reactions/${encodeURIComponent(emoji)}`),
    /** Who has the room open now, as of a log position (`asOf`). */
    presence: (roomId) => as('GET', `/api/rooms/${roomId}/presence`),
    invite: (roomId, userIds) => as('POST', `/api/rooms/${roomId}/members`, { userIds }),
    leave: (roomId) => as('DELETE', `/api/rooms/${roomId}/members/me`),
    mute: (roomId, muted) => as('PUT', `/api/rooms/${roomId}/mute`, { muted }),
  };
}

/** A token from the development login, or null when the edge has it off (404). */
export async function devLogin(userId) {
  try {
    const { token } = await call('POST', '/api/dev/login', { body: { userId } });
    return token;
  } catch (e) {
    if (e.status === 404) return null;
    throw e;
  }
}

/** The user id (`sub`) of a token, read without verifying: the edge verifies it. */
export function tokenUser(token) {
  const payload = token.split('.')[1] ?? '';
  const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
  return JSON.parse(json).sub;
}

/** Orders message ids, decimal strings of any length (docs/api.md). */
export function compareIds(a, b) {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
