/*
 * Shuiwu Hub — what every staff page needs: the REST client (session cookie + CSRF header,
 * redirect to sign-in on 401), the toast, the signed-in user and the sign-out button.
 *
 * A classic script whose only top-level name is `StaffKit`; pages load chatkit.js, then this file.
 */
const StaffKit = (() => {
  'use strict';

  const TOAST_MS = 6000;
  const ROLE_LABELS = {
    agent: '坐席', supervisor: '班长', admin: '管理员', handler: '部门处理人', field_crew: '维修人员', editor: '知识编辑',
  };
  // Where each role starts after signing in.
  const HOME = { field_crew: '/app/field', handler: '/app/orders' };

  class ApiError extends Error {
    constructor(status, code, message, silent = false, details = null) {
      super(message);
      this.status = status;
      this.code = code;
      this.silent = silent;
      this.details = details;
    }
  }

  function homeFor(role) {
    return HOME[role] || '/app/agent';
  }

  /*
   * The REST client of one page. `loginUrl` is where a lost session goes; `onLeave` runs once
   * when the page is being left (stop sockets, timers), after which errors are silent.
   */
  function client({ loginUrl, onLeave = () => {} }) {
    let csrf = null;
    let leaving = false;

    function leave() {
      if (leaving) return;
      leaving = true;
      onLeave();
    }

    function goToLogin() {
      if (leaving) return;
      leave();
      window.location.replace(loginUrl);
    }

    async function send(method, path, init) {
      let response;
      try {
        response = await fetch(path, { method, credentials: 'same-origin', ...init });
      } catch (err) {
        throw new ApiError(0, 'network', '网络连接失败，请检查网络后重试', leaving);
      }
      if (response.status === 401) {
        goToLogin();
        throw new ApiError(401, 'unauthorized', '登录已失效，请重新登录', true);
      }
      if (response.status === 204) return null;
      const data = await ChatKit.readJson(response);
      if (!response.ok) {
        const error = (data && data.error) || {};
        throw new ApiError(response.status, error.code || 'http_error', ChatKit.errorMessage(data, response.status),
          false, error.details || null);
      }
      return data;
    }

    function writeHeaders(extra) {
      const headers = { Accept: 'application/json', ...extra };
      const token = ChatKit.readCookie('hub_csrf') || csrf;
      if (token) headers['X-CSRF-Token'] = token;
      return headers;
    }

    return {
      get leaving() {
        return leaving;
      },
      set csrf(token) {
        csrf = token;
      },
      leave,
      api(method, path, body) {
        if (method === 'GET') return send(method, path, { headers: { Accept: 'application/json' } });
        return send(method, path, {
          headers: writeHeaders({ 'Content-Type': 'application/json' }),
          body: JSON.stringify(body === undefined ? {} : body),
        });
      },
      // POSTs one file as the `file` part of a multipart form.
      upload(path, file) {
        const form = new FormData();
        form.append('file', file, file.name);
        return send('POST', path, { headers: writeHeaders({}), body: form });
      },
      // Reads the session (redirecting to sign-in without one) and remembers its CSRF token.
      async me() {
        const session = await this.api('GET', '/api/auth/me');
        if (session && session.csrf_token) csrf = session.csrf_token;
        return session;
      },
      async logout() {
        await this.api('POST', '/api/auth/logout');
        leave();
        window.location.replace('/app/login');
      },
    };
  }

  // A message line that hides itself after a few seconds or on a click.
  function toaster(node) {
    let timer = 0;
    function hide() {
      clearTimeout(timer);
      node.hidden = true;
    }
    node.addEventListener('click', hide);
    return {
      show(message, kind = 'error') {
        node.textContent = message;
        node.dataset.kind = kind;
        node.hidden = false;
        clearTimeout(timer);
        timer = setTimeout(hide, TOAST_MS);
      },
      hide,
      // Shows what went wrong, unless the error is one the user need not see (a redirect is under way).
      report(err) {
        if (err && err.silent) return;
        this.show((err && err.message) || '操作失败，请稍后重试');
      },
    };
  }

  // Fills the page header with the user and wires its sign-out button.
  function header(user, http, toast) {
    const name = document.querySelector('[data-testid=user-name]');
    const role = document.querySelector('[data-testid=user-role]');
    const logout = document.querySelector('[data-testid=logout]');
    if (name) name.textContent = user.display_name || user.username;
    if (role) {
      role.textContent = ROLE_LABELS[user.role] || user.role || '';
      role.hidden = !role.textContent;
    }
    if (logout) {
      logout.addEventListener('click', async () => {
        logout.disabled = true;
        try {
          await http.logout();
        } catch (err) {
          toast.report(err);
          logout.disabled = false;
        }
      });
    }
  }

  return { ApiError, client, toaster, header, homeFor, ROLE_LABELS };
})();
