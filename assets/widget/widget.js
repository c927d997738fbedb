/*! mailvet signup-form widget (MIT OR Apache-2.0). See docs/SIGNUP_FORMS.md.
 * <script src="https://mailvet.example/widget.js" data-key="pk_..." defer></script>
 * Checks input[type=email] and input[data-mailvet] with POST /verify; shows a
 * suggestion or a plain message under the field; never blocks the form.
 * Styles: none injected. Classes .mailvet-message, .mailvet-error,
 * .mailvet-hint, .mailvet-suggestion, .mailvet-accept; see the doc for a
 * stylesheet using --mailvet-error-color, --mailvet-hint-color,
 * --mailvet-font-size. */
(function () {
  'use strict';
  var script = document.currentScript ||
    document.querySelector('script[src*="widget.js"][data-key]');
  var key = script && script.getAttribute('data-key');
  if (!key || !window.fetch || !window.AbortController) return;
  var api = (script.getAttribute('data-api') ||
    new URL(script.src, location.href).origin).replace(/\/+$/, '');
  var tokenName = script.getAttribute('data-token-field') || 'mailvet_token';
  var SELECTOR = 'input[type=email],input[data-mailvet]';
  var BUDGET_MS = 2500; // the server answers unknown/timeout past it
  var WAIT_MS = 3000; // our own limit, a little longer
  var DEBOUNCE_MS = 600;
  var KEEP_MS = 300000; // answers kept for the page, 5 minutes
  var MESSAGES = {
    invalid_syntax: 'This does not look like an email address.',
    no_such_domain: 'This email domain does not exist.',
    no_mail_server: 'This domain does not accept email.',
    mailbox_not_found: 'This mailbox does not exist. Please check the address.',
    mailbox_disabled: 'This mailbox is disabled.',
    suppressed: 'Email to this address cannot be delivered.',
    disposable: 'This looks like a temporary address.',
    fallback: 'Email to this address cannot be delivered.',
    suggest: 'Did you mean '
  };
  var answers = new Map();
  var seen = new WeakSet();
  var count = 0;

  // The words shown: data-msg-<reason> on the script tag, else the default.
  function words(name) {
    return script.getAttribute('data-msg-' + name.replace(/_/g, '-')) ||
      MESSAGES[name] || MESSAGES.fallback;
  }

  function setToken(field, token) {
    var form = field.input.form;
    if (!form) return;
    var name = field.input.getAttribute('data-token-field') || tokenName;
    var hidden = form.elements.namedItem(name);
    if (!hidden) {
      if (!token) return;
      hidden = document.createElement('input');
      hidden.type = 'hidden';
      hidden.name = name;
      form.appendChild(hidden);
    }
    hidden.value = token;
  }

  function render(field, answer) {
    var box = field.box;
    box.textContent = '';
    box.className = 'mailvet-message';
    field.input.removeAttribute('aria-invalid');
    setToken(field, (answer && answer.token) || '');
    if (!answer) return;
    if (answer.status === 'undeliverable') {
      box.classList.add('mailvet-error');
      box.appendChild(document.createTextNode(words(answer.reason)));
      field.input.setAttribute('aria-invalid', 'true');
    } else if (answer.reason === 'disposable' && !answer.suggestion) {
      // (A typo of a provider is often listed as disposable: the
      // suggestion says more.)
      box.classList.add('mailvet-hint');
      box.appendChild(document.createTextNode(words('disposable')));
    }
    if (answer.suggestion) {
      var line = document.createElement('span');
      var accept = document.createElement('button');
      line.className = 'mailvet-suggestion';
      accept.type = 'button';
      accept.className = 'mailvet-accept';
      accept.textContent = answer.suggestion;
      accept.addEventListener('click', function () {
        field.input.value = answer.suggestion;
        field.input.dispatchEvent(new Event('input', { bubbles: true }));
        field.input.dispatchEvent(new Event('change', { bubbles: true }));
        clearTimeout(field.timer);
        field.input.focus();
        check(field);
      });
      if (box.firstChild) box.appendChild(document.createTextNode(' '));
      line.appendChild(document.createTextNode(words('suggest')));
      line.appendChild(accept);
      line.appendChild(document.createTextNode('?'));
      box.appendChild(line);
    }
  }

  function check(field) {
    var email = field.input.value.trim();
    if (email === field.checked) return;
    field.checked = email;
    if (field.request) field.request.abort();
    field.request = null;
    if (email.indexOf('@') < 1 || email.length > 254) return render(field, null);
    var kept = answers.get(email);
    if (kept && Date.now() - kept.at < KEEP_MS) return render(field, kept.answer);
    var request = new AbortController();
    var timer = setTimeout(function () { request.abort(); }, WAIT_MS);
    field.request = request;
    fetch(api + '/verify', {
      method: 'POST',
      mode: 'cors',
      credentials: 'omit',
      headers: { 'Authorization': 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: JSON.stringify({ email: email, timeout_ms: BUDGET_MS }),
      signal: request.signal
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (answer) {
      if (!answer || !answer.status) throw answer;
      // An unknown verdict is not kept: the server may know more soon.
      if (answer.status !== 'unknown') answers.set(email, { at: Date.now(), answer: answer });
      if (field.input.value.trim() === email) render(field, answer);
    }).catch(function () {
      // Slow, down, refused: say nothing, and try again on the next blur.
      if (field.checked === email) field.checked = null;
    }).then(function () {
      clearTimeout(timer);
    });
  }

  function attach(input) {
    if (seen.has(input) || input.getAttribute('data-mailvet') === 'off') return;
    seen.add(input);
    var box = document.createElement('div');
    var field = { input: input, box: box, timer: 0, checked: '', request: null };
    var described = input.getAttribute('aria-describedby');
    box.id = 'mailvet-message-' + (++count);
    box.className = 'mailvet-message';
    box.setAttribute('aria-live', 'polite');
    input.insertAdjacentElement('afterend', box);
    input.setAttribute('aria-describedby', described ? described + ' ' + box.id : box.id);
    input.addEventListener('input', function () {
      clearTimeout(field.timer);
      if (input.value.trim() !== field.checked) {
        field.checked = '';
        render(field, null);
      }
      field.timer = setTimeout(function () { check(field); }, DEBOUNCE_MS);
    });
    input.addEventListener('blur', function () {
      clearTimeout(field.timer);
      check(field);
    });
  }

  function scan(node) {
    if (node.matches && node.matches(SELECTOR)) attach(node);
    if (node.querySelectorAll) node.querySelectorAll(SELECTOR).forEach(attach);
  }

  function start() {
    scan(document);
    new MutationObserver(function (records) {
      records.forEach(function (record) { record.addedNodes.forEach(scan); });
    }).observe(document.documentElement, { childList: true, subtree: true });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', start);
  } else {
    start();
  }
})();
