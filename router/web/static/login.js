/*
 * Shuiwu Hub — staff sign-in (/app/login), and the new password that must follow a one-time one
 * (after signing in with it, or at /app/login?change=1 when another page was refused for it).
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
  const passwordForm = document.getElementById('password-form');
  const currentPassword = document.getElementById('current-password');
  const newPassword = document.getElementById('new-password');
  const confirmPassword = document.getElementById('confirm-password');
  const passwordSubmit = document.querySelector('[data-testid=password-submit]');
  const passwordError = document.querySelector('[data-testid=password-error]');
  let role = null; // of the user who must change the password, for where to go afterwards

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

  function showError(message, box = errorBox) {
    box.textContent = message;
    box.hidden = false;
  }

  function writeHeaders() {
    const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
    // A stale session cookie may still be present; carry its CSRF value so the request is never rejected for it.
    const csrf = ChatKit.readCookie('hub_csrf');
    if (csrf) headers['X-CSRF-Token'] = csrf;
    return headers;
  }

  // `typed`: the one-time password just used to sign in (not asked for again); null: ask for it.
  function askForNewPassword(typed) {
    form.hidden = true;
    passwordForm.hidden = false;
    passwordForm.dataset.current = typed || '';
    currentPassword.closest('.field').hidden = Boolean(typed);
    (typed ? newPassword : currentPassword).focus();
  }

  passwordForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    passwordError.hidden = true;
    const current = passwordForm.dataset.current || currentPassword.value;
    if (!current) {
      showError('请输入当前的一次性密码', passwordError);
      currentPassword.focus();
      return;
    }
    if (!newPassword.value) {
      showError('请输入新密码', passwordError);
      newPassword.focus();
      return;
    }
    if (newPassword.value !== confirmPassword.value) {
      showError('两次输入的新密码不一致', passwordError);
      confirmPassword.select();
      return;
    }
    passwordSubmit.disabled = true;
    try {
      const response = await fetch('/api/auth/password', {
        method: 'POST',
        credentials: 'same-origin',
        headers: writeHeaders(),
        body: JSON.stringify({ current_password: current, new_password: newPassword.value }),
      });
      const body = await ChatKit.readJson(response);
      if (response.ok) {
        window.location.replace(redirectTarget((body && body.user && body.user.role) || role));
        return;
      }
      if (response.status === 401) {
        // The one-time session has ended (expired, or an admin reset it again): sign in anew.
        passwordForm.hidden = true;
        form.hidden = false;
        showError('登录已失效，请重新登录');
      } else {
        showError(ChatKit.errorMessage(body, response.status, {}, '设置新密码失败'), passwordError);
      }
    } catch (err) {
      showError('无法连接服务器，请检查网络后重试', passwordError);
    }
    passwordSubmit.disabled = false;
  });

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const credentials = { username: username.value.trim(), password: password.value };
    if (!credentials.username || !credentials.password) {
      showError('请输入用户名和密码');
      (credentials.username ? password : username).focus();
      return;
    }
    const headers = writeHeaders();

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
      if (response.ok && body && body.password_change_required) {
        role = body.user && body.user.role;
        askForNewPassword(credentials.password);
        return;
      }
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
  passwordSubmit.disabled = false;
  if (new URLSearchParams(window.location.search).get('change') === '1') askForNewPassword(null);
})();
