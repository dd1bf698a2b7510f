// Switchyard operator plane: the little behaviour the pages have (no build step).
// - <meta name="refresh-seconds" content="N"> on a page reloads it every N s
//   (the dashboard), unless the tab is hidden.
// - <form data-confirm="text"> asks before submitting (swap, rollback, retry).
'use strict';
document.addEventListener('DOMContentLoaded', () => {
  const meta = document.querySelector('meta[name="refresh-seconds"]');
  const seconds = meta ? Number(meta.getAttribute('content')) : 0;
  if (seconds > 0) {
    setInterval(() => {
      if (document.visibilityState === 'visible') window.location.reload();
    }, seconds * 1000);
  }
  for (const form of document.querySelectorAll('form[data-confirm]')) {
    form.addEventListener('submit', (e) => {
      if (!window.confirm(form.getAttribute('data-confirm'))) e.preventDefault();
    });
  }
});
