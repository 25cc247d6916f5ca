// promemoria console: the only script, loaded from the server (no inline
// script is allowed). A page marked data-refresh="N" on its body reloads
// itself every N seconds while it is visible.
(function () {
  'use strict';
  var body = document.body;
  var seconds = body ? parseInt(body.getAttribute('data-refresh') || '', 10) : NaN;
  if (!(seconds > 0)) {
    return;
  }
  window.setInterval(function () {
    if (!document.hidden) {
      window.location.reload();
    }
  }, seconds * 1000);
})();
