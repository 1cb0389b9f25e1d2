/*
 * Shuiwu Hub — resident web chat widget.
 *
 * Embed on any page:
 *   <script src="https://hub.example.cn/widget.js" data-hub="https://hub.example.cn" defer></script>
 * `data-hub` is optional; it defaults to the origin the script was loaded from.
 *
 * Wire protocol: docs/api-contract.md ("Resident web chat").
 *
 * The hub serves this file together with router/web/static/chatkit.js, in one function scope:
 * `ChatKit` (rendering, reconnecting socket, typing indicator) comes from there.
 */
(() => {
  'use strict';

  // Embedding the script twice must not create two widgets.
  if (window.__shuiwuWebchatLoaded) return;
  window.__shuiwuWebchatLoaded = true;

  const TOKEN_KEY = 'shuiwu.webchat.token';
  const MAX_TEXT_LENGTH = 2000;
  const MAX_CHOICE_LENGTH = 200; // a button's payload, sent as the message frame's `choice`
  const RATE_LIMIT_RETRY_MS = 3000;
  const MAX_UPLOAD_BYTES = 10 * 1024 * 1024;
  const NOTICE_MS = 6000;
  const LINK_RENEW_MS = 8 * 60 * 1000; // the hub's links to files last 10 minutes
  const FILE_PATH = /^\/files\/([0-9a-f-]{36})$/;
  const SCROLL_SLACK_PX = 60;
  const ACCEPTED_FILES = 'image/jpeg,image/png,image/gif,image/webp,application/pdf,text/plain,'
    + '.docx,.xlsx,application/vnd.openxmlformats-officedocument.wordprocessingml.document,'
    + 'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet';

  const STATUS_TEXT = {
    connecting: '正在连接客服…',
    open: '已连接，客服将尽快回复您',
    closed: '连接已断开，正在尝试重新连接…',
  };
  const HTTP_ERRORS = {
    413: '文件过大，请选择 10 MB 以内的文件',
    415: '不支持该文件类型',
  };

  const { el, formatTime, formatSize, readJson, errorMessage } = ChatKit;

  // document.currentScript is only set while this file is first evaluated.
  const scriptEl = document.currentScript || document.querySelector('script[src*="widget.js"]');
  const hubBase = resolveHubBase(scriptEl);
  const hubOrigin = new URL(hubBase).origin;

  // ---------------------------------------------------------------- helpers

  function resolveHubBase(script) {
    const explicit = script && script.dataset.hub;
    try {
      if (explicit) {
        const url = new URL(explicit, document.baseURI);
        return (url.origin + url.pathname).replace(/\/+$/, '');
      }
      if (script && script.src) return new URL(script.src).origin;
    } catch (err) {
      // Malformed data-hub: fall back to the page origin below.
    }
    return window.location.origin;
  }

  function hubUrl(path) {
    return hubBase + path;
  }

  function socketUrl(token) {
    const url = new URL(hubUrl('/webchat/ws'));
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', token);
    return url.href;
  }

  function icon(pathData) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    const path = document.createElementNS(ns, 'path');
    path.setAttribute('d', pathData);
    svg.append(path);
    return svg;
  }

  const ICON_CHAT = 'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm3 6.5a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01zm5 0a1.5 1.5 0 1 0 0 .01z';
  const ICON_CLOSE = 'M6.4 5 5 6.4 10.6 12 5 17.6 6.4 19l5.6-5.6 5.6 5.6 1.4-1.4-5.6-5.6L19 6.4 17.6 5 12 10.6z';
  const ICON_PHONE = 'M6.6 10.8a15.1 15.1 0 0 0 6.6 6.6l2.2-2.2a1 1 0 0 1 1-.25 11.4 11.4 0 0 0 3.6.57 1 1 0 0 1 1 1V20a1 1 0 0 1-1 1A17 17 0 0 1 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.45.57 3.57a1 1 0 0 1-.25 1z';
  const ICON_ATTACH = 'M16.5 6.5v10a4.5 4.5 0 0 1-9 0V5a3 3 0 0 1 6 0v10.5a1.5 1.5 0 0 1-3 0V6.5H9v9a3 3 0 0 0 6 0V5a4.5 4.5 0 0 0-9 0v11.5a6 6 0 0 0 12 0v-10z';

  function newClientId() {
    const cryptoApi = window.crypto;
    if (cryptoApi && typeof cryptoApi.randomUUID === 'function') return cryptoApi.randomUUID();
    // randomUUID needs a secure context; build an RFC 4122 v4 id from random hex instead.
    const bytes = new Uint8Array(16);
    if (cryptoApi && typeof cryptoApi.getRandomValues === 'function') {
      cryptoApi.getRandomValues(bytes);
    } else {
      for (let i = 0; i < bytes.length; i += 1) bytes[i] = Math.floor(Math.random() * 256);
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  }

  async function hubFetch(path, init) {
    try {
      return await fetch(hubUrl(path), { credentials: 'omit', ...init });
    } catch (err) {
      throw new Error('网络异常，请稍后重试');
    }
  }

  // ------------------------------------------------------------ visitor token

  const tokenStore = {
    fallback: null, // used when localStorage is unavailable (privacy modes, sandboxed frames)
    get() {
      try {
        return window.localStorage.getItem(TOKEN_KEY) || this.fallback;
      } catch (err) {
        return this.fallback;
      }
    },
    set(token) {
      this.fallback = token;
      try {
        window.localStorage.setItem(TOKEN_KEY, token);
      } catch (err) {
        // Keep the in-memory copy only.
      }
    },
    drop(token) {
      // Only forget the token that actually failed; a newer one may already be stored.
      if (token && this.get() !== token) return;
      this.fallback = null;
      try {
        window.localStorage.removeItem(TOKEN_KEY);
      } catch (err) {
        // Nothing stored.
      }
    },
  };

  let tokenRequest = null;

  function getToken() {
    const stored = tokenStore.get();
    if (stored) return Promise.resolve(stored);
    if (!tokenRequest) {
      tokenRequest = requestToken().finally(() => {
        tokenRequest = null;
      });
    }
    return tokenRequest;
  }

  async function requestToken() {
    const response = await hubFetch('/webchat/visitors', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: '{}',
    });
    const body = await readJson(response);
    if (!response.ok || !body || typeof body.token !== 'string') {
      throw new Error(errorMessage(body, response.status, HTTP_ERRORS));
    }
    tokenStore.set(body.token);
    return body.token;
  }

  // ------------------------------------------------------------------- styles

  const CSS = `
    :host { all: initial; }
    * { box-sizing: border-box; }
    [hidden] { display: none !important; }
    .root {
      font-family: "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC", sans-serif;
      font-size: 14px; line-height: 1.5; color: #1f2d3d;
      -webkit-font-smoothing: antialiased;
    }
    button { font: inherit; cursor: pointer; }
    button:disabled { cursor: not-allowed; opacity: .55; }
    svg { width: 20px; height: 20px; fill: currentColor; flex: none; }
    .launcher {
      position: fixed; right: 24px; bottom: 24px; z-index: 2147483000;
      display: inline-flex; align-items: center; gap: 8px;
      padding: 12px 20px; border: 0; border-radius: 999px;
      background: #0a6ebd; color: #fff; font-size: 15px; font-weight: 600;
      box-shadow: 0 6px 20px rgba(10, 110, 189, .35);
      transition: background .15s, transform .15s;
    }
    .launcher:hover { background: #085a9b; transform: translateY(-1px); }
    .launcher:focus-visible, .icon-btn:focus-visible, .send:focus-visible { outline: 3px solid #7cc0f5; outline-offset: 2px; }
    .badge {
      min-width: 20px; height: 20px; padding: 0 6px; border-radius: 10px;
      background: #e5484d; color: #fff; font-size: 12px; line-height: 20px; text-align: center;
    }
    .panel {
      position: fixed; right: 24px; bottom: 88px; z-index: 2147483001;
      width: 370px; height: min(600px, calc(100vh - 112px));
      display: flex; flex-direction: column; overflow: hidden;
      background: #fff; border-radius: 14px;
      box-shadow: 0 12px 40px rgba(15, 40, 70, .25);
    }
    .head {
      display: flex; align-items: center; justify-content: space-between; gap: 8px;
      padding: 14px 12px 14px 18px; background: linear-gradient(135deg, #0a6ebd, #1592c9); color: #fff;
    }
    .head-title { font-size: 15px; font-weight: 600; }
    .icon-btn {
      display: inline-flex; align-items: center; justify-content: center;
      width: 34px; height: 34px; padding: 0; border: 0; border-radius: 8px;
      background: transparent; color: inherit;
    }
    .head .icon-btn:hover { background: rgba(255, 255, 255, .16); }
    .status {
      padding: 5px 18px; font-size: 12px; color: #5b6b7c; background: #f2f6fa;
      border-bottom: 1px solid #e3eaf1;
    }
    .status[data-state="connecting"] { color: #a06600; background: #fff8e6; }
    .status[data-state="closed"] { color: #b42318; background: #fff1f0; }
    .status.notice { color: #b42318; }
    .body { flex: 1; overflow-y: auto; padding: 14px 14px 6px; background: #f7f9fb; }
    .empty { margin: 28px 12px; color: #7a8795; font-size: 13px; text-align: center; }
    .messages { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 10px; }
    .msg { display: flex; flex-direction: column; max-width: 82%; }
    .msg-resident { align-self: flex-end; align-items: flex-end; }
    .msg-agent, .msg-bot { align-self: flex-start; align-items: flex-start; }
    .msg-system { align-self: center; max-width: 92%; }
    .who { margin: 0 4px 2px; font-size: 12px; color: #7a8795; }
    .bubble {
      padding: 8px 12px; border-radius: 12px; word-break: break-word; overflow-wrap: anywhere;
      background: #fff; border: 1px solid #e3eaf1;
    }
    .msg-resident .bubble { background: #0a6ebd; border-color: #0a6ebd; color: #fff; border-bottom-right-radius: 4px; }
    .msg-agent .bubble, .msg-bot .bubble { border-bottom-left-radius: 4px; }
    .msg-bot .bubble { background: #eef7f1; border-color: #d3eadb; }
    .text { white-space: pre-wrap; }
    .meta { margin: 2px 4px 0; font-size: 11px; color: #99a4b0; }
    .system-text {
      display: inline-block; padding: 3px 10px; border-radius: 10px;
      background: #e9eef3; color: #6b7886; font-size: 12px; text-align: center; white-space: pre-wrap;
    }
    .msg[data-pending="true"] .bubble { opacity: .6; }
    .msg.queued .bubble { background: #9fb3c4; border-color: #9fb3c4; }
    .msg.failed .bubble { background: #fff; color: #b42318; border: 1px solid #f3b7b0; }
    .msg.failed .meta { color: #b42318; }
    .thumb { display: block; line-height: 0; }
    .thumb img { max-width: 220px; max-height: 220px; border-radius: 8px; background: #e9eef3; }
    .thumb + .text { margin-top: 6px; }
    .file {
      display: flex; flex-direction: column; gap: 2px; min-width: 160px;
      padding: 6px 10px; border-radius: 8px; text-decoration: none;
      background: rgba(0, 0, 0, .05); color: inherit;
    }
    .msg-resident .file { background: rgba(255, 255, 255, .16); }
    .file-name { font-weight: 600; text-decoration: underline; }
    .file-size { font-size: 12px; opacity: .75; }
    .file + .text { margin-top: 6px; }
    .survey-link {
      display: inline-block; margin-top: 6px; padding: 4px 12px; border-radius: 14px;
      background: #0a6ebd; color: #fff; font-weight: 600; text-decoration: none;
    }
    .choices { display: flex; flex-wrap: wrap; gap: 6px; margin-top: 6px; }
    .choice {
      padding: 4px 12px; border: 1px solid #0a6ebd; border-radius: 16px;
      background: #fff; color: #0a6ebd; font-size: 13px; line-height: 1.4;
    }
    .choice:hover:not(:disabled) { background: #eef5fc; }
    .choice:focus-visible { outline: 3px solid #7cc0f5; outline-offset: 2px; }
    .choice.chosen, .choice.chosen:disabled { background: #0a6ebd; color: #fff; opacity: 1; }
    .choice:disabled { border-color: #cfd9e3; color: #7a8795; }
    .typing { padding: 4px 18px; font-size: 12px; color: #7a8795; background: #f7f9fb; }
    .callback {
      display: flex; flex-direction: column; gap: 8px; padding: 12px 14px;
      border-top: 1px solid #e3eaf1; background: #fff;
    }
    .callback-title { font-weight: 600; }
    .callback label { display: flex; flex-direction: column; gap: 3px; font-size: 12px; color: #5b6b7c; }
    .callback input, .callback select {
      padding: 7px 10px; border: 1px solid #cfd9e3; border-radius: 8px; font: inherit; color: #1f2d3d;
    }
    .callback-actions { display: flex; gap: 8px; justify-content: flex-end; }
    .callback-actions .cancel { height: 36px; padding: 0 14px; border: 1px solid #cfd9e3; border-radius: 8px; background: #fff; }
    .composer {
      display: flex; align-items: flex-end; gap: 6px;
      padding: 10px; border-top: 1px solid #e3eaf1; background: #fff;
    }
    .composer .icon-btn { color: #5b6b7c; }
    .composer .icon-btn:hover { background: #eef3f8; }
    textarea {
      flex: 1; min-height: 36px; max-height: 120px; resize: none;
      padding: 7px 10px; border: 1px solid #cfd9e3; border-radius: 8px;
      font: inherit; color: inherit; background: #fff; outline: none;
    }
    textarea:focus { border-color: #0a6ebd; box-shadow: 0 0 0 3px rgba(10, 110, 189, .15); }
    .send {
      height: 36px; padding: 0 16px; border: 0; border-radius: 8px;
      background: #0a6ebd; color: #fff; font-weight: 600;
    }
    .send:hover:not(:disabled) { background: #085a9b; }
    @media (max-width: 480px) {
      .panel { right: 0; bottom: 0; width: 100vw; height: 100vh; border-radius: 0; }
      .launcher { right: 16px; bottom: 16px; }
    }
  `;

  // ------------------------------------------------------------------- state

  const ui = {};
  const pending = new Map(); // client_id -> { clientId, text, node }
  const shownIds = new Set(); // server ids of rendered messages
  const unacked = new Set(); // outbound message ids rendered but not yet acknowledged

  let ready = false; // true once the hub's hello frame has arrived on the current socket
  let panelOpen = false;
  let unread = 0;
  let noticeTimer = 0;
  let conversationState = null;
  let agentName = null;

  // -------------------------------------------------------------------- UI

  function buildUi() {
    const host = el('div', { id: 'shuiwu-webchat' });
    const shadow = host.attachShadow({ mode: 'open' });
    const style = document.createElement('style');
    style.textContent = CSS;

    ui.badge = el('span', { class: 'badge', 'aria-label': '未读消息', hidden: true });
    ui.launcher = el('button', {
      type: 'button',
      class: 'launcher',
      'data-testid': 'webchat-launcher',
      'aria-controls': 'swc-panel',
      'aria-expanded': 'false',
    }, [icon(ICON_CHAT), el('span', { text: '在线客服' }), ui.badge]);

    ui.closeButton = el('button', { type: 'button', class: 'icon-btn', 'aria-label': '关闭', title: '关闭' }, [icon(ICON_CLOSE)]);
    ui.callbackButton = el('button', {
      type: 'button', class: 'icon-btn', 'data-testid': 'webchat-callback-open', 'aria-label': '请给我回电', title: '请给我回电',
    }, [icon(ICON_PHONE)]);
    const head = el('header', { class: 'head' }, [
      el('div', { class: 'head-title', id: 'swc-title', text: '在线客服 · 24小时为您服务' }),
      el('div', {}, [ui.callbackButton, ui.closeButton]),
    ]);

    ui.status = el('div', {
      class: 'status',
      'data-testid': 'webchat-status',
      'data-state': 'closed',
      role: 'status',
      'aria-live': 'polite',
      text: '未连接',
    });

    ui.empty = el('p', { class: 'empty', text: '您好！请描述您遇到的用水问题，如缴费、报修、停水咨询等，我们将尽快为您解答。' });
    ui.list = el('ol', { class: 'messages', 'data-testid': 'webchat-messages', 'aria-live': 'polite' });
    ui.body = el('div', { class: 'body' }, [ui.empty, ui.list]);
    ui.scroll = ChatKit.scroller(ui.body, SCROLL_SLACK_PX);

    const typingLine = el('div', { class: 'typing', 'data-testid': 'webchat-typing', hidden: true, text: '客服正在输入…' });
    ui.typing = ChatKit.typingIndicator(typingLine, () => socket.send({ type: 'typing' }));

    ui.file = el('input', { type: 'file', 'data-testid': 'webchat-file', accept: ACCEPTED_FILES, hidden: true, tabindex: '-1' });
    ui.attach = el('button', { type: 'button', class: 'icon-btn', 'aria-label': '发送图片或文件', title: '发送图片或文件（10 MB 以内）' }, [icon(ICON_ATTACH)]);
    ui.input = el('textarea', {
      'data-testid': 'webchat-input',
      rows: '1',
      maxlength: String(MAX_TEXT_LENGTH),
      placeholder: '请输入您的问题，Enter 发送',
      title: 'Enter 发送，Shift+Enter 换行',
      'aria-label': '输入消息',
    });
    ui.send = el('button', { type: 'submit', class: 'send', 'data-testid': 'webchat-send', text: '发送' });
    ui.form = el('form', { class: 'composer' }, [ui.attach, ui.file, ui.input, ui.send]);

    ui.callback = buildCallbackForm();

    ui.panel = el('section', {
      class: 'panel',
      id: 'swc-panel',
      'data-testid': 'webchat-panel',
      role: 'dialog',
      'aria-labelledby': 'swc-title',
      hidden: true,
    }, [head, ui.status, ui.body, typingLine, ui.callback, ui.form]);

    const root = el('div', { class: 'root' }, [ui.launcher, ui.panel]);
    shadow.append(style, root);
    document.body.append(host);

    ui.launcher.addEventListener('click', () => (panelOpen ? closePanel() : openPanel()));
    ui.closeButton.addEventListener('click', () => {
      closePanel();
      ui.launcher.focus();
    });
    ui.panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        closePanel();
        ui.launcher.focus();
      }
    });
    ui.form.addEventListener('submit', (event) => {
      event.preventDefault();
      submitText();
    });
    ChatKit.sendOnEnter(ui.input, submitText);
    ui.input.addEventListener('input', () => {
      autosize();
      if (ready && ui.input.value.trim()) ui.typing.notify();
    });
    ui.callbackButton.addEventListener('click', () => toggleCallbackForm(ui.callback.hidden));
    ui.attach.addEventListener('click', () => ui.file.click());
    ui.file.addEventListener('change', () => {
      const file = ui.file.files && ui.file.files[0];
      if (file) uploadFile(file);
    });
  }

  // ------------------------------------------------------------- call me back

  function buildCallbackForm() {
    return ChatKit.callbackForm({
      testid: 'webchat-callback', title: '请给我回电', hidden: true, onSubmit: submitCallback,
      onInvalid: (text, field) => { showNotice(text); field.focus(); },
      onCancel: () => toggleCallbackForm(false),
    });
  }

  function toggleCallbackForm(show) {
    ui.callback.hidden = !show;
    ui.form.hidden = show;
    if (show) ui.callback.elements.phone.focus();
    else ui.input.focus();
  }

  let callbackClientId = null; // the same for the retries of one request, new after it is stored

  async function submitCallback(request, submit) {
    const body = { client_id: callbackClientId || (callbackClientId = newClientId()), ...request };
    submit.disabled = true;
    try {
      const answer = await postAsVisitor('/webchat/callback', (token) => ({
        method: 'POST',
        headers: { 'X-Visitor-Token': token, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
      }));
      callbackClientId = null;
      if (answer.message) handleMessage(answer.message);
      appendNode(systemNode(`已登记回电：${answer.callback.phone}，${answer.callback.when}。客服将按时给您回电。`,
        { 'data-testid': 'webchat-callback-done' }), true);
      ui.callback.clear();
      toggleCallbackForm(false);
    } catch (err) {
      showNotice(err.message || '提交失败，请稍后重试');
    } finally {
      submit.disabled = false;
    }
  }

  function autosize() {
    ui.input.style.height = 'auto';
    ui.input.style.height = `${Math.min(ui.input.scrollHeight + 2, 120)}px`;
  }

  function openPanel() {
    panelOpen = true;
    ui.panel.hidden = false;
    ui.launcher.setAttribute('aria-expanded', 'true');
    unread = 0;
    renderBadge();
    socket.start();
    flushAcks();
    ui.scroll.scrollToBottom();
    ui.input.focus();
  }

  function closePanel() {
    panelOpen = false;
    ui.panel.hidden = true;
    ui.launcher.setAttribute('aria-expanded', 'false');
  }

  function renderBadge() {
    ui.badge.hidden = unread === 0;
    ui.badge.textContent = unread > 99 ? '99+' : String(unread);
  }

  function setStatus(stateName) {
    clearTimeout(noticeTimer);
    ui.status.dataset.state = stateName;
    ui.status.classList.remove('notice');
    ui.status.textContent = STATUS_TEXT[stateName];
  }

  // Shows a transient message (errors, upload progress) without changing data-state.
  function showNotice(text, isError = true) {
    clearTimeout(noticeTimer);
    ui.status.textContent = text;
    ui.status.classList.toggle('notice', isError);
    noticeTimer = setTimeout(() => setStatus(ui.status.dataset.state), NOTICE_MS);
  }

  function appendNode(node, forceScroll = false) {
    const stick = forceScroll || ui.scroll.isNearBottom();
    ui.list.append(node);
    updateEmpty();
    if (stick) ui.scroll.scrollToBottom();
  }

  function updateEmpty() {
    ui.empty.hidden = ui.list.childElementCount > 0;
  }

  // ---------------------------------------------------------- message nodes

  function fileHref(path) {
    if (!path) return null;
    let url;
    try {
      url = new URL(path, `${hubBase}/`);
    } catch (err) {
      return null;
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
    return url.href; // a stored file's address carries the hub's short-lived link to that file
  }

  // The id of the stored file a link of the hub points to, or null.
  function fileIdOf(href) {
    try {
      const url = new URL(href);
      const match = url.origin === hubOrigin && FILE_PATH.exec(url.pathname);
      return match ? match[1] : null;
    } catch (err) {
      return null;
    }
  }

  // Links to files last minutes: the ones shown are renewed before they expire (the visitor token goes in a header).
  async function renewFileLinks() {
    const token = tokenStore.get();
    const anchors = [...ui.list.querySelectorAll('a[href]')].filter((a) => fileIdOf(a.href));
    if (!token || anchors.length === 0) return;
    const ids = [...new Set(anchors.map((a) => fileIdOf(a.href)))].slice(-100);
    try {
      const response = await hubFetch('/webchat/file-links', {
        method: 'POST',
        headers: { 'X-Visitor-Token': token, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify({ file_ids: ids }),
      });
      if (!response.ok) return;
      const { links } = await response.json();
      for (const anchor of anchors) {
        const href = fileHref(links[fileIdOf(anchor.href)]);
        if (href) anchor.href = href;
      }
    } catch (err) {
      // The next round tries again; a reload always brings fresh links.
    }
  }

  function systemNode(text, attrs = {}) {
    return el('li', { class: 'msg msg-system', 'data-testid': 'webchat-message', 'data-author': 'system', ...attrs }, [
      el('span', { class: 'system-text', text }),
    ]);
  }

  function messageNode(msg) {
    const author = ChatKit.authorOf(msg);
    const ids = { 'data-message-id': msg.id, 'data-client-id': msg.client_id || null };
    if (author === 'system' || msg.type === 'event') {
      const node = systemNode(msg.text || '', ids);
      node.dataset.author = author;
      const survey = ChatKit.surveyLink(msg);
      if (survey) node.append(survey);
      return node;
    }
    const node = el('li', { class: `msg msg-${author}`, 'data-testid': 'webchat-message', 'data-author': author, ...ids });
    if (author !== 'resident') {
      node.append(el('div', { class: 'who', text: msg.author_name || (author === 'bot' ? '智能客服' : '人工客服') }));
    }
    const content = ChatKit.contentNodes(msg, { hrefFor: fileHref, onImageLoad: ui.scroll.follow });
    node.append(el('div', { class: 'bubble' }, content));
    const choices = author === 'bot' ? choicesNode(msg) : null;
    if (choices) node.append(choices);
    node.append(el('div', { class: 'meta', text: formatTime(msg.created_at) }));
    return node;
  }

  // A bot message's buttons as quick replies: a click sends the title as the resident's words and the button's
  // payload as `choice`. Only the latest bot message's are live (refreshChoices).
  function choicesNode(msg) {
    const buttons = msg.payload && Array.isArray(msg.payload.buttons) ? msg.payload.buttons : [];
    const usable = buttons.filter((b) => b && typeof b.title === 'string' && b.title.trim());
    if (usable.length === 0) return null;
    const group = el('div', { class: 'choices', role: 'group', 'aria-label': '可选回复', 'data-testid': 'webchat-choices' });
    for (const button of usable) {
      const chip = el('button', { type: 'button', class: 'choice', 'data-testid': 'webchat-choice', text: button.title.trim() });
      chip.disabled = true;
      chip.addEventListener('click', () => choose(group, chip, button));
      group.append(chip);
    }
    return group;
  }

  function choose(group, chip, button) {
    if (chip.disabled) return; // a second click of a double-click, or an offer that has passed
    for (const other of group.querySelectorAll('button')) other.disabled = true;
    chip.classList.add('chosen');
    chip.setAttribute('aria-pressed', 'true');
    const payload = typeof button.payload === 'string' && button.payload && button.payload.length <= MAX_CHOICE_LENGTH
      ? button.payload : null;
    sendText(button.title.trim().slice(0, MAX_TEXT_LENGTH), payload);
  }

  // The buttons of the latest bot message are live until the resident (or an agent) speaks after it.
  function refreshChoices() {
    let live = null;
    for (const node of Array.from(ui.list.children).reverse()) {
      if (node.dataset.author === 'system') continue;
      if (node.dataset.author === 'bot') live = node;
      break;
    }
    for (const chip of ui.list.querySelectorAll('button.choice')) {
      chip.disabled = !live || !live.contains(chip) || chip.parentElement.querySelector('.chosen') !== null;
    }
  }

  function pendingNode(entry) {
    const meta = el('div', { class: 'meta' });
    const node = el('li', {
      class: 'msg msg-resident',
      'data-testid': 'webchat-message',
      'data-author': 'resident',
      'data-client-id': entry.clientId,
      'data-pending': 'true',
    }, [el('div', { class: 'bubble' }, [el('div', { class: 'text', text: entry.text })]), meta]);
    entry.node = node;
    entry.meta = meta;
    updatePendingLabel(entry);
    return node;
  }

  function updatePendingLabel(entry) {
    entry.node.classList.toggle('queued', !ready && !entry.accepted);
    if (entry.accepted) entry.meta.textContent = '已收到，稍后显示';
    else entry.meta.textContent = ready ? '发送中…' : '未连接，恢复后自动发送';
  }

  // The hub kept the message while its database is away: it shows up, stored, once the database is back.
  function accepted(entry) {
    entry.accepted = true;
    entry.node.setAttribute('data-accepted', 'true');
    updatePendingLabel(entry);
  }

  function updatePendingLabels() {
    for (const entry of pending.values()) updatePendingLabel(entry);
  }

  // ---------------------------------------------------------- conversation

  function renderHistory(messages) {
    ui.typing.hide();
    shownIds.clear();
    const nodes = [];
    for (const msg of messages) {
      if (!msg || msg.id === null || msg.id === undefined || shownIds.has(msg.id)) continue;
      if (msg.client_id) pending.delete(msg.client_id); // echoed before we reconnected
      shownIds.add(msg.id);
      nodes.push(messageNode(msg));
    }
    for (const entry of pending.values()) nodes.push(entry.node);
    ui.list.replaceChildren(...nodes);
    refreshChoices();
    updateEmpty();
    ui.scroll.scrollToBottom();
    trackOutbound(messages);
  }

  function handleMessage(msg) {
    if (!msg || msg.id === null || msg.id === undefined || shownIds.has(msg.id)) return;
    shownIds.add(msg.id);
    const entry = msg.client_id ? pending.get(msg.client_id) : null;
    const node = messageNode(msg);
    if (entry && entry.node.isConnected) {
      pending.delete(msg.client_id);
      const stick = ui.scroll.isNearBottom();
      entry.node.replaceWith(node);
      if (stick) ui.scroll.scrollToBottom();
    } else {
      if (entry) pending.delete(msg.client_id);
      appendNode(node, msg.author === 'resident');
    }
    refreshChoices();
    if (msg.author === 'agent' || msg.author === 'bot') {
      ui.typing.hide();
      if (!panelOpen) {
        unread += 1;
        renderBadge();
      }
    }
    trackOutbound([msg]);
  }

  function trackOutbound(messages) {
    for (const msg of messages) {
      if (msg && msg.direction === 'out' && msg.id !== null && msg.id !== undefined && msg.delivery !== 'delivered') {
        unacked.add(msg.id);
      }
    }
    flushAcks();
  }

  // Outbound messages count as delivered once the resident can actually see them.
  function flushAcks() {
    if (!panelOpen || !ready || unacked.size === 0) return;
    if (socket.send({ type: 'ack', ids: Array.from(unacked) })) unacked.clear();
  }

  function handleState(conversation) {
    if (!conversation) return;
    const previousState = conversationState;
    const previousAgent = agentName;
    conversationState = conversation.state;
    agentName = conversation.agent_name || null;
    let line = null;
    if (conversation.state === 'assigned' && (previousState !== 'assigned' || previousAgent !== agentName)) {
      line = agentName ? `已为您转接人工客服 ${agentName}` : '已为您转接人工客服';
    } else if (conversation.state === 'queued' && previousState !== 'queued' && previousState !== 'bot') {
      // After the bot the hub itself sends the resident a handoff notice; no second line here.
      line = '正在为您转接人工客服，请稍候…';
    } else if (conversation.state === 'closed' && previousState !== 'closed') {
      line = '会话已结束，如有其他问题可继续留言';
      ui.typing.hide();
    }
    if (line) appendNode(systemNode(line));
  }

  // -------------------------------------------------------------- sending

  function submitText() {
    const text = ui.input.value.trim();
    if (!text) return;
    if (text.length > MAX_TEXT_LENGTH) {
      showNotice(`单条消息不能超过 ${MAX_TEXT_LENGTH} 字`);
      return;
    }
    ui.input.value = '';
    autosize();
    sendText(text, null);
  }

  // `choice`: the payload of the button clicked, or null for typed words.
  function sendText(text, choice) {
    const entry = { clientId: newClientId(), text, choice, node: null, meta: null };
    pending.set(entry.clientId, entry);
    appendNode(pendingNode(entry), true);
    refreshChoices();
    if (ready) transmit(entry);
    else socket.start();
  }

  // The hub refused a message: a flood limit or an outage passes, so try again later; anything else is final.
  function refused(entry, code) {
    if (code === 'rate_limited' || code === 'unavailable') {
      setTimeout(() => {
        if (ready && pending.get(entry.clientId) === entry) transmit(entry);
      }, RATE_LIMIT_RETRY_MS);
      return;
    }
    pending.delete(entry.clientId);
    entry.node.removeAttribute('data-pending');
    entry.node.classList.add('failed');
    entry.meta.textContent = '发送失败';
  }

  function transmit(entry) {
    const frame = { type: 'message', client_id: entry.clientId, text: entry.text };
    if (entry.choice) frame.choice = entry.choice;
    socket.send(frame);
  }

  // --------------------------------------------------------------- upload

  // A request in the visitor's name: a token the hub refuses starts a fresh visitor session and the request is
  // made once more. Resolves to the JSON answer; rejects with a message for the resident.
  async function postAsVisitor(path, init) {
    socket.start();
    let token = await getToken();
    let response = await hubFetch(path, init(token));
    if (response.status === 401) {
      tokenStore.drop(token);
      token = await getToken();
      socket.restart();
      response = await hubFetch(path, init(token));
    }
    const body = await readJson(response);
    if (!response.ok) throw new Error(errorMessage(body, response.status, HTTP_ERRORS));
    return body;
  }

  function uploadInit(file) {
    return (token) => {
      const form = new FormData();
      form.append('file', file, file.name);
      return { method: 'POST', headers: { 'X-Visitor-Token': token, Accept: 'application/json' }, body: form };
    };
  }

  async function uploadFile(file) {
    ui.file.value = '';
    if (file.size > MAX_UPLOAD_BYTES) {
      showNotice('文件超过 10 MB，无法发送');
      return;
    }
    ui.attach.disabled = true;
    showNotice(`正在上传 ${file.name}…`, false);
    try {
      const body = await postAsVisitor('/webchat/upload', uploadInit(file));
      if (body && body.message) handleMessage(body.message);
      setStatus(ui.status.dataset.state);
    } catch (err) {
      showNotice(err.message || '上传失败，请稍后重试');
    } finally {
      ui.attach.disabled = false;
    }
  }

  // ----------------------------------------------------------- connection

  let socketToken = null; // the visitor token of the current connection attempt

  const socket = ChatKit.reconnectingSocket({
    async url() {
      socketToken = await getToken();
      return socketUrl(socketToken);
    },
    onConnecting: () => setStatus('connecting'),
    onFrame: handleFrame,
    onClose: ({ authFailed }) => {
      // The hub refused the token: forget it so that the next attempt starts a new visitor session.
      if (authFailed) tokenStore.drop(socketToken);
      ready = false;
      ui.typing.hide();
      updatePendingLabels();
      setStatus('closed');
    },
  });

  function handleFrame(frame) {
    switch (frame.type) {
      case 'hello':
        ready = true;
        socket.resetBackoff();
        setStatus('open');
        // No history while the hub's database is away: what is shown stays as it is.
        if (Array.isArray(frame.messages)) {
          conversationState = frame.conversation ? frame.conversation.state : null;
          agentName = frame.conversation ? frame.conversation.agent_name || null : null;
          renderHistory(frame.messages);
        }
        updatePendingLabels();
        for (const entry of pending.values()) transmit(entry);
        flushAcks();
        break;
      case 'message':
        handleMessage(frame.message);
        break;
      case 'typing':
        if (frame.author !== 'resident') ui.typing.show();
        break;
      case 'state':
        handleState(frame.conversation);
        break;
      case 'accepted':
        if (pending.has(frame.client_id)) accepted(pending.get(frame.client_id));
        break;
      case 'error':
        showNotice(frame.message || '操作失败，请稍后重试');
        if (frame.client_id && pending.has(frame.client_id)) refused(pending.get(frame.client_id), frame.code);
        break;
      default:
        break; // pong and unknown frames
    }
  }

  // ---------------------------------------------------------------- start

  function init() {
    buildUi();
    // A returning visitor resumes right away so replies arrive even before the panel is opened.
    if (tokenStore.get()) socket.start();
    setInterval(renewFileLinks, LINK_RENEW_MS);
    if (window.location.hash === '#chat') openPanel();
    window.addEventListener('hashchange', () => {
      if (window.location.hash === '#chat') openPanel();
    });
  }

  if (document.body) init();
  else document.addEventListener('DOMContentLoaded', init, { once: true });
})();
