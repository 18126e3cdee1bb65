/* Datalabs pipelines: the launch form's file picker (choosing fills the field) and a run's live log
   (followed through the API's server-sent events until the run ends, then the page reloads to show the
   final state and outputs). Without JavaScript the fields take typed paths and the log page is reloaded
   by hand: this file only makes them nicer. */
(function () {
  "use strict";

  function pick(button) {
    var field = document.getElementById(button.getAttribute("data-target"));
    if (!field) { return; }
    var ref = button.getAttribute("data-pick");
    if (field.tagName === "TEXTAREA") {  // a list of files: one per line
      field.value = field.value.replace(/\s*$/, "") + (field.value.trim() ? "\n" : "") + ref;
    } else {
      field.value = ref;
    }
    field.dispatchEvent(new Event("change", { bubbles: true }));
    var body = button.closest(".picker-body");
    if (body) { body.innerHTML = ""; }
    field.focus();
  }

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-pick], [data-picker-close]") : null;
    if (!target) { return; }
    event.preventDefault();
    if (target.hasAttribute("data-pick")) {
      pick(target);
    } else {
      var body = target.closest(".picker-body");
      if (body) { body.innerHTML = ""; }
    }
  });

  function followLog(pre) {
    var done = false;
    var source = new EventSource(pre.getAttribute("data-events"));
    var atBottom = function () { return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40; };
    source.addEventListener("log", function (event) {
      var data = {};
      try { data = JSON.parse(event.data); } catch (e) { return; }
      var stick = atBottom();
      pre.appendChild(document.createTextNode(data.text || ""));
      if (stick) { pre.scrollTop = pre.scrollHeight; }
    });
    source.addEventListener("end", function () {
      done = true;
      source.close();
      // The server renders the final state, the reason and the Outputs tab.
      setTimeout(function () { window.location.reload(); }, 300);
    });
    source.onerror = function () {
      if (done) { return; }
      done = true;
      source.close();
      setTimeout(function () { window.location.reload(); }, 3000);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.getElementById("run-log");
    if (pre && pre.hasAttribute("data-events") && window.EventSource) { followLog(pre); }
  });
})();
