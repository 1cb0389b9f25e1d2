/*
 * Shuiwu Hub — admins' account page (/app/admin): staff accounts (create, disable and enable, one-time
 * password, sign out everywhere, lift a sign-in lock, a SIP phone extension for agents and supervisors with its
 * password shown once) and service tokens (create, shown once; revoke).
 * Uses `ChatKit` and `StaffKit` (chatkit.js, staff.js), which the page loads first.
 */
(() => {
  'use strict';

  const { el } = ChatKit;
  const LOGIN_URL = '/app/login?next=/app/admin';
  const http = StaffKit.client({ loginUrl: LOGIN_URL });
  let toast = null;
  let resetUser = null; // the account whose one-time password is being set
  let phoneUser = null; // the account whose phone extension is being set
  const PHONE_ROLES = ['agent', 'supervisor'];
  const dom = {};

  function localTime(iso) {
    return iso ? new Date(iso).toLocaleString('zh-CN', { hour12: false }) : '—';
  }

  function clockTime(iso) {
    return new Date(iso).toLocaleTimeString('zh-CN', { hour12: false, hour: '2-digit', minute: '2-digit' });
  }

  function userState(user) {
    if (!user.active) return { text: '已停用', kind: 'off' };
    if (user.locked_until) return { text: `已锁定至 ${clockTime(user.locked_until)}`, kind: 'locked' };
    if (user.must_change_password) return { text: '待修改一次性密码', kind: 'pending' };
    return { text: '正常', kind: 'ok' };
  }

  function actionButton(label, testid, handler, danger = false) {
    return StaffKit.actionButton(label, testid, handler, { toast, danger });
  }

  function userRow(user) {
    const state = userState(user);
    const actions = el('td', { class: 'admin-actions' }, [
      user.active
        ? actionButton('停用', 'disable-user', () => change(user, { active: false }, '已停用'), true)
        : actionButton('启用', 'enable-user', () => change(user, { active: true }, '已启用')),
      actionButton('重置密码', 'reset-password', async () => askReset(user)),
      actionButton('强制下线', 'sign-out-user', async () => {
        await http.api('POST', `/api/users/${user.id}/sign-out`);
        toast.show(`${user.username} 已在所有设备下线`, 'ok');
        await loadUsers();
      }),
      PHONE_ROLES.includes(user.role) ? actionButton(user.sip_extension ? '换分机/密码' : '设置分机', 'set-phone',
        async () => askPhone(user)) : null,
      user.sip_extension ? actionButton('收回分机', 'remove-phone', async () => {
        await http.api('DELETE', `/api/users/${user.id}/phone`);
        toast.show(`已收回 ${user.username} 的分机 ${user.sip_extension}`, 'ok');
        await loadUsers();
      }, true) : null,
      user.locked_until ? actionButton('解锁', 'unlock-user', async () => {
        await http.api('POST', `/api/users/${user.id}/unlock`);
        toast.show(`${user.username} 已解锁`, 'ok');
        await loadUsers();
      }) : null,
    ]);
    return el('tr', { 'data-testid': 'user-row', 'data-username': user.username, 'data-state': state.kind }, [
      el('td', { text: user.username }),
      el('td', { text: user.display_name }),
      el('td', { text: StaffKit.ROLE_LABELS[user.role] || user.role }),
      el('td', { text: user.teams.map((team) => team.name).join('、') || '—' }),
      el('td', {
        'data-testid': 'user-phone',
        text: user.sip_extension ? `${user.sip_extension}${user.sip_kind === 'browser' ? '（软电话）' : ''}` : '—',
      }),
      el('td', { 'data-testid': 'user-state', text: state.text }),
      el('td', { text: localTime(user.last_login_at) }),
      actions,
    ]);
  }

  async function change(user, body, done) {
    await http.api('PATCH', `/api/users/${user.id}`, body);
    toast.show(`${user.username} ${done}`, 'ok');
    await loadUsers();
  }

  function askReset(user) {
    resetUser = user;
    dom.resetTarget.textContent = `为 ${user.username}（${user.display_name}）设置一次性密码：`;
    dom.resetForm.hidden = false;
    dom.resetForm.elements.password.value = '';
    dom.resetForm.elements.password.focus();
  }

  function askPhone(user) {
    phoneUser = user;
    dom.phoneTarget.textContent = `为 ${user.username}（${user.display_name}）设置话机分机：`;
    dom.phoneForm.hidden = false;
    dom.phoneBox.hidden = true;
    dom.phoneForm.elements.extension.value = user.sip_extension || '';
    dom.phoneForm.elements.kind.value = user.sip_kind || 'desk';
    dom.phoneForm.elements.extension.focus();
  }

  async function loadUsers() {
    const { items } = await http.api('GET', '/api/users');
    dom.userRows.replaceChildren(...items.map(userRow));
  }

  function tokenRow(token) {
    return el('tr', { 'data-testid': 'token-row', 'data-name': token.name }, [
      el('td', { text: token.name }),
      el('td', { text: StaffKit.ROLE_LABELS[token.role] || token.role }),
      el('td', { text: localTime(token.created_at) }),
      el('td', { 'data-testid': 'token-state', text: token.revoked_at ? `已吊销（${localTime(token.revoked_at)}）` : '有效' }),
      el('td', {}, [token.revoked_at ? null : actionButton('吊销', 'revoke-token', async () => {
        await http.api('POST', `/api/tokens/${token.id}/revoke`);
        toast.show(`令牌 ${token.name} 已吊销`, 'ok');
        await loadTokens();
      }, true)]),
    ]);
  }

  async function loadTokens() {
    const { items } = await http.api('GET', '/api/tokens');
    dom.tokenRows.replaceChildren(...items.map(tokenRow));
  }

  function onSubmit(form, handler) {
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const button = form.querySelector('[type=submit]');
      button.disabled = true;
      try {
        await handler(form.elements);
      } catch (err) {
        toast.report(err);
      }
      button.disabled = false;
    });
  }

  function wireForms() {
    onSubmit(dom.newUser, async (fields) => {
      const teams = fields.teams.value.split(/[,，、]/).map((name) => name.trim()).filter(Boolean);
      await http.api('POST', '/api/users', {
        username: fields.username.value.trim(),
        display_name: fields.display_name.value.trim(),
        role: fields.role.value,
        teams,
        password: fields.password.value,
        one_time: fields.one_time.checked,
      });
      toast.show(`已新建账号 ${fields.username.value.trim()}`, 'ok');
      dom.newUser.reset();
      await loadUsers();
    });
    onSubmit(dom.resetForm, async (fields) => {
      await http.api('POST', `/api/users/${resetUser.id}/password`, { password: fields.password.value });
      toast.show(`已为 ${resetUser.username} 设置一次性密码，其登录已全部失效`, 'ok');
      dom.resetForm.hidden = true;
      await loadUsers();
    });
    document.querySelector('[data-testid=reset-cancel]').addEventListener('click', () => {
      dom.resetForm.hidden = true;
    });
    onSubmit(dom.phoneForm, async (fields) => {
      const phone = await http.api('PUT', `/api/users/${phoneUser.id}/phone`, {
        extension: fields.extension.value, kind: fields.kind.value,
      });
      dom.phoneExtension.textContent = phone.extension;
      dom.phoneSipUser.textContent = phone.extension;
      dom.phoneRealm.textContent = phone.realm;
      dom.phonePassword.textContent = phone.password;
      dom.phoneBox.hidden = false;
      dom.phoneForm.hidden = true;
      await loadUsers();
    });
    document.querySelector('[data-testid=phone-cancel]').addEventListener('click', () => {
      dom.phoneForm.hidden = true;
    });
    onSubmit(dom.newToken, async (fields) => {
      const created = await http.api('POST', '/api/tokens', { name: fields.name.value.trim(), role: fields.role.value });
      dom.tokenValue.textContent = created.token;
      dom.tokenBox.hidden = false;
      dom.newToken.reset();
      await loadTokens();
    });
  }

  async function boot() {
    toast = StaffKit.toaster(document.querySelector('[data-testid=toast]'));
    Object.assign(dom, {
      userRows: document.getElementById('user-rows'),
      tokenRows: document.getElementById('token-rows'),
      newUser: document.getElementById('new-user'),
      resetForm: document.getElementById('reset-form'),
      resetTarget: document.querySelector('[data-testid=reset-target]'),
      phoneForm: document.getElementById('phone-form'),
      phoneTarget: document.querySelector('[data-testid=phone-target]'),
      phoneBox: document.querySelector('[data-testid=new-phone]'),
      phoneExtension: document.querySelector('[data-testid=new-phone-extension]'),
      phoneSipUser: document.querySelector('[data-testid=new-phone-user]'),
      phoneRealm: document.querySelector('[data-testid=new-phone-realm]'),
      phonePassword: document.querySelector('[data-testid=new-phone-password]'),
      newToken: document.getElementById('new-token'),
      tokenBox: document.querySelector('[data-testid=new-token]'),
      tokenValue: document.querySelector('[data-testid=new-token-value]'),
    });
    const me = await StaffKit.signIn(http, toast);
    if (!me) return;
    if (me.role !== 'admin') {
      document.querySelector('[data-testid=admin-denied]').hidden = false;
      return;
    }
    wireForms();
    document.getElementById('admin').hidden = false;
    try {
      await Promise.all([loadUsers(), loadTokens()]);
    } catch (err) {
      toast.report(err);
    }
  }

  boot();
})();
