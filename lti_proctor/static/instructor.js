/* Instructor pages: show each <time data-local-time> in the reader's own time zone.
 *
 * The server writes times in UTC in the page's one format (yyyy-MM-dd HH:mm UTC); this rewrites
 * them in the same shape in the browser's zone, with the zone's name, in the page's language.
 */
(function () {
  'use strict';

  var lang = document.documentElement.lang || 'en';

  function pad(n) { return (n < 10 ? '0' : '') + n; }

  function zoneName(date) {
    try {
      var parts = new Intl.DateTimeFormat(lang, { timeZoneName: 'short' }).formatToParts(date);
      var zone = parts.filter(function (p) { return p.type === 'timeZoneName'; })[0];
      return zone ? zone.value : '';
    } catch (e) { return ''; }
  }

  document.querySelectorAll('time[data-local-time]').forEach(function (el) {
    var date = new Date(el.getAttribute('datetime'));
    if (isNaN(date.getTime())) { return; }
    var text = date.getFullYear() + '-' + pad(date.getMonth() + 1) + '-' + pad(date.getDate())
      + ' ' + pad(date.getHours()) + ':' + pad(date.getMinutes());
    el.textContent = (text + ' ' + zoneName(date)).trim();
    el.title = el.getAttribute('datetime');
  });
}());
