/*
 * Shuiwu Hub — the customer 360 panel beside a conversation: who the resident is on every channel, their past
 * conversations, work orders and water bills; supervisors flag them VIP or blacklisted.
 *
 * REST: GET /api/contacts/{id}, PUT /api/contacts/{id}/flags (docs/api-contract.md, "Contacts").
 * Uses ChatKit (chatkit.js) and StaffKit (staff.js), which the page loads first; styles in contactpanel.css.
 *
 *   const panel = ContactPanel.create({ root, api, onOpenConversation, canFlag });
 *   panel.show(contactId); panel.clear();
 * `api(method, path, body)` is the page's REST client; `canFlag` (optional) says whether the flag switches are
 * offered, otherwise the signed-in user's role decides.
 */
const ContactPanel = (() => {
  'use strict';

  const { el, formatTime } = ChatKit;
  const { CHANNEL_LABELS, CONVERSATION_STATE_LABELS: STATE_LABELS } = StaffKit;
  const BILLS_DOWN = '账单系统暂不可用';
  const BILLS_SHOWN = 3; // the newest bills listed per account

  function money(value) {
    const amount = Number(value);
    return Number.isFinite(amount) ? `${amount.toFixed(2)} 元` : '—';
  }

  function section(title, testid, items, empty) {
    return el('section', { class: 'cp-section', 'data-testid': testid }, [
      el('h4', { class: 'cp-title', text: title }),
      items.length ? el('ul', { class: 'cp-list' }, items) : el('p', { class: 'cp-empty', text: empty }),
    ]);
  }

  function identityItem(identity) {
    return el('li', { class: 'cp-identity', 'data-testid': 'contact-identity', 'data-channel': identity.channel }, [
      el('span', { class: 'channel', text: CHANNEL_LABELS[identity.channel] || identity.channel }),
      el('span', { class: 'cp-id', text: identity.external_id }),
    ]);
  }

  function conversationItem(conversation, onOpen) {
    const details = [
      STATE_LABELS[conversation.state] || conversation.state,
      conversation.team && conversation.team.name,
      conversation.agent_name,
      conversation.disposition_label || conversation.disposition,
    ].filter(Boolean).join(' · ');
    const button = el('button', {
      type: 'button',
      class: 'cp-conversation',
      'data-testid': 'contact-conversation',
      'data-conversation-id': conversation.id,
      'data-state': conversation.state,
      title: '打开该会话',
    }, [
      el('span', { class: 'cp-row' }, [
        el('span', { class: 'channel', text: CHANNEL_LABELS[conversation.channel] || conversation.channel }),
        el('span', { class: 'cp-strong', text: `#${conversation.id}` }),
        el('time', { class: 'cp-time', datetime: conversation.created_at, text: formatTime(conversation.created_at) }),
      ]),
      el('span', { class: 'cp-detail', text: details }),
    ]);
    button.addEventListener('click', () => onOpen(conversation.id));
    return el('li', {}, [button]);
  }

  function orderItem(order) {
    return el('li', { class: 'cp-order', 'data-testid': 'contact-order', 'data-order-id': order.id }, [
      el('span', { class: 'cp-row' }, [
        el('a', {
          class: 'cp-strong', href: `/app/orders?id=${encodeURIComponent(order.id)}`, target: '_blank',
          rel: 'noopener', text: order.number,
        }),
        el('span', { class: `badge state-${order.state}`, text: order.state_label }),
        order.overdue ? el('span', { class: 'badge overdue', text: '超时' }) : null,
      ]),
      el('span', { class: 'cp-detail', text: `${order.category.name} · ${order.title}` }),
    ]);
  }

  function billItem(number, account) {
    if (!account) {
      return el('li', { class: 'cp-bill', 'data-testid': 'contact-bill', 'data-account': number }, [
        el('span', { class: 'cp-row' }, [el('span', { class: 'cp-strong', text: `户号 ${number}` })]),
        el('span', { class: 'cp-detail', text: '账单系统中未查到该户号' }),
      ]);
    }
    const owing = Number(account.arrears) > 0;
    return el('li', { class: 'cp-bill', 'data-testid': 'contact-bill', 'data-account': number }, [
      el('span', { class: 'cp-row' }, [
        el('span', { class: 'cp-strong', text: `户号 ${account.number}` }),
        el('span', { class: owing ? 'cp-arrears owing' : 'cp-arrears', 'data-testid': 'contact-arrears',
          text: owing ? `欠费 ${money(account.arrears)}` : '无欠费' }),
      ]),
      el('span', { class: 'cp-detail', text: `${account.holder} · ${account.address}` }),
      el('ul', { class: 'cp-bills' }, account.bills.slice(0, BILLS_SHOWN).map((bill) => el('li', {
        class: bill.paid ? 'cp-bill-line' : 'cp-bill-line unpaid',
      }, [
        el('span', { text: bill.period }),
        el('span', { text: `${bill.volume_m3} 吨` }),
        el('span', { text: money(bill.amount) }),
        el('span', { class: 'cp-paid', text: bill.paid ? '已缴' : '未缴' }),
      ]))),
    ]);
  }

  function billsSection(view) {
    const title = el('h4', { class: 'cp-title', text: '水费账单' });
    if (view.bills === null) {
      return el('section', { class: 'cp-section', 'data-testid': 'contact-bills' }, [
        title,
        el('p', {
          class: 'cp-error', 'data-testid': 'contact-bills-error', role: 'status', text: view.bills_error || BILLS_DOWN,
        }),
        view.accounts.length ? el('p', { class: 'cp-empty', text: `户号：${view.accounts.join('、')}` }) : null,
      ]);
    }
    const byNumber = new Map(view.bills.map((account) => [account.number, account]));
    return section('水费账单', 'contact-bills', view.accounts.map((n) => billItem(n, byNumber.get(n))),
      '暂无关联户号');
  }

  const PHONE_CHANNELS = new Set(['voice', 'sms']); // identities that are a phone number

  function create({ root, api, onOpenConversation = () => {}, canFlag, onCall = null }) {
    const body = el('div', { class: 'contact-panel', 'data-testid': 'contact-panel', 'data-state': 'empty' });
    root.replaceChildren(body);
    let shownId = null;
    let seq = 0; // answers to an earlier show() are dropped
    let flagger = typeof canFlag === 'boolean' ? Promise.resolve(canFlag) : null;

    // Whether the signed-in user may flag residents (asked once, when not given).
    function mayFlag() {
      if (!flagger) {
        flagger = api('GET', '/api/auth/me')
          .then((session) => StaffKit.isOverseer(session && session.user && session.user.role))
          .catch(() => false);
      }
      return flagger;
    }

    function setState(name, children) {
      body.dataset.state = name;
      body.replaceChildren(...children);
    }

    function flagBadges(contact) {
      return [
        contact.vip ? el('span', { class: 'flag flag-vip', 'data-testid': 'contact-vip', text: 'VIP' }) : null,
        contact.blacklisted
          ? el('span', { class: 'flag flag-blacklisted', 'data-testid': 'contact-blacklisted', text: '黑名单' })
          : null,
      ];
    }

    function flagSwitches(contact, badges, status) {
      const vip = el('input', { type: 'checkbox', 'data-testid': 'contact-flag-vip', checked: contact.vip });
      const blacklist = el('input', {
        type: 'checkbox', 'data-testid': 'contact-flag-blacklist', checked: contact.blacklisted,
      });
      async function save() {
        const id = shownId;
        vip.disabled = true;
        blacklist.disabled = true;
        status.hidden = true;
        try {
          const changed = await api('PUT', `/api/contacts/${encodeURIComponent(id)}/flags`,
            { vip: vip.checked, blacklisted: blacklist.checked });
          if (id !== shownId) return;
          contact.vip = changed.vip;
          contact.blacklisted = changed.blacklisted;
          badges.replaceChildren(...flagBadges(contact).filter(Boolean));
        } catch (err) {
          if (id !== shownId) return;
          status.textContent = (err && err.message) || '保存失败，请稍后重试';
          status.hidden = false;
        } finally {
          vip.checked = contact.vip;
          blacklist.checked = contact.blacklisted;
          vip.disabled = false;
          blacklist.disabled = false;
        }
      }
      vip.addEventListener('change', save);
      blacklist.addEventListener('change', save);
      return el('div', { class: 'cp-flags', role: 'group', 'aria-label': '居民标记' }, [
        el('label', { class: 'cp-switch' }, [vip, document.createTextNode('VIP')]),
        el('label', { class: 'cp-switch' }, [blacklist, document.createTextNode('黑名单')]),
      ]);
    }

    function header(contact, flagging, phoneKnown) {
      const badges = el('span', { class: 'cp-badges' }, flagBadges(contact));
      const status = el('p', { class: 'cp-error', role: 'alert', hidden: true });
      return el('header', { class: 'cp-header' }, [
        el('div', { class: 'cp-row' }, [
          el('h3', { class: 'cp-name', 'data-testid': 'contact-name', text: contact.display_name }),
          badges,
        ]),
        contact.region ? el('p', { class: 'cp-detail', text: `所属区域：${contact.region.name}` }) : null,
        el('p', { class: 'cp-detail', text: `首次来访：${formatTime(contact.created_at)}` }),
        flagging ? flagSwitches(contact, badges, status) : null,
        callButton(contact, phoneKnown, status),
        status,
      ]);
    }

    // 拨打: the agent's phone rings, then the resident's (POST /api/calls/outbound by contact, whose number stays
    // masked on the page).
    function callButton(contact, phoneKnown, status) {
      if (!onCall || !phoneKnown) return null;
      const button = el('button', { class: 'btn btn-outline', type: 'button', 'data-testid': 'contact-call', text: '拨打居民电话' });
      button.addEventListener('click', async () => {
        button.disabled = true; // a double click places one call
        status.hidden = true;
        try {
          await onCall(contact.id);
        } catch (err) {
          status.textContent = (err && err.message) || '外呼失败，请稍后重试';
          status.hidden = false;
        } finally {
          button.disabled = false;
        }
      });
      return button;
    }

    function render(view, flagging) {
      body.dataset.contactId = view.contact.id;
      setState('ready', [
        header(view.contact, flagging, view.identities.some((i) => PHONE_CHANNELS.has(i.channel))),
        view.bot_lookups_blocked ? el('p', {
          class: 'cp-error', 'data-testid': 'contact-lookups-blocked', role: 'status',
          text: '近一小时内户号或工单核对失败次数过多，智能客服已暂停为该居民查询，请人工核实身份。',
        }) : null,
        section('渠道身份', 'contact-identities', view.identities.map(identityItem), '暂无渠道身份'),
        section('历史会话', 'contact-conversations',
          view.conversations.map((c) => conversationItem(c, onOpenConversation)), '暂无可查看的会话'),
        section('工单', 'contact-orders', view.orders.map(orderItem), '暂无工单'),
        billsSection(view),
      ].filter(Boolean));
    }

    async function show(contactId) {
      const mine = ++seq;
      shownId = contactId;
      delete body.dataset.contactId;
      setState('loading', [el('p', { class: 'cp-empty', text: '正在加载居民信息…' })]);
      try {
        const [view, flagging] = await Promise.all([
          api('GET', `/api/contacts/${encodeURIComponent(contactId)}`), mayFlag(),
        ]);
        if (mine === seq) render(view, flagging);
      } catch (err) {
        if (mine !== seq || (err && err.silent)) return;
        setState('error', [el('p', {
          class: 'cp-error', 'data-testid': 'contact-panel-error', role: 'alert',
          text: `无法加载居民信息：${(err && err.message) || '请稍后重试'}`,
        })]);
      }
    }

    function clear() {
      seq += 1;
      shownId = null;
      delete body.dataset.contactId;
      setState('empty', []);
    }

    return { show, clear };
  }

  return { create };
})();
