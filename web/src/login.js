// The sign-in form: a user id (development login) or a pasted access token. It only turns what
// the user gave into a token and hands it on; what a token starts is main.js's.
import { devLogin } from './api.js';
import { byId, h, showError } from './dom.js';

const app = byId('app');

/**
 * Draws the sign-in form; `onToken` gets the token from either way of signing in, so this
 * module needs nothing from the signed-in page.
 */
export function renderLogin(onToken, note = '') {
  const userField = h('input', {
    id: 'login-user', testid: 'login-user', name: 'userId', autocomplete: 'username',
    required: true, pattern: '[A-Za-z0-9_.@\\-]{1,128}',
  });
  const tokenField = h('textarea', { id: 'login-token', rows: 3 });
  app.replaceChildren(
    h('main', { class: 'login' },
      h('h1', {}, 'DidiHouse 채팅'),
      h('form', { onsubmit: (e) => { e.preventDefault(); loginDev(userField.value.trim(), onToken); } },
        h('label', { for: 'login-user' }, '사용자 ID (개발용 로그인)'),
        userField,
        h('button', { type: 'submit', testid: 'login-submit' }, '로그인')),
      h('form', { onsubmit: (e) => { e.preventDefault(); onToken(tokenField.value.trim()); } },
        h('label', { for: 'login-token' }, '또는 액세스 토큰 붙여넣기'),
        tokenField,
        h('button', { type: 'submit' }, '토큰으로 로그인')),
      h('p', { id: 'error', role: 'alert' }, note)));
  userField.focus();
}

/** The development login: an edge without `dev_login` answers no token, and the form says so. */
async function loginDev(userId, onToken) {
  try {
    const token = await devLogin(userId);
    if (token) onToken(token);
    else showError(new Error('이 서버는 개발용 로그인이 꺼져 있습니다. 토큰을 붙여 넣으세요.'));
  } catch (e) {
    showError(e);
  }
}
