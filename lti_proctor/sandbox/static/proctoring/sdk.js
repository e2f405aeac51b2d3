/*
 * Sandbox proctoring SDK: the same surface as the TrustExam SDK (trustexam-api.md §4.8), talking
 * to the sandbox proctoring service. Plain ES2017, no build step; served at /extension/app.js.
 *
 *   Proctoring.initialize(container, {language, token, protector: {match, textColor},
 *                         onMounted, onConfigured, onStarted, onFinished, onAction, onError})
 *   Proctoring.start() / finish()                 -> Promise<void>
 *   Proctoring.isFinished() / isCanStartNewAttempt() -> Promise<boolean>
 *
 * It records no camera or screen: a visible widget stands in for the checks, a button simulates
 * violations, tab switches are reported as focus_down, and Content Protect marks the protected
 * elements (data-content-protect + a visible badge) and blocks copying and selecting in them.
 */
(function (global) {
  'use strict';

  const BASE = "__SANDBOX_BASE_URL__"; // replaced by the sandbox when it serves this file
  const STYLE_ID = 'sandbox-proctoring-style';
  const TEXT = {
    en: {
      title: 'Proctoring (sandbox)', loading: 'Connecting…', configured: 'Checks passed. Ready to start.',
      active: 'Proctoring in progress', closed: 'Proctoring finished', error: 'Proctoring error',
      violate: 'Simulate violation', protect: 'Content Protect',
    },
    ru: {
      title: 'Прокторинг (песочница)', loading: 'Подключение…', configured: 'Проверки пройдены. Можно начинать.',
      active: 'Идёт прокторинг', closed: 'Прокторинг завершён', error: 'Ошибка прокторинга',
      violate: 'Сымитировать нарушение', protect: 'Content Protect',
    },
    kz: {
      title: 'Прокторинг (құмсалғыш)', loading: 'Қосылуда…', configured: 'Тексеру өтті. Бастауға болады.',
      active: 'Прокторинг жүріп жатыр', closed: 'Прокторинг аяқталды', error: 'Прокторинг қатесі',
      violate: 'Бұзушылықты үлгілеу', protect: 'Content Protect',
    },
  };
  const VIOLATIONS = [
    ['focus_down', 'Focus left the exam'],
    ['head_rotated', 'Head turned away'],
    ['noise_detect', 'Background noise'],
    ['object_detected', 'Phone in view'],
    ['head_many', 'Second person in frame'],
  ];
  const CSS = [
    '.sandbox-proctoring-widget{font:13px/1.4 system-ui,sans-serif;border:2px solid #2563eb;',
    'border-radius:6px;padding:8px 10px;margin:8px 0;background:#eff6ff;color:#1e3a8a}',
    '.sandbox-proctoring-widget[data-status="active"]{border-color:#16a34a;background:#f0fdf4;color:#14532d}',
    '.sandbox-proctoring-widget[data-status="error"]{border-color:#dc2626;background:#fef2f2;color:#7f1d1d}',
    '.sandbox-proctoring-widget .sp-row{display:flex;gap:6px;align-items:center;flex-wrap:wrap}',
    '.sandbox-proctoring-widget .sp-dot{width:10px;height:10px;border-radius:50%;background:currentColor}',
    '.sandbox-content-protect{position:relative;user-select:none;-webkit-user-select:none;',
    'outline:2px dashed var(--sandbox-protect-color,#1f2937);outline-offset:2px}',
    '.sandbox-content-protect-badge{position:absolute;top:2px;right:2px;z-index:2147483647;',
    'pointer-events:none;font:11px/1.2 system-ui,sans-serif;padding:2px 6px;border-radius:3px;',
    'background:rgba(255,255,255,.85);color:var(--sandbox-protect-color,#1f2937);',
    'border:1px solid var(--sandbox-protect-color,#1f2937)}',
  ].join('');

  let s = null; // the one initialised session

  function t(key) {
    const lang = (s && TEXT[s.language]) || TEXT.en;
    return lang[key] || TEXT.en[key] || key;
  }

  function emit(name, arg) {
    const fn = s && s.options[name];
    if (typeof fn !== 'function') return;
    try { fn(arg); } catch (err) { console.error('Proctoring ' + name + ' callback failed', err); }
  }

  async function api(method, suffix, body) {
    // The token travels in a header, never in the URL, so it stays out of access logs.
    const init = { method: method, mode: 'cors', credentials: 'omit', headers: { 'X-Proctoring-Token': s.token } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const resp = await fetch(BASE + '/sdk/session' + suffix, init);
    let data = {};
    try { data = await resp.json(); } catch (err) { data = {}; }
    if (!resp.ok) {
      const error = new Error(data.message || ('Proctoring service answered HTTP ' + resp.status));
      error.status = resp.status;
      throw error;
    }
    return data;
  }

  function node(tag, attrs, text) {
    const el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { el.setAttribute(k, attrs[k]); });
    if (text) el.textContent = text;
    return el;
  }

  function injectStyle() {
    if (document.getElementById(STYLE_ID)) return;
    const style = node('style', { id: STYLE_ID });
    style.textContent = CSS;
    document.head.appendChild(style);
  }

  function mountWidget(root) {
    const widget = node('div', { class: 'sandbox-proctoring-widget', 'data-status': 'loading', role: 'status' });
    const row = node('div', { class: 'sp-row' });
    row.appendChild(node('span', { class: 'sp-dot', 'aria-hidden': 'true' }));
    row.appendChild(node('strong', {}, t('title')));
    const status = node('span', { class: 'sp-status' }, t('loading'));
    row.appendChild(status);
    const controls = node('div', { class: 'sp-row sp-controls' });
    const select = node('select', { class: 'sp-violation', 'aria-label': t('violate') });
    VIOLATIONS.forEach(function (v) { select.appendChild(node('option', { value: v[0] }, v[1])); });
    const button = node('button', { type: 'button', class: 'sp-violate' }, t('violate'));
    button.addEventListener('click', function () {
      const chosen = VIOLATIONS.find(function (v) { return v[0] === select.value; }) || VIOLATIONS[0];
      report(chosen[0], chosen[1], 1);
    });
    controls.appendChild(select);
    controls.appendChild(button);
    widget.appendChild(row);
    widget.appendChild(controls);
    root.insertBefore(widget, root.firstChild);
    s.widget = { root: widget, status: status, controls: controls };
    render('loading');
  }

  function render(state, message) {
    if (!s || !s.widget) return;
    s.widget.root.setAttribute('data-status', state);
    s.widget.status.textContent = message || t(state);
    s.widget.controls.hidden = state !== 'active';
  }

  function apply(info) {
    s.status = info.status;
    s.finished = !!info.finished;
    s.canStartNew = !!info.can_start_new_attempt;
    s.contentProtect = !!(info.settings && info.settings.content_protect);
  }

  // -- Content Protect ---------------------------------------------------------------------------

  function protect(el) {
    if (el.getAttribute('data-content-protect') !== 'on') {
      el.setAttribute('data-content-protect', 'on');
      el.classList.add('sandbox-content-protect');
      el.style.setProperty('--sandbox-protect-color', s.textColor);
    }
    const hasBadge = Array.prototype.some.call(el.children, function (c) {
      return c.classList.contains('sandbox-content-protect-badge');
    });
    if (!hasBadge) el.appendChild(node('span', { class: 'sandbox-content-protect-badge', 'aria-hidden': 'true' }, t('protect')));
  }

  function protectAll() {
    document.querySelectorAll(s.protector.match).forEach(protect);
  }

  function blockInProtected(event) {
    const target = event.target;
    if (target && target.closest && target.closest('[data-content-protect="on"]')) {
      event.preventDefault();
      if (event.type === 'copy' || event.type === 'cut') report('content_copy_blocked', 'Copy blocked', 0);
    }
  }

  function startProtect() {
    protectAll();
    // The page reveals the questions later; guard whatever matches when it appears.
    s.observer = new MutationObserver(protectAll);
    s.observer.observe(document.body, { childList: true, subtree: true });
    ['copy', 'cut', 'contextmenu', 'dragstart', 'selectstart'].forEach(function (type) {
      document.addEventListener(type, blockInProtected, true);
    });
  }

  // -- monitoring --------------------------------------------------------------------------------

  function onVisibility() {
    if (document.visibilityState === 'hidden') report('focus_down', 'The exam tab was hidden', 1);
    else report('focus_restored', 'Back on the exam tab', 0);
  }

  async function report(type, description, isWarning) {
    if (!s || s.status !== 'active') return;
    try {
      const action = await api('POST', '/action', { action_type: type, description: description, is_warning: isWarning });
      emit('onAction', action);
    } catch (err) {
      emit('onError', err);
    }
  }

  function fail(err) {
    render('error', t('error') + ': ' + (err && err.message ? err.message : String(err)));
    emit('onError', err);
  }

  async function ready() {
    if (!s) throw new Error('Proctoring.initialize() has not been called');
    await s.ready;
  }

  const Proctoring = {
    initialize: function (container, options) {
      options = options || {};
      const protector = options.protector || {};
      s = {
        options: options,
        token: options.token,
        language: TEXT[options.language] ? options.language : 'en',
        protector: protector,
        textColor: protector.textColor || '#1f2937',
        status: 'loading',
        finished: false,
        canStartNew: false,
      };
      s.ready = (async function () {
        const root = typeof container === 'string' ? document.querySelector(container) : container;
        if (!root) throw new Error('Proctoring container not found: ' + container);
        if (!options.token) throw new Error('Proctoring token is missing');
        injectStyle();
        mountWidget(root);
        emit('onMounted');
        apply(await api('GET', ''));
        if (s.contentProtect && protector.match) startProtect();
        render(s.finished ? 'closed' : s.status === 'active' ? 'active' : 'configured');
        emit('onConfigured');
      })();
      s.ready.catch(fail);
      return s.ready;
    },

    start: async function () {
      await ready();
      try {
        const info = await api('POST', '/start');
        apply(info);
      } catch (err) {
        fail(err);
        throw err;
      }
      document.addEventListener('visibilitychange', onVisibility);
      render('active');
      emit('onStarted');
    },

    finish: async function () {
      await ready();
      try {
        apply(await api('POST', '/finish'));
      } catch (err) {
        fail(err);
        throw err;
      }
      document.removeEventListener('visibilitychange', onVisibility);
      render('closed');
      emit('onFinished');
    },

    isFinished: async function () {
      if (!s) return false;
      try { await s.ready; } catch (err) { return false; }
      return s.finished;
    },

    isCanStartNewAttempt: async function () {
      if (!s) return false;
      try {
        await s.ready;
        apply(await api('GET', ''));
      } catch (err) {
        return false;
      }
      return s.canStartNew;
    },
  };

  global.Proctoring = Proctoring;
})(typeof window !== 'undefined' ? window : this);
