/*
 * Shuiwu Hub — a resident's satisfaction survey (/survey?t=<token>), reached by the link in the
 * completion notice. The token is the only credential; the hub keeps just its hash.
 */
(() => {
  'use strict';

  const token = new URLSearchParams(window.location.search).get('t') || '';
  const node = (id) => document.querySelector(`[data-testid=${id}]`);
  const status = node('survey-status');
  const form = node('survey-form');
  const errorBox = node('survey-error');
  const submit = node('survey-submit');

  function showStatus(text) {
    status.textContent = text;
    status.hidden = false;
  }

  function showOrder(view) {
    node('survey-number').textContent = view.number;
    node('survey-category').textContent = view.category;
    node('survey-title').textContent = view.title;
    node('survey-completion').textContent = view.completion || '—';
    node('survey-order').hidden = false;
  }

  function render(view) {
    showOrder(view);
    if (view.answered) {
      form.hidden = true;
      showStatus(`感谢您的评价${view.score ? `(${view.score} 分)` : ''},我们会持续改进供水服务。`);
    } else if (view.expired) {
      form.hidden = true;
      showStatus('评价链接已过期。如仍有问题,请拨打服务热线。');
    } else {
      status.hidden = true;
      form.hidden = false;
    }
  }

  function chosen(name) {
    const input = form.querySelector(`input[name=${name}]:checked`);
    return input ? input.value : null;
  }

  async function load() {
    if (!/^[A-Za-z0-9_-]{20,64}$/.test(token)) {
      showStatus('评价链接无效,请从通知中的链接打开。');
      return;
    }
    try {
      const response = await fetch(`/api/surveys?token=${encodeURIComponent(token)}`, { headers: { Accept: 'application/json' } });
      const body = await ChatKit.readJson(response);
      if (!response.ok) {
        showStatus(ChatKit.errorMessage(body, response.status, { 404: '评价链接无效,请从通知中的链接打开。' }));
        return;
      }
      render(body);
    } catch (err) {
      showStatus('网络连接失败,请稍后重试。');
    }
  }

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    errorBox.hidden = true;
    const score = chosen('score');
    const resolved = chosen('resolved');
    if (!score || !resolved) {
      errorBox.textContent = !score ? '请选择满意程度' : '请选择问题是否已解决';
      errorBox.hidden = false;
      return;
    }
    const comment = node('survey-comment').value.trim();
    submit.disabled = true;
    try {
      const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
      // A staff session in the same browser makes the hub ask for its CSRF token, as on any write.
      const csrf = ChatKit.readCookie('hub_csrf');
      if (csrf) headers['X-CSRF-Token'] = csrf;
      const response = await fetch('/api/surveys', {
        method: 'POST',
        headers,
        body: JSON.stringify({ token, score: Number(score), resolved: resolved === 'yes', comment: comment || null }),
      });
      const body = await ChatKit.readJson(response);
      if (!response.ok) {
        errorBox.textContent = ChatKit.errorMessage(body, response.status, {}, '提交失败');
        errorBox.hidden = false;
        submit.disabled = false;
        return;
      }
      render(body);
    } catch (err) {
      errorBox.textContent = '网络连接失败,请稍后重试。';
      errorBox.hidden = false;
      submit.disabled = false;
    }
  });

  load();
})();
