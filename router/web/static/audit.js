/*
 * Shuiwu Hub — the audit log for admins (/app/admin/audit): newest first, filtered by who, what, which
 * object and when, a page at a time. Read only: the hub has no way to change an entry.
 * Uses `ChatKit` and `StaffKit` (chatkit.js, staff.js), which the page loads first.
 */
(() => {
  'use strict';

  const { el } = ChatKit;
  const PAGE = 50;
  const ACTION_LABELS = {
    'auth.login': '登录',
    'auth.login_failed': '登录失败',
    'auth.lockout': '账号锁定',
    'user.create': '新建账号',
    'user.disable': '停用账号',
    'user.enable': '启用账号',
    'user.role_change': '变更角色',
    'user.teams_change': '变更班组',
    'user.update': '修改资料',
    'user.password_reset': '重置密码',
    'user.password_change': '修改密码',
    'user.password_change_failed': '修改密码失败',
    'user.sign_out_all': '强制下线',
    'user.unlock': '解锁账号',
    'token.create': '新建令牌',
    'token.revoke': '吊销令牌',
  };
  const TARGET_LABELS = { user: '账号', token: '令牌' };
  const http = StaffKit.client({ loginUrl: '/app/login?next=/app/admin/audit' });
  let toast = null;
  const dom = {};

  function detailsText(details) {
    if (!details) return '';
    return Object.entries(details)
      .map(([key, value]) => `${key}: ${typeof value === 'object' ? JSON.stringify(value) : value}`)
      .join('；');
  }

  function row(entry) {
    const target = entry.target_type
      ? `${TARGET_LABELS[entry.target_type] || entry.target_type} #${entry.target_id || ''}` : '';
    return el('tr', { 'data-testid': 'audit-row', 'data-action': entry.action }, [
      el('td', { text: new Date(entry.at).toLocaleString('zh-CN', { hour12: false }) }),
      el('td', { text: entry.actor }),
      el('td', { title: entry.action, text: ACTION_LABELS[entry.action] || entry.action }),
      el('td', { text: target }),
      el('td', { text: entry.ip || '' }),
      el('td', { class: 'admin-details', text: detailsText(entry.details) }),
    ]);
  }

  async function boot() {
    toast = StaffKit.toaster(document.querySelector('[data-testid=toast]'));
    Object.assign(dom, {
      filters: document.getElementById('audit-filters'),
      rows: document.getElementById('audit-rows'),
      more: document.querySelector('[data-testid=audit-more]'),
      empty: document.querySelector('[data-testid=audit-empty]'),
    });
    const me = await StaffKit.signIn(http, toast);
    if (!me) return;
    if (me.role !== 'admin') {
      document.querySelector('[data-testid=audit-denied]').hidden = false;
      return;
    }
    const firstPage = StaffKit.pagedList({
      http, toast, path: '/api/audit', limit: PAGE, text: ['actor', 'action', 'target_id'], times: ['since', 'until'],
      row, filters: dom.filters, rows: dom.rows, more: dom.more,
      empty: dom.empty,
    });
    document.getElementById('audit').hidden = false;
    await firstPage();
  }

  boot();
})();
