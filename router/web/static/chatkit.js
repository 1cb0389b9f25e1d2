/*
 * Shuiwu Hub — browser code shared by the resident widget and the staff pages.
 *
 * A classic script whose only top-level name is `ChatKit`. The staff pages load it
 * from /app/static/chatkit.js before their own script; /widget.js is this file and
 * the widget wrapped in one function, so nothing reaches the embedding site's globals.
 */
const ChatKit = (() => {
  'use strict';

  const PING_INTERVAL_MS = 25000;
  const IDLE_TIMEOUT_MS = 70000;
  const BACKOFF_BASE_MS = 1000;
  const BACKOFF_MAX_MS = 30000;
  const CLOSE_AUTH_FAILED = 4401;
  const TYPING_SEND_INTERVAL_MS = 2000;
  const TYPING_SHOW_MS = 3000;
  const AUTHORS = new Set(['resident', 'agent', 'bot', 'system']);

  // ------------------------------------------------------------------ DOM

  // Builds an element; `class` and `text` are shortcuts, null/undefined/false attributes are left out.
  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === 'class') node.className = value;
      else if (name === 'text') node.textContent = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child) node.append(child);
    }
    return node;
  }

  // Enter calls `submit`; Shift+Enter inserts a newline; an IME composition is never interrupted.
  function sendOnEnter(textarea, submit) {
    textarea.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
        event.preventDefault();
        submit();
      }
    });
  }

  // Keeps a scrolling message list pinned to its newest entry while the reader is near it.
  function scroller(container, slackPx) {
    const isNearBottom = () => container.scrollHeight - container.scrollTop - container.clientHeight < slackPx;
    const scrollToBottom = () => {
      container.scrollTop = container.scrollHeight;
    };
    return {
      isNearBottom,
      scrollToBottom,
      follow() {
        if (isNearBottom()) scrollToBottom();
      },
    };
  }

  // --------------------------------------------------------------- format

  function formatTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const pad = (n) => String(n).padStart(2, '0');
    const hm = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
    if (date.toDateString() === new Date().toDateString()) return hm;
    return `${date.getMonth() + 1}月${date.getDate()}日 ${hm}`;
  }

  function formatSize(bytes) {
    if (!Number.isFinite(bytes) || bytes < 0) return '';
    if (bytes < 1024) return `${bytes} B`;
    if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
    return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
  }

  // ----------------------------------------------------------------- HTTP

  function readCookie(name) {
    for (const part of document.cookie.split(';')) {
      const index = part.indexOf('=');
      if (index < 0 || part.slice(0, index).trim() !== name) continue;
      try {
        return decodeURIComponent(part.slice(index + 1).trim());
      } catch (err) {
        return null;
      }
    }
    return null;
  }

  async function readJson(response) {
    try {
      return await response.json();
    } catch (err) {
      return null;
    }
  }

  // The hub's own error message if the body has one, else a text known for the status, else a generic one.
  function errorMessage(body, status, byStatus = {}, failed = '请求失败') {
    const message = body && body.error && body.error.message;
    return message || byStatus[status] || `${failed}（HTTP ${status}）`;
  }

  // ------------------------------------------------------------- messages

  function authorOf(message) {
    return AUTHORS.has(message.author) ? message.author : 'system';
  }

  // A shared location as a link to the map (Amap's public marker page: the maps residents in China use).
  function locationNode(location) {
    const lat = Number(location.lat);
    const lng = Number(location.lng);
    if (!Number.isFinite(lat) || !Number.isFinite(lng) || Math.abs(lat) > 90 || Math.abs(lng) > 180) return null;
    const label = typeof location.label === 'string' && location.label ? location.label : `${lat.toFixed(5)}, ${lng.toFixed(5)}`;
    const href = `https://uri.amap.com/marker?position=${lng},${lat}&name=${encodeURIComponent(label)}&coordinate=gaode`;
    return el('a', { class: 'location', href, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'location-link' },
      [el('span', { class: 'location-label', text: `📍 ${label}` })]);
  }

  // The body of a message bubble: an image thumbnail, a location, or a file link (a voice message's too), then
  // the text (a voice message's recognition).
  // `hrefFor(url)` returns a safe link for an attachment URL or null; `onImageLoad` runs once a thumbnail has loaded.
  function contentNodes(message, { hrefFor, onImageLoad }) {
    const nodes = [];
    const attachment = message.attachment;
    const location = message.type === 'location' && message.payload && message.payload.location;
    if (location && typeof location === 'object') nodes.push(locationNode(location));
    if ((message.type === 'image' || message.type === 'file' || message.type === 'voice') && attachment) {
      const href = hrefFor(attachment.url);
      const name = attachment.name || (message.type === 'image' ? '图片' : '附件');
      if (message.type === 'image' && href) {
        const img = el('img', { src: href, alt: name, loading: 'lazy' });
        img.addEventListener('load', onImageLoad);
        nodes.push(el('a', { class: 'thumb', href, target: '_blank', rel: 'noopener noreferrer', title: name }, [img]));
      } else {
        nodes.push(el(href ? 'a' : 'span', {
          class: 'file',
          href,
          target: href ? '_blank' : null,
          rel: href ? 'noopener noreferrer' : null,
          title: name,
        }, [
          el('span', { class: 'file-name', text: name }),
          el('span', { class: 'file-size', text: formatSize(attachment.size) }),
        ]));
      }
    }
    if (message.text) nodes.push(el('div', { class: 'text', text: message.text }));
    return nodes;
  }

  // The link of a satisfaction survey the hub sent with a completed order's notice, or null.
  function surveyLink(message) {
    const survey = message.payload && message.payload.survey;
    const href = survey && typeof survey.url === 'string' && /^https?:\/\//.test(survey.url) ? survey.url : null;
    if (!href) return null;
    return el('a', { class: 'survey-link', href, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'survey-link' },
      [document.createTextNode('评价本次服务')]);
  }

  // Shows `node` for a few seconds each time the other side types (show), and throttles our own
  // typing frames (notify): `send()` returns whether the frame went out.
  function typingIndicator(node, send) {
    let hideTimer = 0;
    let lastSent = 0;
    function hide() {
      clearTimeout(hideTimer);
      node.hidden = true;
    }
    return {
      show() {
        node.hidden = false;
        clearTimeout(hideTimer);
        hideTimer = setTimeout(hide, TYPING_SHOW_MS);
      },
      hide,
      notify() {
        const now = Date.now();
        if (now - lastSent < TYPING_SEND_INTERVAL_MS) return;
        if (send()) lastSent = now;
      },
    };
  }

  // ------------------------------------------------------------ WebSocket

  /*
   * A WebSocket that keeps itself connected: retries with jittered exponential back-off
   * (1, 2, 4 … 30 s), pings every 25 s and gives a socket up after 70 s without any frame.
   *   url()              the address to connect to, or a promise of it; throwing means "retry later"
   *   onConnecting()     an attempt begins
   *   onOpen()           the socket is open
   *   onFrame(frame)     a JSON object frame arrived
   *   onClose(info)      the attempt failed or the socket was lost; info = { authFailed, opened }
   * The back-off starts over when the caller says the connection works (resetBackoff),
   * on restart() and when the browser comes back online.
   */
  function reconnectingSocket({ url, onConnecting, onOpen = () => {}, onFrame, onClose }) {
    let ws = null;
    let opening = false; // waiting for url()
    let opened = false; // the current socket has reached the open state
    let started = false;
    let stopped = false;
    let attempts = 0;
    let retryTimer = 0;
    let pingTimer = 0;
    let lastFrameAt = 0;

    async function connect() {
      clearTimeout(retryTimer);
      if (ws || opening || stopped) return;
      opening = true;
      onConnecting();
      let socket = null;
      try {
        socket = new WebSocket(await url());
      } catch (err) {
        // No address yet (or a malformed one): handled as a failed attempt below.
      }
      opening = false;
      if (stopped) {
        if (socket) socket.close();
        return;
      }
      if (!socket) {
        lose(null);
        return;
      }
      ws = socket;
      socket.onopen = () => {
        opened = true;
        lastFrameAt = Date.now();
        startPing();
        onOpen();
      };
      socket.onmessage = (event) => {
        lastFrameAt = Date.now();
        const frame = parseFrame(event.data);
        // Events that waited for the socket together come as one array, in their order.
        for (const one of Array.isArray(frame) ? frame : [frame]) {
          if (one && typeof one === 'object' && !Array.isArray(one)) onFrame(one);
        }
      };
      socket.onclose = (event) => lose(event.code);
    }

    function parseFrame(raw) {
      try {
        const frame = JSON.parse(raw);
        return frame && typeof frame === 'object' ? frame : null;
      } catch (err) {
        return null;
      }
    }

    // Forgets the current socket without reporting anything.
    function detach() {
      const socket = ws;
      ws = null;
      opened = false;
      clearInterval(pingTimer);
      if (!socket) return;
      socket.onopen = null;
      socket.onmessage = null;
      socket.onclose = null;
      if (socket.readyState === WebSocket.CONNECTING || socket.readyState === WebSocket.OPEN) socket.close();
    }

    // Forgets the current socket (if any) and tells the caller it is gone.
    function drop(code) {
      const wasOpened = opened;
      detach();
      onClose({ authFailed: code === CLOSE_AUTH_FAILED, opened: wasOpened });
    }

    function lose(code) {
      drop(code);
      scheduleRetry();
    }

    function scheduleRetry() {
      if (stopped) return;
      clearTimeout(retryTimer);
      const base = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(attempts, 15));
      const delay = Math.min(BACKOFF_MAX_MS, base * (0.8 + Math.random() * 0.4));
      attempts += 1;
      retryTimer = setTimeout(connect, delay);
    }

    function startPing() {
      clearInterval(pingTimer);
      pingTimer = setInterval(() => {
        if (Date.now() - lastFrameAt > IDLE_TIMEOUT_MS) {
          // No frame, not even a pong, for too long: the connection is dead even if the browser has not noticed.
          lose(null);
          return;
        }
        send({ type: 'ping' });
      }, PING_INTERVAL_MS);
    }

    function send(frame) {
      if (!ws || ws.readyState !== WebSocket.OPEN) return false;
      ws.send(JSON.stringify(frame));
      return true;
    }

    function onOnline() {
      if (ws || stopped) return;
      attempts = 0;
      connect();
    }

    return {
      send,
      // Connects once; later calls do nothing.
      start() {
        if (started || stopped) return;
        started = true;
        window.addEventListener('online', onOnline);
        connect();
      },
      resetBackoff() {
        attempts = 0;
      },
      // Drops the current socket (reported through onClose) and connects again at once.
      restart() {
        if (stopped) return;
        if (ws) drop(null);
        attempts = 0;
        connect();
      },
      // Closes for good: no callbacks, no reconnecting.
      stop() {
        stopped = true;
        clearTimeout(retryTimer);
        window.removeEventListener('online', onOnline);
        detach();
      },
    };
  }

  // ------------------------------------------------------- call me back

  // 请给我回电: the form of the widget and of the official account's page. Test ids are `testid` and
  // `<testid>-phone`, `-when`, `-at`, `-note`, `-submit` (and `-cancel` with `onCancel`). On submit, `onSubmit(body,
  // button)` gets the request as POST bodies take it (phone, preferred_after, note; no client_id), or
  // `onInvalid(text, field)` says what is missing.
  function callbackForm({ testid, title = null, hidden = false, onSubmit, onInvalid, onCancel = null }) {
    const id = (name) => `${testid}-${name}`;
    const form = el('form', { class: 'callback', 'data-testid': testid, hidden, novalidate: true }, [
      title ? el('div', { class: 'callback-title', text: title }) : null,
      el('label', {}, ['手机号或固定电话（含区号）', el('input', {
        name: 'phone', type: 'tel', inputmode: 'tel', autocomplete: 'tel', maxlength: '40', 'data-testid': id('phone'),
      })]),
      el('label', {}, ['希望回电时间', el('select', { name: 'when', 'data-testid': id('when') }, [
        el('option', { value: 'asap', text: '尽快' }),
        el('option', { value: 'later', text: '指定时间' }),
      ])]),
      el('label', { hidden: true }, ['从此时间以后', el('input', {
        name: 'at', type: 'datetime-local', 'data-testid': id('at'),
      })]),
      el('label', {}, ['备注（选填）', el('input', { name: 'note', maxlength: '200', 'data-testid': id('note') })]),
      el('div', { class: 'callback-actions' }, [
        onCancel ? el('button', { type: 'button', class: 'cancel', 'data-testid': id('cancel'), text: '取消' }) : null,
        el('button', { type: 'submit', class: 'send', 'data-testid': id('submit'), text: '提交' }),
      ]),
    ]);
    const fields = form.elements;
    const atLabel = fields.at.parentElement;
    fields.when.addEventListener('change', () => {
      atLabel.hidden = fields.when.value !== 'later';
    });
    if (onCancel) form.querySelector('.cancel').addEventListener('click', onCancel);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      const phone = fields.phone.value.trim();
      if (!phone) {
        onInvalid('请填写回电号码', fields.phone);
        return;
      }
      const body = { phone };
      if (fields.when.value === 'later') {
        const at = fields.at.value ? new Date(fields.at.value) : null;
        if (!at || Number.isNaN(at.getTime())) {
          onInvalid('请选择希望回电的时间', fields.at);
          return;
        }
        body.preferred_after = at.toISOString();
      }
      if (fields.note.value.trim()) body.note = fields.note.value.trim();
      onSubmit(body, form.querySelector('[type=submit]'));
    });
    form.clear = () => {
      form.reset();
      atLabel.hidden = true;
    };
    return form;
  }

  return {
    el,
    callbackForm,
    sendOnEnter,
    scroller,
    formatTime,
    formatSize,
    readCookie,
    readJson,
    errorMessage,
    authorOf,
    contentNodes,
    surveyLink,
    typingIndicator,
    reconnectingSocket,
  };
})();
