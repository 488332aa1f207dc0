// The login form: trades the operator token for an HttpOnly cookie, then shows the page asked for.
'use strict';
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const error = document.getElementById('login-error');
  error.textContent = '';
  const token = document.getElementById('token').value.trim();
  const response = await fetch('/ui/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ token }),
  });
  if (response.ok) window.location.reload();
  else error.textContent = (await response.json().catch(() => ({}))).detail || `login failed (${response.status})`;
});
