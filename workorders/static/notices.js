// The public notice board (/notices): the notices for an address, from GET /api/notices.
(() => {
  'use strict';
  const KINDS = { planned_outage: '计划停水', repair: '抢修', pressure_change: '水压调整',
                  water_quality: '水质', other: '公告' };
  const list = document.getElementById('list');
  const districtLine = document.getElementById('district');
  const fmt = (iso) => new Date(iso).toLocaleString('zh-CN', { hour12: false });

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  async function load() {
    const params = new URLSearchParams({ include: document.getElementById('include').value });
    const address = document.getElementById('address').value.trim();
    if (address) params.set('address', address);
    const response = await fetch(`/api/notices?${params}`);
    const body = await response.json();
    list.replaceChildren();
    if (!response.ok) {
      list.append(el('p', 'empty', (body.error && body.error.message) || '查询失败'));
      return;
    }
    districtLine.textContent = address ? (body.district ? '' : '未能识别该地址所在区域,显示全部公告') : '';
    if (!body.items.length) list.append(el('p', 'empty', '暂无相关公告'));
    for (const notice of body.items) {
      const card = el('article', `notice${notice.active ? ' active' : ''}`);
      card.dataset.testid = 'notice';
      card.append(el('h2', '', notice.title));
      const meta = el('div', 'meta');
      meta.append(el('span', 'tag', KINDS[notice.kind] || '公告'),
                  `${notice.district_names.join('、')} · ${fmt(notice.starts_at)} 至 ${fmt(notice.ends_at)}`);
      card.append(meta, el('p', '', notice.body));
      list.append(card);
    }
  }

  document.getElementById('filter').addEventListener('submit', (event) => {
    event.preventDefault();
    load();
  });
  load();
})();
