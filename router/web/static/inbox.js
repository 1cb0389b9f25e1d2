/*
 * Shuiwu Hub — agent workspace (/app/inbox).
 *
 * REST and WebSocket protocol: docs/api-contract.md ("Staff").
 * Uses `ChatKit` from chatkit.js, `PresenceBar` from presence.js and `DeskKit` from desk.js, which the page
 * loads first. Keyboard shortcuts are listed in the page's 快捷键 panel.
 */
(() => {
  'use strict';

  const LOGIN_URL = '/app/login?next=/app/inbox';
  const LIST_LIMIT = 50;
  const MAX_REPLY_LENGTH = 2000;
  const CLOCK_INTERVAL_MS = 15000;
  const SCROLL_SLACK_PX = 80;
  const ORDER_TITLE_SNIPPET = 30;
  const ORDER_DESCRIPTION_MAX = 2000;
  // Internal notes by kind: a supervisor's whisper, what the bot collected before handing over.
  const NOTE_TAGS = { whisper: '班长提示', bot_summary: '机器人已收集' };

  const TABS = {
    queued: { state: 'queued', mine: false, empty: '暂无排队中的会话' },
    mine: { state: 'assigned', mine: true, empty: '暂无进行中的会话' },
    monitor: { state: 'assigned', mine: false, empty: '暂无其他坐席接待中的会话' }, // supervisors
    bot: { state: 'bot', mine: false, empty: '暂无机器人接待中的会话' },
    closed: { state: 'closed', mine: false, empty: '暂无已结束的会话' },
  };
  const { CHANNEL_LABELS, CONVERSATION_STATE_LABELS: STATE_LABELS, DELIVERY_LABELS } = StaffKit;

  const { el, formatTime } = ChatKit;

  const dom = {};

  const state = {
    me: null,
    tab: 'queued',
    list: new Map(), // id -> Conversation shown in the current tab
    latest: new Map(), // id -> newest Conversation object seen (guards against out-of-order updates)
    queued: new Set(), // ids of queued conversations (tab badge)
    unread: new Map(), // id -> resident messages not yet seen
    queueFilter: null, // team id the queued list is narrowed to (null: every queue)
    arrivedDuringLoad: null, // ids updated by live frames while a list request is in flight
    liveDuringOpen: null, // message ids updated by live frames while the open conversation is being fetched
    mode: 'reply', // the composer sends a reply to the resident, or an internal note
    openId: null,
    open: null, // Conversation currently shown on the right
    messages: new Map(), // id -> Message of the open conversation
    earlyDeliveries: new Map(), // message id -> a delivery frame that came before its message
    lastRendered: null, // last Message appended to the open list
    drafts: new Map(), // conversation id -> unsent reply text
    listSeq: 0,
    openSeq: 0,
    sending: false,
    categories: null, // active work-order categories, loaded when the order form first opens
    orderSubmitting: false,
    orderAutoTitle: '', // the title we filled in; replaced on a category change unless the agent edited it
    claimed: new Set(), // ids this tab claimed or took over itself: no new-assignment alert for those
  };
  let presence = null; // PresenceBar
  let desk = null; // DeskKit tools: canned replies, emoji, close and transfer dialogs
  let contactPanel = null; // ContactPanel: the resident's identities, history, orders and bills
  let contactShown = null; // id of the contact the panel shows
  let socket = null; // StaffKit.staffSocket, opened once the page is bound

  // ---------------------------------------------------------------- helpers

  function sameId(a, b) {
    return a !== null && a !== undefined && b !== null && b !== undefined && String(a) === String(b);
  }

  function time(iso) {
    return iso ? Date.parse(iso) : NaN;
  }

  function formatDuration(ms) {
    const seconds = Math.max(0, Math.floor(ms / 1000));
    if (seconds < 60) return `${seconds}秒`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes}分钟`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return `${hours}小时${minutes % 60 ? `${minutes % 60}分` : ''}`;
    return `${Math.floor(hours / 24)}天`;
  }

  function safeHref(path) {
    if (!path) return null;
    try {
      const url = new URL(path, window.location.origin);
      return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
    } catch (err) {
      return null;
    }
  }

  function contactName(conversation) {
    const contact = conversation && conversation.contact;
    return (contact && contact.display_name) || `访客 #${conversation ? conversation.id : ''}`;
  }

  function assigneeName(conversation) {
    const assignee = conversation && conversation.assignee;
    return assignee ? assignee.display_name || assignee.username || `坐席 #${assignee.id}` : null;
  }

  function isMine(conversation) {
    return Boolean(conversation && conversation.assignee && state.me && sameId(conversation.assignee.id, state.me.id));
  }

  function isSupervisor() {
    return Boolean(state.me && (state.me.role === 'supervisor' || state.me.role === 'admin'));
  }

  function tabOf(conversation) {
    switch (conversation.state) {
      case 'queued':
        return 'queued';
      case 'bot':
        return 'bot';
      case 'closed':
        return 'closed';
      case 'assigned':
        if (isMine(conversation)) return 'mine';
        return isSupervisor() ? 'monitor' : null;
      default:
        return null;
    }
  }

  function activityTime(conversation) {
    const updated = time(conversation.updated_at);
    const last = conversation.last_message ? time(conversation.last_message.created_at) : NaN;
    const best = Math.max(Number.isNaN(updated) ? 0 : updated, Number.isNaN(last) ? 0 : last);
    return best || time(conversation.created_at) || 0;
  }

  function waitingSince(conversation) {
    return time(conversation.queued_at) || time(conversation.created_at) || 0;
  }

  // ------------------------------------------------------------------- REST

  const http = StaffKit.client({ loginUrl: LOGIN_URL, onLeave: () => socket && socket.stop() });
  const api = (method, path, body) => http.api(method, path, body);
  let toast = null; // StaffKit.toaster, once the page is bound

  // ----------------------------------------------------- conversation store

  // Returns the newest known version of a conversation, merging in the latest message preview.
  function remember(conversation) {
    const known = state.latest.get(conversation.id);
    if (known && time(conversation.updated_at) < time(known.updated_at)) return known;
    const merged = { ...conversation };
    if (known && known.last_message && (!merged.last_message || time(known.last_message.created_at) > time(merged.last_message.created_at))) {
      merged.last_message = known.last_message;
    }
    state.latest.set(conversation.id, merged);
    return merged;
  }

  function applyConversation(incoming) {
    if (!incoming || incoming.id === null || incoming.id === undefined) return;
    const before = state.latest.get(incoming.id);
    const conversation = remember(incoming);
    if (state.arrivedDuringLoad) state.arrivedDuringLoad.add(conversation.id);
    if (conversation !== before && (isMine(conversation) || (before && isMine(before)))) presence.refresh();
    if (conversation.state === 'assigned' && isMine(conversation) && !(before && before.state === 'assigned' && isMine(before))
        && !state.claimed.has(conversation.id)) {
      announceAssignment(conversation);
    }

    if (conversation.state === 'queued') state.queued.add(conversation.id);
    else state.queued.delete(conversation.id);
    renderQueuedCount();

    if (tabOf(conversation) === state.tab) state.list.set(conversation.id, conversation);
    else state.list.delete(conversation.id);
    renderList();
    renderUnreadCount();

    if (sameId(state.openId, conversation.id)) {
      state.open = conversation;
      renderConversationHeader();
    }
  }

  // A conversation this user may no longer see (a colleague claimed it, a supervisor took it over).
  function forget(id) {
    state.latest.delete(id);
    state.list.delete(id);
    state.queued.delete(id);
    state.unread.delete(id);
    renderQueuedCount();
    renderList();
    renderUnreadCount();
    if (sameId(state.openId, id)) {
      state.openId = null;
      state.open = null;
      dom.view.hidden = true;
      dom.placeholder.hidden = false;
      toast.show('该会话已由其他人接待');
    }
    presence.refresh();
  }

  // ------------------------------------------------------------------- list

  async function loadList() {
    const seq = ++state.listSeq;
    const tab = state.tab;
    const params = new URLSearchParams({ state: TABS[tab].state, limit: String(LIST_LIMIT) });
    if (TABS[tab].mine) params.set('mine', 'true');
    if (state.list.size === 0) {
      dom.listEmpty.textContent = '加载中…';
      dom.listEmpty.hidden = false;
    }
    const arrived = new Set();
    state.arrivedDuringLoad = arrived;
    let data;
    try {
      data = await api('GET', `/api/conversations?${params}`);
    } catch (err) {
      if (seq === state.listSeq) {
        dom.listEmpty.textContent = '加载失败';
        dom.listEmpty.hidden = state.list.size > 0;
      }
      toast.report(err);
      return;
    }
    if (seq !== state.listSeq) return; // the tab changed meanwhile
    const items = (data && Array.isArray(data.items) ? data.items : []).map(remember);
    // Trust the server's filter; only drop items a newer live update has already moved on.
    state.list = new Map(items.filter((c) => tabOf(c) === tab).map((c) => [c.id, c]));
    // Frames that arrived while the request was under way are newer than its snapshot.
    for (const id of arrived) {
      const live = state.latest.get(id);
      if (live && tabOf(live) === tab) state.list.set(id, live);
      else state.list.delete(id);
    }
    if (state.arrivedDuringLoad === arrived) state.arrivedDuringLoad = null;
    if (tab === 'queued') {
      state.queued = new Set(Array.from(state.list.values()).filter((c) => c.state === 'queued').map((c) => c.id));
      renderQueuedCount();
    }
    renderList();
  }

  async function refreshQueuedCount() {
    try {
      const data = await api('GET', `/api/conversations?state=queued&limit=${LIST_LIMIT}`);
      const items = data && Array.isArray(data.items) ? data.items : [];
      state.queued = new Set(items.map((c) => remember(c)).filter((c) => c.state === 'queued').map((c) => c.id));
      renderQueuedCount();
    } catch (err) {
      toast.report(err);
    }
  }

  function renderQueuedCount() {
    const count = state.queued.size;
    dom.queuedCount.hidden = count === 0;
    dom.queuedCount.textContent = count >= LIST_LIMIT ? `${LIST_LIMIT}+` : String(count);
  }

  function queueOf(conversation) {
    return conversation.team ? conversation.team.id : null;
  }

  // In the queued tab: one chip per queue with its number of waiting conversations; a chip narrows the list.
  function renderQueueChips() {
    const shown = state.tab === 'queued';
    dom.queueChips.hidden = !shown;
    if (!shown) return;
    const counts = new Map();
    for (const conversation of state.list.values()) {
      const team = queueOf(conversation);
      const entry = counts.get(team) || { name: conversation.team ? conversation.team.name : '未分组', count: 0 };
      entry.count += 1;
      counts.set(team, entry);
    }
    if (state.queueFilter !== null && !counts.has(state.queueFilter)) state.queueFilter = null;
    const chip = (team, name, count) => {
      const button = el('button', {
        type: 'button', class: 'chip', 'data-testid': 'queue-chip', 'data-team-id': team === null ? '' : team,
        'aria-pressed': String(state.queueFilter === team), text: `${name} ${count}`,
      });
      button.addEventListener('click', () => {
        state.queueFilter = team;
        renderList();
      });
      return button;
    };
    dom.queueChips.replaceChildren(chip(null, '全部', state.list.size),
      ...Array.from(counts, ([team, entry]) => (team === null ? null : chip(team, entry.name, entry.count))));
  }

  function renderUnreadCount() {
    let total = 0;
    for (const [id, count] of state.unread) {
      const conversation = state.latest.get(id);
      if (conversation && tabOf(conversation) === 'mine') total += count;
    }
    dom.mineUnread.hidden = total === 0;
    dom.mineUnread.textContent = total > 99 ? '99+' : String(total);
  }

  function sortedList() {
    let items = Array.from(state.list.values());
    if (state.tab === 'queued' && state.queueFilter !== null) {
      items = items.filter((c) => queueOf(c) === state.queueFilter);
    }
    if (state.tab === 'queued') items.sort((a, b) => waitingSince(a) - waitingSince(b)); // longest wait first
    else items.sort((a, b) => activityTime(b) - activityTime(a));
    return items;
  }

  function previewOf(message) {
    if (!message) return '暂无消息';
    let body;
    if (message.type === 'image') body = message.text ? `[图片] ${message.text}` : '[图片]';
    else if (message.type === 'file') body = `[文件] ${(message.attachment && message.attachment.name) || message.text || ''}`.trim();
    else body = message.text || '';
    if (message.author === 'agent') return `坐席：${body}`;
    if (message.author === 'bot') return `机器人：${body}`;
    return body;
  }

  function timeLabel(node) {
    const since = Number(node.dataset.since);
    if (!since) return '';
    const elapsed = Date.now() - since;
    if (node.dataset.mode === 'wait') return `等待 ${formatDuration(elapsed)}`;
    return elapsed < 60000 ? '刚刚' : `${formatDuration(elapsed)}前`;
  }

  function contactFlags(conversation) {
    const contact = conversation.contact || {};
    const flags = [];
    if (contact.vip) flags.push(el('span', { class: 'flag flag-vip', 'data-testid': 'flag-vip', text: 'VIP' }));
    if (contact.blacklisted) {
      flags.push(el('span', { class: 'flag flag-blacklisted', 'data-testid': 'flag-blacklisted', text: '黑名单' }));
    }
    return flags;
  }

  function conversationItem(conversation) {
    const waiting = conversation.state === 'queued';
    const timeNode = el('span', {
      class: waiting ? 'conv-time waiting' : 'conv-time',
      'data-since': waiting ? waitingSince(conversation) : activityTime(conversation),
      'data-mode': waiting ? 'wait' : 'ago',
    });
    timeNode.textContent = timeLabel(timeNode);
    const channel = CHANNEL_LABELS[conversation.channel] || conversation.channel || '未知渠道';
    const unread = state.unread.get(conversation.id) || 0;
    const button = el('button', {
      type: 'button',
      class: unread ? 'conv-item unread' : 'conv-item',
      'data-testid': 'conversation-item',
      'data-conversation-id': conversation.id,
      'data-state': conversation.state,
      'aria-current': sameId(state.openId, conversation.id) ? 'true' : null,
    }, [
      el('div', { class: 'conv-row' }, [
        el('span', { class: 'conv-name', text: contactName(conversation) }),
        ...contactFlags(conversation),
        el('span', { class: 'channel', text: channel }),
        timeNode,
      ]),
      el('div', { class: 'conv-row' }, [
        el('span', { class: 'conv-preview', text: previewOf(conversation.last_message) }),
        unread ? el('span', { class: 'count', 'data-testid': 'unread-count', text: unread > 99 ? '99+' : unread }) : null,
      ]),
    ]);
    button.addEventListener('click', () => openConversation(conversation.id));
    return el('li', {}, [button]);
  }

  function renderList() {
    const active = document.activeElement;
    const focusedId = active && active.dataset ? active.dataset.conversationId : undefined;
    const items = sortedList();
    dom.list.replaceChildren(...items.map(conversationItem));
    dom.listEmpty.hidden = items.length > 0;
    dom.listEmpty.textContent = TABS[state.tab].empty;
    renderQueueChips();
    if (focusedId !== undefined) {
      const again = dom.list.querySelector(`[data-conversation-id="${CSS.escape(focusedId)}"]`);
      if (again) again.focus();
    }
  }

  function refreshClocks() {
    for (const node of dom.list.querySelectorAll('.conv-time')) node.textContent = timeLabel(node);
  }

  function selectTab(tab) {
    if (!TABS[tab]) return;
    state.tab = tab;
    for (const button of dom.tabs) button.setAttribute('aria-selected', String(button.dataset.tab === tab));
    state.list = new Map();
    renderList();
    loadList();
  }

  // ------------------------------------------------------ open conversation

  async function openConversation(id) {
    if (!sameId(state.openId, id)) {
      if (state.openId !== null) state.drafts.set(state.openId, dom.replyInput.value);
      state.openId = id;
      state.open = state.latest.get(id) || null;
      state.messages = new Map();
      state.lastRendered = null;
      dom.messages.replaceChildren();
      dom.replyInput.value = state.drafts.get(id) || '';
      dom.typing.hide();
      closeOrderForm();
      desk.canned.close();
      desk.emoji.close();
      if (state.mode !== 'reply') setMode('reply');
      dom.placeholder.hidden = true;
      dom.view.hidden = false;
      renderConversationHeader();
    }
    state.unread.delete(id);
    renderList();
    renderUnreadCount();
    await refreshOpenConversation();
  }

  async function refreshOpenConversation() {
    const id = state.openId;
    if (id === null) return;
    const seq = ++state.openSeq;
    const live = new Set();
    state.liveDuringOpen = live;
    try {
      const [conversation, page] = await Promise.all([
        api('GET', `/api/conversations/${encodeURIComponent(id)}`),
        api('GET', `/api/conversations/${encodeURIComponent(id)}/messages`),
      ]);
      if (seq !== state.openSeq || !sameId(state.openId, id)) return;
      applyConversation(conversation);
      for (const message of (page && Array.isArray(page.items) ? page.items : [])) {
        // A live frame that came while the page was read is newer than the page (e.g. a delivery update).
        if (!live.has(message.id)) state.messages.set(message.id, message);
      }
      renderAllMessages();
    } catch (err) {
      toast.report(err);
    } finally {
      if (state.liveDuringOpen === live) state.liveDuringOpen = null;
    }
  }

  function showContact(conversation) {
    const id = conversation && conversation.contact ? conversation.contact.id : null;
    dom.contactColumn.hidden = id === null;
    if (id !== null && !sameId(id, contactShown)) contactPanel.show(id);
    contactShown = id;
  }

  // A phone conversation: its latest call's IVR path and wait, so the agent knows what the caller went through.
  async function showCall(conversation) {
    dom.call.hidden = conversation.channel !== 'voice';
    if (dom.call.hidden || dom.call.dataset.conversationId === String(conversation.id)) return;
    dom.call.dataset.conversationId = String(conversation.id);
    dom.call.textContent = '';
    let calls;
    try {
      calls = await api('GET', `/api/calls?conversation=${conversation.id}&limit=1`);
    } catch {
      return; // the header without it
    }
    const [call] = calls.items;
    if (!call || !sameId(state.openId, conversation.id)) return;
    const facts = [`语音导航：${call.ivr_path.length ? call.ivr_path.join(' → ') : '（未进入菜单）'}`];
    if (call.wait_seconds !== null) facts.push(`排队 ${call.wait_seconds} 秒`);
    if (call.survey_score !== null) facts.push(`满意度 ${call.survey_score} 分`);
    dom.call.textContent = facts.join(' · ');
  }

  function renderConversationHeader() {
    const conversation = state.open;
    showContact(conversation);
    if (!conversation) {
      dom.title.textContent = `会话 #${state.openId}`;
      dom.meta.textContent = '加载中…';
      dom.claim.hidden = true;
      dom.takeOver.hidden = true;
      dom.close.hidden = true;
      dom.transfer.hidden = true;
      dom.createOrder.hidden = true;
      updateComposer();
      return;
    }
    dom.title.textContent = contactName(conversation);
    const parts = [
      CHANNEL_LABELS[conversation.channel] || conversation.channel,
      STATE_LABELS[conversation.state] || conversation.state,
    ];
    if (conversation.team && conversation.team.name) parts.push(conversation.team.name);
    const assignee = assigneeName(conversation);
    if (assignee) parts.push(`接待坐席：${isMine(conversation) ? '我' : assignee}`);
    if (conversation.created_at) parts.push(`创建于 ${formatTime(conversation.created_at)}`);
    if (conversation.disposition) parts.push(`咨询类型：${desk.closer.label(conversation.disposition)}`);
    dom.meta.textContent = parts.filter(Boolean).join(' · ');
    showCall(conversation);
    dom.claim.hidden = conversation.state !== 'queued';
    dom.takeOver.hidden = !(isSupervisor() && ['bot', 'assigned', 'waiting_resident'].includes(conversation.state)
      && !isMine(conversation));
    dom.close.hidden = !(conversation.state === 'assigned' && (isMine(conversation) || isSupervisor()));
    dom.transfer.hidden = !(['assigned', 'waiting_resident'].includes(conversation.state)
      && (isMine(conversation) || isSupervisor()));
    dom.createOrder.hidden = !canReply(); // same rule as the reply box; an open form stays until closed
    updateComposer();
  }

  function canReply() {
    return Boolean(state.open && state.open.state === 'assigned' && isMine(state.open));
  }

  function canWrite() {
    return state.mode === 'note' ? Boolean(state.open) : canReply();
  }

  function setMode(mode) {
    state.mode = mode;
    dom.replyForm.dataset.mode = mode;
    for (const button of dom.modes) button.setAttribute('aria-checked', String(button.dataset.mode === mode));
    updateComposer();
    if (canWrite()) dom.replyInput.focus();
  }

  function updateComposer() {
    const allowed = canWrite();
    dom.replyInput.disabled = !allowed;
    dom.replySend.disabled = !allowed || state.sending;
    dom.replySend.textContent = state.mode === 'note' ? '添加备注' : '发送';
    dom.attach.disabled = !canReply() || state.mode === 'note';
    const conversation = state.open;
    let hint = '输入回复内容，Enter 发送，Shift+Enter 换行，/ 加快捷码插入常用语';
    if (!conversation) hint = '';
    else if (state.mode === 'note') {
      hint = isMine(conversation) || !conversation.assignee
        ? '内部备注，仅坐席和班长可见，不会发给居民'
        : `给 ${assigneeName(conversation)} 的提示，居民看不到`;
    }
    else if (conversation.state === 'queued') hint = '请先点击“接入”再回复';
    else if (conversation.state === 'bot') hint = '机器人接待中，暂不可回复';
    else if (conversation.state === 'closed') hint = '会话已结束';
    else if (!allowed) hint = '该会话由其他坐席接待';
    dom.replyInput.placeholder = hint;
  }

  // --------------------------------------------------------------- messages

  function compareMessages(a, b) {
    const delta = time(a.created_at) - time(b.created_at);
    if (delta) return delta;
    return Number(a.id) - Number(b.id);
  }

  function authorLabel(message) {
    if (message.author === 'resident') return contactName(state.open);
    if (message.author === 'bot') return message.author_name || '机器人';
    return message.author_name || '坐席';
  }

  function messageItem(message) {
    const author = ChatKit.authorOf(message);
    const attrs = { 'data-testid': 'agent-message', 'data-author': author, 'data-message-id': message.id };
    if (author === 'system' || message.type === 'event') {
      const order = message.payload && message.payload.work_order;
      return el('li', { class: 'msg msg-system', ...attrs }, [
        el('span', { class: 'system-text', text: message.text || '' }),
        order && Number.isInteger(order.id)
          ? el('a', { class: 'order-link', href: `/app/orders?id=${order.id}`, target: '_blank', 'data-testid': 'order-link', text: '查看工单' })
          : null,
        el('span', { class: 'system-time', text: formatTime(message.created_at) }),
      ]);
    }
    const internal = message.direction === 'internal';
    const content = ChatKit.contentNodes(message, { hrefFor: safeHref, onImageLoad: dom.scroll.follow });
    const node = el('li', { class: `msg msg-${author}${internal ? ' msg-internal' : ''}`, ...attrs }, [
      el('div', { class: 'msg-head' }, [
        el('span', { class: 'who', text: authorLabel(message) }),
        internal ? el('span', {
          class: 'note-tag', 'data-testid': 'note-tag',
          text: NOTE_TAGS[message.payload && message.payload.kind] || '内部备注',
        }) : null,
        el('span', { text: formatTime(message.created_at) }),
      ]),
      el('div', { class: 'bubble' }, content),
    ]);
    if (message.direction === 'out' && message.delivery) {
      const label = DELIVERY_LABELS[message.delivery] || message.delivery;
      const failed = message.delivery === 'failed';
      node.append(el('div', {
        class: failed ? 'delivery failed' : 'delivery',
        'data-testid': 'delivery-state',
        text: failed && message.last_error ? `${label}:${message.last_error}` : label,  // why, from the channel
      }));
    }
    return node;
  }

  function renderAllMessages() {
    const stick = state.lastRendered === null || dom.scroll.isNearBottom();
    const ordered = Array.from(state.messages.values()).sort(compareMessages);
    dom.messages.replaceChildren(...ordered.map(messageItem));
    state.lastRendered = ordered.length ? ordered[ordered.length - 1] : null;
    if (stick) dom.scroll.scrollToBottom();
  }

  // How far a message got; a copy of a message that says less (the answer to its own POST, read after the
  // socket told of its delivery) never takes a message back.
  const DELIVERY_RANK = { queued: 0, sending: 1, sent: 2, failed: 3, delivered: 4 };
  const EARLY_DELIVERIES_KEPT = 200;

  function furthest(message, other) {
    if (!other || !other.delivery || !message.delivery) return message;
    const rank = (delivery) => (delivery in DELIVERY_RANK ? DELIVERY_RANK[delivery] : -1);
    if (rank(other.delivery) <= rank(message.delivery)) return message;
    return { ...message, delivery: other.delivery, last_error: other.last_error };
  }

  function addMessage(arrived) {
    const known = state.messages.get(arrived.id);
    const early = state.earlyDeliveries.get(arrived.id);
    state.earlyDeliveries.delete(arrived.id);
    const message = furthest(furthest(arrived, known), early);
    state.messages.set(message.id, message);
    if (state.liveDuringOpen) state.liveDuringOpen.add(message.id);
    if (known) {
      // Same message again (e.g. a delivery update): redraw it in place.
      const old = dom.messages.querySelector(`[data-message-id="${CSS.escape(String(message.id))}"]`);
      if (old) old.replaceWith(messageItem(message));
      return;
    }
    if (state.lastRendered && compareMessages(state.lastRendered, message) > 0) {
      renderAllMessages(); // arrived out of order
      return;
    }
    const stick = dom.scroll.isNearBottom() || message.author === 'agent';
    dom.messages.append(messageItem(message));
    state.lastRendered = message;
    if (stick) dom.scroll.scrollToBottom();
  }

  function onMessage(message) {
    if (!message || message.id === null || message.id === undefined) return;
    const conversationId = message.conversation_id;
    const isOpen = sameId(state.openId, conversationId);
    if (isOpen) {
      addMessage(message);
      if (message.author === 'resident') dom.typing.hide();
    }

    const known = state.latest.get(conversationId);
    if (known) {
      const bumped = { ...known };
      if (!known.last_message || compareMessages(known.last_message, message) <= 0) bumped.last_message = message;
      state.latest.set(conversationId, bumped);
      if (state.list.has(conversationId)) state.list.set(conversationId, bumped);
      if (isOpen) state.open = bumped;
    }
    if (!isOpen && message.author === 'resident') {
      state.unread.set(conversationId, (state.unread.get(conversationId) || 0) + 1);
      renderUnreadCount();
    }
    if (message.payload && message.payload.kind === 'whisper' && known && isMine(known)) {
      toast.show(`${message.author_name || '班长'}提示（${contactName(known)}）：${message.text}`, 'ok');
    }
    if (state.list.has(conversationId)) renderList();
  }

  function onDelivery(frame) {
    const known = state.messages.get(frame.message_id);
    if (!known) {
      // The delivery of a message this page has not heard of yet (its own reply, whose POST is still being
      // answered): kept for when it comes.
      state.earlyDeliveries.set(frame.message_id, frame);
      if (state.earlyDeliveries.size > EARLY_DELIVERIES_KEPT) {
        state.earlyDeliveries.delete(state.earlyDeliveries.keys().next().value);
      }
      return;
    }
    if (!sameId(state.openId, known.conversation_id)) return;
    addMessage({ ...known, delivery: frame.delivery, last_error: frame.last_error });
  }

  // ------------------------------------------------------- new assignments

  let audio = null; // created on a click (browsers only let a page play sound after the user acted)

  function prepareAlerts() {
    if (!audio && window.AudioContext) audio = new AudioContext();
    if (window.Notification && Notification.permission === 'default') Notification.requestPermission();
  }

  function chime() {
    if (!audio) return;
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.2, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.001, audio.currentTime + 0.4);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.4);
  }

  function announceAssignment(conversation) {
    const text = `新会话已分配：${contactName(conversation)}`;
    toast.show(text, 'ok');
    chime();
    if (window.Notification && Notification.permission === 'granted' && document.hidden) {
      const note = new Notification('水务客服中心', { body: text, tag: `conversation-${conversation.id}` });
      note.onclick = () => {
        window.focus();
        openConversation(conversation.id);
      };
    }
  }

  // ---------------------------------------------------------------- actions

  async function takeOver() {
    const id = state.openId;
    dom.takeOver.disabled = true;
    state.claimed.add(id);
    try {
      applyConversation(await api('POST', `/api/conversations/${encodeURIComponent(id)}/assign`, { agent_id: state.me.id }));
      if (sameId(state.openId, id) && canReply()) dom.replyInput.focus();
    } catch (err) {
      toast.report(err);
    } finally {
      dom.takeOver.disabled = false;
    }
  }

  async function claim() {
    const id = state.openId;
    dom.claim.disabled = true;
    state.claimed.add(id);
    try {
      applyConversation(await api('POST', `/api/conversations/${encodeURIComponent(id)}/claim`));
      if (sameId(state.openId, id) && canReply()) dom.replyInput.focus();
    } catch (err) {
      toast.report(err);
      if (sameId(state.openId, id)) refreshOpenConversation(); // someone else may have claimed it
    } finally {
      dom.claim.disabled = false;
    }
  }

  async function closeConversation() {
    const id = state.openId;
    if (id === null || dom.close.hidden) return;
    dom.close.disabled = true;
    try {
      const disposition = await desk.closer.choose();
      if (disposition === null) return;
      applyConversation(await api('POST', `/api/conversations/${encodeURIComponent(id)}/close`, { disposition }));
      state.drafts.delete(id);
    } catch (err) {
      toast.report(err);
    } finally {
      dom.close.disabled = false;
    }
  }

  async function sendFile(file) {
    const id = state.openId;
    if (!file || !canReply()) return;
    dom.attach.disabled = true;
    try {
      const message = await http.upload(`/api/conversations/${encodeURIComponent(id)}/attachments`, file);
      if (sameId(state.openId, id)) onMessage(message);
    } catch (err) {
      toast.report(err);
    } finally {
      dom.attach.disabled = false;
    }
  }

  async function transferConversation() {
    const id = state.openId;
    if (id === null || dom.transfer.hidden) return;
    dom.transfer.disabled = true;
    try {
      const target = await desk.transfer.choose(state.open, state.me.id);
      if (target === null) return;
      applyConversation(await api('POST', `/api/conversations/${encodeURIComponent(id)}/transfer`, target));
      toast.show('已转接', 'ok');
    } catch (err) {
      toast.report(err);
    } finally {
      dom.transfer.disabled = false;
    }
  }

  async function sendReply() {
    if (state.sending || !canWrite()) return;
    const text = dom.replyInput.value.trim();
    if (!text) return;
    if (text.length > MAX_REPLY_LENGTH) {
      toast.show(`单条回复不能超过 ${MAX_REPLY_LENGTH} 字`);
      return;
    }
    const id = state.openId;
    const typed = dom.replyInput.value;
    const path = state.mode === 'note' ? 'notes' : 'messages';
    state.sending = true;
    updateComposer();
    try {
      const message = await api('POST', `/api/conversations/${encodeURIComponent(id)}/${path}`, { text });
      state.drafts.delete(id);
      if (sameId(state.openId, id)) {
        if (dom.replyInput.value === typed) dom.replyInput.value = '';
        onMessage(message);
      }
    } catch (err) {
      toast.report(err);
    } finally {
      state.sending = false;
      updateComposer();
      if (sameId(state.openId, id) && canWrite()) dom.replyInput.focus();
    }
  }

  // ------------------------------------------------------------ work order

  function activeCategory() {
    const code = dom.orderCategory.value;
    return (state.categories || []).find((c) => c.code === code) || null;
  }

  function residentTexts() {
    return Array.from(state.messages.values())
      .filter((m) => m.author === 'resident' && typeof m.text === 'string' && m.text.trim())
      .sort(compareMessages)
      .map((m) => m.text.trim());
  }

  function truncate(text, max) {
    const chars = Array.from(text); // never cut a character in half
    return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : text;
  }

  function suggestedTitle(category) {
    const texts = residentTexts();
    const last = texts.length ? truncate(texts[texts.length - 1].replace(/\s+/g, ' '), ORDER_TITLE_SNIPPET) : '';
    return [category ? category.name : '', last].filter(Boolean).join(':');
  }

  function fieldErrorNode(input) {
    const wrapper = input.closest('.field');
    return wrapper ? wrapper.querySelector('.field-error') : null;
  }

  function setFieldError(input, message) {
    const node = fieldErrorNode(input);
    if (node) {
      node.textContent = message;
      node.hidden = false;
    }
    input.setAttribute('aria-invalid', 'true');
  }

  function clearOrderErrors() {
    for (const node of dom.orderForm.querySelectorAll('.field-error')) {
      node.textContent = '';
      node.hidden = true;
    }
    for (const input of dom.orderForm.querySelectorAll('[aria-invalid]')) input.removeAttribute('aria-invalid');
  }

  // The input for one custom field of the category's JSON Schema, wrapped with its label and error slot.
  function customFieldNode(key, schema, required) {
    const label = (schema && typeof schema.title === 'string' && schema.title) || key;
    const common = { class: 'input', 'data-field': key, required, 'aria-required': required ? 'true' : null };
    let input;
    if (Array.isArray(schema.enum)) {
      input = el('select', common, [
        el('option', { value: '', text: required ? '请选择' : '（不填）' }),
        ...schema.enum.map((value, index) => el('option', { value: String(index), text: String(value) })),
      ]);
    } else if (schema.type === 'integer' || schema.type === 'number') {
      input = el('input', {
        ...common,
        type: 'number',
        step: schema.type === 'integer' ? '1' : 'any',
        min: Number.isFinite(schema.minimum) ? schema.minimum : null,
        max: Number.isFinite(schema.maximum) ? schema.maximum : null,
      });
    } else {
      input = el('input', { ...common, type: 'text', maxlength: Number.isInteger(schema.maxLength) ? schema.maxLength : null });
    }
    return el('label', { class: 'field' }, [
      el('span', { class: 'field-label' }, [
        document.createTextNode(label),
        required ? el('span', { class: 'req', 'aria-hidden': 'true', text: ' *' }) : null,
      ]),
      input,
      el('span', { class: 'field-error', hidden: true }),
    ]);
  }

  function renderCustomFields() {
    const category = activeCategory();
    const schema = (category && category.fields_schema) || {};
    const properties = schema.properties && typeof schema.properties === 'object' ? schema.properties : {};
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    const nodes = Object.entries(properties).map(
      ([key, property]) => customFieldNode(key, property && typeof property === 'object' ? property : {}, required.has(key)));
    dom.orderCustomList.replaceChildren(...nodes);
    dom.orderCustom.hidden = nodes.length === 0;
  }

  // The custom fields as the schema wants them: enum values as listed, numbers as numbers, empty ones left out.
  function customFieldValues() {
    const category = activeCategory();
    const properties = (category && category.fields_schema && category.fields_schema.properties) || {};
    const values = {};
    for (const input of dom.orderCustomList.querySelectorAll('[data-field]')) {
      const key = input.dataset.field;
      const schema = properties[key] || {};
      const raw = input.value.trim();
      if (raw === '') continue;
      if (Array.isArray(schema.enum)) values[key] = schema.enum[Number(raw)];
      else if (schema.type === 'integer' || schema.type === 'number') values[key] = Number(raw);
      else values[key] = raw;
    }
    return values;
  }

  function onCategoryChange() {
    const title = dom.orderTitle.value;
    if (!title || title === state.orderAutoTitle) {
      state.orderAutoTitle = suggestedTitle(activeCategory());
      dom.orderTitle.value = state.orderAutoTitle;
    }
    renderCustomFields();
    clearOrderErrors();
  }

  async function loadCategories() {
    if (state.categories) return state.categories;
    const data = await api('GET', '/api/workorder-categories');
    const items = data && Array.isArray(data.items) ? data.items : [];
    state.categories = items.filter((c) => c && c.active && c.code);
    return state.categories;
  }

  async function openOrderForm() {
    if (!canReply()) return;
    if (!dom.orderForm.hidden) {
      dom.orderCategory.focus();
      return;
    }
    const id = state.openId;
    dom.createOrder.disabled = true;
    let categories;
    try {
      categories = await loadCategories();
    } catch (err) {
      toast.report(err);
      return;
    } finally {
      dom.createOrder.disabled = false;
    }
    if (!sameId(state.openId, id)) return; // another conversation was opened meanwhile
    if (!categories.length) {
      toast.show('暂无可用的工单类别，请联系管理员');
      return;
    }
    dom.orderCategory.replaceChildren(...categories.map((c) => el('option', { value: c.code, text: c.name })));
    dom.orderCategory.value = categories[0].code;
    state.orderAutoTitle = suggestedTitle(categories[0]);
    dom.orderTitle.value = state.orderAutoTitle;
    dom.orderDescription.value = residentTexts().join('\n').slice(0, ORDER_DESCRIPTION_MAX);
    dom.orderAddress.value = '';
    renderCustomFields();
    clearOrderErrors();
    dom.orderForm.hidden = false;
    dom.createOrder.setAttribute('aria-expanded', 'true');
    dom.orderCategory.focus();
  }

  function closeOrderForm() {
    if (!dom.orderForm) return;
    dom.orderForm.hidden = true;
    dom.createOrder.setAttribute('aria-expanded', 'false');
    dom.orderCustomList.replaceChildren();
    clearOrderErrors();
  }

  function orderInputFor(path) {
    const custom = /^custom_fields\.([^.]+)/.exec(path);
    const selector = custom
      ? `[data-field="${CSS.escape(custom[1])}"]`
      : `[data-order-field="${CSS.escape(path.replace(/^body\./, ''))}"]`;
    return (custom ? dom.orderCustomList : dom.orderForm).querySelector(selector);
  }

  function friendlyFieldError(message) {
    const text = String(message || '');
    if (/required property|field required|missing/i.test(text)) return '此项为必填';
    if (/is not one of/i.test(text)) return '请从列表中选择';
    return text || '填写有误';
  }

  function showOrderErrors(err) {
    let fields = err.details && err.details.fields;
    if (Array.isArray(fields)) fields = Object.fromEntries(fields.map((name) => [name, 'required']));
    const leftOver = [];
    for (const [path, message] of Object.entries(fields && typeof fields === 'object' ? fields : {})) {
      const input = orderInputFor(path);
      if (input) setFieldError(input, friendlyFieldError(message));
      else leftOver.push(`${path}：${friendlyFieldError(message)}`);
    }
    toast.show([err.message, ...leftOver].filter(Boolean).join('；'));
    const first = dom.orderForm.querySelector('[aria-invalid=true]');
    if (first) first.focus();
  }

  async function submitOrder() {
    if (state.orderSubmitting || dom.orderForm.hidden) return;
    const id = state.openId;
    const body = {
      category: dom.orderCategory.value,
      title: dom.orderTitle.value.trim(),
      description: dom.orderDescription.value.trim(),
      address: dom.orderAddress.value.trim() || null,
      custom_fields: customFieldValues(),
      conversation_id: Number(id),
    };
    clearOrderErrors();
    state.orderSubmitting = true;
    dom.orderSubmit.disabled = true;
    try {
      const order = await api('POST', '/api/workorders', body);
      if (sameId(state.openId, id)) closeOrderForm();
      toast.show(`工单已创建:${(order && order.number) || ''}`, 'ok');
    } catch (err) {
      if (err.status === 422 && sameId(state.openId, id) && !dom.orderForm.hidden) showOrderErrors(err);
      else toast.report(err);
    } finally {
      state.orderSubmitting = false;
      dom.orderSubmit.disabled = false;
    }
  }

  // ---------------------------------------------------- keyboard shortcuts

  const TAB_KEYS = ['queued', 'mine', 'monitor', 'bot', 'closed'];

  function stepConversation(delta) {
    const items = sortedList();
    if (!items.length) return;
    const index = items.findIndex((c) => sameId(c.id, state.openId));
    const next = items[index === -1 ? 0 : (index + delta + items.length) % items.length];
    openConversation(next.id);
  }

  function onShortcut(event) {
    if (!event.altKey || event.ctrlKey || event.metaKey || document.querySelector('dialog[open]')) return;
    const visibleTabs = TAB_KEYS.filter((tab) => !document.querySelector(`[data-tab="${tab}"]`).hidden);
    const actions = {
      ArrowDown: () => stepConversation(1),
      ArrowUp: () => stepConversation(-1),
      KeyA: () => { if (!dom.claim.hidden) claim(); },
      KeyE: closeConversation,
      KeyT: transferConversation,
      KeyO: () => { if (!dom.createOrder.hidden) openOrderForm(); },
      KeyN: () => setMode(state.mode === 'note' ? 'reply' : 'note'),
    };
    const digit = /^Digit([1-9])$/.exec(event.code);
    let action = actions[event.code] || actions[event.key];
    if (digit && visibleTabs[Number(digit[1]) - 1]) action = () => selectTab(visibleTabs[Number(digit[1]) - 1]);
    if (!action) return;
    event.preventDefault();
    action();
  }

  // -------------------------------------------------------------- websocket

  function resync() {
    presence.load();
    loadList();
    if (state.tab !== 'queued') refreshQueuedCount();
    if (state.openId !== null) refreshOpenConversation();
  }

  function handleFrame(frame) {
    switch (frame.type) {
      case 'conversation':
        applyConversation(frame.conversation);
        break;
      case 'message':
        onMessage(frame.message);
        break;
      case 'delivery':
        onDelivery(frame);
        break;
      case 'conversation_hidden':
        forget(frame.conversation_id);
        break;
      case 'presence':
        if (sameId(frame.user_id, state.me.id)) presence.apply(frame.presence);
        break;
      case 'typing':
        if (frame.author === 'resident' && sameId(frame.conversation_id, state.openId)) dom.typing.show();
        break;
      default:
        break; // pong and unknown frames
    }
  }

  // ------------------------------------------------------------------- boot

  function bindDom() {
    socket = StaffKit.staffSocket({
      http, statusNode: document.getElementById('connection'), onOpen: resync, onFrame: handleFrame,
      onClose: () => dom.typing.hide(),
    });
    dom.tabs = Array.from(document.querySelectorAll('[data-tab]'));
    dom.queuedCount = document.getElementById('queued-count');
    dom.list = document.getElementById('conversation-list');
    dom.listEmpty = document.getElementById('list-empty');
    dom.placeholder = document.getElementById('conversation-placeholder');
    dom.view = document.getElementById('conversation-view');
    dom.title = document.getElementById('conversation-title');
    dom.meta = document.getElementById('conversation-meta');
    dom.call = document.querySelector('[data-testid=conversation-call]');
    dom.claim = document.querySelector('[data-testid=claim]');
    dom.takeOver = document.querySelector('[data-testid=take-over]');
    dom.close = document.querySelector('[data-testid=close-conversation]');
    dom.createOrder = document.querySelector('[data-testid=create-order]');
    dom.orderForm = document.getElementById('order-form');
    dom.orderCategory = document.querySelector('[data-testid=order-category]');
    dom.orderTitle = document.querySelector('[data-testid=order-title]');
    dom.orderDescription = document.querySelector('[data-testid=order-description]');
    dom.orderAddress = document.querySelector('[data-testid=order-address]');
    dom.orderCustom = document.getElementById('order-custom-fields');
    dom.orderCustomList = document.getElementById('order-custom-list');
    dom.orderSubmit = document.querySelector('[data-testid=order-submit]');
    dom.orderCancel = document.querySelector('[data-testid=order-cancel]');
    dom.messages = document.getElementById('message-list');
    dom.scroll = ChatKit.scroller(dom.messages, SCROLL_SLACK_PX);
    dom.typing = ChatKit.typingIndicator(document.getElementById('typing-indicator'),
      () => socket.send({ type: 'typing', conversation_id: state.openId }));
    dom.replyForm = document.getElementById('reply-form');
    dom.replyInput = document.querySelector('[data-testid=reply-input]');
    dom.replySend = document.querySelector('[data-testid=reply-send]');
    dom.transfer = document.querySelector('[data-testid=transfer]');
    dom.attach = document.querySelector('[data-testid=attach-button]');
    dom.attachInput = document.querySelector('[data-testid=attach-input]');
    dom.modes = Array.from(document.querySelectorAll('.composer-modes [data-mode]'));
    dom.queueChips = document.getElementById('queue-chips');
    dom.mineUnread = document.getElementById('mine-unread');
    dom.contactColumn = document.getElementById('contact-panel');
    const shortcutsToggle = document.querySelector('[data-testid=shortcuts-toggle]');
    const shortcutHelp = document.getElementById('shortcut-help');
    toast = StaffKit.toaster(document.querySelector('[data-testid=toast]'));
    const presenceRoot = document.getElementById('presence');
    presence = PresenceBar.create({ root: presenceRoot, api, toast });
    presenceRoot.addEventListener('change', prepareAlerts);

    for (const button of dom.tabs) {
      button.addEventListener('click', () => selectTab(button.dataset.tab));
    }
    dom.claim.addEventListener('click', claim);
    dom.takeOver.addEventListener('click', takeOver);
    dom.close.addEventListener('click', closeConversation);
    dom.transfer.addEventListener('click', transferConversation);
    dom.attach.addEventListener('click', () => dom.attachInput.click());
    dom.attachInput.addEventListener('change', () => {
      const [file] = dom.attachInput.files;
      dom.attachInput.value = '';
      sendFile(file);
    });
    for (const button of dom.modes) button.addEventListener('click', () => setMode(button.dataset.mode));
    shortcutsToggle.addEventListener('click', () => {
      shortcutHelp.hidden = !shortcutHelp.hidden;
      shortcutsToggle.setAttribute('aria-expanded', String(!shortcutHelp.hidden));
    });
    document.addEventListener('keydown', onShortcut);
    dom.createOrder.addEventListener('click', openOrderForm);
    dom.orderCategory.addEventListener('change', onCategoryChange);
    dom.orderCancel.addEventListener('click', () => {
      closeOrderForm();
      dom.createOrder.focus();
    });
    dom.orderForm.addEventListener('submit', (event) => {
      event.preventDefault();
      submitOrder();
    });
    dom.orderForm.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') dom.orderCancel.click();
    });
    // An edited field loses its stale error.
    dom.orderForm.addEventListener('input', (event) => {
      const target = event.target;
      if (!target || !target.hasAttribute('aria-invalid')) return;
      target.removeAttribute('aria-invalid');
      const node = fieldErrorNode(target);
      if (node) node.hidden = true;
    });
    dom.replyForm.addEventListener('submit', (event) => {
      event.preventDefault();
      sendReply();
    });
    desk = {
      canned: DeskKit.cannedPicker({
        input: dom.replyInput, list: document.querySelector('[data-testid=canned-list]'),
        toggle: document.querySelector('[data-testid=canned-toggle]'), api, toast,
      }),
      emoji: DeskKit.emojiPalette({
        toggle: document.querySelector('[data-testid=emoji-toggle]'),
        panel: document.querySelector('[data-testid=emoji-panel]'), input: dom.replyInput,
      }),
      closer: DeskKit.closeDialog({ dialog: document.getElementById('close-dialog'), api }),
      transfer: DeskKit.transferDialog({ dialog: document.getElementById('transfer-dialog'), api }),
    };
    ChatKit.sendOnEnter(dom.replyInput, sendReply);
    dom.replyInput.addEventListener('input', () => {
      if (state.mode === 'reply' && canReply() && dom.replyInput.value.trim()) dom.typing.notify();
    });
  }

  async function boot() {
    bindDom();
    state.me = await StaffKit.signIn(http, toast);
    if (!state.me) return;

    contactPanel = ContactPanel.create({
      root: dom.contactColumn, api, canFlag: isSupervisor(), onOpenConversation: (id) => openConversation(id),
      onCall: async (contactId) => {
        await api('POST', '/api/calls/outbound', { contact_id: contactId });
        toast.show('正在呼叫：请先接听您的话机', 'info');
      },
    });
    document.querySelector('[data-testid=tab-monitor]').hidden = !isSupervisor();
    desk.closer.load().catch((err) => toast.report(err)); // labels of the consultation types in headers
    selectTab('queued');
    socket.start();
    setInterval(refreshClocks, CLOCK_INTERVAL_MS);
    // Screen pop: a call ringing on the softphone (softphone.js) opens the caller's conversation.
    window.addEventListener('softphone:ringing', (event) => {
      if (!event.detail.conversationId) return;
      selectTab('mine');
      openConversation(event.detail.conversationId);
    });
  }

  boot();
})();
