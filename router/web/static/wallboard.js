/*
 * Shuiwu Hub — the supervisors' wallboard (/app/wallboard): every queue and every agent, live.
 *
 * Figures come from GET /api/queues and GET /api/agents (router/acd/board.py). They are fetched again when
 * the staff WebSocket reports a presence or conversation change (at most every REFRESH_GAP_MS) and every
 * SAFETY_REFRESH_MS regardless; waiting times and times in state tick every second in between. A supervisor
 * forces an agent's state with PUT /api/agents/{id}/presence. The voice channel's state (接通/断开), when the
 * hub has that channel, comes from GET /readyz every VOICE_POLL_MS.
 *
 * Charts are Apache ECharts (vendor/echarts.min.js, put there by scripts/bootstrap.sh); a chart's instance
 * is echarts.getInstanceByDom(container). Uses ChatKit (chatkit.js) and StaffKit (staff.js), which the
 * page loads first.
 */
(() => {
  'use strict';

  const LOGIN_URL = '/app/login?next=/app/wallboard';
  const REFRESH_GAP_MS = 500;
  const SAFETY_REFRESH_MS = 5000;
  const VOICE_POLL_MS = 3000; // how often /readyz is asked whether the phone platform (Asterisk) is reachable
  const VOICE_TEXT = { up: '电话通道：接通', down: '电话通道：断开' };
  const TICK_MS = 1000;
  const SERVICE_LEVEL_TARGET = 80; // percent; below it the service level is flagged (the usual 80/20 target)
  const STATE_ORDER = ['ready', 'busy', 'acw', 'away', 'signed_out'];
  const STATE_COLORS = { ready: '#2fb36b', busy: '#e5484d', acw: '#0a6ebd', away: '#f0b400', signed_out: '#b8c2cc' };
  const LABELS = StaffKit.PRESENCE_LABELS;
  const TILES = [
    { key: 'waiting', label: '排队中' },
    { key: 'longest-wait', label: '最长等待' },
    { key: 'signed-in', label: '签入坐席' },
    { key: 'ready', label: '就绪坐席' },
    { key: 'entered', label: '今日进线' },
    { key: 'answered', label: '今日接通' },
    { key: 'service-level', label: '今日服务水平' },
  ];

  const { el } = ChatKit;
  const charts = typeof echarts === 'undefined' ? null : echarts; // null when the library was not installed

  const dom = {};
  const state = {
    me: null,
    queues: [],
    agents: [],
    teamNames: new Map(), // team id -> name
    fetchedAt: 0, // Date.now() when the figures arrived: waiting times tick from there
  };
  const queueCards = new Map(); // team id -> { root, tiles, gauge }
  const agentRows = new Map(); // agent id -> { row, cells, reason, buttons, agent, pending }
  let stateChart = null;
  let toast = null;
  let timers = [];

  // ---------------------------------------------------------------- helpers

  function pad(n) {
    return String(n).padStart(2, '0');
  }

  // 75 -> "01:15", 3725 -> "1:02:05".
  function formatClock(totalSeconds) {
    const seconds = Math.max(0, Math.floor(totalSeconds));
    const hours = Math.floor(seconds / 3600);
    const rest = `${pad(Math.floor((seconds % 3600) / 60))}:${pad(seconds % 60)}`;
    return hours ? `${hours}:${rest}` : rest;
  }

  function elapsedSeconds() {
    return state.fetchedAt ? (Date.now() - state.fetchedAt) / 1000 : 0;
  }

  // The service level as a percentage with one decimal, or null before anything counts.
  function serviceLevelPercent(queue) {
    return queue.service_level_today === null ? null : Math.round(queue.service_level_today * 1000) / 10;
  }

  function longestWait(queue) {
    return queue.waiting ? queue.longest_wait_seconds + elapsedSeconds() : 0;
  }

  function secondsInState(agent) {
    const since = agent.since ? Date.parse(agent.since) : NaN;
    return Number.isNaN(since) ? null : Math.max(0, (Date.now() - since) / 1000);
  }

  function agentName(agent) {
    return agent.display_name || agent.username;
  }

  // ------------------------------------------------------------------ REST

  const http = StaffKit.client({ loginUrl: LOGIN_URL, onLeave: stop });
  const api = (method, path, body) => http.api(method, path, body);

  // ---------------------------------------------------------------- charts

  // An ECharts instance on `node`, or null (with a note in its place) when ECharts is not installed.
  function chartOn(node) {
    if (!charts) {
      node.append(el('p', { class: 'wb-chart-missing', text: '图表组件未安装（请运行 scripts/bootstrap.sh）' }));
      return null;
    }
    const chart = charts.init(node, null, { renderer: 'svg' });
    resizer.observe(node);
    return chart;
  }

  const resizer = new ResizeObserver((entries) => {
    for (const entry of entries) {
      const chart = charts && charts.getInstanceByDom(entry.target);
      if (chart) chart.resize();
    }
  });

  function gaugeOption(queue) {
    const percent = serviceLevelPercent(queue);
    const color = percent === null || percent >= SERVICE_LEVEL_TARGET ? STATE_COLORS.ready : STATE_COLORS.busy;
    return {
      series: [{
        id: 'service-level',
        type: 'gauge',
        min: 0,
        max: 100,
        startAngle: 210,
        endAngle: -30,
        radius: '92%',
        progress: { show: true, width: 12, itemStyle: { color } },
        axisLine: { lineStyle: { width: 12, color: [[1, '#e3eaf1']] } },
        pointer: { show: false },
        axisTick: { show: false },
        splitLine: { show: false },
        axisLabel: { show: false },
        anchor: { show: false },
        title: { offsetCenter: [0, '38%'], fontSize: 12, color: '#66768a' },
        detail: {
          offsetCenter: [0, '-4%'],
          fontSize: 22,
          fontWeight: 600,
          color: '#1f2d3d',
          formatter: () => (percent === null ? '—' : `${percent}%`),
        },
        data: [{ name: `${queue.service_level_seconds} 秒内接通`, value: percent === null ? 0 : percent }],
      }],
    };
  }

  function stateChartOption(agents) {
    const counts = Object.fromEntries(STATE_ORDER.map((name) => [name, 0]));
    for (const agent of agents) {
      if (agent.state in counts) counts[agent.state] += 1;
    }
    return {
      grid: { left: 32, right: 12, top: 28, bottom: 24 },
      tooltip: { trigger: 'axis', axisPointer: { type: 'shadow' } },
      xAxis: {
        type: 'category',
        data: STATE_ORDER.map((name) => LABELS[name]),
        axisTick: { show: false },
        axisLabel: { interval: 0 },
      },
      yAxis: { type: 'value', minInterval: 1 },
      series: [{
        id: 'agents-by-state',
        name: '坐席数',
        type: 'bar',
        barMaxWidth: 44,
        label: { show: true, position: 'top' },
        data: STATE_ORDER.map((name) => ({ value: counts[name], itemStyle: { color: STATE_COLORS[name] } })),
      }],
    };
  }

  // ---------------------------------------------------------------- queues

  function queueCard(queue) {
    const tiles = {};
    const tileNodes = TILES.map(({ key, label }) => {
      const value = el('span', { class: 'wb-tile-value' });
      tiles[key] = { root: el('div', { class: 'wb-tile', 'data-testid': `queue-${key}` }, [
        el('span', { class: 'wb-tile-label', text: label }), value,
      ]), value };
      return tiles[key].root;
    });
    const name = el('h3', { class: 'wb-queue-name', 'data-testid': 'queue-name' });
    const threshold = el('span', { class: 'wb-queue-threshold', 'data-testid': 'queue-threshold' });
    const gaugeNode = el('div', { class: 'wb-chart wb-gauge', 'data-testid': 'queue-service-level-chart',
      role: 'img', 'aria-label': '今日服务水平' });
    const root = el('article', { class: 'wb-queue', 'data-testid': 'queue-card', 'data-team-id': queue.team_id }, [
      el('header', { class: 'wb-queue-head' }, [name, threshold]),
      el('div', { class: 'wb-queue-body' }, [el('div', { class: 'wb-tiles' }, tileNodes), gaugeNode]),
    ]);
    dom.queues.append(root);
    return { root, name, threshold, tiles, gauge: chartOn(gaugeNode) };
  }

  function setTile(tile, value, text, alert = false) {
    tile.root.dataset.value = value === null ? '' : String(value);
    tile.root.classList.toggle('wb-alert', alert);
    tile.value.textContent = text;
  }

  function renderQueues() {
    const seen = new Set();
    for (const queue of state.queues) {
      seen.add(queue.team_id);
      let card = queueCards.get(queue.team_id);
      if (!card) {
        card = queueCard(queue);
        queueCards.set(queue.team_id, card);
      }
      dom.queues.append(card.root); // keeps the API's order
      card.name.textContent = queue.name;
      card.threshold.textContent = `服务水平：${queue.service_level_seconds} 秒内接通`;
      const tiles = card.tiles;
      setTile(tiles.waiting, queue.waiting, String(queue.waiting), queue.waiting > 0 && queue.agents_ready === 0);
      setTile(tiles['signed-in'], queue.agents_signed_in, String(queue.agents_signed_in));
      setTile(tiles.ready, queue.agents_ready, String(queue.agents_ready));
      setTile(tiles.entered, queue.entered_today, String(queue.entered_today));
      setTile(tiles.answered, queue.answered_today, String(queue.answered_today));
      const percent = serviceLevelPercent(queue);
      setTile(tiles['service-level'], percent, percent === null ? '—' : `${percent}%`,
        percent !== null && percent < SERVICE_LEVEL_TARGET);
      if (card.gauge) card.gauge.setOption(gaugeOption(queue));
    }
    for (const [teamId, card] of queueCards) {
      if (seen.has(teamId)) continue;
      if (card.gauge) card.gauge.dispose();
      card.root.remove();
      queueCards.delete(teamId);
    }
    dom.queueEmpty.hidden = state.queues.length > 0;
    tickQueues();
  }

  function tickQueues() {
    for (const queue of state.queues) {
      const card = queueCards.get(queue.team_id);
      const seconds = Math.floor(longestWait(queue));
      setTile(card.tiles['longest-wait'], seconds, formatClock(seconds), seconds > queue.service_level_seconds);
    }
  }

  // ---------------------------------------------------------------- agents

  function agentRow(agent) {
    const cell = (testid, className = null) => el('td', { 'data-testid': testid, class: className });
    const cells = {
      name: cell('agent-name'),
      teams: cell('agent-teams'),
      state: cell('agent-state'),
      reason: cell('agent-reason'),
      time: cell('agent-time-in-state', 'wb-num'),
      load: cell('agent-load', 'wb-num'),
    };
    const reason = el('select', { class: 'input wb-reason', 'data-testid': 'force-reason', 'aria-label': '小休原因' },
      StaffKit.AWAY_REASONS.map((text) => el('option', { value: text, text })));
    const buttons = {
      ready: el('button', { class: 'btn btn-outline btn-small', type: 'button', 'data-testid': 'force-ready',
        text: `设为${LABELS.ready}` }),
      away: el('button', { class: 'btn btn-outline btn-small', type: 'button', 'data-testid': 'force-away',
        text: `设为${LABELS.away}` }),
      signed_out: el('button', { class: 'btn btn-danger btn-small', type: 'button', 'data-testid': 'force-signed-out',
        text: '强制签出' }),
    };
    const actions = cell('agent-actions');
    actions.append(el('div', { class: 'wb-actions' }, [buttons.ready, reason, buttons.away, buttons.signed_out]));
    const row = el('tr', { 'data-testid': 'agent-row', 'data-agent-id': agent.id },
      [...Object.values(cells), actions]);
    const entry = { row, cells, reason, buttons, agent, pending: false };
    buttons.ready.addEventListener('click', () => force(entry, 'ready'));
    buttons.away.addEventListener('click', () => force(entry, 'away', reason.value));
    buttons.signed_out.addEventListener('click', () => force(entry, 'signed_out'));
    return entry;
  }

  function renderAgent(entry) {
    const { agent, cells, buttons } = entry;
    entry.row.dataset.state = agent.state;
    cells.name.replaceChildren(el('span', { class: 'wb-agent-name', text: agentName(agent) }));
    if (agentName(agent) !== agent.username) {
      cells.name.append(el('span', { class: 'wb-agent-login', text: agent.username }));
    }
    cells.teams.textContent = agent.team_ids.map((id) => state.teamNames.get(id) || `#${id}`).join('、') || '—';
    cells.state.replaceChildren(el('span', { class: 'wb-state', 'data-state': agent.state,
      text: LABELS[agent.state] || agent.state }));
    cells.reason.textContent = agent.reason || '—';
    cells.load.dataset.load = String(agent.load);
    cells.load.dataset.capacity = String(agent.capacity);
    cells.load.textContent = `${agent.load}/${agent.capacity}`;
    cells.load.classList.toggle('wb-full', agent.load >= agent.capacity);
    buttons.ready.disabled = entry.pending || agent.state === 'ready';
    buttons.away.disabled = entry.pending;
    buttons.signed_out.disabled = entry.pending || agent.state === 'signed_out';
    entry.reason.disabled = entry.pending;
    tickAgent(entry);
  }

  function tickAgent(entry) {
    const seconds = secondsInState(entry.agent);
    entry.cells.time.dataset.seconds = seconds === null ? '' : String(Math.floor(seconds));
    entry.cells.time.textContent = seconds === null ? '—' : formatClock(seconds);
  }

  function renderAgents() {
    const seen = new Set();
    for (const agent of state.agents) {
      seen.add(agent.id);
      let entry = agentRows.get(agent.id);
      if (!entry) {
        entry = agentRow(agent);
        agentRows.set(agent.id, entry);
      }
      entry.agent = agent;
      dom.agentRows.append(entry.row); // keeps the API's order
      renderAgent(entry);
    }
    for (const [id, entry] of agentRows) {
      if (seen.has(id)) continue;
      entry.row.remove();
      agentRows.delete(id);
    }
    dom.agentEmpty.hidden = state.agents.length > 0;
    if (stateChart) stateChart.setOption(stateChartOption(state.agents));
  }

  async function force(entry, presence, reason = null) {
    entry.pending = true;
    renderAgent(entry);
    try {
      const result = await api('PUT', `/api/agents/${entry.agent.id}/presence`, { state: presence, reason });
      entry.agent = result.agent;
      toast.show(`已将 ${agentName(result.agent)} 置为${LABELS[presence]}`, 'ok');
      requestRefresh();
    } catch (err) {
      toast.report(err);
    } finally {
      entry.pending = false;
      renderAgent(entry);
    }
  }

  // ------------------------------------------------------------- refreshing

  let refreshing = false;
  let again = false; // something changed while a fetch was under way
  let lastFetchAt = 0;
  let refreshTimer = 0;
  let failing = false; // the last fetch failed: its error was shown once

  // Fetches the figures once REFRESH_GAP_MS has passed since the last fetch began; calls until then join it.
  function requestRefresh() {
    if (refreshTimer || http.leaving) return;
    const wait = Math.max(0, lastFetchAt + REFRESH_GAP_MS - Date.now());
    refreshTimer = setTimeout(() => {
      refreshTimer = 0;
      refresh();
    }, wait);
  }

  async function refresh() {
    if (refreshing) {
      again = true;
      return;
    }
    refreshing = true;
    lastFetchAt = Date.now();
    try {
      const [queues, agents, calls] = await Promise.all([
        api('GET', '/api/queues'), api('GET', '/api/agents'), state.voiceEnabled ? api('GET', '/api/calls/board') : null,
      ]);
      if (calls) renderCalls(calls);
      state.fetchedAt = Date.now();
      state.queues = queues.items;
      state.agents = agents.items;
      state.teamNames = new Map(state.queues.map((queue) => [queue.team_id, queue.name]));
      renderQueues();
      renderAgents();
      const now = new Date();
      dom.updated.dateTime = now.toISOString();
      dom.updated.textContent = `更新于 ${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`;
      failing = false;
    } catch (err) {
      if (err.status === 403) {
        deny(); // the role changed since the page opened
      } else if (!failing) {
        failing = true;
        toast.report(err);
      }
    } finally {
      refreshing = false;
      if (again) {
        again = false;
        requestRefresh();
      }
    }
  }

  // The phone line: calls waiting and talking, today's figures; a supervisor joins a talking call on their own
  // phone (the softphone in this page, or a desk phone) to listen, whisper to the agent, barge in or take the
  // call over (接管: the agent leaves), or ends it (强拆).
  function renderCalls(calls) {
    setTile(dom.callTiles.waiting, calls.waiting.length, String(calls.waiting.length), calls.waiting.length > 0);
    setTile(dom.callTiles.talking, calls.talking.length, String(calls.talking.length));
    setTile(dom.callTiles.answered, calls.answered_today, String(calls.answered_today));
    setTile(dom.callTiles.abandoned, calls.abandoned_today, String(calls.abandoned_today), calls.abandoned_today > 0);
    const level = calls.service_level === null ? null : Math.round(calls.service_level * 100);
    setTile(dom.callTiles.level, level, level === null ? '—' : `${level}%`, level !== null && level < SERVICE_LEVEL_TARGET);
    const rows = [...calls.waiting.map((call) => callRow(call, false)), ...calls.talking.map((call) => callRow(call, true))];
    dom.callRows.replaceChildren(...rows);
    dom.callEmpty.hidden = rows.length > 0;
  }

  function callRow(call, talking) {
    const act = (testid, label, path, body, className = 'btn btn-outline') => {
      const button = el('button', { class: className, type: 'button', 'data-testid': testid, text: label });
      button.addEventListener('click', async () => {
        button.disabled = true; // a double click rings the supervisor's phone (or ends the call) once
        try {
          await api('POST', `/api/calls/${call.call_id}/${path}`, body);
        } catch (err) {
          toast.report(err);
        } finally {
          button.disabled = false;
        }
      });
      return button;
    };
    const join = (mode, label) => act(`monitor-${mode}`, label, 'monitor', { mode });
    const release = () => act('call-release', '强拆', 'control', { action: 'release' }, 'btn btn-danger');
    return el('tr', { 'data-testid': 'call-row', 'data-call-id': call.call_id, 'data-state': talking ? 'talking' : 'waiting' }, [
      el('td', { text: call.caller || '未显示号码' }),
      el('td', { text: talking ? '通话中' : '排队中' }),
      el('td', { text: call.agent_name || '—' }),
      el('td', { text: new Date(call.since).toLocaleTimeString('zh-CN', { hour12: false }) }),
      el('td', {}, talking ? [join('listen', '监听'), join('whisper', '耳语'), join('barge', '强插'),
        join('takeover', '接管'), release()] : []),
    ]);
  }

  // The voice channel's state from /readyz; shown only when the hub has the voice channel enabled.
  async function checkVoice() {
    let checks;
    try {
      const response = await fetch('/readyz', { credentials: 'same-origin', headers: { Accept: 'application/json' } });
      checks = (await ChatKit.readJson(response) || {}).checks || {};
    } catch (err) {
      return; // the hub itself is out of reach: the connection indicator says so already
    }
    const enabled = Object.prototype.hasOwnProperty.call(checks, 'voice');
    dom.voice.hidden = !enabled;
    dom.calls.hidden = !enabled;
    if (enabled && !state.voiceEnabled) requestRefresh(); // the phone section's first figures
    state.voiceEnabled = enabled;
    if (!enabled) return;
    const line = checks.voice ? 'up' : 'down';
    dom.voice.dataset.state = line;
    dom.voice.textContent = VOICE_TEXT[line];
  }

  function tick() {
    tickQueues();
    for (const entry of agentRows.values()) tickAgent(entry);
  }

  const socket = StaffKit.staffSocket({
    http,
    statusNode: document.querySelector('[data-testid=connection]'),
    onOpen: requestRefresh, // catches up with what happened while disconnected
    onFrame: (frame) => {
      if (frame.type === 'presence' || frame.type === 'conversation') requestRefresh();
    },
  });

  function stop() {
    socket.stop();
    for (const timer of timers) clearInterval(timer);
    timers = [];
    clearTimeout(refreshTimer);
  }

  // ------------------------------------------------------------------- boot

  function deny() {
    http.leave();
    dom.connection.hidden = true;
    dom.wallboard.hidden = true;
    dom.denied.hidden = false;
    dom.denied.querySelector('[data-testid=denied-home]').href = StaffKit.homeFor(state.me.role);
  }

  async function boot() {
    dom.connection = document.querySelector('[data-testid=connection]');
    dom.wallboard = document.getElementById('wallboard');
    dom.denied = document.querySelector('[data-testid=wallboard-denied]');
    dom.queues = document.querySelector('[data-testid=queue-list]');
    dom.queueEmpty = document.querySelector('[data-testid=queue-empty]');
    dom.agentRows = document.getElementById('agent-rows');
    dom.agentEmpty = document.querySelector('[data-testid=agent-empty]');
    dom.updated = document.querySelector('[data-testid=updated-at]');
    dom.voice = document.querySelector('[data-testid=voice-state]');
    dom.calls = document.querySelector('[data-testid=call-section]');
    dom.callRows = document.getElementById('call-rows');
    dom.callEmpty = document.querySelector('[data-testid=call-empty]');
    dom.callTiles = Object.fromEntries(['waiting', 'talking', 'answered', 'abandoned', 'level'].map(
      (key) => {
        const root = document.querySelector(`[data-testid=call-tile-${key}]`);
        return [key, { root, value: root.querySelector('.wb-tile-value') }];
      }));
    toast = StaffKit.toaster(document.querySelector('[data-testid=toast]'));
    state.me = await StaffKit.signIn(http, toast);
    if (!state.me) return;
    if (!StaffKit.isOverseer(state.me.role)) {
      deny();
      return;
    }
    dom.wallboard.hidden = false;
    stateChart = chartOn(document.querySelector('[data-testid=agent-state-chart]'));
    await refresh();
    socket.start();
    checkVoice();
    timers = [setInterval(tick, TICK_MS), setInterval(requestRefresh, SAFETY_REFRESH_MS),
      setInterval(checkVoice, VOICE_POLL_MS)];
  }

  boot();
})();
