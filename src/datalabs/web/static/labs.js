/* Datalabs: follows a lab's start on its page (/labs/{id}) through the SSE stream of the API
   (/api/v1/labs/{id}/events) and opens the lab when it is ready. Without JavaScript the page refreshes
   itself instead (<noscript> meta refresh), so this file only makes it live.
   On a lab's logs page (/labs/{id}/logs), where htmx swaps the log part in every 2 s while the lab lasts,
   it keeps the newest lines in view, unless the reader scrolled up to read older ones. */
(function () {
  "use strict";

  function reloadSoon(ms) {
    setTimeout(function () { window.location.reload(); }, ms);
  }

  function follow(box) {
    var bar = document.getElementById("progress-bar");
    var value = document.getElementById("progress-value");
    var text = document.getElementById("progress-text");
    var list = document.getElementById("progress-log");
    var badge = document.querySelector(".lab-head .state-label");
    // The stream replays every event from the start; the page already shows the first `shown` ones.
    var shown = parseInt(box.getAttribute("data-count"), 10) || 0;
    var seen = 0;
    var done = false;
    var source = new EventSource(box.getAttribute("data-events"));

    function update(event, label) {
      var data = {};
      try { data = JSON.parse(event.data); } catch (e) { /* keep the page as it is */ }
      seen += 1;
      if (typeof data.progress === "number" && bar) {
        bar.value = data.progress;
        bar.textContent = data.progress + "%";
        if (value) { value.textContent = data.progress + "%"; }
      }
      if (label && text) { text.textContent = label; }
      if (data.progress > 0 && badge && badge.textContent === "Pending") { badge.textContent = "Starting"; }
      if (data.message && list && seen > shown) {
        var item = document.createElement("li");
        item.textContent = data.message;
        list.appendChild(item);
      }
    }

    function finish() {
      done = true;
      source.close();
    }

    source.addEventListener("progress", function (event) { update(event, "Starting your lab…"); });
    source.addEventListener("ready", function (event) {
      // Right after a launch the lab is what the user came for: go there. Otherwise (a restart, a later
      // visit) this tab stays the platform's: the page shows the running lab with its Open (new tab).
      var target = box.getAttribute("data-open");
      update(event, target ? "Ready: opening your lab…" : "Ready");
      finish();
      if (target) { window.location.assign(target); } else { reloadSoon(300); }
    });
    // Failed, stopped, or a state this page does not know: the server renders it (reason, logs link).
    source.addEventListener("failed", function (event) { update(event, "The lab did not start"); finish(); reloadSoon(300); });
    source.addEventListener("state", function () { finish(); reloadSoon(300); });
    source.onerror = function () {
      // A dropped or refused stream: fall back to what the page does without JavaScript.
      if (done) { return; }
      finish();
      reloadSoon(2000);
    };
  }

  function logAtEnd(pre) {
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 24;
  }

  function followLog() {
    var pre = document.querySelector("#lab-log pre");
    if (pre) { pre.scrollTop = pre.scrollHeight; }
    var stick = true;
    var kept = 0;
    document.body.addEventListener("htmx:beforeSwap", function (event) {
      var target = event.detail.target;
      if (!target || target.id !== "lab-log") { return; }
      var old = target.querySelector("pre");
      stick = !old || logAtEnd(old);
      kept = old ? old.scrollTop : 0;
    });
    document.body.addEventListener("htmx:afterSettle", function () {
      var now = document.querySelector("#lab-log pre");
      if (now) { now.scrollTop = stick ? now.scrollHeight : kept; }
    });
  }

  function setUp() {
    if (document.getElementById("lab-log")) { followLog(); }
    var ready = document.getElementById("lab-ready");
    if (ready && ready.hasAttribute("data-auto-open")) {  // just launched, and already up
      window.location.assign(ready.getAttribute("data-auto-open"));
      return;
    }
    var box = document.getElementById("lab-progress");
    if (!box) { return; }
    if (box.hasAttribute("data-events") && window.EventSource) {
      follow(box);
    } else if (box.hasAttribute("data-events") || box.hasAttribute("data-reload")) {
      reloadSoon(parseInt(box.getAttribute("data-reload"), 10) || 2000);
    }
  }

  document.addEventListener("DOMContentLoaded", setUp);
})();
