/*
 * Shuiwu Hub — staff sign-in (/app/login).
 * Uses `ChatKit` from chatkit.js, which the page loads first.
 */
(() => {
  'use strict';

  const DEFAULT_TARGET = '/app/agent';
  const LOGIN_ERRORS = {
    401: '用户名或密码错误',
    429: '尝试次数过多，请稍后再试',
  };
  const form = document.getElementById('login-form');
  const username = document.getElementById('username');
  const password = document.getElementById('password');
  const submit = document.querySelector('[data-testid=login-submit]');
  const errorBox = document.querySelector('[data-testid=login-error]');

  // Only same-origin paths under /app/ are accepted as redirect targets (no open redirect).
  function redirectTarget() {
    const next = new URLSearchParams(window.location.search).get('next');
    if (!next || !next.startsWith('/app/')) return DEFAULT_TARGET;
    try {
      const url = new URL(next, window.location.origin);
      if (url.origin !== window.location.origin) return DEFAULT_TARGET;
      if (!url.pathname.startsWith('/app/') || url.pathname === '/app/login') return DEFAULT_TARGET;
      return url.pathname + url.search + url.hash;
    } catch (err) {
      return DEFAULT_TARGET;
    }
  }

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const credentials = { username: username.value.trim(), password: password.value };
    if (!credentials.username || !credentials.password) {
      showError('请输入用户名和密码');
      (credentials.username ? password : username).focus();
      return;
    }
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    // A stale session cookie may still be present; carry its CSRF value so the request is never rejected for it.
    const csrf = ChatKit.readCookie('hub_csrf');
    if (csrf) headers['X-CSRF-Token'] = csrf;

    submit.disabled = true;
    submit.textContent = '正在登录…';
    try {
      const response = await fetch('/api/auth/login', {
        method: 'POST',
        credentials: 'same-origin',
        headers,
        body: JSON.stringify(credentials),
      });
      if (response.ok) {
        window.location.replace(redirectTarget());
        return;
      }
      const body = await ChatKit.readJson(response);
      showError(ChatKit.errorMessage(body, response.status, LOGIN_ERRORS, '登录失败'));
      password.select();
    } catch (err) {
      showError('无法连接服务器，请检查网络后重试');
    }
    submit.disabled = false;
    submit.textContent = '登录';
  });
  submit.disabled = false; // login.html ships it disabled until this handler is in place
})();
