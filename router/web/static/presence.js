/*
 * Shuiwu Hub — the agent's presence in the staff header: sign in (就绪), away with a reason, busy,
 * after-call work with its countdown, sign out; open chats against capacity.
 *
 * REST: GET/PUT /api/presence; live changes arrive as `presence` frames on the staff WebSocket
 * (a supervisor forcing a state, after-call work ending, a silent inbox signed out).
 * The state names come from StaffKit (staff.js), which the page loads first.
 */
const PresenceBar = (() => {
  'use strict';

  const LABELS = StaffKit.PRESENCE_LABELS;
  const REFRESH_DELAY_MS = 300;

  function create({ root, api, toast, onChange }) {
    const picker = root.querySelector('[data-testid=presence-state]');
    const reason = root.querySelector('[data-testid=presence-reason]');
    const load = root.querySelector('[data-testid=presence-load]');
    const timer = root.querySelector('[data-testid=acw-timer]');
    let current = null;
    let countdown = null;
    let refreshTimer = null;
    for (const [state, label] of Object.entries(LABELS)) picker.append(new Option(label, state));
    for (const why of StaffKit.AWAY_REASONS) reason.append(new Option(why, why));

    function render() {
      if (!current) return;
      picker.value = current.state;
      root.dataset.state = current.state;
      reason.hidden = current.state !== 'away';
      if (current.state === 'away' && current.reason) {
        if (![...reason.options].some((option) => option.value === current.reason)) {
          reason.append(new Option(current.reason, current.reason));
        }
        reason.value = current.reason;
      }
      if (typeof current.load === 'number') load.textContent = `接待 ${current.load}/${current.capacity}`;
      root.title = current.reason ? `${LABELS[current.state]}：${current.reason}` : LABELS[current.state];
      renderCountdown();
    }

    function renderCountdown() {
      clearInterval(countdown);
      const until = current && current.state === 'acw' && current.acw_until ? Date.parse(current.acw_until) : NaN;
      timer.hidden = Number.isNaN(until);
      if (timer.hidden) return;
      const tick = () => {
        const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
        timer.textContent = `整理剩余 ${left} 秒`;
      };
      tick();
      countdown = setInterval(tick, 1000);
    }

    // Answers and live frames may arrive out of order (a read that left before the agent picked 就绪 comes back
    // after the change): a state older than the one shown (by the hub's ``since``) is not put back. An agent who
    // never had a state has no ``since``: that is older than any.
    function olderThanShown(presence) {
      if (!current || !current.since) return false;
      return !presence.since || Date.parse(presence.since) < Date.parse(current.since);
    }

    function apply(presence) {
      if (olderThanShown(presence)) return;
      current = { ...(current || {}), ...presence };
      render();
      if (onChange) onChange(current);
    }

    async function load_() {
      try {
        apply((await api('GET', '/api/presence')).agent);
      } catch (err) {
        toast.report(err);
      }
    }

    function refresh() {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(load_, REFRESH_DELAY_MS);
    }

    async function choose() {
      const state = picker.value;
      try {
        apply((await api('PUT', '/api/presence', { state, reason: state === 'away' ? reason.value : null })).agent);
      } catch (err) {
        toast.report(err);
        render(); // back to what the hub says
      }
    }

    picker.addEventListener('change', choose);
    reason.addEventListener('change', choose);
    return { load: load_, apply, refresh, get state() { return current && current.state; } };
  }

  return { create };
})();
