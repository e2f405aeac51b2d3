// Dynamic Registration's last step: tell the LMS window that framed us to close the frame.
(function () {
  "use strict";
  var card = document.querySelector(".registered");
  var button = document.querySelector(".close-registration");
  if (!card || !button) { return; }
  var origin = card.getAttribute("data-close-origin") || "*";
  button.addEventListener("click", function () {
    var target = window.opener || window.parent;
    if (target && target !== window) {
      target.postMessage({ subject: "org.imsglobal.lti.close" }, origin);
    }
  });
}());
