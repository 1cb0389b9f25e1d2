/*
 * Shuiwu Hub — the voice menu for admins (/app/ivr): the current menu as a tree (each node with its prompts and
 * keys), its YAML to edit, checked and saved by the server (every problem listed with its node; nothing saved
 * while there is one), and the saved versions, any of which can be loaded back into the editor.
 * Uses `ChatKit` and `StaffKit` (chatkit.js, staff.js), which the page loads first.
 */
(() => {
  'use strict';

  const { el } = ChatKit;
  const http = StaffKit.client({ loginUrl: '/app/login?next=/app/ivr' });
  const KIND_LABELS = {
    menu: '菜单', bill: '查询水费', work_order: '工单进度', outage: '停水公告', application: '业务进度',
    voicemail: '留言', agent: '转人工', language: '切换语言', hangup: '挂机',
  };
  const LANGUAGE_LABELS = { zh: '中文', en: 'English' };
  let toast = null;
  let saved = ''; // the YAML of the current version, for "discard changes"
  const dom = {};

  function localTime(iso) {
    return new Date(iso).toLocaleString('zh-CN', { hour12: false });
  }

  function prompts(node) {
    const lines = [];
    for (const field of ['prompt', 'closed_prompt', 'confirm', 'thanks']) {
      const texts = node[field];
      if (!texts) continue;
      const label = { prompt: '', closed_prompt: '非工作时间：', confirm: '复述：', thanks: '留言后：' }[field];
      for (const [language, text] of Object.entries(texts)) {
        lines.push(el('p', { class: 'ivr-prompt', lang: language, 'data-testid': 'ivr-prompt',
          text: `${label}${text}` }));
      }
    }
    return lines;
  }

  function details(node) {
    const parts = [];
    if (node.kind === 'menu') parts.push(`等待 ${node.timeout} 秒，错误或超时 ${node.retries} 次后转 ${node.fallback}`);
    if (node.digits) {
      const { min_length: min, max_length: max } = node.digits;
      parts.push(`${min === max ? min : `${min}–${max}`} 位数字，以 # 结束`);
    }
    if (node.kind === 'voicemail') parts.push(`工单类别 ${node.category}，最长 ${node.max_seconds} 秒`);
    if (node.kind === 'agent') parts.push(`技能组 ${node.skill}`);
    if (node.kind === 'language') parts.push(`切换为 ${LANGUAGE_LABELS[node.language] || node.language}`);
    if (node.fallback && node.kind !== 'menu') parts.push(`失败后转 ${node.fallback}`);
    return parts.length ? [el('span', { class: 'ivr-ref', text: parts.join('；') })] : [];
  }

  // One node and, below it, where its keys lead; a node shown once already is only named the next times.
  function nodeItem(tree, name, key, shown) {
    const node = tree.nodes[name];
    const head = el('div', { class: 'ivr-node-head' }, [
      key ? el('span', { class: 'ivr-key', 'data-testid': 'ivr-key', text: key }) : null,
      el('span', { class: 'ivr-name', text: name }),
      el('span', { class: 'ivr-kind', text: KIND_LABELS[node.kind] || node.kind }),
    ]);
    const item = el('li', { 'data-testid': 'ivr-node', 'data-node': name, 'data-key': key || '' }, [head]);
    if (shown.has(name)) {
      head.append(el('span', { class: 'ivr-ref', text: '（见上文）' }));
      return item;
    }
    shown.add(name);
    item.append(...prompts(node), ...details(node));
    const children = [];
    if (node.kind === 'menu') {
      for (const [childKey, target] of Object.entries(node.keys).sort()) {
        children.push(nodeItem(tree, target, childKey, shown));
      }
    }
    if (node.then) children.push(nodeItem(tree, node.then, '→', shown));
    if (children.length) item.append(el('ul', {}, children));
    return item;
  }

  function renderTree(tree) {
    const shown = new Set();
    const roots = [nodeItem(tree, tree.start, '', shown)];
    if (tree.operator) roots.push(nodeItem(tree, tree.operator, '0', shown));
    if (tree.after_hours) roots.push(nodeItem(tree, tree.after_hours, '非工作时间', shown));
    dom.tree.replaceChildren(el('ul', {}, roots));
  }

  function showProblems(problems) {
    dom.problems.replaceChildren(...problems.map((problem) => el('li', {
      'data-testid': 'ivr-problem', 'data-node': problem.node || '',
    }, [problem.node ? el('span', { class: 'ivr-problem-node', text: problem.node }) : null, problem.message])));
    dom.problems.hidden = problems.length === 0;
  }

  function status(text) {
    dom.status.textContent = text;
  }

  // Sends the editor's YAML; a refused menu lists its problems and keeps the text for fixing.
  async function submit(method, path, done) {
    try {
      const result = await http.api(method, path, { yaml: dom.yaml.value });
      showProblems([]);
      renderTree(result.tree);
      status(done(result));
      return result;
    } catch (err) {
      if (err.code === 'invalid_menu' && err.details) {
        showProblems(err.details.problems);
        status(`有 ${err.details.problems.length} 处问题，未保存`);
      } else {
        toast.report(err);
      }
      return null;
    }
  }

  function showCurrent(menu) {
    saved = menu.yaml;
    dom.yaml.value = menu.yaml;
    dom.current.textContent = menu.version
      ? `当前版本 ${menu.version}（${menu.saved_by}，${localTime(menu.saved_at)}）` : '当前为内置默认菜单';
    renderTree(menu.tree);
  }

  function versionRow(version) {
    const load = el('button', { class: 'btn btn-small btn-outline', type: 'button', 'data-testid': 'load-version',
      text: '载入编辑器' });
    load.addEventListener('click', async () => {
      try {
        const full = await http.api('GET', `/api/ivr/menu/versions/${version.id}`);
        dom.yaml.value = full.yaml;
        showProblems([]);
        status(`已载入版本 ${version.id}，保存后即成为当前版本`);
      } catch (err) {
        toast.report(err);
      }
    });
    return el('tr', { 'data-testid': 'version-row', 'data-version': String(version.id) }, [
      el('td', { text: String(version.id) }),
      el('td', { text: version.saved_by === 'system' ? '系统（默认菜单）' : version.saved_by }),
      el('td', { text: localTime(version.saved_at) }),
      el('td', { 'data-testid': 'version-state', text: version.current ? '当前' : '—' }),
      el('td', {}, [load]),
    ]);
  }

  function voiceOf(prompt) {
    const { recording } = prompt;
    if (!recording) return '语音合成';
    return `录音 ${(recording.duration_ms / 1000).toFixed(1)} 秒（${recording.uploaded_by}，${localTime(recording.uploaded_at)}）`;
  }

  function promptRow(prompt) {
    const path = `/api/ivr/prompts/${prompt.key}`;
    const player = el('audio', { controls: '', preload: 'none', 'data-testid': 'prompt-audio' });
    player.hidden = true;
    const listen = el('button', { class: 'btn btn-small btn-outline', type: 'button', 'data-testid': 'prompt-listen',
      text: '试听' });
    listen.addEventListener('click', () => {
      player.src = `${path}/audio?t=${Date.now()}`; // what callers hear now, never a cached older voice
      player.hidden = false;
      player.play().catch(() => {}); // a browser may refuse to start sound by itself; the controls remain
    });
    const file = el('input', { type: 'file', accept: '.wav,audio/wav,audio/x-wav', hidden: '',
      'data-testid': 'prompt-file', 'aria-label': '选择录音文件' });
    const choose = el('button', { class: 'btn btn-small', type: 'button', 'data-testid': 'prompt-upload',
      text: prompt.recording ? '更换录音' : '上传录音' });
    choose.addEventListener('click', () => file.click());
    file.addEventListener('change', async () => {
      if (!file.files.length) return;
      choose.disabled = true;
      try {
        const updated = await http.upload(`${path}/recording`, file.files[0], 'PUT');
        toast.show('录音已启用，下一通来电起生效', 'ok');
        row.replaceWith(promptRow(updated));
      } catch (err) {
        toast.report(err);
        choose.disabled = false;
        file.value = '';
      }
    });
    const actions = [listen, choose, file];
    if (prompt.recording) {
      const synthesise = el('button', { class: 'btn btn-small btn-outline', type: 'button',
        'data-testid': 'prompt-unrecord', text: '改回语音合成' });
      synthesise.addEventListener('click', async () => {
        synthesise.disabled = true;
        try {
          row.replaceWith(promptRow(await http.api('DELETE', `${path}/recording`)));
          toast.show('已改回语音合成', 'ok');
        } catch (err) {
          toast.report(err);
          synthesise.disabled = false;
        }
      });
      actions.push(synthesise);
    }
    const row = el('tr', { 'data-testid': 'prompt-row', 'data-key': prompt.key, 'data-language': prompt.language }, [
      el('td', { text: prompt.places.join('、') }),
      el('td', { text: LANGUAGE_LABELS[prompt.language] || prompt.language }),
      el('td', { class: 'ivr-prompt-text', lang: prompt.language, 'data-testid': 'prompt-text', text: prompt.text }),
      el('td', { 'data-testid': 'prompt-voice', text: voiceOf(prompt) }),
      el('td', {}, [el('div', { class: 'ivr-prompt-actions' }, actions), player]),
    ]);
    return row;
  }

  async function loadPrompts() {
    const { items } = await http.api('GET', '/api/ivr/prompts');
    dom.prompts.replaceChildren(...items.map(promptRow));
  }

  async function loadVersions() {
    const { items } = await http.api('GET', '/api/ivr/menu/versions');
    dom.versions.replaceChildren(...items.map(versionRow));
  }

  function wire() {
    const button = (testid, handler) => {
      const node = document.querySelector(`[data-testid=${testid}]`);
      node.addEventListener('click', async () => {
        node.disabled = true;
        await handler();
        node.disabled = false;
      });
    };
    button('ivr-check', () => submit('POST', '/api/ivr/menu/check', () => '检查通过，尚未保存'));
    button('ivr-save', async () => {
      const result = await submit('PUT', '/api/ivr/menu', (menu) => `已保存为版本 ${menu.version}，下一通来电起生效`);
      if (!result) return;
      showCurrent(result);
      toast.show(`语音菜单已保存（版本 ${result.version}）`, 'ok');
      await Promise.all([loadVersions(), loadPrompts()]).catch((err) => toast.report(err));
    });
    button('ivr-reset', async () => {
      dom.yaml.value = saved;
      showProblems([]);
      status('已恢复为当前版本');
    });
  }

  async function boot() {
    toast = StaffKit.toaster(document.querySelector('[data-testid=toast]'));
    Object.assign(dom, {
      tree: document.querySelector('[data-testid=ivr-tree]'),
      yaml: document.getElementById('ivr-yaml'),
      problems: document.querySelector('[data-testid=ivr-problems]'),
      status: document.querySelector('[data-testid=ivr-status]'),
      current: document.querySelector('[data-testid=ivr-current]'),
      versions: document.getElementById('version-rows'),
      prompts: document.getElementById('prompt-rows'),
    });
    const me = await StaffKit.signIn(http, toast);
    if (!me) return;
    if (me.role !== 'admin') {
      document.querySelector('[data-testid=ivr-denied]').hidden = false;
      return;
    }
    wire();
    try {
      showCurrent(await http.api('GET', '/api/ivr/menu'));
      document.getElementById('ivr').hidden = false; // with the menu in the editor: nothing typed is overwritten
      await Promise.all([loadVersions(), loadPrompts()]);
    } catch (err) {
      toast.report(err);
    }
  }

  boot();
})();
