/* Exam settings forms: the access code's Show/Hide button, and the deep-linking answer's
 * auto-post back to the LMS (the form stays visible with its button if scripts are off).
 */
(function () {
  'use strict';

  document.querySelectorAll('button[data-reveal]').forEach(function (button) {
    var input = document.getElementById(button.getAttribute('data-reveal'));
    if (!input) { return; }
    button.addEventListener('click', function () {
      var hidden = input.type === 'password';
      input.type = hidden ? 'text' : 'password';
      button.textContent = button.getAttribute(hidden ? 'data-hide' : 'data-show');
      button.setAttribute('aria-pressed', hidden ? 'true' : 'false');
    });
  });

  var form = document.querySelector('form[data-autosubmit]');
  if (form) { form.submit(); }
}());
