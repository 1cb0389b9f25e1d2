/*
 * Shuiwu Hub — automatic outbound campaigns (外呼任务) on the call records page, for supervisors and admins:
 * set one up for a district (POST /api/campaigns), start, pause, resume or cancel it
 * (POST /api/campaigns/{id}/state), and follow each one's progress (GET /api/campaigns), refreshed every few
 * seconds while one is running. `calls.js` starts it for overseers.
 */
const CampaignDesk = (() => {
  'use strict';

  const { el } = ChatKit;
  const REFRESH_MS = 3000;
  const KIND_LABELS = { arrears: '欠费提醒', outage: '停水通知', survey: '回访调查', notice: '其他通知' };
  const STATE_LABELS = { draft: '未开始', running: '外呼中', paused: '已暂停', done: '已完成', cancelled: '已取消' };
  // Targets per state, in the order a supervisor reads them.
  const RESULTS = [['confirmed', '已确认'], ['heard', '已收听'], ['opted_out', '拒绝再呼'], ['busy', '占线'],
    ['no_answer', '无人接听'], ['failed', '呼叫失败'], ['interrupted', '中断'], ['skipped', '免打扰跳过'],
    ['cancelled', '已取消'], ['dialing', '呼叫中'], ['pending', '待呼叫']];
  const OPEN = new Set(['pending', 'dialing']);
  const ACTIONS = {
    draft: [['running', '开始', 'campaign-start'], ['cancelled', '取消', 'campaign-cancel']],
    running: [['paused', '暂停', 'campaign-pause'], ['cancelled', '取消', 'campaign-cancel']],
    paused: [['running', '继续', 'campaign-resume'], ['cancelled', '取消', 'campaign-cancel']],
  };

  function start({ http, toast }) {
    const section = document.querySelector('[data-testid=campaigns]');
    const form = document.getElementById('campaign-form');
    const rows = document.getElementById('campaign-rows');
    const empty = document.querySelector('[data-testid=campaign-empty]');
    const districts = form.elements.region_id;
    let timer = null;

    function progress(item) {
      const done = item.targets - RESULTS.filter(([state]) => OPEN.has(state))
        .reduce((sum, [state]) => sum + (item.progress[state] || 0), 0);
      const bar = el('progress', { max: String(item.targets || 1), value: String(done), 'data-testid': 'campaign-bar' });
      const parts = RESULTS.filter(([state]) => item.progress[state])
        .map(([state, label]) => el('span', { class: 'campaign-count', 'data-state': state,
          text: `${label} ${item.progress[state]}` }));
      return [el('div', { 'data-testid': 'campaign-done', text: `${done} / ${item.targets}` }), bar,
        el('div', { class: 'campaign-counts', 'data-testid': 'campaign-counts' }, parts)];
    }

    function row(item) {
      const buttons = (ACTIONS[item.state] || []).map(([state, label, testid]) => StaffKit.actionButton(
        label, testid, async () => {
          await http.api('POST', `/api/campaigns/${item.id}/state`, { state });
          toast.show(`${item.name}：${label}`, 'ok');
        }, { toast, after: load, danger: state === 'cancelled' }));
      return el('tr', { 'data-testid': 'campaign-row', 'data-campaign-id': String(item.id), 'data-state': item.state }, [
        el('td', { text: item.name }),
        el('td', { text: KIND_LABELS[item.kind] || item.kind }),
        el('td', { text: item.region_name || '指定居民' }),
        el('td', { text: `${item.call_from}–${item.call_until}，${item.channels} 路` }),
        el('td', { 'data-testid': 'campaign-state', text: STATE_LABELS[item.state] || item.state }),
        el('td', {}, progress(item)),
        el('td', { class: 'admin-actions' }, buttons),
      ]);
    }

    async function load() {
      try {
        const { items } = await http.api('GET', '/api/campaigns');
        rows.replaceChildren(...items.map(row));
        empty.hidden = items.length > 0;
        window.clearTimeout(timer);
        if (items.some((item) => item.state === 'running')) timer = window.setTimeout(load, REFRESH_MS);
      } catch (err) {
        toast.report(err);
      }
    }

    async function loadDistricts() {
      const { items } = await http.api('GET', '/api/campaigns/districts');
      districts.replaceChildren(el('option', { value: '', text: '选择片区' }), ...items.map((district) => el('option', {
        value: String(district.id), text: `${district.name}（${district.residents} 户）`,
      })));
    }

    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const data = new FormData(form);
      const missing = [['name', '请填写任务名称'], ['region_id', '请选择片区'], ['message', '请填写播报内容']]
        .find(([field]) => !String(data.get(field) || '').trim());
      if (missing) {
        toast.show(missing[1]);
        form.elements[missing[0]].focus();
        return;
      }
      const submit = form.querySelector('[type=submit]');
      submit.disabled = true;
      try {
        const created = await http.api('POST', '/api/campaigns', {
          name: data.get('name').trim(), kind: data.get('kind'), message: data.get('message').trim(),
          region_id: Number(data.get('region_id')) || null, channels: Number(data.get('channels')),
          max_attempts: Number(data.get('max_attempts')), call_from: data.get('call_from'),
          call_until: data.get('call_until'), start: data.get('start') === 'on',
        });
        toast.show(`已创建外呼任务「${created.name}」，共 ${created.targets} 户`, 'ok');
        form.reset();
        await load();
      } catch (err) {
        toast.report(err);
      }
      submit.disabled = false;
    });

    section.hidden = false;
    loadDistricts().catch((err) => toast.report(err));
    load();
  }

  return { start };
})();
