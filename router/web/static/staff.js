/*
 * Shuiwu Hub — what every staff page needs: the REST client (session cookie + CSRF header,
 * redirect to sign-in on 401, to the new-password form while a one-time password is in use), the live staff WebSocket with its connection indicator, the toast,
 * the signed-in user, the navigation and the sign-out button; the names of agent presence states.
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
  // Roles that see every agent and queue (the wallboard, forcing an agent's state).
  const OVERSEER_ROLES = new Set(['supervisor', 'admin']);
  // Roles that find calls and play their recordings (agents only those of conversations they may see).
  const CALL_RECORD_ROLES = new Set(['agent', 'supervisor', 'admin']);
  const PRESENCE_LABELS = { signed_out: '未签入', ready: '就绪', away: '小休', busy: '忙碌', acw: '话后整理' };
  const AWAY_REASONS = ['小休', '用餐', '培训', '会议'];
  const CHANNEL_LABELS = { webchat: '网页', wechat: '微信', sms: '短信', voice: '电话', account: '户号' };
  const DELIVERY_LABELS = { queued: '待发送', sending: '发送中', sent: '已发送', delivered: '已送达', failed: '发送失败' };
  const CONVERSATION_STATE_LABELS = {
    bot: '机器人接待', queued: '排队中', assigned: '服务中', waiting_resident: '等待居民回复', closed: '已结束',
  };
  const CONNECTION_TEXT = { connecting: '正在连接…', open: '实时连接正常', closed: '连接已断开，正在重连…' };
  // Signed in with a one-time password: the sign-in page asks for a new one before anything else.
  const PASSWORD_CHANGE_URL = '/app/login?change=1';
  // Admins' pages, in every admin's navigation.
  const ADMIN_NAV = [
    { href: '/app/admin', testid: 'nav-admin', text: '账号管理' },
    { href: '/app/admin/audit', testid: 'nav-audit', text: '审计日志' },
    { href: '/app/ivr', testid: 'nav-ivr', text: '语音菜单' },
  ];

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
    return HOME[role] || '/app/inbox';
  }

  function isOverseer(role) {
    return OVERSEER_ROLES.has(role);
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

    function goTo(url) {
      if (leaving) return;
      leave();
      window.location.replace(url);
    }

    async function send(method, path, init) {
      let response;
      try {
        response = await fetch(path, { method, credentials: 'same-origin', ...init });
      } catch (err) {
        throw new ApiError(0, 'network', '网络连接失败，请检查网络后重试', leaving);
      }
      if (response.status === 401) {
        goTo(loginUrl);
        throw new ApiError(401, 'unauthorized', '登录已失效，请重新登录', true);
      }
      if (response.status === 204) return null;
      const data = await ChatKit.readJson(response);
      if (!response.ok) {
        const error = (data && data.error) || {};
        if (error.code === 'password_change_required') {
          goTo(PASSWORD_CHANGE_URL);
          throw new ApiError(403, error.code, error.message || '请先修改密码', true);
        }
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
      // Sends one file as the `file` part of a multipart form.
      upload(path, file, method = 'POST') {
        const form = new FormData();
        form.append('file', file, file.name);
        return send(method, path, { headers: writeHeaders({}), body: form });
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

  /*
   * The staff WebSocket (/api/ws), kept connected by ChatKit.reconnectingSocket, its state shown on
   * `statusNode` (data-state connecting/open/closed and a text). A refused handshake or an auth close may
   * mean the session expired: it is checked, which redirects to sign-in on 401. `onOpen` runs on every
   * (re)connection, when the page should fetch what it may have missed.
   */
  function staffSocket({ http, statusNode, onOpen = () => {}, onFrame, onClose = () => {} }) {
    function show(stateName) {
      statusNode.dataset.state = stateName;
      statusNode.textContent = CONNECTION_TEXT[stateName];
    }
    const socket = ChatKit.reconnectingSocket({
      url: () => `${window.location.protocol === 'https:' ? 'wss:' : 'ws:'}//${window.location.host}/api/ws`,
      onConnecting: () => show('connecting'),
      onOpen: () => {
        socket.resetBackoff();
        show('open');
        onOpen();
      },
      onFrame,
      onClose: (info) => {
        if (info.authFailed || !info.opened) {
          http.me().catch(() => {}); // 401 redirects; other failures are retried with the socket
        }
        show('closed');
        onClose(info);
      },
    });
    return socket;
  }

  // Agents, supervisors and admins get the call records in the page's navigation; supervisors and admins
  // also the wallboard, admins their own pages.
  function addRoleNav(user) {
    const nav = document.querySelector('.nav');
    if (!nav || !CALL_RECORD_ROLES.has(user.role)) return;
    const links = [{ href: '/app/calls', testid: 'nav-calls', text: '通话记录' }];
    if (isOverseer(user.role)) links.push({ href: '/app/wallboard', testid: 'nav-wallboard', text: '监控大屏' });
    if (user.role === 'admin') links.push(...ADMIN_NAV);
    for (const { href, testid, text } of links) {
      if (nav.querySelector(`[data-testid=${testid}]`)) continue;
      const link = ChatKit.el('a', { href, 'data-testid': testid, text });
      if (window.location.pathname === href) link.setAttribute('aria-current', 'page');
      nav.append(link);
    }
  }

  // Fills the page header with the user and wires its sign-out button.
  // The page's header for the signed-in user, who is returned; null (after saying why) when that failed.
  async function signIn(http, toast) {
    let session;
    try {
      session = await http.me();
    } catch (err) {
      toast.report(err);
      return null;
    }
    header(session.user, http, toast);
    document.body.classList.remove('booting');
    return session.user;
  }

  function header(user, http, toast) {
    addRoleNav(user);
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

  // A datetime-local value is the browser's local time; the API wants an offset.
  function withOffset(local) {
    return local ? new Date(local).toISOString() : '';
  }

  // The query of a filter form: its filled `text` fields (trimmed) and `times` (datetime-local, sent with the
  // browser's offset); empty fields are left out.
  function formQuery(form, { text = [], times = [] }) {
    const fields = form.elements;
    const params = new URLSearchParams();
    for (const name of text) {
      const value = fields[name].value.trim();
      if (value) params.set(name, value);
    }
    for (const name of times) {
      const value = withOffset(fields[name].value);
      if (value) params.set(name, value);
    }
    return params;
  }

  // A filtered list read page by page, newest first (`before_id`), as the audit log and the call records are:
  // submitting the filter form (its `text` and `times` fields) reloads it, the "more" button appends the next
  // `limit` rows. Returns the first load.
  function pagedList({ http, toast, path, limit, text, times, row, filters, rows, more, empty }) {
    let nextBefore = null;
    let latest = 0; // a search started after this one makes its answer stale (answers may come in any order)
    function query(before) {
      const params = formQuery(filters, { text, times });
      params.set('limit', String(limit));
      if (before) params.set('before_id', String(before));
      return params.toString();
    }
    async function load(append) {
      const ticket = ++latest;
      const page = await http.api('GET', `${path}?${query(append ? nextBefore : null)}`);
      if (ticket !== latest) return;
      const items = page.items.map(row);
      if (append) rows.append(...items);
      else rows.replaceChildren(...items);
      nextBefore = page.next_before_id;
      more.hidden = nextBefore === null;
      empty.hidden = rows.children.length > 0;
    }
    async function run(append, button) {
      button.disabled = true;
      try {
        await load(append);
      } catch (err) {
        toast.report(err);
      }
      button.disabled = false;
    }
    filters.addEventListener('submit', (event) => {
      event.preventDefault();
      run(false, filters.querySelector('[type=submit]'));
    });
    more.addEventListener('click', () => run(true, more));
    return () => run(false, more);
  }

  // A small table-row button: disabled while its handler runs (a double click acts once), errors toasted, then
  // `after` (the list's reload), when given.
  function actionButton(label, testid, handler, { toast, after = null, danger = false }) {
    const node = ChatKit.el('button', {
      class: `btn btn-small ${danger ? 'btn-danger' : 'btn-outline'}`, type: 'button', 'data-testid': testid, text: label,
    });
    node.addEventListener('click', async () => {
      node.disabled = true;
      try {
        await handler();
      } catch (err) {
        toast.report(err);
      }
      node.disabled = false;
      if (after) await after();
    });
    return node;
  }

  return {
    ApiError, client, staffSocket, toaster, header, signIn, homeFor, isOverseer, formQuery, pagedList, actionButton,
    ROLE_LABELS, PRESENCE_LABELS, AWAY_REASONS,
    CHANNEL_LABELS, CONVERSATION_STATE_LABELS, DELIVERY_LABELS,
  };
})();
