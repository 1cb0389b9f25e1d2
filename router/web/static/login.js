/*
 * Shuiwu Hub — staff sign-in (/app/login).
 * Uses `ChatKit` and `StaffKit` (chatkit.js, staff.js), which the page loads first.
 */
(() => {
  'use strict';

  const LOGIN_ERRORS = {
    401: '用户名或密码错误',
    429: '尝试次数过多，请稍后再试',
  };
  const form = document.getElementById('login-form');
  const username = document.getElementById('username');
  const password = document.getElementById('password');
  const submit = document.querySelector('[data-testid=login-submit]');
  const errorBox = document.querySelector('[data-testid=login-error]');

  // The page asked for, else the role's home. Only same-origin paths under /app/ are accepted (no open redirect).
  function redirectTarget(role) {
    const home = StaffKit.homeFor(role);
    const next = new URLSearchParams(window.location.search).get('next');
    if (!next || !next.startsWith('/app/')) return home;
    try {
      const url = new URL(next, window.location.origin);
      if (url.origin !== window.location.origin) return home;
      if (!url.pathname.startsWith('/app/') || url.pathname === '/app/login') return home;
      return url.pathname + url.search + url.hash;
    } catch (err) {
      return home;
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
      const body = await ChatKit.readJson(response);
      if (response.ok) {
        window.location.replace(redirectTarget(body && body.user && body.user.role));
        return;
      }
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
