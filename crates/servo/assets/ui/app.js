// An application's page: its study's charts and trials, refreshed as its servo reports trials, and
// the operator's actions, each confirmed first.
'use strict';

(function () {
  const { api, ago, audit, poll } = window.ServoPage;
  const name = document.querySelector('main').dataset.app;
  const path = `/ui/api/apps/${name.split('/').map(encodeURIComponent).join('/')}`;
  const status = document.getElementById('status');
  const error = document.getElementById('app-error');
  const state = document.getElementById('state');
  const budget = document.getElementById('budget');
  let update = null;

  function render(data) {
    const a = data.application;
    state.textContent = a.state;
    state.className = `state ${a.state.replace(' ', '-')}`;
    state.title = a.reason || '';
    status.textContent = `${a.trials_done} of ${a.trials_planned} trials done${a.running ? `, ${a.running} running` : ''}; servo last seen ${ago(a.last_contact)}`
      + (a.reason ? `. ${a.reason}` : '');
    document.getElementById('pause').disabled = a.state === 'paused';
    document.getElementById('resume').disabled = a.state !== 'paused';
    if (document.activeElement !== budget) budget.value = a.trials_planned;
    error.textContent = a.last_error ? `last error: ${a.last_error}` : '';
    if (data.view) {
      if (update) update(data.view);
      else update = window.ServoCharts.mount(document.getElementById('study'), data.view);
    }
    audit(document.getElementById('audit'), data.audit);
  }

  async function refresh() {
    const { unchanged, data } = await api(path);
    if (!unchanged) render(data);
  }

  async function act(action, question, body) {
    if (!window.confirm(question)) return;
    try {
      await api(`${path}/${action}`, body || {});
      await refresh();
    } catch (e) {
      error.textContent = `${action} failed: ${e.message}`;
    }
  }

  document.getElementById('pause').addEventListener('click', () =>
    act('pause', `Pause ${name}? Its servo is told to sleep after the current trial.`));
  document.getElementById('resume').addEventListener('click', () =>
    act('resume', `Resume ${name}?`));
  document.getElementById('set-budget').addEventListener('click', () => {
    const trials = Number(budget.value);
    if (!Number.isInteger(trials) || trials < 1) { error.textContent = 'the budget is a whole number of trials, at least 1'; return; }
    act('budget', `Set the trial budget of ${name} to ${trials}?`, { trials });
  });
  document.getElementById('retire').addEventListener('click', () =>
    act('retire', `Retire the current study of ${name}? Its trials stay in the store, and the next description starts a new study.`));

  poll(2, refresh, (e) => { if (e) error.textContent = `cannot refresh: ${e.message}`; });
})();
