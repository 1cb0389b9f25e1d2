/*
 * Shuiwu Hub — a resident's own work orders (/my/orders#t=<token>), reached from the official account's
 * 我的工单 menu (WeChat's OAuth proves who they are; the hub then hands over this signed, expiring link).
 * The token travels in the fragment, so it never reaches a server's access log or a Referer header.
 */
(() => {
  'use strict';

  const node = (id) => document.querySelector(`[data-testid=${id}]`);
  const status = node('my-orders-status');
  const list = node('my-orders');
  const when = new Intl.DateTimeFormat('zh-CN', { dateStyle: 'short', timeStyle: 'short' });

  function showStatus(text) {
    status.textContent = text;
    status.hidden = false;
  }

  function element(tag, className, text) {
    const made = document.createElement(tag);
    if (className) made.className = className;
    if (text !== undefined) made.textContent = text;
    return made;
  }

  function orderItem(order) {
    const item = element('li', 'my-order');
    item.dataset.testid = 'my-order';
    item.dataset.number = order.number;
    const head = element('div', 'my-order-head');
    head.append(element('strong', '', order.number),
      element('span', `badge${order.finished ? ' badge-done' : ''}`, order.state_label));
    item.append(head, element('div', 'my-order-title', `${order.category} · ${order.title}`));
    if (order.address) item.append(element('div', 'muted', order.address));
    const steps = element('ol', 'my-order-steps');
    for (const step of order.steps) {
      steps.append(element('li', '', `${when.format(new Date(step.at))} ${step.state}`));
    }
    item.append(steps);
    return item;
  }

  async function load() {
    const token = new URLSearchParams(window.location.hash.slice(1)).get('t') || '';
    list.hidden = true;
    if (!token) {
      showStatus('链接无效,请从公众号菜单“我的工单”进入。');
      return;
    }
    try {
      const response = await fetch(`/api/my/orders?token=${encodeURIComponent(token)}`,
        { headers: { Accept: 'application/json' } });
      const body = await ChatKit.readJson(response);
      if (!response.ok) {
        showStatus(ChatKit.errorMessage(body, response.status, {}));
        return;
      }
      if (!body.items.length) {
        showStatus('您还没有报修或办理中的工单。');
        return;
      }
      list.replaceChildren(...body.items.map(orderItem));
      list.hidden = false;
      status.hidden = true;
    } catch (err) {
      showStatus('网络异常,请稍后重试。');
    }
  }

  window.addEventListener('hashchange', load);
  load();
})();
