// What the server's pages share: the logout button, calls to the UI's API, the audit log, times.
// Loaded after charts.js, whose element builder it uses.
'use strict';

(function (global) {
  const { el } = global.ServoCharts;

  // `GET` (with the ETag of the last answer, so an unchanged document costs a 304) or `POST` JSON.
  const etags = new Map();
  async function api(path, body) {
    const init = body === undefined
      ? { headers: etags.has(path) ? { 'If-None-Match': etags.get(path).tag } : {} }
      : { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) };
    const response = await fetch(path, init);
    if (response.status === 401) { window.location.reload(); throw new Error('logged out'); }
    if (response.status === 304) return { unchanged: true, data: etags.get(path).data };
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || `${response.status} ${response.statusText}`);
    if (body === undefined && response.headers.get('ETag')) etags.set(path, { tag: response.headers.get('ETag'), data });
    return { unchanged: false, data };
  }

  function ago(seconds) {
    if (!seconds) return 'never';
    const s = Math.max(0, Date.now() / 1000 - seconds);
    if (s < 90) return `${Math.round(s)} s ago`;
    if (s < 5400) return `${Math.round(s / 60)} min ago`;
    if (s < 129600) return `${Math.round(s / 3600)} h ago`;
    return `${Math.round(s / 86400)} d ago`;
  }

  function when(seconds) {
    return new Date(seconds * 1000).toISOString().replace('T', ' ').replace(/\.\d+Z$/, ' UTC');
  }

  function audit(container, entries) {
    if (!entries.length) { container.replaceChildren(el('p', { class: 'muted', text: 'No operator action yet.' })); return; }
    container.replaceChildren(el('table', { class: 'audit' }, [
      el('thead', {}, [el('tr', {}, ['when', 'operator', 'action', 'application', 'detail'].map((h) => el('th', { scope: 'col', text: h })))]),
      el('tbody', {}, entries.map((e) => el('tr', {}, [when(e.at), e.operator, e.action, e.application, e.detail]
        .map((v) => el('td', { text: v }))))),
    ]));
  }

  // Asks again every `seconds`, never two at once; errors are shown, not thrown.
  function poll(seconds, refresh, onError) {
    let busy = false;
    const tick = async () => {
      if (busy) return;
      busy = true;
      try { await refresh(); onError(null); } catch (e) { onError(e); } finally { busy = false; }
    };
    tick();
    return setInterval(tick, seconds * 1000);
  }

  document.getElementById('logout')?.addEventListener('click', async () => {
    await fetch('/ui/logout', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: '{}' });
    window.location.href = '/';
  });

  global.ServoPage = { el, api, ago, when, audit, poll };
})(window);
