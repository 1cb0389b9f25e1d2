/*
 * Shuiwu Hub — the agent's desk tools around the reply box: canned replies picked by their shortcut
 * ("/" + shortcut, or the 常用语 button), an emoji palette, and the dialogs to close a conversation with a
 * consultation type and to transfer it to a colleague or a team with a note.
 *
 * REST: GET /api/canned-replies, GET /api/dispositions, GET /api/transfer-targets (docs/api-contract.md).
 * Uses ChatKit.el (chatkit.js), which the page loads first.
 */
const DeskKit = (() => {
  'use strict';

  const { el } = ChatKit;
  const CANNED_TTL_MS = 60000;
  const MAX_SUGGESTIONS = 8;
  const EMOJI = ['😊', '🙂', '😄', '👍', '🙏', '👌', '💪', '🎉', '❤️', '🌹', '☕', '📞',
    '💧', '🚰', '🔧', '🏠', '📍', '⏰', '✅', '❗', '❓', '😔', '😅', '👋'];

  // Insert `text` into a textarea at its caret (replacing `[from, to)` when given), keeping undo and focus.
  function insertAt(input, text, from = input.selectionStart, to = input.selectionEnd) {
    input.focus();
    input.setRangeText(text, from, to, 'end');
    input.dispatchEvent(new Event('input', { bubbles: true }));
  }

  // The "/shortcut" being typed right before the caret, at the start of the box or after a space or line break.
  function slashToken(input) {
    const before = input.value.slice(0, input.selectionStart);
    const match = /(^|\s)\/([^\s/]*)$/.exec(before);
    return match ? { query: match[2], from: before.length - match[2].length - 1 } : null;
  }

  function cannedPicker({ input, list, toggle, api, toast }) {
    let replies = null;
    let loadedAt = 0;
    let shown = [];
    let active = 0;
    let token = null; // the "/query" being replaced, or null when opened by the button

    async function load() {
      if (replies && Date.now() - loadedAt < CANNED_TTL_MS) return replies;
      const data = await api('GET', '/api/canned-replies');
      replies = data && Array.isArray(data.items) ? data.items : [];
      loadedAt = Date.now();
      return replies;
    }

    function matches(query) {
      const q = query.toLowerCase();
      const byShortcut = replies.filter((r) => r.shortcut.toLowerCase().startsWith(q));
      const byText = replies.filter((r) => !byShortcut.includes(r) && q && r.text.toLowerCase().includes(q));
      return [...byShortcut, ...byText].slice(0, MAX_SUGGESTIONS);
    }

    function render() {
      list.replaceChildren(...shown.map((reply, index) => {
        const item = el('li', {
          class: index === active ? 'canned-item active' : 'canned-item',
          role: 'option',
          'aria-selected': String(index === active),
          'data-testid': 'canned-item',
          'data-shortcut': reply.shortcut,
        }, [
          el('span', { class: 'canned-shortcut', text: `/${reply.shortcut}` }),
          el('span', { class: 'canned-text', text: reply.text }),
        ]);
        item.addEventListener('mousedown', (event) => {
          event.preventDefault(); // keep the focus in the reply box
          choose(index);
        });
        return item;
      }));
      list.hidden = shown.length === 0;
      input.setAttribute('aria-expanded', String(!list.hidden));
    }

    function close() {
      shown = [];
      token = null;
      render();
    }

    async function open(query, at) {
      try {
        await load();
      } catch (err) {
        toast.report(err);
        return;
      }
      token = at;
      shown = matches(query);
      active = 0;
      render();
    }

    function choose(index) {
      const reply = shown[index];
      if (!reply) return;
      if (token) insertAt(input, reply.text, token.from, input.selectionStart);
      else insertAt(input, reply.text);
      close();
    }

    function onInput() {
      const found = slashToken(input);
      if (found) open(found.query, found);
      else if (token) close();
    }

    // Runs before the reply box's own Enter-to-send handler (capture phase).
    function onKeydown(event) {
      if (list.hidden || event.isComposing) return;
      const keys = {
        ArrowDown: () => { active = (active + 1) % shown.length; render(); },
        ArrowUp: () => { active = (active - 1 + shown.length) % shown.length; render(); },
        Enter: () => choose(active),
        Tab: () => choose(active),
        Escape: close,
      };
      const action = keys[event.key];
      if (!action || (event.key === 'Enter' && event.shiftKey)) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      action();
    }

    input.addEventListener('input', onInput);
    input.addEventListener('keydown', onKeydown, true);
    input.addEventListener('blur', () => setTimeout(close, 150));
    toggle.addEventListener('click', () => {
      if (!list.hidden) close();
      else if (!input.disabled) open('', null);
    });
    return { close, forget: () => { replies = null; } };
  }

  function emojiPalette({ toggle, panel, input }) {
    panel.replaceChildren(...EMOJI.map((emoji) => {
      const button = el('button', { type: 'button', class: 'emoji', 'data-testid': 'emoji-item', text: emoji });
      button.addEventListener('click', () => {
        insertAt(input, emoji);
        panel.hidden = true;
      });
      return button;
    }));
    toggle.addEventListener('click', () => { panel.hidden = !panel.hidden || input.disabled; });
    panel.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        panel.hidden = true;
        input.focus();
      }
    });
    return { close: () => { panel.hidden = true; } };
  }

  // Buttons marked data-dismiss close their dialog (the page's CSP allows no inline handlers).
  document.addEventListener('click', (event) => {
    const button = event.target.closest && event.target.closest('dialog [data-dismiss]');
    if (button) button.closest('dialog').close();
  });

  // A modal <dialog>; resolves with what `collect` returns on confirm, or null when cancelled.
  function ask(dialog, collect) {
    const form = dialog.querySelector('form');
    return new Promise((resolve) => {
      function finish(value) {
        form.removeEventListener('submit', onSubmit);
        dialog.removeEventListener('close', onClose);
        if (dialog.open) dialog.close();
        resolve(value);
      }
      function onSubmit(event) {
        event.preventDefault();
        const value = collect();
        if (value !== undefined) finish(value);
      }
      function onClose() {
        finish(null);
      }
      form.addEventListener('submit', onSubmit);
      dialog.addEventListener('close', onClose);
      dialog.showModal();
    });
  }

  function closeDialog({ dialog, api }) {
    const select = dialog.querySelector('[data-testid=disposition-select]');
    const error = dialog.querySelector('.field-error');
    let items = null;

    async function load() {
      if (!items) {
        const data = await api('GET', '/api/dispositions');
        items = data && Array.isArray(data.items) ? data.items : [];
        select.replaceChildren(el('option', { value: '', text: '请选择咨询类型' }),
          ...items.map((d) => el('option', { value: d.code, text: d.label })));
      }
      return items;
    }

    async function choose() {
      await load();
      select.value = '';
      error.hidden = true;
      return ask(dialog, () => {
        if (select.value) return select.value;
        error.textContent = '请选择咨询类型';
        error.hidden = false;
        select.focus();
        return undefined;
      });
    }

    function label(code) {
      const found = (items || []).find((d) => d.code === code);
      return found ? found.label : code;
    }
    return { load, choose, label };
  }

  function transferDialog({ dialog, api }) {
    const kind = dialog.querySelector('[data-testid=transfer-kind]');
    const agentSelect = dialog.querySelector('[data-testid=transfer-agent]');
    const teamSelect = dialog.querySelector('[data-testid=transfer-team]');
    const note = dialog.querySelector('[data-testid=transfer-note]');
    const error = dialog.querySelector('.field-error');
    const STATE_TEXT = StaffKit.PRESENCE_LABELS;

    function showKind() {
      agentSelect.closest('.field').hidden = kind.value !== 'agent';
      teamSelect.closest('.field').hidden = kind.value !== 'team';
    }
    kind.addEventListener('change', showKind);

    async function choose(conversation, myId) {
      const targets = await api('GET', '/api/transfer-targets');
      const agents = (targets.agents || []).filter((a) => String(a.id) !== String(myId));
      agentSelect.replaceChildren(el('option', { value: '', text: '请选择坐席' }), ...agents.map((a) => el('option', {
        value: a.id, text: `${a.display_name}（${STATE_TEXT[a.state] || a.state} · ${a.load}/${a.capacity}）`,
      })));
      teamSelect.replaceChildren(el('option', { value: '', text: '请选择技能组' }), ...(targets.teams || [])
        .filter((t) => !(conversation.team && String(conversation.team.id) === String(t.id) && !conversation.assignee))
        .map((t) => el('option', { value: t.id, text: `${t.name}（排队 ${t.waiting}）` })));
      kind.value = 'agent';
      note.value = '';
      error.hidden = true;
      showKind();
      return ask(dialog, () => {
        const select = kind.value === 'agent' ? agentSelect : teamSelect;
        if (!select.value) {
          error.textContent = kind.value === 'agent' ? '请选择坐席' : '请选择技能组';
          error.hidden = false;
          select.focus();
          return undefined;
        }
        const target = { note: note.value.trim() || null };
        target[kind.value === 'agent' ? 'agent_id' : 'team_id'] = Number(select.value);
        return target;
      });
    }
    return { choose };
  }

  return { cannedPicker, emojiPalette, closeDialog, transferDialog };
})();
