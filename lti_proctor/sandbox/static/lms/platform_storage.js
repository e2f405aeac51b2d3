// The sandbox Canvas's side of LTI Platform Storage (1EdTech client-side postMessages).
// The course page answers org.imsglobal.lti.capabilities; its hidden post_message_forwarding
// frame answers put_data and get_data, keeping each tool origin's values apart, in memory, for
// as long as the course page is open (a dev stand-in: Canvas keeps them the same way).
(function () {
  "use strict";
  var PREFIX = "org.imsglobal.lti.";
  var forwarding = document.body.getAttribute("data-role") === "forwarding";
  var frameName = document.body.getAttribute("data-storage-frame");
  var values = {};

  function answer(event, extra) {
    var reply = { subject: event.data.subject + ".response", message_id: event.data.message_id };
    Object.keys(extra).forEach(function (k) { reply[k] = extra[k]; });
    event.source.postMessage(reply, event.origin);
  }

  window.addEventListener("message", function (event) {
    var data = event.data;
    if (!data || typeof data !== "object" || typeof data.subject !== "string" || !event.source) { return; }
    if (!forwarding && data.subject === PREFIX + "capabilities") {
      answer(event, {
        supported_messages: [
          { subject: PREFIX + "capabilities" },
          { subject: PREFIX + "put_data", frame: frameName },
          { subject: PREFIX + "get_data", frame: frameName }
        ]
      });
      return;
    }
    if (!forwarding) { return; }
    var key = data.key;
    if (typeof key !== "string" || !key || key.length > 512) {
      if (data.subject === PREFIX + "put_data" || data.subject === PREFIX + "get_data") {
        answer(event, { error: { code: "bad_request", message: "key must be a non-empty string" } });
      }
      return;
    }
    var slot = event.origin + "\n" + key;  // one tool's values are never another's
    if (data.subject === PREFIX + "put_data") {
      if (typeof data.value !== "string" || data.value.length > 4096) {
        answer(event, { error: { code: "bad_request", message: "value must be a string" } });
        return;
      }
      values[slot] = data.value;
      answer(event, { key: key, value: data.value });
    } else if (data.subject === PREFIX + "get_data") {
      answer(event, { key: key, value: Object.prototype.hasOwnProperty.call(values, slot) ? values[slot] : null });
    }
  });
}());
