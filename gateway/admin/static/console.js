// Stopgate compliance console. Plain JavaScript, no libraries, no network beyond this gateway.
//
// Every value from the server is rendered with textContent (the page's Content-Security-Policy
// also enables Trusted Types with no policy, so an HTML-string sink would throw). Writes carry the
// session's CSRF token in X-CSRF-Token; the session itself is an HttpOnly cookie this script
// never sees.
'use strict';

(() => {
  const state = {
    csrf: null,
    canWrite: false,
    blockedToken: null,
    blockedHistory: [],
    blockedNext: null,
    consentsToken: null,
    consentsNext: null,
    consentsPrev: null,
    filled: false,
    reviewNext: null,
  };
  const SVG = 'http://www.w3.org/2000/svg';
  const $ = (id) => document.getElementById(id);

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }

  function svg(tag, attrs) {
    const node = document.createElementNS(SVG, tag);
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
    return node;
  }

  function setStatus(text, kind) {
    const status = $('status');
    status.textContent = text || '';
    status.className = 'status' + (kind ? ' ' + kind : '');
  }

  class ApiError extends Error {
    constructor(message, status, data) {
      super(message);
      this.status = status;
      this.data = data;
    }
  }

  function messageOf(data, response) {
    if (data && data.error && data.error.message) return data.error.message;
    if (data && Array.isArray(data.errors) && data.errors.length && data.errors[0].message) {
      return data.errors[0].message;
    }
    if (data && data.message) return data.message;
    return 'HTTP ' + response.status;
  }

  async function api(method, url, body) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (method !== 'GET' && state.csrf) headers['X-CSRF-Token'] = state.csrf;
    const response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: 'same-origin',
      cache: 'no-store',
    });
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) {
      if (response.status === 401 && url !== '/admin/session') showSignIn('Your session ended: sign in again.');
      throw new ApiError(messageOf(data, response), response.status, data);
    }
    return data;
  }

  function fail(error) {
    setStatus(error && error.message ? error.message : String(error), 'error');
  }

  // --- sign-in ---------------------------------------------------------------------------

  function showSignIn(message) {
    state.csrf = null;
    $('console').hidden = true;
    $('whoami').hidden = true;
    $('signin').hidden = false;
    setStatus(message || '', message ? 'error' : '');
    $('signin-token').focus();
  }

  function fillChoices(select, values) {
    for (const value of values) select.append(new Option(value, value));
  }

  function enter(me) {
    state.csrf = me.csrfToken || null;
    state.canWrite = Boolean(me.canWrite);
    $('who-name').textContent = me.name;
    $('who-role').textContent = me.role;
    $('whoami').hidden = false;
    $('signin').hidden = true;
    $('console').hidden = false;
    if (!state.filled) {
      const form = $('blocked-filter');
      fillChoices(form.elements.reason, me.reasons || []);
      fillChoices(form.elements.dialect, me.dialects || []);
      state.filled = true;
    }
    const change = $('change-card');
    if (change) {
      if (state.canWrite) change.hidden = false;
      else change.remove(); // the auditor gets no write controls at all
    }
    setStatus('');
    loadChart().catch(fail);
    loadBlocked(null, true).catch(fail);
    loadConsents(null).catch(fail);
    loadReviews(false).catch(fail);
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $('signin-token');
    try {
      const me = await api('POST', '/admin/session', { token: input.value });
      input.value = '';
      enter(me);
    } catch (error) {
      input.value = '';
      setStatus(error.status === 401 ? 'That token is not valid here.' : error.message, 'error');
    }
  }

  async function signOut() {
    try {
      await api('DELETE', '/admin/session');
    } catch (error) {
      fail(error);
      return;
    }
    window.location.assign('/admin/');
  }

  // --- chart -------------------------------------------------------------------------------

  async function loadChart() {
    const data = await api('GET', '/admin/stats/daily');
    drawChart($('chart'), data.days || []);
  }

  function drawChart(container, days) {
    const width = Math.max(480, Math.round(container.clientWidth || 760));
    const height = 200;
    const left = 36;
    const bottom = 24;
    const top = 10;
    const plotHeight = height - bottom - top;
    const highest = Math.max(0, ...days.map((d) => Math.max(d.blocked, d.optOuts)));
    const max = highest <= 2 ? 2 : highest + (highest % 2); // even, so the middle line is whole
    const slot = (width - left - 4) / Math.max(1, days.length);
    const bar = Math.max(1, slot / 2 - 1.5);
    const chart = svg('svg', {
      viewBox: `0 0 ${width} ${height}`,
      role: 'img',
      'aria-label': 'Blocked sends and opt-outs per day',
      id: 'chart-svg',
    });
    for (const fraction of [0, 0.5, 1]) {
      const y = top + plotHeight * (1 - fraction);
      chart.append(svg('line', { x1: left, x2: width, y1: y, y2: y, class: 'grid' }));
      const label = svg('text', { x: left - 6, y: y + 4, class: 'axis', 'text-anchor': 'end' });
      label.textContent = String(Math.round(max * fraction));
      chart.append(label);
    }
    days.forEach((day, i) => {
      const x = left + i * slot + 1;
      for (const [value, name, offset] of [
        [day.blocked, 'blocked', 0],
        [day.optOuts, 'optout', bar + 1],
      ]) {
        const h = (value / max) * plotHeight;
        const rect = svg('rect', {
          x: x + offset,
          y: top + plotHeight - h,
          width: bar,
          height: Math.max(h, value ? 1 : 0),
          class: 'bar ' + name,
        });
        const title = svg('title');
        title.textContent = `${day.date}: ${value} ${name === 'blocked' ? 'blocked' : 'opt-outs'}`;
        rect.append(title);
        chart.append(rect);
      }
      if (i % 5 === 0 || i === days.length - 1) {
        const label = svg('text', { x: x + bar, y: height - 6, class: 'axis', 'text-anchor': 'middle' });
        label.textContent = day.date.slice(5);
        chart.append(label);
      }
    });
    const totals = days.reduce((acc, d) => [acc[0] + d.blocked, acc[1] + d.optOuts], [0, 0]);
    const caption = el('p', `${totals[0]} blocked sends and ${totals[1]} opt-outs in ${days.length} days`, 'hint');
    caption.id = 'chart-caption';
    container.replaceChildren(chart, caption);
  }

  // --- blocked sends -----------------------------------------------------------------------

  function toIso(localValue) {
    if (!localValue) return '';
    const when = new Date(localValue);
    return Number.isNaN(when.getTime()) ? '' : when.toISOString();
  }

  function blockedFilter() {
    const form = $('blocked-filter');
    const params = new URLSearchParams();
    for (const name of ['from_time', 'to_time']) {
      const iso = toIso(form.elements[name].value);
      if (iso) params.set(name, iso);
    }
    for (const name of ['business', 'customer', 'reason', 'dialect']) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  async function loadBlocked(token, reset) {
    if (reset) state.blockedHistory = [];
    const params = blockedFilter();
    const exportParams = new URLSearchParams(params);
    exportParams.set('format', 'csv');
    $('blocked-export').href = '/admin/blocked?' + exportParams.toString();
    params.set('per_page', '25');
    if (token) params.set('page_token', token);
    const data = await api('GET', '/admin/blocked?' + params.toString());
    state.blockedToken = token;
    state.blockedNext = (data.paging && data.paging.nextPageToken) || null;
    renderBlocked(data);
  }

  function renderBlocked(data) {
    const body = $('blocked-table').tBodies[0];
    const rows = data.records.map((entry) => {
      const row = document.createElement('tr');
      row.className = 'blocked-row';
      let message;
      if (entry.text !== undefined) {
        message = el('td', entry.text, 'message');
      } else {
        message = el('td', `(${entry.textLength} characters, text not kept)`, 'muted');
      }
      row.append(
        el('td', entry.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), 'nowrap'),
        el('td', entry.dialect),
        el('td', entry.from, 'nowrap'),
        el('td', entry.to, 'nowrap'),
        (() => {
          const cell = el('td');
          cell.append(el('span', entry.reason, 'badge reason'));
          return cell;
        })(),
        message,
        el('td', entry.requestId, 'muted small'),
      );
      return row;
    });
    if (!rows.length) {
      const row = document.createElement('tr');
      const cell = el('td', 'No blocked sends match this filter.', 'muted');
      cell.colSpan = 7;
      row.append(cell);
      rows.push(row);
    }
    body.replaceChildren(...rows);
    const totals = $('blocked-totals');
    const count = data.totals.count;
    const parts = [el('strong', count === 1 ? '1 blocked send matches' : `${count} blocked sends match`)];
    for (const [reason, count] of Object.entries(data.totals.byReason)) {
      const chip = el('span', null, 'chip');
      chip.append(el('span', reason, 'badge reason'), document.createTextNode(' ' + count));
      parts.push(chip);
    }
    totals.replaceChildren(...parts);
    const page = state.blockedHistory.length + 1;
    $('blocked-page').textContent = `page ${page}`;
    $('blocked-newer').disabled = state.blockedHistory.length === 0;
    $('blocked-older').disabled = !state.blockedNext;
  }

  // --- opt-out list ------------------------------------------------------------------------

  function consentFilter() {
    const form = $('consent-search');
    const params = new URLSearchParams();
    for (const name of ['to', 'from', 'optStatus']) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  async function loadConsents(token) {
    const params = consentFilter();
    $('consents-export').href = '/admin/consents/export?' + params.toString();
    params.set('perPage', '20');
    if (token) params.set('pageToken', token);
    const data = await api('GET', '/admin/consents?' + params.toString());
    state.consentsNext = (data.paging && data.paging.nextPageToken) || null;
    state.consentsPrev = (data.paging && data.paging.previousPageToken) || null;
    renderConsents(data.records);
  }

  function statusBadge(status) {
    return el('span', status, 'badge ' + (status === 'OptOut' ? 'out' : status === 'OptIn' ? 'in' : 'gone'));
  }

  function renderConsents(records) {
    const body = $('consents-table').tBodies[0];
    const rows = records.map((record) => {
      const row = document.createElement('tr');
      row.className = 'consent-row';
      const status = el('td');
      status.append(statusBadge(record.optStatus));
      const actions = el('td', null, 'nowrap');
      const history = el('button', 'History', 'secondary small');
      history.type = 'button';
      history.addEventListener('click', () => loadHistory(record.to, record.from).catch(fail));
      actions.append(history);
      if (state.canWrite) {
        const flip = record.optStatus === 'OptOut' ? 'OptIn' : 'OptOut';
        const change = el('button', flip === 'OptIn' ? 'Opt in…' : 'Opt out…', 'secondary small');
        change.type = 'button';
        change.addEventListener('click', () => prefillChange(record.to, record.from, flip));
        actions.append(change);
      }
      row.append(
        el('td', record.to, 'nowrap'),
        el('td', record.from === '*' ? '* (every number)' : record.from, 'nowrap'),
        status,
        el('td', record.source),
        el('td', record.lastModifiedTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), 'nowrap'),
        el('td', record.note || '', 'note'),
        actions,
      );
      return row;
    });
    if (!rows.length) {
      const row = document.createElement('tr');
      const cell = el('td', 'No records match.', 'muted');
      cell.colSpan = 7;
      row.append(cell);
      rows.push(row);
    }
    body.replaceChildren(...rows);
    $('consents-next').disabled = !state.consentsNext;
    $('consents-prev').disabled = !state.consentsPrev;
  }

  async function loadHistory(to, from) {
    const entries = [];
    let token = null;
    for (let page = 0; page < 20; page += 1) {
      const params = new URLSearchParams({ to, from, perPage: '200' });
      if (token) params.set('pageToken', token);
      const data = await api('GET', '/admin/consents/history?' + params.toString());
      entries.push(...data.records);
      token = data.paging && data.paging.nextPageToken;
      if (!token) break;
    }
    $('history-pair').textContent = `${to} ← ${from === '*' ? '* (every number)' : from}`;
    const rows = entries.map((entry) => {
      const row = document.createElement('tr');
      row.className = 'history-row';
      const change = el('td', null, 'nowrap');
      change.append(
        entry.oldStatus ? statusBadge(entry.oldStatus) : el('span', 'none', 'muted'),
        document.createTextNode(' → '),
        statusBadge(entry.newStatus),
      );
      row.append(
        el('td', entry.time.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), 'nowrap'),
        change,
        el('td', entry.source),
        el('td', entry.actor),
        el('td', entry.note || '', 'note'),
      );
      return row;
    });
    $('history-table').tBodies[0].replaceChildren(...rows);
    $('history').hidden = false;
  }

  function prefillChange(to, from, status) {
    const form = $('change-form');
    if (!form) return;
    form.elements.to.value = to;
    form.elements.from.value = from;
    form.elements.optStatus.value = status;
    form.elements.note.focus();
    form.scrollIntoView({ behavior: 'smooth', block: 'center' });
  }

  async function submitChange(event) {
    event.preventDefault();
    const form = event.target;
    const note = form.elements.note.value.trim();
    if (!note) {
      setStatus('A note is required: say why this change is made.', 'error');
      return;
    }
    const record = {
      to: form.elements.to.value.trim(),
      from: form.elements.from.value.trim() || '*',
      optStatus: form.elements.optStatus.value,
      note,
    };
    try {
      const data = await api('PATCH', '/admin/consents', { records: [record] });
      if (data.errors && data.errors.length) {
        setStatus(data.errors[0].message, 'error');
        return;
      }
      const written = data.records[0];
      const verb = written.optStatus === 'OptOut' ? 'opted out' : 'opted in';
      const scope = written.from === '*' ? 'every business number' : written.from;
      setStatus(`Recorded: ${written.to} ${verb} for ${scope}.`, 'ok');
      form.elements.note.value = '';
      const search = $('consent-search');
      search.elements.to.value = written.to;
      search.elements.from.value = '';
      search.elements.optStatus.value = '';
      await loadConsents(null);
      await loadHistory(written.to, written.from);
      await loadChart();
    } catch (error) {
      fail(error);
    }
  }

  // --- needs review (unclear plain-language messages) --------------------------------------

  async function loadReviews(more) {
    const params = new URLSearchParams({ status: $('review-filter').elements.status.value });
    if (more && state.reviewNext) params.set('before_id', String(state.reviewNext));
    const data = await api('GET', '/admin/reviews?' + params.toString());
    state.reviewNext = data.nextBeforeId;
    renderReviews(data.reviews, more);
  }

  function renderReviews(entries, more) {
    const body = $('review-table').tBodies[0];
    const rows = entries.map((entry) => {
      const row = document.createElement('tr');
      row.className = 'review-row';
      row.dataset.id = String(entry.id);
      const status = el('td');
      const badge = { 'opted-out': 'out', open: 'reason' }[entry.status] || 'gone';
      status.append(el('span', entry.status, 'badge ' + badge));
      const actions = el('td', null, 'nowrap');
      if (state.canWrite && entry.status === 'open') {
        const optOut = el('button', 'Opt out', 'small review-opt-out');
        optOut.type = 'button';
        optOut.addEventListener('click', () => resolveReview(entry, 'opt-out').catch(fail));
        const dismiss = el('button', 'Dismiss', 'secondary small review-dismiss');
        dismiss.type = 'button';
        dismiss.addEventListener('click', () => resolveReview(entry, 'dismiss').catch(fail));
        actions.append(optOut, dismiss);
      } else if (entry.resolvedBy) {
        actions.append(el('span', 'by ' + entry.resolvedBy, 'muted'));
      }
      row.append(
        el('td', entry.receivedAt.replace('T', ' ').replace(/\.\d+Z$/, 'Z'), 'nowrap'),
        el('td', entry.from, 'nowrap'),
        el('td', entry.to, 'nowrap'),
        el('td', entry.text, 'note review-text'),
        el('td', entry.explanation, 'note review-why'),
        el('td', entry.clarified ? 'yes' : 'no'),
        status,
        actions,
      );
      return row;
    });
    if (!rows.length && !more) {
      const row = document.createElement('tr');
      const cell = el('td', 'Nothing to review.', 'muted');
      cell.colSpan = 8;
      row.append(cell);
      rows.push(row);
    }
    if (more) body.append(...rows);
    else body.replaceChildren(...rows);
    $('review-more').disabled = !state.reviewNext;
  }

  async function resolveReview(entry, action) {
    await api('POST', '/admin/reviews/' + encodeURIComponent(String(entry.id)) + '/' + action);
    setStatus(action === 'opt-out' ? 'Opted out ' + entry.from + '.' : 'Dismissed.', 'ok');
    await loadReviews(false);
    if (action === 'opt-out') {
      await loadConsents(null);
      await loadChart();
    }
  }

  // --- wiring ------------------------------------------------------------------------------

  function wire() {
    $('signin-form').addEventListener('submit', signIn);
    $('sign-out').addEventListener('click', signOut);
    $('blocked-filter').addEventListener('submit', (event) => {
      event.preventDefault();
      setStatus('');
      loadBlocked(null, true).catch(fail);
    });
    $('blocked-filter').addEventListener('reset', () => {
      setTimeout(() => loadBlocked(null, true).catch(fail), 0);
    });
    $('blocked-older').addEventListener('click', () => {
      if (!state.blockedNext) return;
      state.blockedHistory.push(state.blockedToken);
      loadBlocked(state.blockedNext, false).catch(fail);
    });
    $('blocked-newer').addEventListener('click', () => {
      if (!state.blockedHistory.length) return;
      loadBlocked(state.blockedHistory.pop(), false).catch(fail);
    });
    $('consent-search').addEventListener('submit', (event) => {
      event.preventDefault();
      setStatus('');
      $('history').hidden = true;
      loadConsents(null).catch(fail);
    });
    $('consents-next').addEventListener('click', () => loadConsents(state.consentsNext).catch(fail));
    $('consents-prev').addEventListener('click', () => loadConsents(state.consentsPrev).catch(fail));
    $('change-form').addEventListener('submit', submitChange);
    $('review-filter').elements.status.addEventListener('change', () => loadReviews(false).catch(fail));
    $('review-more').addEventListener('click', () => loadReviews(true).catch(fail));
  }

  async function boot() {
    wire();
    try {
      enter(await api('GET', '/admin/session'));
    } catch (error) {
      if (error.status === 401) showSignIn();
      else fail(error);
    }
  }

  document.addEventListener('DOMContentLoaded', () => {
    boot().catch(fail);
  });
})();
