/*
 * Shuiwu Hub — the callback list (待回电) on the call records page: residents who asked to be called back, the
 * earliest due first (GET /api/callbacks). 回电 takes a request (POST /api/callbacks/{id}/take: the full number is
 * shown to that agent alone); then 已接通, 未接通 (back on the list until the last attempt) or 取消
 * (POST /api/callbacks/{id}/finish). Refreshed every 15 seconds. `calls.js` starts it with the signed-in user.
 */
const CallbackDesk = (() => {
  'use strict';

  const { el } = ChatKit;
  const REFRESH_MS = 15000;
  const STATE_LABELS = { open: '待回电', taken: '回电中' };
  const OUTCOMES = [['reached', '已接通'], ['no_answer', '未接通'], ['cancelled', '取消']];

  function start({ http, toast, me }) {
    const rows = document.getElementById('callback-rows');
    const empty = document.querySelector('[data-testid=callback-empty]');
    const count = document.querySelector('[data-testid=callback-count]');
    const dial = document.querySelector('[data-testid=callback-dial]');
    const overseer = StaffKit.isOverseer(me.role);

    function when(iso) {
      return iso ? `${new Date(iso).toLocaleString('zh-CN', { hour12: false })} 以后` : '尽快';
    }

    function button(label, testid, handler, danger = false) {
      return StaffKit.actionButton(label, testid, handler, { toast, after: load, danger });
    }

    function showDial(taken) {
      dial.querySelector('[data-testid=callback-number]').textContent = taken.full_phone;
      dial.querySelector('[data-testid=callback-who]').textContent = taken.contact_name || '居民';
      dial.hidden = false;
    }

    function actions(item) {
      const mine = item.state === 'taken' && item.taken_by_id === me.id;
      if (item.state === 'open') {
        return [button('回电', 'callback-take', async () => showDial(
          await http.api('POST', `/api/callbacks/${item.id}/take`)))];
      }
      if (!mine && !overseer) return [el('span', { text: `${item.taken_by || '其他坐席'} 回电中` })];
      return OUTCOMES.map(([outcome, label]) => button(label, `callback-${outcome.replace('_', '-')}`, async () => {
        await http.api('POST', `/api/callbacks/${item.id}/finish`, { outcome });
        dial.hidden = true;
        toast.show(`已记录：${label}`, 'ok');
      }, outcome === 'cancelled'));
    }

    function row(item) {
      return el('tr', { 'data-testid': 'callback-row', 'data-callback-id': String(item.id), 'data-state': item.state }, [
        el('td', { text: item.contact_name || '—' }),
        el('td', { 'data-testid': 'callback-phone', text: item.phone }),
        el('td', { text: when(item.preferred_after) }),
        el('td', { text: item.note || '' }),
        el('td', { 'data-testid': 'callback-attempts', text: String(item.attempts) }),
        el('td', { 'data-testid': 'callback-state', text: STATE_LABELS[item.state] || item.state }),
        el('td', { class: 'admin-actions' }, actions(item)),
      ]);
    }

    async function load() {
      try {
        const { items } = await http.api('GET', '/api/callbacks');
        rows.replaceChildren(...items.map(row));
        empty.hidden = items.length > 0;
        count.textContent = items.length ? `（${items.length}）` : '';
      } catch (err) {
        toast.report(err);
      }
    }

    load();
    window.setInterval(load, REFRESH_MS);
  }

  return { start };
})();
