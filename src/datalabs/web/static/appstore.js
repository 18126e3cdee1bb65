/* Datalabs app store: follows a build on its version page (/appstore/{name}/versions/{version}) through
   the API's SSE stream (/api/v1/apps/{name}/versions/{version}/events), appending the log lines as the
   builder writes them; at the end it shows the outcome in place, highlighting the failing line of a failed
   build. Without JavaScript the page refreshes itself instead (<noscript> meta refresh). */
(function () {
  "use strict";

  var LABELS = { built: "Built", failed: "Build failed", building: "Building" };

  function setState(value) {
    var badge = document.getElementById("version-state");
    if (!badge) { return; }
    badge.textContent = LABELS[value] || value;
    badge.setAttribute("data-state", value);
    badge.classList.remove("app-state-ok", "app-state-error");
    if (value === "built") { badge.classList.add("app-state-ok"); }
    if (value === "failed") { badge.classList.add("app-state-error"); }
  }

  function reveal(state) {
    document.querySelectorAll("[data-when]").forEach(function (el) {
      el.hidden = el.getAttribute("data-when") !== state;
    });
  }

  // As appstore_view.is_failing: the error may join several lines of the tool's output, and the
  // BUILD FAILED line repeats it whole. Short lines would match any error by chance.
  function isFailing(line, error) {
    var text = line.trim();
    return line.indexOf(error) !== -1 || (text.length >= 12 && error.indexOf(text) !== -1);
  }

  function highlight(log, error) {
    var first = null;
    if (!error) { return; }
    log.querySelectorAll("li").forEach(function (item) {
      if (isFailing(item.textContent, error)) {
        item.classList.add("log-failing");
        first = first || item;
      }
    });
    if (first) { first.scrollIntoView({ block: "center" }); }
  }

  function follow(log) {
    // The stream replays the log from its start; the page already shows the first `shown` lines.
    var shown = parseInt(log.getAttribute("data-count"), 10) || 0;
    var seen = 0;
    var done = false;
    var source = new EventSource(log.getAttribute("data-events"));

    function finish() {
      done = true;
      source.close();
      log.setAttribute("data-followed", "done");
    }

    log.setAttribute("data-followed", "live");
    source.addEventListener("log", function (event) {
      var line = "";
      try { line = JSON.parse(event.data); } catch (e) { return; }
      seen += 1;
      if (seen <= shown) { return; }
      if (seen === 1 || seen === shown + 1) { setState("building"); }
      var item = document.createElement("li");
      item.textContent = line;
      log.appendChild(item);
    });
    source.addEventListener("built", function () {
      finish();
      setState("built");
      reveal("built");
      // The wizard moves on from "Build" to "Test".
      var step = document.querySelector(".wizard-steps li.current");
      if (step && step.nextElementSibling) {
        step.classList.remove("current");
        step.classList.add("done");
        step.removeAttribute("aria-current");
        step.nextElementSibling.classList.add("current");
        step.nextElementSibling.setAttribute("aria-current", "step");
      }
    });
    source.addEventListener("failed", function (event) {
      var data = {};
      try { data = JSON.parse(event.data); } catch (e) { /* keep the page as it is */ }
      finish();
      setState("failed");
      var text = document.getElementById("build-error");
      if (text) { text.textContent = data.error || ""; }
      reveal("failed");
      highlight(log, data.error);
    });
    source.onerror = function () {
      // A dropped or refused stream: fall back to what the page does without JavaScript.
      if (done) { return; }
      finish();
      setTimeout(function () { window.location.reload(); }, 2000);
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var log = document.getElementById("build-log");
    if (log && log.hasAttribute("data-events") && window.EventSource) { follow(log); }
  });
})();
