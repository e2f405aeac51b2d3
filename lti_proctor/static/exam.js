/* The exam wrapper page: mounts the proctoring SDK, runs Start/Finish, reveals the exam after start.
 *
 * Everything comes from data-* attributes of #exam-app (no inline script, so the CSP forbids it).
 * The page talks to the tool with a bearer token, never a cookie; every API answer carries a
 * fresh token. The exam URL and access code come from GET content once the attempt started.
 * Every sentence it shows comes translated in data-messages; it guards the student's answers
 * (a confirmation before finishing, a warning before leaving) and tells a stale tab so.
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
  var BUSY_STATES = ['loading', 'starting', 'waiting', 'submitting'];      // spinner and clock
  var GUARDED_STATES = ['starting', 'waiting', 'in_progress', 'submitting']; // warn before leaving
  // An LMS quiz's page after submission: Moodle's review/summary, Canvas's history/submissions.
  var QUIZ_DONE = /\/mod\/quiz\/(review|summary)\.php|\/quizzes\/\d+\/(history|submissions)/;
  var M = JSON.parse(cfg.messages || '{}');
  var TAB_ID = Math.random().toString(36).slice(2);

  var apiToken = cfg.apiToken;
  var openUrl = cfg.openUrl;
  var current = 'loading';
  var startHandled = false;
  var contentShown = false;
  var quizSubmitted = false;
  var channel = null;

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
    byId('exam-resume').hidden = state !== 'resumed';
    byId('exam-submit').hidden = state !== 'in_progress';
    byId('exam-takeover').hidden = state !== 'stale';
    byId('exam-retry').hidden = state !== 'error';
    byId('exam-progress').hidden = BUSY_STATES.indexOf(state) < 0;
    tick();
    var box = byId('exam-message');
    box.textContent = message || '';
    box.hidden = !message;
  }

  // Seconds since the browser began loading this page: for a launch, since the LMS posted it.
  function tick() {
    var seconds = Math.round(performance.now() / 1000);
    byId('exam-elapsed').textContent = (M.elapsed || '%(seconds)s s').replace('%(seconds)s', seconds);
  }

  function unavailableText() {
    return M.unavailable + ' ' + M.reasonCode + ' proctor.unavailable';
  }

  function looksLikeNetworkError(err) {
    var name = (err && err.name) || '';
    return name === 'NetworkError' || (err instanceof TypeError && /fetch|network|load failed/i.test(err.message || ''))
      || /failed to fetch|networkerror|network error/i.test(typeof err === 'string' ? err : (err && err.message) || '');
  }

  function errorText(err) {
    if (!err) { return M.unknownError; }
    if (looksLikeNetworkError(err)) { return unavailableText(); }
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
    var resp;
    try {
      resp = await fetch(url, init);
    } catch (err) {  // the tool is unreachable: say so in words, with the code, and offer retry
      return { status: 0, data: { error: 'proctor.unavailable' } };
    }
    var data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    if (data.token) { apiToken = data.token; }
    if (data.open_url) { openUrl = data.open_url; keepReloadable(); }
    if (resp.status === 401) { show('error', M.expired); }
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
      show(current, M.popupBlocked);
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
      frame.title = M.examFrame;
      frame.className = 'exam-frame';
      frame.setAttribute('allow', 'fullscreen');
      frame.addEventListener('load', function () { watchQuiz(frame); });
      byId('exam-frame-box').replaceChildren(frame);
    }
    wrapper.hidden = false;
    contentShown = true;
    show('in_progress');
  }

  // Where the quiz is on the tool's own origin its address shows a submission; elsewhere the
  // browser hides it and the confirmation asks the student instead.
  function watchQuiz(frame) {
    var path = '';
    try { path = frame.contentWindow.location.pathname + frame.contentWindow.location.search; } catch (e) { return; }
    if (QUIZ_DONE.test(path)) { quizSubmitted = true; }
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
      if (state.status === 0) { show('error', unavailableText()); return; }
      if (FINISHED_STATES.indexOf(state.data.state) >= 0) { hideContent(); show('finished'); return; }
      if (state.data.started) {
        var content = await api('GET', cfg.contentUrl);
        if (content.status === 200) { revealContent(content.data); return; }
      }
      await sleep(POLL_MS);
    }
    show('error', M.notConfirmed);
  }

  async function afterSdkStart() {
    if (startHandled) { return; }
    startHandled = true;
    if (cfg.startProof === 'sdk') {
      var reported = await api('POST', cfg.startedUrl);
      if (reported.status === 401) { return; }
      if (reported.status === 0) { startHandled = false; show('error', unavailableText()); return; }
      // 403: the service's webhook is the proof; 409: a resumed attempt had started already.
      if (reported.status >= 400 && reported.status !== 403 && reported.status !== 409) {
        show('error', M.startNotRecorded + ' ' + M.reasonCode + ' ' + (reported.data.error || reported.status));
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
        show('finished', M.noNewAttempt);
        return;
      }
      if (current === 'loading' || current === 'checks') { show(resuming ? 'resumed' : 'ready'); }
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
    notice.textContent = M.notice + ' ' + (action.description || action.action_type || action.type || M.checkSetup);
    notice.hidden = false;
  }

  function onError(err) {
    if (isFramed() && looksLikePermissionError(err)) { offerNewWindow(); }
    if (current === 'finished' || current === 'moved' || current === 'stale') { return; }
    startHandled = false;
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

  function askToFinish() {
    var dialog = byId('exam-confirm');
    var seen = byId('exam-confirm-submitted');
    seen.textContent = quizSubmitted ? M.quizSubmitted : '';
    seen.hidden = !quizSubmitted;
    if (typeof dialog.showModal === 'function') { dialog.showModal(); } else { dialog.setAttribute('open', ''); }
    byId('exam-confirm-no').focus();  // the safe choice is the default one
  }

  function closeConfirm() {
    var dialog = byId('exam-confirm');
    if (typeof dialog.close === 'function') { dialog.close(); } else { dialog.removeAttribute('open'); }
  }

  async function submitExam() {
    closeConfirm();
    show('submitting');
    var incomplete = false;
    try {
      await ask(function () { return Proctoring.finish(); });
    } catch (err) {
      incomplete = true; // submit anyway; the service's finish webhook stays the authority
    }
    await api('POST', cfg.submittedUrl, { proctoring_incomplete: incomplete });
    hideContent();
    show('finished', incomplete ? M.incomplete : '');
  }

  function retry() {
    // The launch was a POST that cannot be repeated; the signed link reopens the same attempt.
    window.location.assign(openUrl);
  }

  // -- one tab at a time: the newest tab of an attempt holds it, older ones say so ------------

  function claimAttempt() {
    if (!channel) { return; }
    channel.postMessage({ type: 'claim', tab: TAB_ID });
  }

  function onOtherTab(event) {
    var msg = event.data || {};
    if (msg.type !== 'claim' || msg.tab === TAB_ID) { return; }
    if (current === 'finished' || current === 'moved') { return; }
    hideContent();
    show('stale');
  }

  function takeOver() {
    claimAttempt();
    window.location.assign(openUrl);  // this tab reopens the same attempt and holds it
  }

  function warnBeforeLeaving(event) {
    if (GUARDED_STATES.indexOf(current) < 0) { return undefined; }
    event.preventDefault();
    event.returnValue = M.leaveWarning;  // browsers show their own wording; this asks for it
    return M.leaveWarning;
  }

  // The launch was a POST that cannot be repeated (its state and nonce are spent): point this
  // page's history entry at the signed link of the same attempt, so reloading (F5) resumes it.
  function keepReloadable() {
    if (!openUrl || !window.history || typeof history.replaceState !== 'function') { return; }
    try {
      if (new URL(openUrl, location.href).origin === location.origin) {
        history.replaceState(history.state, '', openUrl);
      }
    } catch (e) { /* an unparsable link: keep the address as it is */ }
  }

  function boot() {
    keepReloadable();
    byId('exam-start').addEventListener('click', startExam);
    byId('exam-resume').addEventListener('click', startExam);
    byId('exam-submit').addEventListener('click', askToFinish);
    byId('exam-confirm-yes').addEventListener('click', submitExam);
    byId('exam-confirm-no').addEventListener('click', closeConfirm);
    byId('exam-takeover').addEventListener('click', takeOver);
    byId('exam-retry').addEventListener('click', retry);
    window.addEventListener('beforeunload', warnBeforeLeaving);
    setInterval(function () { if (BUSY_STATES.indexOf(current) >= 0) { tick(); } }, 1000);
    show(current);
    byId('exam-open-window-button').addEventListener('click', openNewWindow);
    if (FINISHED_STATES.indexOf(cfg.attemptState) >= 0) { show('finished'); return; }
    if (window.BroadcastChannel && cfg.attemptChannel) {
      channel = new BroadcastChannel(cfg.attemptChannel);
      channel.onmessage = onOtherTab;
      claimAttempt();
    }
    // A failed getUserMedia inside the SDK reaches onError, which offers the window too.
    if (frameLacksDevices()) { offerNewWindow(); }
    if (!window.Proctoring || typeof window.Proctoring.initialize !== 'function') {
      show('error', M.sdkMissing);
      return;
    }
    setInterval(function () {
      if (current !== 'finished' && current !== 'moved' && current !== 'stale') { api('GET', cfg.stateUrl); }
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
