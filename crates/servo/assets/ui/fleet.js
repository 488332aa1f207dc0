// The fleet page: every application's study at a glance, refreshed every few seconds.
'use strict';

(function () {
  const { el, api, ago, audit, poll } = window.ServoPage;
  const { sig } = window.ServoCharts;
  const fleet = document.getElementById('fleet');
  const problem = el('p', { class: 'error', role: 'alert' });
  fleet.before(problem);

  function pct(change, maximize) {
    if (change === null || change === undefined) return '';
    const worse = maximize ? change < 0 : change > 0;
    return `${change > 0 ? '+' : ''}${sig(change * 100)} %${worse ? ' (worse)' : ''}`;
  }

  const head = ['application', 'state', 'trials', 'objective', 'baseline', 'best', 'change', 'last contact', 'last error'];
  const tbody = el('tbody');
  const table = el('table', { class: 'fleet' }, [
    el('thead', {}, [el('tr', {}, head.map((h) => el('th', { scope: 'col', text: h })))]), tbody]);

  // Rows are updated in place, so a refresh never takes the focus or a click away from a link.
  function row(a) {
    let tr = tbody.querySelector(`tr[data-app="${CSS.escape(a.application)}"]`);
    if (!tr) {
      tr = el('tr', { 'data-app': a.application }, head.map(() => el('td')));
      tr.cells[0].append(el('a', { href: `/ui/apps/${a.application.split('/').map(encodeURIComponent).join('/')}`, text: a.application }));
      tr.cells[1].append(el('span'));
      tr.cells[8].className = 'error';
      tbody.append(tr);
    }
    const state = tr.cells[1].firstChild;
    state.className = `state ${a.state.replace(' ', '-')}`;
    state.title = a.reason || '';
    state.textContent = a.state;
    const texts = [null, null, `${a.trials_done} / ${a.trials_planned}${a.running ? ` (+${a.running} running)` : ''}`,
      `${a.maximize ? 'max' : 'min'} ${a.objective}`, sig(a.baseline),
      a.best === null ? '' : `${sig(a.best)} (trial ${a.best_trial})`, pct(a.relative_change, a.maximize),
      ago(a.last_contact), a.last_error || ''];
    texts.forEach((text, i) => { if (text !== null && tr.cells[i].textContent !== text) tr.cells[i].textContent = text; });
  }

  function render(data) {
    if (!data.applications.length) {
      fleet.replaceChildren(el('p', { class: 'muted', text: 'No application yet: add one with `servo optimizer app create ORG/APP`.' }));
    } else {
      if (table.parentNode !== fleet) fleet.replaceChildren(table);
      const names = new Set(data.applications.map((a) => a.application));
      for (const tr of [...tbody.rows]) if (!names.has(tr.dataset.app)) tr.remove();
      data.applications.forEach(row);
    }
    audit(document.getElementById('audit'), data.audit);
  }

  poll(3, async () => {
    const { unchanged, data } = await api('/ui/api/fleet');
    if (!unchanged) render(data);
  }, (e) => { problem.textContent = e ? `cannot refresh: ${e.message}` : ''; });
})();
