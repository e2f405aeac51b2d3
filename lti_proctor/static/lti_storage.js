// LTI Platform Storage (1EdTech client-side postMessages): where the browser blocks third-party
// cookies, the login keeps its state and nonce in the LMS's storage, and the launch reads them back.
// Messages go only to the LMS's OIDC auth origin and answers are taken only from it.
(function () {
  "use strict";
  var root = document.getElementById("lti-storage");
  if (!root) { return; }
  var cfg = root.dataset;
  var TIMEOUT_MS = 1200;
  var TRIES = 3;  // the LMS's storage frame may still be loading when we first ask
  var PREFIX = "org.imsglobal.lti.";

  function show(panel) {
    root.querySelectorAll("[data-panel]").forEach(function (el) {
      el.hidden = el.getAttribute("data-panel") !== panel;
    });
  }

  // The LMS window that framed (or opened) us; null when we are a top-level page of our own.
  function lmsWindow() {
    if (window.opener) { return window.opener; }
    return window.parent !== window ? window.parent : null;
  }

  function send(win, message, targetOrigin, acceptOrigin) {
    var id = "lti-proctor-" + Date.now().toString(36) + Math.random().toString(36).slice(2);
    message.message_id = id;
    return new Promise(function (resolve, reject) {
      var timer = setTimeout(function () { done(); reject(new Error("timeout")); }, TIMEOUT_MS);
      function onMessage(event) {
        var data = event.data;
        if (!data || typeof data !== "object" || data.message_id !== id) { return; }
        if (acceptOrigin !== "*" && event.origin !== acceptOrigin) { return; }
        if (data.subject !== message.subject + ".response") { return; }
        done();
        if (data.error) { reject(new Error(String(data.error.code || "error"))); } else { resolve(data); }
      }
      function done() { clearTimeout(timer); window.removeEventListener("message", onMessage); }
      window.addEventListener("message", onMessage);
      try { win.postMessage(message, targetOrigin); } catch (e) { done(); reject(e); }
    });
  }

  // The window that serves put_data/get_data: the frame named by the LMS's capabilities answer,
  // else lti_storage_target ("_parent" is the LMS window itself).
  function storageWindow() {
    var lms = lmsWindow();
    if (!lms) { return Promise.reject(new Error("no LMS window")); }
    function frame(name) {
      if (!name || name === "_parent") { return lms; }
      try { return lms.frames[name] || null; } catch (e) { return null; }
    }
    // Capabilities reveal nothing secret, so the question may go to any origin.
    return send(lms, { subject: PREFIX + "capabilities" }, "*", "*").then(function (answer) {
      var found = (answer.supported_messages || []).filter(function (m) {
        return m && m.subject === PREFIX + "put_data";
      })[0];
      return frame((found && found.frame) || cfg.target);
    }, function () { return frame(cfg.target); }).then(function (win) {
      if (!win) { throw new Error("no storage frame"); }
      return win;
    });
  }

  // A storage message to the LMS's auth origin, asked again when no answer came in time.
  function ask(win, message, tries) {
    return send(win, message, cfg.origin, cfg.origin).catch(function (err) {
      if (err.message !== "timeout" || tries <= 1) { throw err; }
      return ask(win, message, tries - 1);
    });
  }

  function putData(win, key, value) {
    return ask(win, { subject: PREFIX + "put_data", key: key, value: value }, TRIES);
  }

  function getData(win, key) {
    return ask(win, { subject: PREFIX + "get_data", key: key }, TRIES)
      .then(function (answer) { return answer.value; });
  }

  // Asks the tool whether this browser sends the login's state cookie back in this frame.
  function cookiesWork() {
    return fetch(cfg.cookieCheckUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) { return resp.status === 204; }, function () { return false; });
  }

  function login() {
    var form = document.getElementById("lti-continue");
    storageWindow().then(function (win) {
      return Promise.all([putData(win, cfg.stateKey, cfg.state), putData(win, cfg.nonceKey, cfg.nonce)]);
    }).then(function () { form.submit(); }, function () {
      // No platform storage: the state cookie still carries the login where cookies work.
      return cookiesWork().then(function (works) {
        if (works) { form.submit(); } else { show("blocked"); }
      });
    });
  }

  function launch() {
    var form = document.getElementById("lti-storage-launch");
    storageWindow().then(function (win) {
      return Promise.all([getData(win, cfg.stateKey), getData(win, cfg.nonceKey)]);
    }).then(function (values) {
      if (values[0] !== cfg.state || typeof values[1] !== "string" || !values[1]) {
        throw new Error("storage does not hold this launch");
      }
      form.elements.lti_storage_state.value = values[0];
      form.elements.lti_storage_nonce.value = values[1];
      form.submit();
    }).catch(function () { show("blocked"); });
  }

  if (cfg.mode === "login") { login(); } else { launch(); }
}());
