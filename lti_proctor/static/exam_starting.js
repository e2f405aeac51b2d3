/* The "Starting your exam…" page a launch answers with at once: it posts the start form (the
 * proctoring service is asked only then) and counts the seconds meanwhile. The browser keeps this
 * page on screen, and its timers running, until /exam/start answers, so the counter keeps going
 * for the whole service call. The count starts when the LMS posted the launch (the page's
 * navigation), not when the script ran. No inline script: the page's CSP forbids it.
 */
(function () {
  'use strict';

  var root = document.getElementById('exam-starting');
  if (!root) { return; }
  var elapsed = document.getElementById('exam-starting-elapsed');
  var slow = document.getElementById('exam-starting-slow');
  var form = document.getElementById('exam-starting-form');
  var template = root.dataset.elapsed || '%(seconds)s s';
  var slowAfter = Number(root.dataset.slowAfterS) || 20;

  function tick() {
    var seconds = Math.floor(performance.now() / 1000);
    elapsed.textContent = template.replace('%(seconds)s', String(seconds));
    if (seconds >= slowAfter) { slow.hidden = false; }
  }

  tick();
  window.setInterval(tick, 1000);
  form.submit();
}());
