/*
 * Shuiwu Hub — call records (/app/calls): calls found by the caller's number (all of it or its last digits), a
 * time range or a work order, newest first a page at a time (GET /api/calls); one call's IVR path, keys and
 * events with its recording in an <audio> player (GET /api/calls/{id}). Supervisors and admins also get the
 * key-press statistics per menu node (GET /api/ivr/stats) as a table and an ECharts bar chart. The callback list
 * above them is callbacks.js.
 * Agents see the calls of the conversations they may see; the server decides.
 * Uses `ChatKit` and `StaffKit` (chatkit.js, staff.js), which the page loads first.
 */
(() => {
  'use strict';

  const { el } = ChatKit;
  const PAGE = 20;
  const CALL_ROLES = new Set(['agent', 'supervisor', 'admin']);
  const OUTCOME_LABELS = {
    self_service: '自助服务', voicemail: '留言', agent: '人工接听', abandoned: '排队放弃', hangup: '挂机', rejected: '拒接',
    none: '未完成',
  };
  const SIDE_LABELS = { caller: '来电方', hub: '系统', agent: '坐席' };
  const EVENT_LABELS = {
    answer: '接听', node: '进入节点', key: '按键', prompt: '放音', lookup: '自助查询', voicemail: '留言',
    work_order: '生成工单', to_agent: '转人工', menu: '菜单版本', hangup: '挂机', timeout: '未按键',
    invalid: '按键无效', queued: '进入排队', announce: '播报排队位置', ring: '坐席振铃', missed: '坐席未接',
    connect: '接通坐席', agent_hangup: '坐席挂机', survey: '满意度评价', abandon: '排队时挂机', hold: '保持',
    resume: '恢复通话', consult: '征询', transfer: '转接', conference: '三方通话', monitor: '班长监听', dial: '外呼振铃',
    outside_hangup: '外线挂机', requeue: '转回队列',
  };
  const http = StaffKit.client({ loginUrl: '/app/login?next=/app/calls' });
  const charts = typeof echarts === 'undefined' ? null : echarts; // null when the library was not installed
  let toast = null;
  let statsChart = null;
  const dom = {};

  function localTime(iso) {
    return iso ? new Date(iso).toLocaleString('zh-CN', { hour12: false }) : '';
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return '';
    const minutes = Math.floor(seconds / 60);
    return minutes ? `${minutes}分${seconds % 60}秒` : `${seconds}秒`;
  }

  function outcomeLabel(outcome) {
    return OUTCOME_LABELS[outcome || 'none'] || outcome;
  }

  function callRow(call) {
    const row = el('tr', { class: 'calls-row', 'data-testid': 'call-row', 'data-call-id': String(call.id),
      tabindex: '0' }, [
      el('td', { text: localTime(call.started_at) }),
      el('td', { 'data-testid': 'call-caller', text: call.caller || '未显示号码' }),
      el('td', { text: call.did || '' }),
      el('td', { class: 'wb-num', text: duration(call.duration_seconds) }),
      el('td', { text: outcomeLabel(call.outcome) }),
      el('td', { text: SIDE_LABELS[call.hangup_side] || call.hangup_side || '' }),
      el('td', { text: call.has_recording ? '有' : '无' }),
    ]);
    const open = () => showCall(call.id);
    row.addEventListener('click', open);
    row.addEventListener('keydown', (event) => {
      if (event.key === 'Enter') open();
    });
    return row;
  }

  function eventText(event) {
    const detail = event.detail || {};
    if (event.kind === 'lookup') return `${detail.kind || ''}${detail.found === false ? '（未查到）' : ''}`;
    if (event.kind === 'work_order') return detail.number ? `工单 ${detail.number}` : '';
    if (event.kind === 'prompt') return detail.text || detail.media || '';
    if (event.kind === 'menu') return detail.version !== undefined ? `第 ${detail.version} 版` : '';
    return '';
  }

  function eventRow(event) {
    return el('tr', { 'data-testid': 'call-event', 'data-kind': event.kind }, [
      el('td', { text: localTime(event.at) }),
      el('td', { text: EVENT_LABELS[event.kind] || event.kind }),
      el('td', { text: event.node || '' }),
      el('td', { class: 'calls-key', 'data-testid': event.key ? 'call-key' : null, text: event.key || '' }),
      el('td', { text: eventText(event) }),
    ]);
  }

  async function showCall(callId) {
    let call;
    try {
      call = await http.api('GET', `/api/calls/${callId}`);
    } catch (err) {
      toast.report(err);
      return;
    }
    for (const row of dom.rows.children) row.classList.toggle('selected', row.dataset.callId === String(callId));
    dom.detailTitle.textContent = `${call.caller || '未显示号码'} · ${localTime(call.started_at)} · ${outcomeLabel(call.outcome)}`;
    const facts = [`菜单路径：${call.ivr_path.length ? call.ivr_path.join(' → ') : '（未进入菜单）'}`];
    if (call.wait_seconds !== null) facts.push(`排队 ${duration(call.wait_seconds)}`);
    if (call.survey_score !== null) facts.push(`满意度 ${call.survey_score} 分`);
    dom.path.textContent = facts.join(' · ');
    dom.orders.hidden = call.work_orders.length === 0;
    dom.orders.textContent = `生成工单：${call.work_orders.join('、')}`;
    dom.audio.hidden = !call.recording_url;
    dom.noRecording.hidden = Boolean(call.recording_url);
    if (call.recording_url) dom.audio.src = call.recording_url;
    else dom.audio.removeAttribute('src');
    dom.events.replaceChildren(...call.events.map(eventRow));
    dom.detail.hidden = false;
    dom.detail.dataset.callId = String(call.id);
  }

  function counts(map, label) {
    const entries = Object.entries(map).sort((a, b) => b[1] - a[1]);
    return entries.length ? entries.map(([key, count]) => `${label(key)}：${count}`).join('；') : '—';
  }

  function drawStats(stats) {
    dom.statsRows.replaceChildren(...stats.nodes.map((node) => el('tr', {
      'data-testid': 'stats-row', 'data-node': node.node,
    }, [
      el('td', { text: node.node }),
      el('td', { class: 'wb-num', 'data-testid': 'stats-calls', text: String(node.calls) }),
      el('td', { class: 'wb-num', text: String(node.entries) }),
      el('td', { 'data-testid': 'stats-keys', text: counts(node.keys, (key) => `按 ${key}`) }),
      el('td', { class: 'wb-num', 'data-testid': 'stats-timeouts', text: String(node.timeouts) }),
      el('td', { class: 'wb-num', 'data-testid': 'stats-invalid', text: String(node.invalid) }),
      el('td', { 'data-testid': 'stats-ended', text: counts(node.ended, outcomeLabel) }),
    ])));
    dom.statsTotal.textContent = `共 ${stats.calls} 通来电`;
    if (!charts) return;
    const keys = [...new Set(stats.nodes.flatMap((node) => Object.keys(node.keys)))].sort();
    statsChart = statsChart || charts.init(dom.statsChart);
    statsChart.setOption({
      tooltip: { trigger: 'axis' },
      legend: { top: 0 },
      grid: { left: 40, right: 16, top: 32, bottom: 28 },
      xAxis: { type: 'category', data: stats.nodes.map((node) => node.node) },
      yAxis: { type: 'value', minInterval: 1 },
      series: keys.map((key) => ({
        name: `按 ${key}`, type: 'bar', stack: 'keys', data: stats.nodes.map((node) => node.keys[key] || 0),
      })),
    }, true);
  }

  async function loadStats(button) {
    const params = StaffKit.formQuery(dom.statsFilters, { times: ['from', 'to'] });
    button.disabled = true;
    try {
      drawStats(await http.api('GET', `/api/ivr/stats?${params}`));
    } catch (err) {
      toast.report(err);
    }
    button.disabled = false;
  }

  async function boot() {
    toast = StaffKit.toaster(document.querySelector('[data-testid=toast]'));
    Object.assign(dom, {
      filters: document.getElementById('call-filters'),
      rows: document.getElementById('call-rows'),
      more: document.querySelector('[data-testid=call-more]'),
      empty: document.querySelector('[data-testid=call-empty]'),
      detail: document.querySelector('[data-testid=call-detail]'),
      detailTitle: document.querySelector('[data-testid=call-detail-title]'),
      path: document.querySelector('[data-testid=call-path]'),
      orders: document.querySelector('[data-testid=call-orders]'),
      audio: document.querySelector('[data-testid=call-recording]'),
      noRecording: document.querySelector('[data-testid=call-no-recording]'),
      events: document.getElementById('event-rows'),
      stats: document.querySelector('[data-testid=ivr-stats]'),
      statsFilters: document.getElementById('stats-filters'),
      statsRows: document.getElementById('stats-rows'),
      statsTotal: document.querySelector('[data-testid=stats-total]'),
      statsChart: document.querySelector('[data-testid=stats-chart]'),
    });
    const me = await StaffKit.signIn(http, toast);
    if (!me) return;
    if (!CALL_ROLES.has(me.role)) {
      document.querySelector('[data-testid=calls-denied]').hidden = false;
      return;
    }
    const firstPage = StaffKit.pagedList({
      http, toast, path: '/api/calls', limit: PAGE, text: ['number', 'order'], times: ['since', 'until'],
      row: callRow, filters: dom.filters, rows: dom.rows, more: dom.more,
      empty: dom.empty,
    });
    document.getElementById('calls').hidden = false;
    CallbackDesk.start({ http, toast, me });
    if (StaffKit.isOverseer(me.role)) {
      CampaignDesk.start({ http, toast });
      dom.stats.hidden = false;
      dom.statsFilters.addEventListener('submit', (event) => {
        event.preventDefault();
        loadStats(dom.statsFilters.querySelector('[type=submit]'));
      });
      window.addEventListener('resize', () => statsChart && statsChart.resize());
      loadStats(dom.statsFilters.querySelector('[type=submit]'));
    }
    await firstPage();
  }

  boot();
})();
