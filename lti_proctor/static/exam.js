/* The exam wrapper page: mounts the proctoring SDK, runs Start/Finish, reveals the exam after start.
 *
 * Everything comes from data-* attributes of #exam-app (no inline script, so the CSP forbids it).
 * The page talks to the tool with a bearer token, never a cookie; every API answer carries a
 * fresh token. The exam URL and access code come from GET content once the attempt started.
 */
(function () {
  'use strict';

  var root = document.getElementById('exam-app');
  if (!root) { return; }
  var cfg = root.dataset;
  var POLL_MS = 2000;
  var POLL_LIMIT = 150;             // 5 minutes of waiting for the start webhook
  var KEEPALIVE_MS = 5 * 60 * 1000; // refresh the bearer token while the student works
  var DEVICE_FEATURES = ['camera', 'microphone', 'display-capture'];
  var FINISHED_STATES = ['finished', 'reported', 'failed'];

  var apiToken = cfg.apiToken;
  var openUrl = cfg.openUrl;
  var current = 'loading';
  var startHandled = false;
  var contentShown = false;

  function byId(id) { return document.getElementById(id); }
  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }
  // The SDK's is*/start/finish may be sync or async: always await Promise.resolve(x()).
  function ask(fn) { return Promise.resolve().then(fn); }

  function show(state, message) {
    current = state;
    root.dataset.examState = state;
    document.querySelectorAll('[data-state-panel]').forEach(function (panel) {
      panel.hidden = panel.dataset.statePanel !== state;
    });
    byId('exam-start').hidden = state !== 'ready';
    byId('exam-submit').hidden = state !== 'in_progress';
    byId('exam-retry').hidden = state !== 'error';
    var box = byId('exam-message');
    box.textContent = message || '';
    box.hidden = !message;
  }

  function errorText(err) {
    if (!err) { return 'Unknown error.'; }
    if (typeof err === 'string') { return err; }
    return err.message || err.description || err.name || String(err);
  }

  async function api(method, url, body) {
    var headers = { 'Authorization': 'Bearer ' + apiToken, 'Accept': 'application/json' };
    var init = { method: method, headers: headers, credentials: 'omit', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    var resp = await fetch(url, init);
    var data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    if (data.token) { apiToken = data.token; }
    if (data.open_url) { openUrl = data.open_url; }
    if (resp.status === 401) { show('error', 'Your exam page has expired. Press Try again.'); }
    return { status: resp.status, data: data };
  }

  // -- framed without camera / microphone / screen permission: offer a new window ---------------

  function isFramed() {
    try { return window.self !== window.top; } catch (e) { return true; }
  }

  function frameLacksDevices() {
    if (!isFramed()) { return false; }
    var policy = document.permissionsPolicy || document.featurePolicy;
    if (!policy || typeof policy.allowsFeature !== 'function') { return false; }
    return DEVICE_FEATURES.some(function (feature) {
      try { return !policy.allowsFeature(feature); } catch (e) { return false; }
    });
  }

  function looksLikePermissionError(err) {
    var name = (err && err.name) || '';
    return ['NotAllowedError', 'SecurityError', 'PermissionDeniedError'].indexOf(name) >= 0
      || /permission|not allowed|denied/i.test(errorText(err));
  }

  function offerNewWindow() {
    byId('exam-open-window').hidden = false;
  }

  function openNewWindow() {
    var win = window.open(openUrl, '_blank');
    if (!win) {
      show(current, 'Your browser blocked the new window. Allow pop-ups for this site and try again.');
      return;
    }
    win.opener = null;
    hideContent();
    show('moved');
  }

  // -- the exam content, revealed by the server only after the start -------------------------

  function revealContent(data) {
    var wrapper = document.querySelector(cfg.protectorMatch);
    if (data.access_code) {
      byId('exam-access-code').textContent = data.access_code;
      byId('exam-access-code-box').hidden = false;
    }
    if (data.exam_url && /^https?:\/\//i.test(data.exam_url)) {
      var frame = document.createElement('iframe');
      frame.src = data.exam_url;
      frame.title = 'Exam';
      frame.className = 'exam-frame';
      frame.setAttribute('allow', 'fullscreen');
      byId('exam-frame-box').replaceChildren(frame);
    }
    wrapper.hidden = false;
    contentShown = true;
    show('in_progress');
  }

  function hideContent() {
    byId('exam-frame-box').replaceChildren();
    byId('exam-access-code').textContent = '';
    byId('exam-access-code-box').hidden = true;
    document.querySelector(cfg.protectorMatch).hidden = true;
    contentShown = false;
  }

  async function waitForStartThenReveal() {
    if (contentShown) { return; }
    show('waiting');
    for (var i = 0; i < POLL_LIMIT; i++) {
      var state = await api('GET', cfg.stateUrl);
      if (state.status === 401) { return; }
      if (FINISHED_STATES.indexOf(state.data.state) >= 0) { hideContent(); show('finished'); return; }
      if (state.data.started) {
        var content = await api('GET', cfg.contentUrl);
        if (content.status === 200) { revealContent(content.data); return; }
      }
      await sleep(POLL_MS);
    }
    show('error', 'The proctoring service has not confirmed the start yet.');
  }

  async function afterSdkStart() {
    if (startHandled) { return; }
    startHandled = true;
    if (cfg.startProof === 'sdk') {
      var reported = await api('POST', cfg.startedUrl);
      if (reported.status === 401) { return; }
      if (reported.status >= 400 && reported.status !== 403) {
        show('error', (reported.data && reported.data.message) || 'The start was not recorded.');
        return;
      }
    }
    await waitForStartThenReveal();
  }

  // -- SDK callbacks ---------------------------------------------------------------------------

  function onMounted() {
    if (current === 'loading') { show('checks'); }
  }

  async function onConfigured() {
    try {
      if (await ask(function () { return Proctoring.isFinished(); })) {
        show('finished');
        return;
      }
      var resuming = cfg.attemptState === 'started';
      if (!resuming && !(await ask(function () { return Proctoring.isCanStartNewAttempt(); }))) {
        show('finished', 'The proctoring service allows no new attempt for this exam.');
        return;
      }
      if (current === 'loading' || current === 'checks') { show('ready'); }
    } catch (err) {
      onError(err);
    }
  }

  function onStarted() {
    afterSdkStart();
  }

  function onFinished() {
    hideContent();
    show('finished');
  }

  function onAction(action) {
    if (!action) { return; }
    var warning = action.is_warning === 1 || action.is_warning === true || action.is_warning === '1';
    if (!warning) { return; }
    var notice = byId('exam-notice');
    notice.textContent = 'Proctoring notice: ' + (action.description || action.action_type || action.type || 'check your setup');
    notice.hidden = false;
  }

  function onError(err) {
    if (isFramed() && looksLikePermissionError(err)) { offerNewWindow(); }
    if (current === 'finished' || current === 'moved') { return; }
    show('error', errorText(err));
  }

  // -- buttons ---------------------------------------------------------------------------------

  async function startExam() {
    show('starting');
    try {
      await ask(function () { return Proctoring.start(); });
    } catch (err) {
      onError(err);
      return;
    }
    await afterSdkStart();
  }

  async function submitExam() {
    show('submitting');
    var incomplete = false;
    try {
      await ask(function () { return Proctoring.finish(); });
    } catch (err) {
      incomplete = true; // submit anyway; the service's finish webhook stays the authority
    }
    await api('POST', cfg.submittedUrl, { proctoring_incomplete: incomplete });
    hideContent();
    show('finished', incomplete ? 'Proctoring could not close cleanly; your instructor will see this.' : '');
  }

  function retry() {
    // The launch was a POST that cannot be repeated; the signed link reopens the same attempt.
    window.location.assign(openUrl);
  }

  function boot() {
    byId('exam-start').addEventListener('click', startExam);
    byId('exam-submit').addEventListener('click', submitExam);
    byId('exam-retry').addEventListener('click', retry);
    byId('exam-open-window-button').addEventListener('click', openNewWindow);
    if (FINISHED_STATES.indexOf(cfg.attemptState) >= 0) { show('finished'); return; }
    // A failed getUserMedia inside the SDK reaches onError, which offers the window too.
    if (frameLacksDevices()) { offerNewWindow(); }
    if (!window.Proctoring || typeof window.Proctoring.initialize !== 'function') {
      show('error', 'The proctoring software could not be loaded. Check your connection and try again.');
      return;
    }
    setInterval(function () {
      if (current !== 'finished' && current !== 'moved') { api('GET', cfg.stateUrl); }
    }, KEEPALIVE_MS);
    ask(function () {
      return Proctoring.initialize('.wrapper', {
        language: cfg.sdkLanguage,
        token: cfg.sdkToken,
        protector: { match: cfg.protectorMatch, textColor: cfg.protectorColor },
        onMounted: onMounted,
        onConfigured: onConfigured,
        onStarted: onStarted,
        onFinished: onFinished,
        onAction: onAction,
        onError: onError
      });
    }).catch(onError);
  }

  boot();
}());
