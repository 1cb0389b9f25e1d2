/*
 * Shuiwu Hub — the order desk (/app/orders) for agents, department handlers and supervisors:
 * filtered list, detail with timeline and photos, workflow actions, notes.
 *
 * Uses ChatKit, StaffKit and OrderKit, which the page loads first. `?id=<order id>` opens an order.
 */
(() => {
  'use strict';

  const LOGIN_URL = `/app/login?next=${encodeURIComponent(window.location.pathname + window.location.search)}`;
  const PAGE_SIZE = 50;
  const REFRESH_MS = 15000;
  const AGENT_ROLES = new Set(['agent', 'supervisor', 'admin']);

  const { el } = ChatKit;
  const http = StaffKit.client({ loginUrl: LOGIN_URL, onLeave: () => clearInterval(refreshTimer) });
  const api = (method, path, body) => http.api(method, path, body);
  let toast = null;
  let refreshTimer = 0;

  const dom = {};
  const state = {
    me: null,
    categories: new Map(), // code -> category (with its workflow and fields schema)
    departments: [],
    regions: new Map(), // code -> name
    orders: [],
    openId: null,
    listSeq: 0,
    openSeq: 0,
  };

  // ----------------------------------------------------------------- list

  function listQuery(beforeId) {
    const form = dom.filters.elements;
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (form.state.value) query.set('state', form.state.value);
    if (form.category.value) query.set('category', form.category.value);
    if (form.region.value) query.set('region', form.region.value);
    if (form.assignee.value === 'me') query.set('assignee_id', String(state.me.id));
    if (form.overdue.checked) query.set('overdue', 'true');
    if (beforeId) query.set('before_id', String(beforeId));
    return query;
  }

  async function loadList({ more = false } = {}) {
    const seq = ++state.listSeq;
    const before = more && state.orders.length ? state.orders[state.orders.length - 1].id : null;
    let page;
    try {
      page = await api('GET', `/api/workorders?${listQuery(before)}`);
    } catch (err) {
      toast.report(err);
      return;
    }
    if (seq !== state.listSeq) return; // a newer filter won
    state.orders = more ? state.orders.concat(page.items) : page.items;
    dom.more.hidden = page.items.length < PAGE_SIZE;
    renderList();
  }

  function regionName(code) {
    return code ? state.regions.get(code) || code : '';
  }

  function orderItem(order) {
    const item = el('li', {
      class: 'conv-item', 'data-testid': 'order-item', 'data-id': order.id, 'data-number': order.number,
      'aria-current': String(order.id === state.openId), tabindex: 0,
    }, [
      el('div', { class: 'conv-row' }, [
        el('span', { class: 'conv-name', text: order.number }),
        OrderKit.stateBadge(order),
        order.overdue ? el('span', { class: 'badge overdue', text: '超时' }) : null,
      ]),
      el('div', { class: 'conv-row' }, [el('span', { class: 'conv-preview', text: order.title })]),
      el('div', { class: 'conv-row' }, [
        el('span', { class: 'channel', text: order.category.name }),
        el('span', { class: 'conv-preview', text: [regionName(order.region_code), order.department && order.department.name,
          order.assignee && order.assignee.name].filter(Boolean).join(' · ') }),
      ]),
    ]);
    item.addEventListener('click', () => openOrder(order.id));
    item.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') openOrder(order.id);
    });
    return item;
  }

  function renderList() {
    dom.list.replaceChildren(...state.orders.map(orderItem));
    dom.listEmpty.textContent = '没有符合条件的工单';
    dom.listEmpty.hidden = state.orders.length > 0;
  }

  // --------------------------------------------------------------- detail

  async function openOrder(id) {
    state.openId = id;
    const url = new URL(window.location.href);
    url.searchParams.set('id', String(id));
    window.history.replaceState(null, '', url);
    for (const item of dom.list.children) item.setAttribute('aria-current', String(Number(item.dataset.id) === id));
    await refreshOrder();
  }

  async function refreshOrder() {
    if (state.openId === null) return;
    const seq = ++state.openSeq;
    let order;
    try {
      order = await api('GET', `/api/workorders/${state.openId}`);
    } catch (err) {
      toast.report(err);
      return;
    }
    if (seq === state.openSeq) renderOrder(order);
  }

  function renderOrder(order) {
    const category = state.categories.get(order.category.code);
    const workflow = category ? category.workflow : null;
    const finished = workflow ? workflow.final.includes(order.state) : false;
    dom.view.replaceChildren(
      el('header', { class: 'conv-header' }, [
        el('div', {}, [
          el('h2', { 'data-testid': 'order-number', text: order.number }),
          el('p', { class: 'conv-meta' }, [
            OrderKit.stateBadge(order), ' ',
            el('span', { class: `priority p${order.priority}`, text: `优先级 ${OrderKit.PRIORITY_LABELS[order.priority] || order.priority}` }),
            ' ', OrderKit.dueNode(order),
          ]),
        ]),
      ]),
      el('div', { class: 'order-body' }, [
        el('h3', { class: 'order-title', text: order.title }),
        el('p', { class: 'order-description', text: order.description }),
        OrderKit.facts(order, category, regionName(order.region_code)),
        OrderKit.photos(order),
        OrderKit.recordings(order),
        OrderKit.actionPanel(order, workflow, state.me, {
          api,
          departments: () => state.departments.map((d) => ({ id: d.id, name: d.name })),
          members: members,
          onDone: (updated) => {
            toast.show(`工单 ${updated.number}:${updated.state_label}`, 'ok');
            renderOrder(updated);
            loadList();
          },
          onError: (err) => toast.report(err),
        }),
        finished ? null : OrderKit.notePanel(order, {
          http, onDone: renderOrder, onError: (err) => toast.report(err),
        }),
        el('h3', { class: 'section-title', text: '处理记录' }),
        OrderKit.timeline(order, workflow),
        order.notices.length ? el('h3', { class: 'section-title', text: '居民通知' }) : null,
        OrderKit.notices(order),
      ]),
    );
    dom.placeholder.hidden = true;
    dom.view.hidden = false;
  }

  async function members(order) {
    if (!order.department) return [];
    const page = await api('GET', `/api/departments/${order.department.id}/members`);
    return page.items.map((m) => ({ id: m.id, name: m.display_name }));
  }

  // Keeps list and open order fresh, unless someone is typing in a form of the open order.
  function refresh() {
    loadList();
    if (!dom.view.querySelector('.action-form, .note-form textarea:not(:placeholder-shown)')) refreshOrder();
  }

  // ------------------------------------------------------------------- boot

  async function loadReferenceData() {
    const [categories, departments, regions] = await Promise.all([
      api('GET', '/api/workorder-categories'), api('GET', '/api/departments'), api('GET', '/api/regions'),
    ]);
    for (const category of categories.items) {
      state.categories.set(category.code, category);
      dom.filters.elements.category.append(el('option', { value: category.code, text: category.name }));
    }
    state.departments = departments.items;
    for (const region of regions.items) {
      state.regions.set(region.code, region.name);
      dom.filters.elements.region.append(el('option', { value: region.code, text: region.name }));
    }
  }

  async function boot() {
    dom.filters = document.getElementById('filters');
    dom.list = document.getElementById('order-list');
    dom.listEmpty = document.getElementById('list-empty');
    dom.more = document.querySelector('[data-testid=load-more]');
    dom.placeholder = document.getElementById('order-placeholder');
    dom.view = document.getElementById('order-view');
    toast = StaffKit.toaster(document.querySelector('[data-testid=toast]'));

    let session;
    try {
      session = await http.me();
      await loadReferenceData();
    } catch (err) {
      toast.report(err);
      return;
    }
    state.me = session.user;
    StaffKit.header(state.me, http, toast);
    document.querySelector('[data-testid=nav-agent]').hidden = !AGENT_ROLES.has(state.me.role);
    if (state.me.role === 'handler' || state.me.role === 'field_crew') dom.filters.elements.state.value = 'new,dispatched,assigned,in_progress';
    dom.filters.addEventListener('change', () => loadList());
    dom.more.addEventListener('click', () => loadList({ more: true }));
    document.body.classList.remove('booting');

    await loadList();
    const wanted = Number(new URLSearchParams(window.location.search).get('id'));
    if (Number.isInteger(wanted) && wanted > 0) openOrder(wanted);
    refreshTimer = setInterval(refresh, REFRESH_MS);
  }

  boot();
})();
