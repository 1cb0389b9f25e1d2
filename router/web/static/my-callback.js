/*
 * Shuiwu Hub — 请给我回电 for a resident of the official account (/my/callback#t=<token>): the menu's item goes
 * through WeChat's OAuth, which proves who they are; the hub then hands over this signed, expiring link. The
 * resident leaves a number and a time; submitting again changes the request (one per resident).
 * The token travels in the fragment, so it never reaches a server's access log or a Referer header.
 */
(() => {
  'use strict';

  const page = document.querySelector('[data-testid=my-callback-page]');
  const status = document.querySelector('[data-testid=my-callback-status]');
  let clientId = null; // the same for the retries of one request, new after it is stored

  function showStatus(text, alert = false) {
    status.textContent = text;
    status.setAttribute('role', alert ? 'alert' : 'status');
    status.dataset.state = alert ? 'error' : 'done';
    status.hidden = false;
  }

  function newClientId() {
    return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(36).slice(2, 12)}`;
  }

  async function submit(request, button) {
    const token = new URLSearchParams(window.location.hash.slice(1)).get('t') || '';
    button.disabled = true; // a double tap sends once
    try {
      const response = await fetch('/api/my/callback', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ token, client_id: clientId || (clientId = newClientId()), ...request }),
      });
      const body = await ChatKit.readJson(response);
      if (!response.ok) {
        showStatus(ChatKit.errorMessage(body, response.status, {}), true);
        return;
      }
      clientId = null;
      showStatus(`已登记回电：${body.callback.phone}，${body.callback.when}。客服将按时给您回电。`);
    } catch {
      showStatus('网络异常,请稍后重试。', true);
    } finally {
      button.disabled = false;
    }
  }

  const form = ChatKit.callbackForm({
    testid: 'my-callback',
    onSubmit: submit,
    onInvalid: (text, field) => { showStatus(text, true); field.focus(); },
  });
  page.insertBefore(form, status);
  if (!new URLSearchParams(window.location.hash.slice(1)).get('t')) {
    showStatus('链接无效,请从公众号菜单“请给我回电”进入。', true);
    form.hidden = true;
  }
})();
