/*
 * Shuiwu Hub — work-order pieces shared by the order desk (/app/orders) and the field-crew page
 * (/app/field): the timeline, the photos, and the action panel built from the category's workflow.
 *
 * A classic script whose only top-level name is `OrderKit`; pages load chatkit.js and staff.js first.
 * The hub checks every action again; the panel only leaves out what the user's role cannot do.
 */
const OrderKit = (() => {
  'use strict';

  const { el, formatTime } = ChatKit;
  const PRIORITY_LABELS = { 1: '紧急', 2: '高', 3: '普通', 4: '低' };
  const OVERSEERS = new Set(['supervisor', 'admin']);
  const EVENT_LABELS = {
    create: '受理', suggest_master: '疑似重复', note: '备注', attach: '上传照片', sla_reminder: '即将超时',
    sla_escalated: '已超时升级',
  };
  const SATISFACTION_LABELS = { 5: '非常满意', 4: '满意', 3: '一般', 2: '不满意', 1: '非常不满意' };
  const INPUT_LABELS = {
    department_id: '处理部门', assignee_id: '处理人员', reason: '原因', comment: '处理说明', satisfaction: '满意度',
    master_id: '主工单 ID',
  };

  const SOURCE_LABELS = {
    agent: '坐席', bot: '机器人', webchat: '网页', wechat: '微信', sms: '短信', phone: '电话', voicemail: '留言',
    12345: '12345 热线', email: '邮件', import: '导入',
  };

  function formatDateTime(iso) {
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return '';
    const pad = (n) => String(n).padStart(2, '0');
    return `${date.getMonth() + 1}月${date.getDate()}日 ${pad(date.getHours())}:${pad(date.getMinutes())}`;
  }

  function stateBadge(order) {
    return el('span', { class: `badge state-${order.state}`, 'data-testid': 'order-state', text: order.state_label });
  }

  function dueNode(order) {
    if (!order.sla_due_at) return null;
    return el('span', { class: order.overdue ? 'due overdue' : 'due', text: `${order.overdue ? '已超时 · ' : ''}时限 ${formatDateTime(order.sla_due_at)}` });
  }

  // What one timeline entry says beyond its action: departments, people, scores, photos.
  function eventDetail(event, workflow) {
    const data = event.data || {};
    const parts = [];
    if (data.department) parts.push(`部门:${data.department}`);
    if (data.assignee) parts.push(`处理人:${data.assignee}`);
    if (data.master) parts.push(`主工单:${data.master}`);
    if (data.name && event.action === 'attach') parts.push(data.name);
    if (data.distance_m !== undefined && data.distance_m !== null) parts.push(`相距约 ${data.distance_m} 米`);
    if (data.satisfaction) parts.push(`满意度:${data.satisfaction} 分(${SATISFACTION_LABELS[data.satisfaction] || ''})`);
    if (event.from_state !== event.to_state && event.to_state && workflow) {
      parts.push(`→ ${workflow.states[event.to_state] || event.to_state}`);
    }
    return parts.join(' · ');
  }

  function actionLabel(action, workflow) {
    const rule = workflow && workflow.transitions.find((t) => t.action === action);
    return (rule && rule.label) || EVENT_LABELS[action] || action;
  }

  function timeline(order, workflow) {
    const list = el('ol', { class: 'timeline', 'data-testid': 'order-timeline' });
    for (const event of order.timeline) {
      const detail = eventDetail(event, workflow);
      list.append(el('li', { class: `tl-item tl-${event.action}`, 'data-action': event.action }, [
        el('div', { class: 'tl-head' }, [
          el('strong', { text: actionLabel(event.action, workflow) }),
          el('span', { class: 'tl-actor', text: event.actor_name }),
          el('time', { datetime: event.at, text: formatTime(event.at) }),
        ]),
        detail ? el('div', { class: 'tl-detail', text: detail }) : null,
        event.reason ? el('div', { class: 'tl-text', text: `原因:${event.reason}` }) : null,
        event.comment ? el('div', { class: 'tl-text', text: event.comment }) : null,
      ]));
    }
    return list;
  }

  const { CHANNEL_LABELS, DELIVERY_LABELS } = StaffKit;

  // What residents were told about the order, each with whether it reached them.
  function notices(order) {
    if (!order.notices || !order.notices.length) return null;
    return el('ul', { class: 'notices', 'data-testid': 'order-notices' }, order.notices.map((notice) => el('li', {
      class: `notice delivery-${notice.delivery}`, 'data-delivery': notice.delivery,
    }, [
      el('div', { class: 'tl-head' }, [
        el('span', { class: 'channel', text: CHANNEL_LABELS[notice.channel] || notice.channel }),
        el('span', { class: 'delivery-state', text: DELIVERY_LABELS[notice.delivery] || notice.delivery || '' }),
        el('time', { datetime: notice.created_at, text: formatTime(notice.created_at) }),
      ]),
      el('div', { class: 'tl-text', text: notice.text || '' }),
      notice.last_error ? el('div', { class: 'tl-detail', text: `${notice.attempts} 次尝试:${notice.last_error}` }) : null,
    ])));
  }

  function photos(order) {
    const images = order.attachments.filter((a) => a.content_type.startsWith('image/'));
    if (!images.length) return null;
    return el('div', { class: 'photos', 'data-testid': 'order-photos' }, images.map((photo) => el('a', {
      class: 'photo', href: photo.url, target: '_blank', rel: 'noopener noreferrer', title: photo.name,
    }, [el('img', { src: photo.url, alt: photo.name, loading: 'lazy' })])));
  }

  // Voicemails and other recordings attached to the order, and the recorded calls that led to it, playable
  // where they are listed.
  function recordings(order) {
    const sounds = order.attachments.filter((a) => a.content_type.startsWith('audio/'))
      .map((sound) => [`录音 ${formatDateTime(sound.created_at)}`, sound.url, 'order-recording'])
      .concat((order.call_recordings || []).map((call) => [
        `通话录音 ${formatDateTime(call.started_at)}`, call.url, 'order-call-recording']));
    if (!sounds.length) return null;
    return el('div', { class: 'recordings', 'data-testid': 'order-recordings' }, sounds.map(([caption, url, testid]) => el(
      'figure', { class: 'recording' }, [
        el('figcaption', { text: caption }),
        el('audio', { controls: true, preload: 'metadata', src: url, 'data-testid': testid }),
      ])));
  }

  function fact(label, value, testid) {
    if (value === null || value === undefined || value === '') return [];
    return [el('dt', { text: label }), el('dd', { text: String(value), 'data-testid': testid || null })];
  }

  // The order's particulars, its category's custom fields labelled by their schema titles.
  function facts(order, category, regionName) {
    const properties = (category && category.fields_schema && category.fields_schema.properties) || {};
    const custom = Object.entries(order.custom_fields || {}).flatMap(([key, value]) => {
      const shown = typeof value === 'boolean' ? (value ? '是' : '否') : value;
      return fact((properties[key] || {}).title || key, shown);
    });
    return el('dl', { class: 'facts' }, [
      ...fact('类别', order.category.name),
      ...fact('地址', order.address, 'order-address'),
      ...fact('区域', regionName),
      ...fact('联系电话', order.contact_phone),
      ...fact('处理部门', order.department && order.department.name, 'order-department'),
      ...fact('处理人员', order.assignee && order.assignee.name, 'order-assignee'),
      ...fact('来源', SOURCE_LABELS[order.source] || order.source),
      ...fact('来源会话', order.conversation_id ? `#${order.conversation_id}` : null),
      ...fact('外部编号', order.external_ref),
      ...fact('满意度', order.satisfaction ? `${order.satisfaction} 分(${SATISFACTION_LABELS[order.satisfaction]})` : null,
        'order-satisfaction'),
      ...fact('疑似重复', order.suggested_master_id && !order.master_id
        ? `可能与工单 ID ${order.suggested_master_id} 为同一事件` : null),
      ...fact('已合并到', order.master_id ? `工单 ID ${order.master_id}` : null),
      ...custom,
    ]);
  }

  /*
   * A note box and a photo button for an open order. On a phone the photo button opens the camera.
   *   options.http       the page's StaffKit client
   *   options.onDone     receives the order after the note or photo was added
   *   options.onError    shows an error
   */
  function notePanel(order, options) {
    const text = el('textarea', { class: 'input', rows: 2, maxlength: 5000, placeholder: '补充说明、现场情况…',
      'data-testid': 'note-input', 'aria-label': '备注' });
    const add = el('button', { class: 'btn btn-outline', type: 'submit', 'data-testid': 'note-submit', text: '添加备注' });
    const file = el('input', { type: 'file', accept: 'image/*', capture: 'environment', 'data-testid': 'photo-input', hidden: true });
    const photo = el('button', { class: 'btn btn-outline', type: 'button', 'data-testid': 'photo-button', text: '拍照/上传照片' });
    photo.addEventListener('click', () => file.click());
    file.addEventListener('change', async () => {
      if (!file.files.length) return;
      photo.disabled = true;
      photo.textContent = '正在上传…';
      try {
        options.onDone(await options.http.upload(`/api/workorders/${order.id}/attachments`, file.files[0]));
      } catch (err) {
        options.onError(err);
        photo.disabled = false;
        photo.textContent = '拍照/上传照片';
        file.value = '';
      }
    });
    const form = el('form', { class: 'note-form' }, [text, el('div', { class: 'order-buttons' }, [file, photo, add])]);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const comment = text.value.trim();
      if (!comment) return;
      add.disabled = true;
      try {
        options.onDone(await options.http.api('POST', `/api/workorders/${order.id}/notes`, { comment }));
      } catch (err) {
        options.onError(err);
        add.disabled = false;
      }
    });
    return form;
  }

  // Actions of the order's current state that this user's role (and place) allows.
  function allowedActions(order, workflow, user) {
    if (!workflow) return [];
    return workflow.transitions.filter((rule) => {
      if (!rule.from.includes(order.state) || !rule.roles.includes(user.role)) return false;
      if (OVERSEERS.has(user.role) || !rule.guard) return true;
      const ofDepartment = Boolean(order.department && user.department_id === order.department.id);
      const isAssignee = Boolean(order.assignee && order.assignee.id === user.id);
      return { department: ofDepartment, assignee: isAssignee, department_or_assignee: ofDepartment || isAssignee }[rule.guard];
    });
  }

  function inputFor(name, order, options) {
    const testid = `action-${name.replace('_id', '')}`;
    if (name === 'department_id' || name === 'assignee_id') {
      const select = el('select', { class: 'input', name, 'data-testid': testid, required: true }, [
        el('option', { value: '', text: '请选择' }),
      ]);
      const choices = name === 'department_id' ? options.departments() : options.members(order);
      Promise.resolve(choices).then((items) => {
        for (const item of items) select.append(el('option', { value: item.id, text: item.name }));
      }).catch(() => {});
      return select;
    }
    if (name === 'satisfaction') {
      return el('select', { class: 'input', name, 'data-testid': testid, required: true }, [
        el('option', { value: '', text: '请选择' }),
        ...[5, 4, 3, 2, 1].map((n) => el('option', { value: n, text: `${n} 分 · ${SATISFACTION_LABELS[n]}` })),
      ]);
    }
    if (name === 'master_id') {
      return el('input', { class: 'input', name, type: 'number', min: 1, 'data-testid': testid, required: true,
        value: order.suggested_master_id || null });
    }
    if (name === 'comment') {
      return el('textarea', { class: 'input', name, rows: 3, maxlength: 5000, 'data-testid': testid, required: true });
    }
    return el('input', { class: 'input', name, type: 'text', maxlength: 500, 'data-testid': testid, required: true });
  }

  /*
   * The buttons of the allowed actions, each opening the inputs its rule requires.
   *   options.api(method, path, body)   the page's REST client
   *   options.departments()             [{id, name}] (or a promise of it)
   *   options.members(order)            [{id, name}] who the order can be assigned to
   *   options.onDone(order)             the order after a successful action
   *   options.onError(err)              shows an error
   */
  function actionPanel(order, workflow, user, options) {
    const rules = allowedActions(order, workflow, user);
    const panel = el('div', { class: 'action-panel', 'data-testid': 'order-actions' });
    if (!rules.length) return panel;
    const buttons = el('div', { class: 'action-buttons' });
    const formSlot = el('div', { class: 'action-form-slot' });
    for (const rule of rules) {
      const requires = rule.requires || [];
      const button = el('button', { class: rule.action === 'cancel' || rule.action === 'reject' ? 'btn btn-danger' : 'btn',
        type: 'button', 'data-testid': `action-${rule.action}`, text: rule.label });
      button.addEventListener('click', () => {
        if (!requires.length) {
          run(rule, {}, button);
          return;
        }
        formSlot.replaceChildren(actionForm(rule, requires));
        const first = formSlot.querySelector('.input');
        if (first) first.focus();
      });
      buttons.append(button);
    }
    panel.append(buttons, formSlot);

    function actionForm(rule, requires) {
      const form = el('form', { class: 'action-form', 'data-testid': `form-${rule.action}`, novalidate: true });
      for (const name of requires) {
        form.append(el('label', { class: 'field' }, [
          el('span', { class: 'field-label', text: INPUT_LABELS[name] || name }),
          inputFor(name, order, options),
        ]));
      }
      const submit = el('button', { class: 'btn', type: 'submit', 'data-testid': 'action-submit', text: `确认${rule.label}` });
      const cancel = el('button', { class: 'btn btn-outline', type: 'button', text: '取消' });
      cancel.addEventListener('click', () => formSlot.replaceChildren());
      form.append(el('div', { class: 'order-buttons' }, [cancel, submit]));
      form.addEventListener('submit', (event) => {
        event.preventDefault();
        const values = {};
        for (const name of requires) {
          const raw = form.elements[name].value.trim();
          if (!raw) {
            options.onError(new Error(`请填写${INPUT_LABELS[name] || name}`));
            form.elements[name].focus();
            return;
          }
          values[name] = name.endsWith('_id') || name === 'satisfaction' ? Number(raw) : raw;
        }
        run(rule, values, submit);
      });
      return form;
    }

    async function run(rule, values, button) {
      button.disabled = true;
      try {
        const updated = await options.api('POST', `/api/workorders/${order.id}/transitions`, { action: rule.action, ...values });
        options.onDone(updated);
      } catch (err) {
        options.onError(err);
        button.disabled = false;
      }
    }
    return panel;
  }

  return {
    PRIORITY_LABELS, SATISFACTION_LABELS, formatDateTime, stateBadge, dueNode, facts, timeline, photos, recordings, notices,
    notePanel, actionPanel,
  };
})();
