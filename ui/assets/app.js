// spool dashboard: plain JavaScript, no build step, no dependency. Every page reads and
// changes the server through its public HTTP API (/v1/...), as any client does. Pages
// refresh by polling; a refresh updates the data in place and keeps the operator's filter,
// sort, page, tab, open dialog and focus.
'use strict';

(() => {
  const PREFIX = document.body.dataset.prefix || '/ui/';
  // How often a page refreshes; a tab may set another (session storage spool.poll, ms).
  const POLL_MS = Math.max(500, parseInt(sessionStorage.getItem('spool.poll'), 10) || 5000);
  const HOUR = 3600e3;
  const PAYLOAD_SHOWN = 64 * 1024; // characters of a payload shown before "download"
  const QUEUE_ROWS = 50; // queues per page of the overview table
  const main = document.getElementById('main');

  // ---------------------------------------------------------------- DOM helpers

  // h builds an element: h('a', {href: '/x', class: 'y', onclick: fn}, 'text', child...).
  // Text is always set as text, never parsed as HTML.
  function h(tag, attrs, ...children) {
    const el = tag === 'svg' || svgTags.has(tag)
      ? document.createElementNS('http://www.w3.org/2000/svg', tag)
      : document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k === 'style') el.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike a style attribute
      else if (k === 'value' && 'value' in el && !(el instanceof SVGElement)) el.value = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    append(el, children);
    return el;
  }
  const svgTags = new Set(['path', 'line', 'text', 'g', 'rect', 'circle', 'title']);
  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c === undefined || c === null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
  }

  // swap replaces el's children, keeping the focus on the element with the same data-key
  // (a refresh must not throw the keyboard user out of a table).
  function swap(el, ...children) {
    const active = document.activeElement;
    const key = active && el.contains(active) ? active.dataset.key : undefined;
    el.replaceChildren();
    append(el, children);
    if (key) {
      const again = el.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
  }

  function link(path, ...children) {
    return h('a', { href: PREFIX + path, 'data-link': '', 'data-key': 'link-' + path }, ...children);
  }
  const enc = encodeURIComponent;
  const queuePath = (name) => 'queues/' + enc(name);
  const jobPath = (id) => 'jobs/' + enc(id);

  // ---------------------------------------------------------------- API

  const tokenKey = 'spool.token';
  class APIError extends Error {
    constructor(status, body) {
      const e = (body && body.error) || {};
      super(e.message || `HTTP ${status}`);
      this.status = status;
      this.code = e.code || '';
      this.field = e.field || '';
    }
  }
  async function call(method, path, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const token = sessionStorage.getItem(tokenKey);
    if (token) headers.Authorization = 'Bearer ' + token;
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    } catch (err) {
      throw new APIError(0, { error: { code: 'network', message: 'cannot reach the server: ' + err.message } });
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = null; }
    }
    if (!res.ok) {
      const err = new APIError(res.status, data);
      perms.observe(method, err);
      throw err;
    }
    return data;
  }
  const get = (p) => call('GET', p);
  const post = (p, b) => call('POST', p, b === undefined ? {} : b);

  // perms hides the buttons a token cannot use. The changes the dashboard offers (pause,
  // kick, purge, delete, settings, schedules) are "admin" operations, allowed per queue.
  // Until the server describes a token's rights, the dashboard learns them: a 401 asks for
  // a token; a 403 on a change hides the admin buttons (data-perm="admin") of that scope
  // (the page's queue, or the schedules) for the rest of the tab's session. Once the API
  // can describe a token, loading it into perms.denied is the one change needed here.
  const perms = {
    denied: new Set(JSON.parse(sessionStorage.getItem('spool.denied') || '[]')),
    observe(method, err) {
      if (err.status === 401) {
        showBanner('The server wants an API token: set one with the Token button.');
      } else if (err.status === 403 && method !== 'GET') {
        this.denied.add(main.dataset.scope || '*');
        sessionStorage.setItem('spool.denied', JSON.stringify([...this.denied]));
        applyPerms(document);
      }
    },
    reset() { this.denied.clear(); sessionStorage.removeItem('spool.denied'); },
    allowed(scope) { return !this.denied.has('*') && !this.denied.has(scope); },
  };
  function applyPerms(root) {
    const ok = perms.allowed(main.dataset.scope || '*');
    for (const el of root.querySelectorAll('[data-perm="admin"]')) el.hidden = !ok;
  }

  // The queue listing is read LIST_PAGE queues a request, the most the API gives (a tab
  // may ask for fewer, session storage spool.listPage: the tests do, to page with few
  // queues). No page reads the whole listing: while it fits in one page the overview holds
  // every queue; beyond, the server pages the overview's table.
  const LIST_PAGE = Math.min(1000, Math.max(1, parseInt(sessionStorage.getItem('spool.listPage'), 10) || 1000));
  // queuesPage reads one page of the listing: opts are limit, after, prefix and paused.
  function queuesPage({ limit, after, prefix, paused }) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (after) q.set('after', after);
    if (prefix) q.set('prefix', prefix);
    if (paused) q.set('paused', 'true');
    return get('/v1/queues?' + q);
  }

  // ---------------------------------------------------------------- formatting

  const nf = new Intl.NumberFormat();
  const fmtNum = (n) => (n === undefined || n === null ? '–' : nf.format(n));
  function fmtRate(r) {
    if (!r) return '0';
    if (r < 10) return r.toFixed(2).replace(/\.?0+$/, '');
    return nf.format(Math.round(r));
  }
  // parseDur reads a Go duration ("1h2m3.5s", "300ms") as milliseconds.
  function parseDur(s) {
    if (!s) return 0;
    const units = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, ms: 1, s: 1e3, m: 60e3, h: 3600e3 };
    let ms = 0;
    for (const m of String(s).matchAll(/([0-9.]+)(ns|us|µs|ms|s|m|h)/g)) ms += parseFloat(m[1]) * units[m[2]];
    return ms;
  }
  // fmtSpan writes a span of milliseconds in two units at most: "3h 12m", "45s", "120ms".
  function fmtSpan(ms) {
    ms = Math.abs(ms);
    if (ms < 1000) return Math.round(ms) + 'ms';
    const s = Math.floor(ms / 1000);
    const parts = [[86400, 'd'], [3600, 'h'], [60, 'm'], [1, 's']];
    const out = [];
    let rest = s;
    for (const [n, u] of parts) {
      if (rest >= n || (out.length && out.length < 2)) {
        const v = Math.floor(rest / n);
        rest -= v * n;
        if (v || out.length) out.push(v + u);
      }
      if (out.length === 2) break;
    }
    return out.filter((p) => !/^0/.test(p) || out.length === 1).join(' ') || '0s';
  }
  function relTime(iso) {
    if (!iso) return '';
    const d = Date.parse(iso) - Date.now();
    if (Math.abs(d) < 1000) return 'now';
    return d > 0 ? 'in ' + fmtSpan(d) : fmtSpan(d) + ' ago';
  }
  // fmtTime writes a time in the browser's zone, or in zone when given.
  function fmtTime(iso, zone) {
    if (!iso) return '–';
    const opts = { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false };
    if (zone) { opts.timeZone = zone; opts.timeZoneName = 'short'; }
    try {
      return new Intl.DateTimeFormat(undefined, opts).format(new Date(iso));
    } catch {
      return iso;
    }
  }
  function timeCell(iso, zone) {
    if (!iso) return h('span', { class: 'zero' }, '–');
    return h('time', { datetime: iso, title: fmtTime(iso, zone) }, relTime(iso));
  }
  function num(n, attrs) {
    return h('td', Object.assign({ class: 'num' + (n ? '' : ' zero') }, attrs || {}), fmtNum(n));
  }
  function badge(state, text) {
    return h('span', { class: 'badge b-' + state }, text || state);
  }
  const stateColors = { ready: 'var(--ready)', reserved: 'var(--reserved)', delayed: 'var(--delayed)', buried: 'var(--buried)' };

  // ---------------------------------------------------------------- notices

  const banner = document.getElementById('banner');
  function showBanner(msg) { banner.textContent = msg; banner.hidden = false; }
  function clearBanner() { banner.hidden = true; }
  function toast(msg, bad) {
    const t = h('div', { class: 'toast' + (bad ? ' bad' : ''), role: bad ? 'alert' : 'status' }, msg);
    document.getElementById('toasts').append(t);
    setTimeout(() => t.remove(), bad ? 8000 : 4000);
  }

  // act runs an action of a button: disables it meanwhile, reports the outcome, refreshes.
  async function act(btn, fn, done) {
    if (btn) btn.disabled = true;
    try {
      const msg = await fn();
      if (msg) toast(msg);
      if (current && current.refresh) await current.refresh();
      if (done) done();
    } catch (err) {
      toast(err.message, true);
    } finally {
      if (btn && btn.isConnected) btn.disabled = false;
    }
  }

  // confirmDialog asks before a change; typed, when set, must be typed to confirm.
  function confirmDialog({ title, body, confirm, danger, typed }) {
    return new Promise((resolve) => {
      const input = typed ? h('input', { id: 'confirm-typed', autocomplete: 'off', spellcheck: 'false' }) : null;
      const ok = h('button', { type: 'submit', class: 'btn ' + (danger ? 'btn-danger-solid' : 'btn-primary'), value: 'ok', disabled: !!typed }, confirm || 'Confirm');
      const dlg = h('dialog', { 'aria-labelledby': 'confirm-title' },
        h('form', { method: 'dialog', class: 'dialog-form' },
          h('h2', { id: 'confirm-title' }, title),
          h('p', {}, body),
          typed && h('div', { class: 'field' },
            h('label', { for: 'confirm-typed' }, 'Type ', h('code', {}, typed), ' to confirm'),
            input),
          h('div', { class: 'dialog-actions' },
            h('button', { type: 'submit', class: 'btn', value: 'cancel' }, 'Cancel'), ok)));
      if (input) input.addEventListener('input', () => { ok.disabled = input.value !== typed; });
      dlg.addEventListener('close', () => { resolve(dlg.returnValue === 'ok'); dlg.remove(); });
      document.body.append(dlg);
      dlg.showModal();
      (input || ok).focus();
    });
  }

  // ---------------------------------------------------------------- samples and charts

  // Samples are taken by the browser at each refresh: the API has counts and totals now,
  // not their history. A tab keeps up to an hour of them (session storage, so a reload
  // keeps them too).
  const samples = {
    load(key) {
      try { return JSON.parse(sessionStorage.getItem('spool.samples.' + key)) || []; } catch { return []; }
    },
    add(key, point, minGap) {
      const list = this.load(key);
      const now = point[0];
      if (list.length && now - list[list.length - 1][0] < (minGap || 0)) return list;
      list.push(point);
      while (list.length && list[0][0] < now - HOUR) list.shift();
      try { sessionStorage.setItem('spool.samples.' + key, JSON.stringify(list)); } catch { /* full: keep in memory only */ }
      return list;
    },
  };

  // rates turns samples of counters [t, a, b, ...] into per-second rates between samples.
  function rates(list) {
    const out = [];
    for (let i = 1; i < list.length; i++) {
      const dt = (list[i][0] - list[i - 1][0]) / 1000;
      if (dt <= 0 || dt > 120) continue; // a gap: the tab was closed or hidden
      out.push([list[i][0], ...list[i].slice(1).map((v, k) => Math.max(0, (v - list[i - 1][k + 1]) / dt))]);
    }
    return out;
  }

  // lineChart draws series [{name, color, points: [[t, v]]}] over the last hour, or over
  // the time sampled so far when that is shorter (five minutes at least).
  function lineChart(box, series, { label, fmt }) {
    // Drawn at the box's width, so that text keeps its shape; redrawn at each refresh.
    const W = Math.max(280, box.clientWidth - 32 || 720), H = 200, L = 44, R = 12, T = 10, B = 24;
    const now = Date.now();
    let first = now;
    for (const s of series) if (s.points.length) first = Math.min(first, s.points[0][0]);
    const span = Math.min(HOUR, Math.max(5 * 60e3, now - first));
    const from = now - span;
    let max = 0;
    for (const s of series) for (const [t, v] of s.points) if (t >= from) max = Math.max(max, v);
    const top = niceMax(max);
    const x = (t) => L + ((t - from) / span) * (W - L - R);
    const y = (v) => T + (1 - v / top) * (H - T - B);
    const svg = h('svg', { class: 'chart', viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img', 'aria-label': label });
    const grid = h('g', { class: 'grid' }), axis = h('g', { class: 'axis' });
    for (let i = 0; i <= 4; i++) {
      const v = (top * i) / 4;
      grid.append(h('line', { x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      axis.append(h('text', { x: L - 6, y: y(v) + 3.5, 'text-anchor': 'end' }, fmt ? fmt(v) : fmtNum(v)));
    }
    for (let i = 0; i <= 4; i++) {
      const t = from + (span * i) / 4;
      axis.append(h('text', { x: x(t), y: H - 6, 'text-anchor': i === 0 ? 'start' : i === 4 ? 'end' : 'middle' },
        i === 4 ? 'now' : new Date(t).toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit', hour12: false })));
    }
    svg.append(grid, axis);
    for (const s of series) {
      const pts = s.points.filter(([t]) => t >= from);
      if (!pts.length) continue;
      // a gap of more than a minute breaks the line
      let d = '', prev = 0;
      for (const [t, v] of pts) {
        d += (prev && t - prev < 60e3 ? 'L' : 'M') + x(t).toFixed(1) + ' ' + y(v).toFixed(1);
        prev = t;
      }
      svg.append(h('path', { class: 'line', d, style: `stroke:${s.color}` }, h('title', {}, s.name)));
      if (pts.length === 1) svg.append(h('circle', { cx: x(pts[0][0]), cy: y(pts[0][1]), r: 3, style: `fill:${s.color}` }));
    }
    return svg;
  }
  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }
  function legend(series) {
    return h('div', { class: 'legend' }, series.map((s) => h('span', {}, h('i', { class: 'swatch', style: `background:${s.color}` }), s.name)));
  }

  // ---------------------------------------------------------------- pages

  // A page is {title, nav, mount(), refresh(), leave()}. mount builds the skeleton once;
  // refresh fills the data (again at each poll) without rebuilding what the operator uses.

  function pageHead(crumbs, title, ...actions) {
    return h('div', { class: 'page-head' },
      h('div', {}, crumbs && h('div', { class: 'crumbs' }, crumbs), h('h1', {}, title)),
      h('div', { class: 'actions' }, actions));
  }

  function sortHeader(label, key, state, onSort, numeric) {
    const th = h('th', { scope: 'col', class: numeric ? 'num' : undefined, 'aria-sort': state.key === key ? (state.dir > 0 ? 'ascending' : 'descending') : 'none' },
      h('button', { class: 'sort', type: 'button', 'data-key': 'sort-' + key, onclick: () => onSort(key) }, label));
    return th;
  }

  // ---- overview

  // The totals, cards and chart come from /v1/stats, one request at any queue count. The
  // table holds every queue, filtered and sorted here, while the listing fits in one page
  // (LIST_PAGE); beyond, it is "paged": the server pages it by name, one page a refresh,
  // with the filter sent as a name prefix and "Paused only" as paused=true.
  function overviewPage() {
    const st = {
      filter: '', key: 'name', dir: 1, page: 0, queues: [], pausedOnly: false, total: 0,
      paged: false, cursors: [''], next: '', error: '', seq: 0, // the server's paging
    };
    const rows = Math.min(QUEUE_ROWS, LIST_PAGE); // a page of the table when paged
    const cards = h('div', { class: 'cards', id: 'totals' });
    const chartBox = h('div', { class: 'panel-body' });
    const chartLegend = h('div');
    const sub = h('p', { class: 'muted small', id: 'overview-sub' });
    const filter = h('input', { type: 'search', id: 'queue-filter', placeholder: 'Filter queues by name', autocomplete: 'off', 'aria-controls': 'queue-table' });
    const pausedOnly = h('input', { type: 'checkbox', id: 'paused-only' });
    const thead = h('thead');
    const tbody = h('tbody');
    const pager = h('div', { class: 'pager' });
    const count = h('span', { class: 'muted small', id: 'queue-count', 'aria-live': 'polite' });
    const note = h('p', { class: 'panel-note', id: 'queue-note', hidden: true });

    // A change of the filter: the browser applies it at once; the server is asked once
    // typing pauses.
    let typing = 0;
    filter.addEventListener('input', () => {
      st.filter = filter.value.trim();
      st.page = 0;
      st.cursors = [''];
      if (!st.paged) { renderTable(); return; }
      clearTimeout(typing);
      typing = setTimeout(reload, 250);
    });
    pausedOnly.addEventListener('change', () => {
      st.pausedOnly = pausedOnly.checked;
      st.page = 0;
      st.cursors = [''];
      if (st.paged) reload(); else renderTable();
    });
    function onSort(key) {
      if (st.key === key) st.dir = -st.dir;
      else { st.key = key; st.dir = key === 'name' ? 1 : -1; }
      renderTable();
    }
    const cols = [
      ['Queue', 'name', false], ['Ready', 'ready', true], ['Reserved', 'reserved', true], ['Delayed', 'delayed', true],
      ['Buried', 'buried', true], ['Oldest ready', 'oldest', true], ['Enqueued/s', 'enq', true], ['Completed/s', 'done', true],
    ];
    const sortValue = {
      name: (q) => q.name, ready: (q) => q.stats.ready, reserved: (q) => q.stats.reserved, delayed: (q) => q.stats.delayed,
      buried: (q) => q.stats.buried, oldest: (q) => parseDur(q.stats.oldest_ready_age), enq: (q) => q.stats.enqueue_rate || 0,
      done: (q) => q.stats.complete_rate || 0,
    };

    // loadQueues reads the table's queues: the whole listing while it fits in one page
    // (stats.queues tells before asking), else the server's page where the operator is.
    async function loadQueues(stats) {
      let paged = stats.queues > LIST_PAGE;
      if (!paged) {
        const page = await queuesPage({ limit: LIST_PAGE });
        if (page.next) paged = true; // queues made since the stats
        else st.queues = page.queues;
      }
      if (paged !== st.paged) {
        st.paged = paged;
        st.page = 0;
        st.cursors = [''];
        filter.placeholder = paged ? 'Queue names starting with…' : 'Filter queues by name';
      }
      if (paged) await loadPage();
    }

    // loadPage reads the server's page of the table; it returns false when a later read
    // (the operator typed on, or paged) made this one stale.
    async function loadPage() {
      const mine = ++st.seq;
      let page, error = '';
      try {
        page = await queuesPage({ limit: rows, after: st.cursors[st.cursors.length - 1], prefix: st.filter, paused: st.pausedOnly });
      } catch (err) {
        if (err.field !== 'prefix') throw err;
        page = { queues: [] };
        error = err.message;
      }
      if (mine !== st.seq) return false;
      st.queues = page.queues;
      st.next = page.next || '';
      st.error = error;
      return true;
    }
    async function reload() {
      try {
        if (await loadPage()) renderTable();
      } catch (err) {
        toast(err.message, true);
      }
    }

    function renderRows(shown, empty) {
      if (!shown.length) {
        swap(tbody, h('tr', {}, h('td', { colspan: cols.length, class: 'empty' }, empty)));
        return;
      }
      swap(tbody, shown.map((q) => {
        const s = q.stats;
        return h('tr', { 'data-queue': q.name },
          h('td', { class: 'name-cell' }, link(queuePath(q.name), q.name), ' ',
            q.paused && h('span', { class: 'badge b-paused', title: q.paused_until ? 'until ' + fmtTime(q.paused_until) : 'until resumed' }, 'paused')),
          num(s.ready, { 'data-col': 'ready' }), num(s.reserved, { 'data-col': 'reserved' }), num(s.delayed, { 'data-col': 'delayed' }),
          h('td', { class: 'num' + (s.buried ? '' : ' zero'), 'data-col': 'buried' }, s.buried ? h('span', { class: 'badge plain b-buried' }, fmtNum(s.buried)) : '0'),
          h('td', { class: 'num' + (parseDur(s.oldest_ready_age) ? '' : ' zero') }, parseDur(s.oldest_ready_age) ? fmtSpan(parseDur(s.oldest_ready_age)) : '–'),
          h('td', { class: 'num' + (s.enqueue_rate ? '' : ' zero') }, fmtRate(s.enqueue_rate)),
          h('td', { class: 'num' + (s.complete_rate ? '' : ' zero') }, fmtRate(s.complete_rate)));
      }));
    }

    function renderPager(label, prev, next) {
      swap(pager,
        h('span', { class: 'muted small' }, label),
        h('div', { class: 'actions' },
          h('button', { class: 'btn btn-small', type: 'button', 'data-key': 'prev', disabled: !prev, onclick: prev }, '← Previous'),
          h('button', { class: 'btn btn-small', type: 'button', 'data-key': 'next', disabled: !next, onclick: next }, 'Next →')));
      pager.hidden = !prev && !next;
    }

    function renderTable() {
      if (st.paged) renderServerTable(); else renderLocalTable();
    }

    function renderLocalTable() {
      note.hidden = true;
      filter.removeAttribute('aria-invalid');
      swap(thead, h('tr', {}, cols.map(([l, k, n]) => sortHeader(l, k, st, onSort, n))));
      const needle = st.filter.toLowerCase();
      let list = st.queues.filter((q) => q.name.toLowerCase().includes(needle) && (!st.pausedOnly || q.paused));
      const f = sortValue[st.key];
      list.sort((a, b) => {
        const va = f(a), vb = f(b);
        const c = va < vb ? -1 : va > vb ? 1 : a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
        return c * st.dir;
      });
      const pages = Math.max(1, Math.ceil(list.length / QUEUE_ROWS));
      st.page = Math.min(st.page, pages - 1);
      count.textContent = list.length === st.queues.length ? `${fmtNum(list.length)} queues` : `${fmtNum(list.length)} of ${fmtNum(st.queues.length)} queues`;
      renderRows(list.slice(st.page * QUEUE_ROWS, (st.page + 1) * QUEUE_ROWS),
        st.queues.length ? 'No queue matches the filter.' : 'No queues yet. A queue is created by its first enqueue.');
      renderPager(`Page ${st.page + 1} of ${pages}`,
        st.page > 0 && (() => { st.page--; renderTable(); }),
        st.page < pages - 1 && (() => { st.page++; renderTable(); }));
    }

    function renderServerTable() {
      note.hidden = false;
      note.textContent = `Sorted by name: more than ${fmtNum(LIST_PAGE)} queues. The filter finds the names that start with what you type.`;
      filter.toggleAttribute('aria-invalid', !!st.error);
      swap(thead, h('tr', {}, cols.map(([l, k, n]) => h('th', { scope: 'col', class: n ? 'num' : undefined, 'aria-sort': k === 'name' ? 'ascending' : undefined }, l))));
      const which = [st.filter && `starting with “${st.filter}”`, st.pausedOnly && 'paused'].filter(Boolean).join(', ');
      count.textContent = which ? `Queues ${which}, of ${fmtNum(st.total)}` : `${fmtNum(st.total)} queues`;
      renderRows(st.queues, st.error || (which ? 'No queue matches the filter.' : 'No queue on this page.'));
      renderPager(`Page ${st.cursors.length}`,
        st.cursors.length > 1 && (() => { st.cursors.pop(); reload(); }),
        // Next waits for its page: a second click meanwhile would push the same cursor.
        !!st.next && ((ev) => { ev.currentTarget.disabled = true; st.cursors.push(st.next); st.next = ''; reload(); }));
    }

    return {
      title: 'Overview',
      nav: 'overview',
      mount() {
        return [
          pageHead(null, 'Overview'),
          sub,
          cards,
          h('section', { class: 'panel', 'aria-labelledby': 'tp-title' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'tp-title' }, 'Throughput, last hour'), chartLegend),
            chartBox,
            h('p', { class: 'chart-note' }, 'Jobs per second across all queues, sampled by this page while it is open.')),
          h('section', { class: 'panel', 'aria-labelledby': 'queues-title' },
            h('div', { class: 'panel-head' },
              h('h2', { id: 'queues-title' }, 'Queues'),
              h('div', { class: 'toolbar' },
                h('label', { class: 'sr-only', for: 'queue-filter' }, 'Filter queues by name'), filter,
                h('label', { class: 'check', for: 'paused-only' }, pausedOnly, 'Paused only'),
                count)),
            note,
            h('div', { class: 'table-wrap' }, h('table', { id: 'queue-table' }, h('caption', { class: 'sr-only' }, 'Queues and their jobs by state'), thead, tbody)),
            pager),
        ];
      },
      async refresh() {
        const stats = await get('/v1/stats');
        st.total = stats.queues;
        const j = stats.jobs, t = stats.totals;
        sub.textContent = `${fmtNum(stats.queues)} queues${stats.paused ? `, ${fmtNum(stats.paused)} paused` : ''} · ${fmtNum(t.enqueued)} jobs enqueued, ${fmtNum(t.succeeded)} succeeded, ${fmtNum(t.failed)} failed attempts`;
        const card = (label, value, color, subText, id) => h('div', { class: 'card', id },
          h('div', { class: 'label' }, color && h('i', { class: 'swatch', style: `background:${color}` }), label),
          h('div', { class: 'value' }, value), subText && h('div', { class: 'sub' }, subText));
        swap(cards,
          card('Ready', fmtNum(j.ready), stateColors.ready, null, 'total-ready'),
          card('Reserved', fmtNum(j.reserved), stateColors.reserved, null, 'total-reserved'),
          card('Delayed', fmtNum(j.delayed), stateColors.delayed, null, 'total-delayed'),
          card('Buried', fmtNum(j.buried), stateColors.buried, null, 'total-buried'),
          card('Enqueued/s', fmtRate(stats.enqueue_rate), null, 'last minute', 'total-enqueue-rate'),
          card('Completed/s', fmtRate(stats.complete_rate), null, 'last minute', 'total-complete-rate'));
        const now = Date.now();
        const list = samples.add('cluster', [now, t.enqueued, t.succeeded, t.failed], 2000);
        const r = rates(list);
        const series = [
          { name: 'Enqueued', color: 'var(--ready)', points: r.map((p) => [p[0], p[1]]) },
          { name: 'Succeeded', color: 'var(--succeeded)', points: r.map((p) => [p[0], p[2]]) },
          { name: 'Failed', color: 'var(--buried)', points: r.map((p) => [p[0], p[3]]) },
        ];
        swap(chartBox, lineChart(chartBox, series, { label: 'Jobs per second over the last hour', fmt: fmtRate }));
        swap(chartLegend, legend(series));
        await loadQueues(stats);
        // The queue pages' charts start from what the overview saw, for a few queues.
        if (!st.paged && st.queues.length <= 50) for (const q of st.queues) samples.add('q.' + q.name, [now, q.stats.ready, q.stats.reserved, q.stats.delayed, q.stats.buried], 4000);
        renderTable();
      },
    };
  }

  // ---- queue

  const tabs = ['ready', 'reserved', 'delayed', 'buried'];

  function queuePage(name, params) {
    const base = '/v1/queues/' + enc(name);
    const st = { tab: tabs.includes(params.get('state')) ? params.get('state') : 'ready', cursors: [''], pageSize: 20, queue: null };
    const title = h('span', {}, name);
    const head = h('span', { class: 'head-badges' });
    const actions = h('div', { class: 'actions' });
    const cards = h('div', { class: 'cards' });
    const chartBox = h('div', { class: 'panel-body' });
    const chartLegend = h('div');
    const settings = settingsForm();
    const tabList = h('div', { class: 'tabs', role: 'tablist', 'aria-label': 'Jobs by state' });
    const tabTools = h('div', { class: 'toolbar' });
    const jobsBody = h('div', { class: 'table-wrap', role: 'tabpanel', id: 'jobs-panel' });
    const pager = h('div', { class: 'pager' });

    function settingsForm() {
      const fields = [
        ['lease', 'Lease', 'how long a reservation lasts: 30s, 5m'],
        ['max_attempts', 'Max attempts', 'reservations before a job is buried'],
        ['backoff_base', 'Backoff base', 'first retry delay'],
        ['backoff_max', 'Backoff max', 'longest retry delay'],
        ['retention', 'Retention', 'how long a finished job stays readable: 1h, or none'],
      ];
      // A retention of 0 shows as "none", which is sent back as 0. An unchanged retention is
      // not sent: a queue without its own keeps following the server's --retention.
      const shown = (k, v) => (k === 'retention' && v === '0s' ? 'none' : v);
      const inputs = {}, filled = {};
      const form = h('form', { class: 'panel-body', id: 'settings-form', novalidate: true },
        h('div', { class: 'form-grid' }, fields.map(([k, l, hint]) => {
          inputs[k] = h('input', { id: 'set-' + k, name: k, autocomplete: 'off', inputmode: k === 'max_attempts' ? 'numeric' : undefined, 'aria-describedby': 'hint-' + k });
          return h('div', { class: 'field' }, h('label', { for: 'set-' + k }, l), inputs[k], h('div', { class: 'hint', id: 'hint-' + k }, hint));
        })),
        h('div', { class: 'actions', 'data-perm': 'admin' }, h('button', { type: 'submit', class: 'btn btn-primary btn-small' }, 'Save settings')));
      let dirty = false;
      form.addEventListener('input', () => { dirty = true; });
      form.addEventListener('submit', (ev) => {
        ev.preventDefault();
        const body = {};
        for (const [k, input] of Object.entries(inputs)) {
          const v = input.value.trim();
          if (v === '' || (k === 'retention' && v === filled[k])) continue;
          body[k] = k === 'max_attempts' ? Number(v) : k === 'retention' && v.toLowerCase() === 'none' ? 0 : v;
          input.removeAttribute('aria-invalid');
        }
        act(form.querySelector('button[type=submit]'), async () => {
          try {
            await call('PUT', base, body);
          } catch (err) {
            if (err.field && inputs[err.field]) { inputs[err.field].setAttribute('aria-invalid', 'true'); inputs[err.field].focus(); }
            throw err;
          }
          dirty = false;
          return 'Settings saved';
        });
      });
      return {
        form,
        fill(q) {
          if (dirty || form.contains(document.activeElement)) return; // the operator is editing
          for (const [k, input] of Object.entries(inputs)) input.value = filled[k] = shown(k, q[k] ?? '');
        },
      };
    }

    // Built once: a refresh shows one or the other and keeps the chosen duration.
    const pauseFor = h('select', { id: 'pause-for', 'aria-label': 'Pause for' },
      h('option', { value: '' }, 'until resumed'), ['5m', '15m', '1h', '4h', '24h'].map((d) => h('option', { value: d }, 'for ' + d)));
    const pauseBox = h('span', {}, h('span', { class: 'inline-form', 'data-perm': 'admin' }, pauseFor,
      h('button', { class: 'btn', type: 'button', id: 'pause',
        onclick: (ev) => act(ev.currentTarget, async () => {
          await post(base + '/pause', pauseFor.value ? { for: pauseFor.value } : {});
          return `${name} paused` + (pauseFor.value ? ` for ${pauseFor.value}` : '');
        }) }, 'Pause')));
    const resumeBox = h('span', {}, h('button', { class: 'btn btn-primary', type: 'button', id: 'resume', 'data-perm': 'admin',
      onclick: (ev) => act(ev.currentTarget, async () => { await post(base + '/resume'); return `${name} resumed`; }) }, 'Resume'));
    actions.append(pauseBox, resumeBox,
      h('button', { class: 'btn btn-danger', type: 'button', id: 'purge', 'data-perm': 'admin', onclick: () => purge() }, 'Purge…'));

    async function purge() {
      const ok = await confirmDialog({
        title: `Purge ${name}?`, danger: true, confirm: 'Purge', typed: name,
        body: 'Every ready, delayed and buried job of this queue is cancelled. Reserved jobs are left to their workers. This cannot be undone.',
      });
      if (ok) act(null, async () => { const r = await post(base + '/purge'); return `${fmtNum(r.purged)} jobs purged`; });
    }

    function renderTabs(q) {
      swap(tabList, tabs.map((t) => h('button', {
        class: 'tab', role: 'tab', type: 'button', id: 'tab-' + t, 'data-key': 'tab-' + t, 'aria-selected': String(st.tab === t),
        'aria-controls': 'jobs-panel', tabindex: st.tab === t ? '0' : '-1',
        onclick: () => selectTab(t),
        onkeydown: (ev) => {
          const i = tabs.indexOf(t);
          const next = ev.key === 'ArrowRight' ? tabs[(i + 1) % tabs.length] : ev.key === 'ArrowLeft' ? tabs[(i + tabs.length - 1) % tabs.length] : null;
          if (next) { ev.preventDefault(); selectTab(next); document.getElementById('tab-' + next).focus(); }
        },
      }, t[0].toUpperCase() + t.slice(1), h('span', { class: 'count' }, fmtNum(q.stats[t])))));
      jobsBody.setAttribute('aria-labelledby', 'tab-' + st.tab);
    }

    function selectTab(t) {
      st.tab = t;
      st.cursors = [''];
      const u = new URL(location.href);
      u.searchParams.set('state', t);
      history.replaceState(null, '', u);
      if (st.queue) renderTabs(st.queue);
      loadJobs();
    }

    // Built once, shown on the buried tab: a refresh keeps the number typed.
    const kickN = h('input', { type: 'number', min: '1', value: '10', id: 'kick-n', 'aria-label': 'How many buried jobs to kick', class: 'small' });
    const kickTools = h('span', {}, kickTools0(kickN));
    tabTools.append(kickTools);
    function kickTools0(n) {
      return h('div', { class: 'inline-form', 'data-perm': 'admin' },
        n,
        h('button', { class: 'btn btn-small', type: 'button', id: 'kick-n-btn', onclick: (ev) => act(ev.currentTarget, async () => {
          const max = parseInt(n.value, 10);
          if (!(max > 0)) throw new Error('Kick how many? A positive number.');
          const r = await post(base + '/kick', { max });
          return `${fmtNum(r.kicked)} jobs kicked`;
        }) }, 'Kick N'),
        h('button', { class: 'btn btn-small btn-primary', type: 'button', id: 'kick-all', onclick: async (ev) => {
          const btn = ev.currentTarget;
          const ok = await confirmDialog({ title: `Kick every buried job of ${name}?`, body: 'They become ready now, with their attempts reset.', confirm: 'Kick all' });
          if (ok) act(btn, async () => { const r = await post(base + '/kick', {}); return `${fmtNum(r.kicked)} jobs kicked`; });
        } }, 'Kick all'));
    }

    function jobRow(j) {
      const when = {
        ready: ['Enqueued', timeCell(j.created_at)],
        delayed: ['Runs', timeCell(j.run_at)],
        reserved: ['Lease ends', timeCell(j.lease_expires_at)],
        buried: ['Buried', timeCell(j.finished_at || j.reserved_at || j.created_at)],
      }[st.tab];
      const acts = [];
      if (st.tab === 'buried' || st.tab === 'delayed') {
        acts.push(h('button', { class: 'btn btn-xs', type: 'button', 'data-key': 'kick-' + j.id, 'data-action': 'kick',
          onclick: (ev) => act(ev.currentTarget, async () => { await post('/v1/jobs/' + j.id + '/kick'); return `Job ${j.id} kicked`; }) },
        st.tab === 'delayed' ? 'Run now' : 'Kick'));
      }
      acts.push(h('button', { class: 'btn btn-xs btn-danger', type: 'button', 'data-key': 'del-' + j.id, 'data-action': 'delete',
        onclick: async (ev) => {
          const btn = ev.currentTarget;
          const ok = await confirmDialog({ title: `Delete job ${j.id}?`, body: 'The job is cancelled and will not run.' + (st.tab === 'reserved' ? ' Its worker\'s next call on it fails.' : ''), confirm: 'Delete', danger: true });
          if (ok) act(btn, async () => { await call('DELETE', '/v1/jobs/' + j.id); return `Job ${j.id} deleted`; });
        } }, 'Delete'));
      return h('tr', { 'data-job': j.id },
        h('td', {}, link(jobPath(j.id), j.id)),
        h('td', { class: 'wrap' }, j.type || h('span', { class: 'zero' }, '(none)')),
        h('td', { class: 'num hide-sm' }, fmtNum(j.priority)),
        h('td', { class: 'num' }, `${j.attempts}/${j.max_attempts}`),
        st.tab === 'reserved' ? h('td', {}, j.worker || h('span', { class: 'zero' }, 'unnamed')) : null,
        h('td', {}, when[1]),
        st.tab === 'buried' || st.tab === 'delayed' ? h('td', { class: 'hide-sm' }, j.last_error ? h('span', { class: 'err', title: j.last_error }, j.last_error) : h('span', { class: 'zero' }, '–')) : null,
        h('td', { class: 'num' }, h('span', { class: 'actions', 'data-perm': 'admin', style: 'justify-content:flex-end' }, acts)));
    }

    async function loadJobs() {
      const cursor = st.cursors[st.cursors.length - 1];
      let page;
      // A page of the API can hold fewer jobs than asked and still have a next one (reserved
      // jobs are skipped; a page of reserved jobs reads that many messages of any state):
      // follow the cursor a few times to fill the table's page.
      let jobs = [], next = cursor;
      for (let i = 0; i < 10; i++) {
        const limit = st.tab === 'reserved' ? 500 : st.pageSize - jobs.length;
        page = await get(`${base}/jobs?state=${st.tab}&limit=${limit}` + (next ? '&cursor=' + enc(next) : ''));
        jobs = jobs.concat(page.jobs);
        next = page.next_cursor || '';
        if (!next || jobs.length >= st.pageSize) break;
      }
      const labels = { ready: 'Enqueued', delayed: 'Runs', reserved: 'Lease ends', buried: 'Buried' };
      kickTools.hidden = st.tab !== 'buried';
      swap(jobsBody, jobs.length
        ? h('table', {},
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col' }, 'Job'), h('th', { scope: 'col' }, 'Type'), h('th', { scope: 'col', class: 'num hide-sm' }, 'Priority'),
            h('th', { scope: 'col', class: 'num' }, 'Attempts'), st.tab === 'reserved' && h('th', { scope: 'col' }, 'Worker'),
            h('th', { scope: 'col' }, labels[st.tab]), (st.tab === 'buried' || st.tab === 'delayed') && h('th', { scope: 'col', class: 'hide-sm' }, 'Last error'),
            h('th', { scope: 'col', class: 'num' }, h('span', { class: 'sr-only' }, 'Actions')))),
          h('tbody', {}, jobs.map(jobRow)))
        : h('p', { class: 'empty' }, `No ${st.tab} jobs` + (st.cursors.length > 1 ? ' on this page.' : '.')));
      st.next = next;
      swap(pager,
        h('span', { class: 'muted small' }, `Page ${st.cursors.length}`),
        h('div', { class: 'actions' },
          h('button', { class: 'btn btn-small', type: 'button', 'data-key': 'jobs-prev', disabled: st.cursors.length === 1, onclick: () => { st.cursors.pop(); loadJobs(); } }, '← Previous'),
          h('button', { class: 'btn btn-small', type: 'button', 'data-key': 'jobs-next', disabled: !next, onclick: () => { st.cursors.push(next); loadJobs(); } }, 'Next →')));
      pager.hidden = st.cursors.length === 1 && !next;
      applyPerms(main);
    }

    return {
      title: name,
      nav: 'overview',
      scope: 'queue:' + name,
      mount() {
        return [
          h('div', { class: 'page-head' },
            h('div', {}, h('div', { class: 'crumbs' }, link('', 'Overview'), ' / queue'), h('h1', {}, title, head)),
            actions),
          cards,
          h('div', { class: 'grid-2 stack' },
            h('section', { class: 'panel', 'aria-labelledby': 'counts-title' },
              h('div', { class: 'panel-head' }, h('h2', { id: 'counts-title' }, 'Jobs by state, last hour'), chartLegend),
              chartBox,
              h('p', { class: 'chart-note' }, 'Sampled by this page while it is open.')),
            h('section', { class: 'panel', 'aria-labelledby': 'settings-title' },
              h('div', { class: 'panel-head' }, h('h2', { id: 'settings-title' }, 'Settings')), settings.form)),
          h('section', { class: 'panel', 'aria-labelledby': 'jobs-title' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'jobs-title' }, 'Jobs'), tabTools),
            tabList, jobsBody, pager),
        ];
      },
      async refresh() {
        let q;
        try {
          q = await get(base);
        } catch (err) {
          if (err.status === 404) {
            swap(main, pageHead(h('span', {}, link('', 'Overview'), ' / queue'), name),
              h('div', { class: 'panel' }, h('p', { class: 'empty' }, `There is no queue named “${name}”. It may have been deleted.`)));
            return;
          }
          throw err;
        }
        st.queue = q;
        const s = q.stats;
        swap(head, q.paused ? h('span', { class: 'badge b-paused', id: 'paused-badge' }, q.paused_until ? `paused, ${relTime(q.paused_until).replace('in ', '')} left` : 'paused') : h('span', { class: 'badge b-active' }, 'active'));
        pauseBox.hidden = q.paused;
        resumeBox.hidden = !q.paused;
        const card = (label, value, color, sub) => h('div', { class: 'card' },
          h('div', { class: 'label' }, color && h('i', { class: 'swatch', style: `background:${color}` }), label),
          h('div', { class: 'value' }, value), sub && h('div', { class: 'sub' }, sub));
        swap(cards,
          tabs.map((t) => card(t[0].toUpperCase() + t.slice(1), fmtNum(s[t]), stateColors[t])),
          card('Oldest ready', parseDur(s.oldest_ready_age) ? fmtSpan(parseDur(s.oldest_ready_age)) : '–'),
          card('Enqueued/s', fmtRate(s.enqueue_rate), null, `${fmtNum(s.enqueued)} in all`),
          card('Completed/s', fmtRate(s.complete_rate), null, `${fmtNum(s.succeeded)} succeeded, ${fmtNum(s.failed)} failed`));
        const list = samples.add('q.' + name, [Date.now(), s.ready, s.reserved, s.delayed, s.buried], 4000);
        const series = tabs.map((t, i) => ({ name: t[0].toUpperCase() + t.slice(1), color: stateColors[t], points: list.map((p) => [p[0], p[i + 1]]) }));
        swap(chartBox, lineChart(chartBox, series, { label: 'Jobs by state over the last hour' }));
        swap(chartLegend, legend(series));
        settings.fill(q);
        renderTabs(q);
        await loadJobs();
      },
    };
  }

  // ---- job

  function jobPage(id) {
    const path = '/v1/jobs/' + enc(id);
    const st = { view: null, last: '' };
    const body = h('div');
    return {
      title: 'Job ' + id,
      nav: '',
      mount() { return [body]; },
      async refresh() {
        let j;
        try {
          j = await get(path);
        } catch (err) {
          if (err.status === 404 || err.status === 400) {
            swap(body, pageHead(link('', 'Overview'), 'Job ' + id),
              h('div', { class: 'panel' }, h('p', { class: 'empty', id: 'job-missing' }, err.status === 400
                ? 'A job id is a number.' : `No job ${id}: unknown, or finished longer ago than the server's retention.`)));
            st.last = '';
            return;
          }
          throw err;
        }
        main.dataset.scope = 'queue:' + j.queue;
        const key = JSON.stringify(j);
        if (key === st.last) return; // unchanged: keep the reader's scroll and selection
        st.last = key;
        swap(body, renderJob(j, st));
        applyPerms(body);
      },
    };
  }

  function renderJob(j, st) {
    const acts = [];
    if (j.state === 'buried' || j.state === 'delayed') {
      acts.push(h('button', { class: 'btn btn-primary', type: 'button', id: 'job-kick', 'data-perm': 'admin', 'data-key': 'job-kick',
        onclick: (ev) => act(ev.currentTarget, async () => { await post('/v1/jobs/' + j.id + '/kick'); return `Job ${j.id} kicked`; }) },
      j.state === 'buried' ? 'Kick' : 'Run now'));
    }
    if (!['succeeded', 'cancelled'].includes(j.state)) {
      acts.push(h('button', { class: 'btn btn-danger', type: 'button', id: 'job-delete', 'data-perm': 'admin', 'data-key': 'job-delete',
        onclick: async (ev) => {
          const btn = ev.currentTarget;
          const ok = await confirmDialog({ title: `Delete job ${j.id}?`, body: 'The job is cancelled and will not run.', confirm: 'Delete', danger: true });
          if (ok) act(btn, async () => { await call('DELETE', '/v1/jobs/' + j.id); return `Job ${j.id} deleted`; });
        } }, 'Delete'));
    }
    const kv = (pairs) => h('dl', { class: 'kv' }, pairs.filter((p) => p && p[1] !== undefined && p[1] !== '' && p[1] !== null).map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
    const details = kv([
      ['State', badge(j.state)],
      ['Queue', link(queuePath(j.queue), j.queue)],
      ['Type', j.type || h('span', { class: 'zero' }, '(none)')],
      ['Priority', fmtNum(j.priority)],
      ['Attempts', `${j.attempts} of ${j.max_attempts}`],
      ['Lease', j.lease],
      ['Timeout', j.timeout],
      j.state === 'reserved' ? ['Held by', h('span', { id: 'job-worker' }, j.worker || 'an unnamed worker')] : j.worker ? ['Last worker', j.worker] : null,
      j.state === 'reserved' ? ['Lease ends', h('span', {}, fmtTime(j.lease_expires_at), ' (', relTime(j.lease_expires_at), ')')] : null,
      ['Unique key', j.unique_key && h('code', {}, j.unique_key)],
      ['Releases · buries · kicks · timeouts', `${j.releases} · ${j.buries} · ${j.kicks} · ${j.timeouts}`],
    ]);
    const events = [
      ['Created', j.created_at],
      j.state === 'delayed' && ['Runs', j.run_at, Date.parse(j.run_at) > Date.now()],
      j.reserved_at && [j.state === 'reserved' ? 'Reserved' : 'Last reserved', j.reserved_at],
      j.lease_expires_at && ['Lease ends', j.lease_expires_at, true],
      j.finished_at && [j.state === 'buried' ? 'Buried' : j.state === 'cancelled' ? 'Cancelled' : 'Finished', j.finished_at],
    ].filter(Boolean).sort((a, b) => Date.parse(a[1]) - Date.parse(b[1]));
    const timeline = h('ol', { class: 'timeline' }, events.map(([what, when, future]) =>
      h('li', { class: future ? 'future' : undefined }, h('div', { class: 't-what' }, what),
        h('div', { class: 't-when' }, h('time', { datetime: when }, fmtTime(when)), ' · ', relTime(when)))));
    const meta = j.metadata && Object.keys(j.metadata).length
      ? kv(Object.entries(j.metadata).sort().map(([k, v]) => [k, h('span', { class: 'mono' }, v)])) : h('p', { class: 'muted' }, 'None.');
    return [
      h('div', { class: 'page-head' },
        h('div', {}, h('div', { class: 'crumbs' }, link('', 'Overview'), ' / ', link(queuePath(j.queue), j.queue), ' / job'),
          h('h1', {}, 'Job ', h('span', { class: 'mono', id: 'job-title-id' }, j.id), h('span', { id: 'job-state' }, badge(j.state)))),
        h('div', { class: 'actions' }, acts)),
      h('div', { class: 'grid-2 stack' },
        h('div', {},
          j.last_error && h('section', { class: 'panel' },
            h('div', { class: 'panel-head' }, h('h2', {}, 'Last error')),
            h('div', { class: 'panel-body' }, h('pre', { class: 'code error', id: 'job-error' }, j.last_error))),
          payloadPanel(j, st),
          j.result !== undefined && h('section', { class: 'panel' },
            h('div', { class: 'panel-head' }, h('h2', {}, 'Result')),
            h('div', { class: 'panel-body' }, h('pre', { class: 'code' }, prettyJSON(j.result))))),
        h('div', {},
          h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Details')), h('div', { class: 'panel-body', id: 'job-details' }, details)),
          h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Timeline')), h('div', { class: 'panel-body' }, timeline)),
          h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Metadata')), h('div', { class: 'panel-body' }, meta)))),
    ];
  }

  // prettyJSON renders a JSON value indented and coloured, as text nodes.
  function prettyJSON(v) {
    const text = JSON.stringify(v, null, 2);
    const out = [];
    const re = /("(?:\\.|[^"\\])*")(\s*:)?|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|\b(true|false|null)\b/g;
    let last = 0;
    for (const m of text.matchAll(re)) {
      if (m.index > last) out.push(text.slice(last, m.index));
      const cls = m[1] ? (m[2] ? 'j-key' : 'j-str') : m[3] ? 'j-num' : 'j-lit';
      out.push(h('span', { class: cls }, m[1] || m[0]));
      if (m[2]) out.push(m[2]);
      last = m.index + m[0].length;
    }
    out.push(text.slice(last));
    return out;
  }

  function payloadPanel(j, st) {
    const hasJSON = j.payload !== undefined;
    const b64 = j.payload_base64;
    if (!hasJSON && b64 === undefined) {
      return h('section', { class: 'panel' }, h('div', { class: 'panel-head' }, h('h2', {}, 'Payload')),
        h('p', { class: 'empty' }, ['succeeded', 'cancelled'].includes(j.state) ? 'A finished job keeps no payload.' : 'Empty.'));
    }
    const bytes = hasJSON ? new TextEncoder().encode(JSON.stringify(j.payload)) : Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const views = hasJSON ? ['json', 'raw', 'base64'] : ['hex', 'base64', 'text'];
    if (!views.includes(st.view)) st.view = views[0];
    const box = h('div', { class: 'panel-body' });
    const render = () => {
      let text;
      let pretty = null;
      switch (st.view) {
        case 'json': text = JSON.stringify(j.payload, null, 2); break;
        case 'raw': text = JSON.stringify(j.payload); break;
        case 'text': text = new TextDecoder('utf-8', { fatal: false }).decode(bytes); break;
        case 'base64': text = b64 !== undefined ? b64 : btoa(String.fromCharCode(...bytes.subarray(0, 3 * PAYLOAD_SHOWN / 4))); break;
        case 'hex': text = hexDump(bytes.subarray(0, PAYLOAD_SHOWN / 4)); break;
      }
      const cut = text.length > PAYLOAD_SHOWN || (st.view === 'hex' && bytes.length > PAYLOAD_SHOWN / 4) || (st.view === 'base64' && b64 === undefined && bytes.length > 3 * PAYLOAD_SHOWN / 4);
      if (st.view === 'json' && !cut) pretty = prettyJSON(j.payload);
      if (st.url) URL.revokeObjectURL(st.url);
      const url = st.url = URL.createObjectURL(new Blob([bytes], { type: hasJSON ? 'application/json' : 'application/octet-stream' }));
      swap(box,
        h('pre', { class: 'code', id: 'payload', tabindex: '0', 'aria-label': 'Payload' }, pretty || text.slice(0, PAYLOAD_SHOWN)),
        h('p', { class: 'small muted' }, cut ? h('strong', {}, `Truncated: showing the start of ${fmtNum(bytes.length)} bytes. `) : `${fmtNum(bytes.length)} bytes. `,
          h('a', { href: url, download: `job-${j.id}.${hasJSON ? 'json' : 'bin'}`, id: 'payload-download' }, 'Download')));
    };
    const toggles = h('div', { class: 'inline-form', role: 'group', 'aria-label': 'Payload view' }, views.map((v) =>
      h('button', { type: 'button', class: 'btn btn-xs', 'aria-pressed': String(st.view === v), 'data-key': 'view-' + v, onclick: (ev) => {
        st.view = v;
        for (const b of ev.currentTarget.parentNode.children) b.setAttribute('aria-pressed', String(b === ev.currentTarget));
        render();
      } }, v === 'json' ? 'Pretty' : v === 'raw' ? 'Compact' : v === 'base64' ? 'Base64' : v === 'hex' ? 'Hex' : 'Text')));
    render();
    return h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', {}, 'Payload ', h('span', { class: 'muted small' }, hasJSON ? 'JSON' : 'binary')), toggles), box);
  }

  function hexDump(bytes) {
    const lines = [];
    for (let off = 0; off < bytes.length; off += 16) {
      const row = bytes.subarray(off, off + 16);
      const hex = Array.from(row, (b) => b.toString(16).padStart(2, '0')).join(' ');
      const asc = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : '.')).join('');
      lines.push(off.toString(16).padStart(8, '0') + '  ' + hex.padEnd(48) + ' ' + asc);
    }
    return lines.join('\n');
  }

  // ---- schedules

  function schedulesPage() {
    const tbody = h('tbody');
    const box = h('div', { class: 'table-wrap' });
    const table = h('table', { id: 'schedule-table' },
      h('thead', {}, h('tr', {}, ['Name', 'Spec', 'Queue · type', 'Next fire', 'Last fire', 'Status'].map((c) => h('th', { scope: 'col' }, c)),
        h('th', { scope: 'col', class: 'num' }, h('span', { class: 'sr-only' }, 'Actions')))), tbody);
    const count = h('span', { class: 'muted small' });
    return {
      title: 'Schedules',
      nav: 'schedules',
      scope: 'schedules',
      mount() {
        return [
          pageHead(null, 'Schedules', h('button', { class: 'btn btn-primary', type: 'button', id: 'new-schedule', 'data-perm': 'admin', onclick: () => scheduleDialog(null) }, 'New schedule')),
          h('section', { class: 'panel', 'aria-labelledby': 'sched-title' },
            h('div', { class: 'panel-head' }, h('h2', { id: 'sched-title' }, 'All schedules'), count), box),
          h('p', { class: 'muted small' }, 'A schedule enqueues one job per tick however many spool nodes run. Times are shown in each schedule\'s time zone.'),
        ];
      },
      async refresh() {
        let list;
        try {
          list = (await get('/v1/schedules')).schedules;
        } catch (err) {
          if (err.status === 503) { swap(box, h('p', { class: 'empty' }, 'This server runs no scheduler: ' + err.message)); return; }
          throw err;
        }
        count.textContent = `${list.length} schedule${list.length === 1 ? '' : 's'}`;
        if (!list.length) { swap(box, h('p', { class: 'empty' }, 'No schedules yet.')); return; }
        if (!box.contains(table)) swap(box, table);
        swap(tbody, list.map((s) => h('tr', { 'data-schedule': s.name },
          h('td', { class: 'name-cell' }, s.name),
          h('td', {}, h('code', {}, s.spec), h('div', { class: 'muted small' }, s.time_zone)),
          h('td', {}, link(queuePath(s.queue), s.queue), h('div', { class: 'muted small' }, s.job.type || '(no type)')),
          h('td', { 'data-col': 'next' }, s.next_fire_at ? [h('div', {}, fmtTime(s.next_fire_at, s.time_zone)), h('div', { class: 'muted small' }, relTime(s.next_fire_at))] : h('span', { class: 'zero' }, '–')),
          h('td', {}, s.last_fire ? [h('div', {}, link(jobPath(s.last_fire.job_id), fmtTime(s.last_fire.tick, s.time_zone))), h('div', { class: 'muted small' }, relTime(s.last_fire.fired_at), s.last_fire.skipped ? ' · skipped' : '', s.last_fire.trigger ? ' · triggered' : '')] : h('span', { class: 'zero' }, 'never')),
          h('td', {}, s.paused ? h('span', { class: 'badge b-paused' }, 'paused') : h('span', { class: 'badge b-active' }, 'active')),
          h('td', { class: 'num' }, h('span', { class: 'actions', 'data-perm': 'admin', style: 'justify-content:flex-end' },
            h('button', { class: 'btn btn-xs', type: 'button', 'data-key': 'trig-' + s.name, 'data-action': 'trigger',
              onclick: (ev) => act(ev.currentTarget, async () => { const j = await post('/v1/schedules/' + enc(s.name) + '/trigger'); return `${s.name}: job ${j.id} enqueued`; }) }, 'Trigger now'),
            h('button', { class: 'btn btn-xs', type: 'button', 'data-key': 'pause-' + s.name, 'data-action': s.paused ? 'resume' : 'pause',
              onclick: (ev) => act(ev.currentTarget, async () => { await post('/v1/schedules/' + enc(s.name) + (s.paused ? '/resume' : '/pause')); return `${s.name} ${s.paused ? 'resumed' : 'paused'}`; }) }, s.paused ? 'Resume' : 'Pause'),
            h('button', { class: 'btn btn-xs', type: 'button', 'data-key': 'edit-' + s.name, 'data-action': 'edit', onclick: () => scheduleDialog(s.name) }, 'Edit'),
            h('button', { class: 'btn btn-xs btn-danger', type: 'button', 'data-key': 'sdel-' + s.name, 'data-action': 'delete',
              onclick: async (ev) => {
                const btn = ev.currentTarget;
                const ok = await confirmDialog({ title: `Delete schedule ${s.name}?`, body: 'It fires no more. The jobs it enqueued stay.', confirm: 'Delete', danger: true });
                if (ok) act(btn, async () => { await call('DELETE', '/v1/schedules/' + enc(s.name)); return `Schedule ${s.name} deleted`; });
              } }, 'Delete'))))));
        applyPerms(main);
      },
    };
  }

  // scheduleDialog creates (name null) or edits a schedule. The definition is checked by
  // the server as it is typed (PUT ?dry_run=true), which also tells the next fire time.
  async function scheduleDialog(name) {
    let s = null;
    if (name) {
      try { s = await get('/v1/schedules/' + enc(name)); } catch (err) { toast(err.message, true); return; }
    }
    const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
    const f = {};
    const field = (key, label, input, hint, wide) => {
      f[key] = input;
      input.id = 'sf-' + key;
      input.setAttribute('aria-describedby', 'sh-' + key);
      return h('div', { class: 'field', style: wide ? 'grid-column: 1 / -1' : undefined }, h('label', { for: input.id }, label), input,
        h('div', { class: 'hint', id: 'sh-' + key, 'data-hint': hint || '' }, hint || ''));
    };
    const job = (s && s.job) || {};
    const payloadText = job.payload !== undefined ? JSON.stringify(job.payload, null, 2) : '';
    const preview = h('div', { class: 'hint', id: 'sched-preview', 'aria-live': 'polite' }, '');
    const save = h('button', { type: 'submit', class: 'btn btn-primary', value: 'save', id: 'sched-save' }, name ? 'Save' : 'Create');
    const form = h('form', { class: 'dialog-form', novalidate: true },
      h('h2', { id: 'sched-title-d' }, name ? `Edit schedule ${name}` : 'New schedule'),
      h('div', { class: 'form-grid' },
        field('name', 'Name', h('input', { value: name || '', readonly: !!name, autocomplete: 'off', required: true, spellcheck: 'false' }), 'letters, digits, - _ .'),
        field('queue', 'Queue', h('input', { value: s ? s.queue : '', autocomplete: 'off', required: true, spellcheck: 'false' })),
        field('spec', 'Spec', h('input', { value: s ? s.spec : '', autocomplete: 'off', required: true, spellcheck: 'false', placeholder: '0 2 * * *' }), 'cron (5 or 6 fields), @daily, @every 30s, @at 2027-01-01T09:00:00'),
        field('time_zone', 'Time zone', h('input', { value: s ? s.time_zone : (Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'), list: 'tz-list', autocomplete: 'off', spellcheck: 'false' }), 'IANA name, e.g. Europe/Paris'),
        field('type', 'Job type', h('input', { value: job.type || '', autocomplete: 'off', spellcheck: 'false' })),
        field('priority', 'Priority', h('input', { value: job.priority ?? 1024, inputmode: 'numeric' }), 'lower is more urgent'),
        field('payload', 'Payload (JSON)', h('textarea', { spellcheck: 'false', rows: '4' }, payloadText), job.payload_base64 ? 'This schedule has a binary payload: leave empty to keep it.' : 'optional', true),
        field('catch_up', 'Catch up', h('select', {}, h('option', { value: 'once' }, 'once: fire one missed tick'), h('option', { value: 'skip' }, 'skip missed ticks'))),
        h('div', { class: 'field' }, h('label', { class: 'check' }, f.paused = h('input', { type: 'checkbox', id: 'sf-paused', checked: s && s.paused }), 'Paused'))),
      preview,
      h('datalist', { id: 'tz-list' }, zones.map((z) => h('option', { value: z }))),
      h('div', { class: 'dialog-actions' }, h('button', { type: 'button', class: 'btn', value: 'cancel', onclick: () => dlg.close() }, 'Cancel'), save));
    if (s) f.catch_up.value = s.catch_up;
    const dlg = h('dialog', { 'aria-labelledby': 'sched-title-d', id: 'schedule-dialog' }, form);

    function body() {
      const b = { spec: f.spec.value.trim(), time_zone: f.time_zone.value.trim(), queue: f.queue.value.trim(), catch_up: f.catch_up.value, paused: f.paused.checked, job: {} };
      if (f.type.value.trim()) b.job.type = f.type.value.trim();
      const p = f.priority.value.trim();
      if (p !== '') b.job.priority = Number(p);
      const pl = f.payload.value.trim();
      if (pl) {
        try { b.job.payload = JSON.parse(pl); } catch (err) { throw Object.assign(new Error('payload: not JSON: ' + err.message), { field: 'job.payload' }); }
      } else if (job.payload_base64) b.job.payload_base64 = job.payload_base64;
      for (const k of ['lease', 'max_attempts', 'unique_key', 'metadata']) if (job[k] !== undefined) b.job[k] = job[k];
      if (s && s.start_at) b.start_at = s.start_at;
      if (s && s.end_at) b.end_at = s.end_at;
      return b;
    }
    function showError(err) {
      for (const [k, input] of Object.entries(f)) {
        const hint = document.getElementById('sh-' + k);
        const mine = err && err.field && (err.field === k || err.field === 'job.' + k || (k === 'name' && err.field === 'name'));
        input.toggleAttribute('aria-invalid', !!mine);
        if (mine) input.setAttribute('aria-invalid', 'true');
        if (hint) { hint.textContent = mine ? err.message : hint.dataset.hint; hint.classList.toggle('bad', !!mine); }
      }
      if (err && !Object.keys(f).some((k) => err.field === k || err.field === 'job.' + k)) {
        preview.textContent = err.message;
        preview.className = 'hint bad';
      }
    }
    let seq = 0, timer = 0;
    async function check() {
      const mine = ++seq;
      const n = f.name.value.trim();
      if (!f.spec.value.trim() || !f.queue.value.trim() || !n) { preview.textContent = 'Name, queue and spec are required.'; preview.className = 'hint'; showError(null); return false; }
      try {
        const r = await call('PUT', '/v1/schedules/' + enc(n) + '?dry_run=true', body());
        if (mine !== seq) return false;
        showError(null);
        preview.className = 'hint good';
        preview.textContent = r.next_fire_at ? `✓ Valid. Next fire ${fmtTime(r.next_fire_at, r.time_zone)} (${relTime(r.next_fire_at)}).` : '✓ Valid. No fire to come (paused, ended or spent).';
        return true;
      } catch (err) {
        if (mine !== seq) return false;
        showError(err);
        if (!err.field) { preview.textContent = err.message; preview.className = 'hint bad'; }
        return false;
      }
    }
    form.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(check, 250); });
    form.addEventListener('change', () => { clearTimeout(timer); timer = setTimeout(check, 50); });
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let b;
      try { b = body(); } catch (err) { showError(err); return; }
      save.disabled = true;
      try {
        await call('PUT', '/v1/schedules/' + enc(f.name.value.trim()), b);
        dlg.close();
        toast(`Schedule ${f.name.value.trim()} ${name ? 'saved' : 'created'}`);
        if (current && current.refresh) current.refresh().catch(() => {});
      } catch (err) {
        showError(err);
        if (!err.field) toast(err.message, true);
      } finally {
        save.disabled = false;
      }
    });
    dlg.addEventListener('close', () => dlg.remove());
    document.body.append(dlg);
    dlg.showModal();
    (name ? f.spec : f.name).focus();
    if (name) check();
  }

  // ---- workers

  // The server keeps no list of workers: this page reads the reserved jobs of the queues
  // that have some, and groups them by the worker name given at reservation. To find those
  // queues it reads the listing by name until it has found every reserved job that
  // /v1/stats counts, or BUSY_QUEUES busy queues, or WORKER_PAGES pages of it (the first
  // 3,000 queues), whichever comes first: a refresh stays bounded at any queue count.
  const WORKER_PAGES = 3;
  const BUSY_QUEUES = 50;
  async function busyQueues() {
    const stats = await get('/v1/stats');
    const out = { queues: [], read: 0, found: 0, reserved: stats.jobs.reserved, total: stats.queues, cut: false };
    let after = '';
    for (let i = 0; out.found < out.reserved && out.queues.length < BUSY_QUEUES; i++) {
      if (i === WORKER_PAGES) { out.cut = true; break; }
      const page = await queuesPage({ limit: LIST_PAGE, after });
      out.read += page.queues.length;
      for (const q of page.queues) {
        if (q.stats.reserved > 0 && out.queues.length < BUSY_QUEUES) { out.queues.push(q); out.found += q.stats.reserved; }
      }
      if (!page.next) break;
      after = page.next;
    }
    return out;
  }

  function workersPage() {
    const summary = h('div', { class: 'table-wrap' });
    const jobsBox = h('div', { class: 'table-wrap' });
    const note = h('p', { class: 'muted small' });
    return {
      title: 'Workers',
      nav: 'workers',
      mount() {
        return [
          pageHead(null, 'Workers'),
          h('section', { class: 'panel', 'aria-labelledby': 'w-title' }, h('div', { class: 'panel-head' }, h('h2', { id: 'w-title' }, 'Working now')), summary),
          h('section', { class: 'panel', 'aria-labelledby': 'wj-title' }, h('div', { class: 'panel-head' }, h('h2', { id: 'wj-title' }, 'Jobs in flight')), jobsBox),
          note,
        ];
      },
      async refresh() {
        const busy = await busyQueues();
        const jobs = [];
        let truncated = false;
        for (const q of busy.queues) {
          let cursor = '';
          for (let i = 0; i < 20; i++) {
            const page = await get(`/v1/queues/${enc(q.name)}/jobs?state=reserved&limit=1000` + (cursor ? '&cursor=' + enc(cursor) : ''));
            jobs.push(...page.jobs);
            cursor = page.next_cursor;
            if (!cursor) break;
            if (i === 19) truncated = true;
          }
        }
        if (busy.queues.length === BUSY_QUEUES && busy.found < busy.reserved) truncated = true;
        const byWorker = new Map();
        for (const j of jobs) {
          const w = j.worker || '';
          if (!byWorker.has(w)) byWorker.set(w, { name: w, queues: new Set(), jobs: 0, since: j.reserved_at, lease: j.lease_expires_at });
          const e = byWorker.get(w);
          e.queues.add(j.queue);
          e.jobs++;
          if (Date.parse(j.reserved_at) < Date.parse(e.since)) e.since = j.reserved_at;
          if (Date.parse(j.lease_expires_at) < Date.parse(e.lease)) e.lease = j.lease_expires_at;
        }
        const rows = [...byWorker.values()].sort((a, b) => b.jobs - a.jobs || (a.name < b.name ? -1 : 1));
        swap(summary, rows.length
          ? h('table', { id: 'worker-table' },
            h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Worker'), h('th', { scope: 'col' }, 'Queues'), h('th', { scope: 'col', class: 'num' }, 'Jobs in flight'),
              h('th', { scope: 'col' }, 'Oldest reservation'), h('th', { scope: 'col' }, 'Next lease end'))),
            h('tbody', {}, rows.map((w) => h('tr', { 'data-worker': w.name },
              h('td', { class: 'name-cell' }, w.name || h('span', { class: 'zero' }, '(unnamed)')),
              h('td', { class: 'wrap' }, [...w.queues].sort().map((q, i) => [i ? ', ' : '', link(queuePath(q), q)])),
              num(w.jobs), h('td', {}, timeCell(w.since)), h('td', {}, timeCell(w.lease))))))
          : h('p', { class: 'empty' }, 'No job is reserved at the moment.'));
        jobs.sort((a, b) => Date.parse(a.reserved_at) - Date.parse(b.reserved_at));
        const shown = jobs.slice(0, 200);
        swap(jobsBox, shown.length
          ? h('table', {},
            h('thead', {}, h('tr', {}, ['Job', 'Queue', 'Type', 'Worker', 'Reserved', 'Lease ends'].map((c) => h('th', { scope: 'col' }, c)))),
            h('tbody', {}, shown.map((j) => h('tr', { 'data-job': j.id },
              h('td', {}, link(jobPath(j.id), j.id)), h('td', {}, link(queuePath(j.queue), j.queue)), h('td', {}, j.type || '–'),
              h('td', {}, j.worker || h('span', { class: 'zero' }, '(unnamed)')), h('td', {}, timeCell(j.reserved_at)), h('td', {}, timeCell(j.lease_expires_at))))))
          : h('p', { class: 'empty' }, 'Nothing in flight.'));
        note.textContent = 'Workers are known by the name they give when they reserve (the Go worker and spool work send host/pid). ' +
          (jobs.length > shown.length ? `Showing the oldest ${shown.length} of ${fmtNum(jobs.length)} jobs in flight. ` : '') +
          (truncated ? 'Only part of the reserved jobs was read: many queues or jobs in flight. ' : '') +
          (busy.cut && busy.found < busy.reserved
            ? `Showing queues among the first ${fmtNum(busy.read)} by name, of ${fmtNum(busy.total)}: ${fmtNum(busy.reserved - busy.found)} more reserved ${busy.reserved - busy.found === 1 ? 'job is' : 'jobs are'} in queues beyond them.`
            : '');
      },
    };
  }

  // ---------------------------------------------------------------- router and polling

  let current = null;
  let token = 0;

  function route() {
    const raw = location.pathname.startsWith(PREFIX) ? location.pathname.slice(PREFIX.length) : '';
    const params = new URLSearchParams(location.search);
    let m;
    try {
      if (raw === '' || raw === 'overview') return overviewPage();
      if ((m = raw.match(/^queues\/(.+)$/))) return queuePage(decodeURIComponent(m[1]), params);
      if ((m = raw.match(/^jobs\/([^/]+)$/))) return jobPage(decodeURIComponent(m[1]));
      if (raw === 'schedules') return schedulesPage();
      if (raw === 'workers') return workersPage();
    } catch { /* a malformed %-escape: not a page */ }
    return {
      title: 'Not found', nav: '',
      mount: () => [pageHead(null, 'Not found'), h('div', { class: 'panel' }, h('p', { class: 'empty' }, 'No such page. ', link('', 'Back to the overview')))],
    };
  }

  async function render() {
    const mine = ++token;
    current = route();
    document.title = current.title + ' · spool';
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === current.nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    main.dataset.loaded = 'false';
    main.dataset.scope = current.scope || '';
    swap(main, current.mount());
    applyPerms(main);
    await refresh(mine, true);
    if (mine === token) main.dataset.loaded = 'true';
  }

  // refreshing skips a poll while the last one runs; a page's first load (force) never waits.
  let refreshing = false;
  async function refresh(mine, force) {
    if (!current || !current.refresh || (refreshing && !force)) return;
    refreshing = true;
    try {
      await current.refresh();
      if (mine === token) {
        clearBanner();
        main.dataset.refreshed = String(Date.now());
      }
    } catch (err) {
      if (mine === token) showBanner(err.status === 401 ? 'The server wants an API token: set one with the Token button.' : 'Could not refresh: ' + err.message);
    } finally {
      refreshing = false;
      applyPerms(main);
    }
  }

  function navigate(path) {
    history.pushState(null, '', path);
    render().then(() => main.focus({ preventScroll: true }));
    window.scrollTo(0, 0);
  }

  document.addEventListener('click', (ev) => {
    const a = ev.target.closest && ev.target.closest('a[data-link]');
    if (!a || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    ev.preventDefault();
    navigate(a.getAttribute('href'));
  });
  window.addEventListener('popstate', () => render());

  document.getElementById('job-search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const input = document.getElementById('job-id');
    const id = input.value.trim();
    if (!/^[0-9]+$/.test(id)) { input.setAttribute('aria-invalid', 'true'); toast('A job id is a number.', true); return; }
    input.removeAttribute('aria-invalid');
    navigate(PREFIX + jobPath(id));
  });

  // live refresh
  const liveBtn = document.getElementById('live-toggle');
  let live = sessionStorage.getItem('spool.live') !== 'off';
  const showLive = () => { liveBtn.setAttribute('aria-pressed', String(live)); liveBtn.querySelector('.live-label').textContent = live ? 'Live' : 'Paused'; };
  liveBtn.addEventListener('click', () => { live = !live; sessionStorage.setItem('spool.live', live ? 'on' : 'off'); showLive(); if (live) refresh(token); });
  showLive();
  setInterval(() => {
    // No refresh while hidden, or while a dialog is open (it may be reading the data).
    if (live && !document.hidden && !document.querySelector('dialog[open]')) refresh(token);
  }, POLL_MS);
  document.addEventListener('visibilitychange', () => { if (!document.hidden && live) refresh(token); });

  // token
  const tokenDlg = document.getElementById('token-dialog');
  const tokenInput = document.getElementById('token-input');
  document.getElementById('token-open').addEventListener('click', () => {
    tokenInput.value = sessionStorage.getItem(tokenKey) || '';
    tokenDlg.returnValue = ''; // Escape leaves it as it is
    tokenDlg.showModal();
    tokenInput.focus();
  });
  tokenDlg.addEventListener('close', () => {
    if (tokenDlg.returnValue === 'save' && tokenInput.value.trim()) sessionStorage.setItem(tokenKey, tokenInput.value.trim());
    else if (tokenDlg.returnValue === 'clear') sessionStorage.removeItem(tokenKey);
    else return;
    perms.reset();
    document.getElementById('token-open').textContent = sessionStorage.getItem(tokenKey) ? 'Token ✓' : 'Token';
    render();
  });
  if (sessionStorage.getItem(tokenKey)) document.getElementById('token-open').textContent = 'Token ✓';

  render();
})();
