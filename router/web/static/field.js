/*
 * Shuiwu Hub — the field crew's phone page (/app/field): the orders assigned to me, and for each
 * one the way there, arrival, photos, notes and completion.
 *
 * Uses ChatKit, StaffKit and OrderKit, which the page loads first.
 */
(() => {
  'use strict';

  const LOGIN_URL = '/app/login?next=/app/field';
  const REFRESH_MS = 15000;
  const TABS = {
    open: { states: 'assigned,in_progress', empty: '暂无待处理的工单' },
    done: { states: 'completed,visited,closed', empty: '暂无已完工的工单' },
  };

  const { el } = ChatKit;
  const http = StaffKit.client({ loginUrl: LOGIN_URL, onLeave: () => clearInterval(refreshTimer) });
  let toast = null;
  let refreshTimer = 0;

  const dom = {};
  const state = { me: null, tab: 'open', categories: new Map(), openId: null, listSeq: 0 };

  async function loadList() {
    const seq = ++state.listSeq;
    const query = new URLSearchParams({ assignee_id: String(state.me.id), state: TABS[state.tab].states, limit: '100' });
    let page;
    try {
      page = await http.api('GET', `/api/workorders?${query}`);
    } catch (err) {
      toast.report(err);
      return;
    }
    if (seq !== state.listSeq) return;
    dom.list.replaceChildren(...page.items.map(card));
    dom.empty.textContent = TABS[state.tab].empty;
    dom.empty.hidden = page.items.length > 0;
  }

  function card(order) {
    const item = el('li', { class: 'field-card', 'data-testid': 'field-card', 'data-number': order.number, tabindex: 0 }, [
      el('div', { class: 'conv-row' }, [
        el('strong', { text: order.number }),
        OrderKit.stateBadge(order),
        order.priority <= 1 ? el('span', { class: 'badge overdue', text: '紧急' }) : null,
      ]),
      el('div', { class: 'field-card-title', text: order.title }),
      order.address ? el('div', { class: 'field-card-address', text: order.address }) : null,
      el('div', { class: 'conv-row' }, [el('span', { class: 'channel', text: order.category.name }), OrderKit.dueNode(order)]),
    ]);
    item.addEventListener('click', () => openOrder(order.id));
    return item;
  }

  function selectTab(tab) {
    state.tab = tab;
    for (const button of dom.tabs) button.setAttribute('aria-selected', String(button.dataset.tab === tab));
    loadList();
  }

  async function openOrder(id) {
    state.openId = id;
    try {
      render(await http.api('GET', `/api/workorders/${id}`));
    } catch (err) {
      toast.report(err);
    }
  }

  function showList() {
    state.openId = null;
    dom.detail.hidden = true;
    dom.detail.replaceChildren();
    dom.listView.hidden = false;
    dom.back.hidden = true;
    dom.title.textContent = '我的工单';
    loadList();
  }

  function render(order) {
    const category = state.categories.get(order.category.code);
    const workflow = category ? category.workflow : null;
    const open = workflow ? !workflow.final.includes(order.state) && order.state !== 'completed' : true;
    // Masked numbers (shown to staff who do not call the resident) get no call button.
    const phone = order.contact_phone && !order.contact_phone.includes('*')
      ? el('a', { class: 'btn btn-outline', href: `tel:${order.contact_phone}`, 'data-testid': 'call-resident', text: '联系居民' }) : null;
    dom.detail.replaceChildren(...[
      el('div', { class: 'field-head' }, [
        el('h2', { 'data-testid': 'order-number', text: order.number }),
        OrderKit.stateBadge(order),
        OrderKit.dueNode(order),
      ]),
      el('h3', { class: 'order-title', text: order.title }),
      el('p', { class: 'order-description', text: order.description }),
      OrderKit.facts(order, category, null),
      phone,
      OrderKit.photos(order),
      OrderKit.recordings(order),
      OrderKit.actionPanel(order, workflow, state.me, {
        api: (method, path, body) => http.api(method, path, body),
        departments: () => [],
        members: () => [],
        onDone: (updated) => {
          toast.show(`工单 ${updated.number}:${updated.state_label}`, 'ok');
          render(updated);
        },
        onError: (err) => toast.report(err),
      }),
      open ? OrderKit.notePanel(order, { http, onDone: render, onError: (err) => toast.report(err) }) : null,
      el('h3', { class: 'section-title', text: '处理记录' }),
      OrderKit.timeline(order, workflow),
    ].filter(Boolean));
    dom.listView.hidden = true;
    dom.detail.hidden = false;
    dom.back.hidden = false;
    dom.title.textContent = '工单详情';
    window.scrollTo(0, 0);
  }

  async function boot() {
    dom.back = document.querySelector('[data-testid=field-back]');
    dom.title = document.querySelector('[data-testid=field-title]');
    dom.listView = document.querySelector('[data-testid=field-list-view]');
    dom.list = document.querySelector('[data-testid=field-list]');
    dom.empty = document.querySelector('[data-testid=field-empty]');
    dom.detail = document.querySelector('[data-testid=field-detail]');
    dom.tabs = Array.from(document.querySelectorAll('[data-tab]'));
    toast = StaffKit.toaster(document.querySelector('[data-testid=toast]'));

    let session;
    try {
      session = await http.me();
      const categories = await http.api('GET', '/api/workorder-categories');
      for (const category of categories.items) state.categories.set(category.code, category);
    } catch (err) {
      toast.report(err);
      return;
    }
    state.me = session.user;
    StaffKit.header(state.me, http, toast);
    dom.back.addEventListener('click', showList);
    for (const button of dom.tabs) button.addEventListener('click', () => selectTab(button.dataset.tab));
    document.body.classList.remove('booting');
    await loadList();
    refreshTimer = setInterval(() => {
      if (state.openId === null) loadList();
    }, REFRESH_MS);
  }

  boot();
})();
