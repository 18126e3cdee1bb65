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

  // Log lines only come once a worker runs the run: a page loaded while it was queued says so then.
  function markRunning() {
    var badge = document.querySelector("#run-state .badge-run[data-state=queued]");
    if (!badge) { return; }
    badge.setAttribute("data-state", "running");
    badge.className = "badge badge-run badge-run-running";
    var label = badge.querySelector(".state-label");
    if (label) { label.textContent = "Running"; }
  }

  function followLog(pre) {
    var done = false;
    var source = new EventSource(pre.getAttribute("data-events"));
    var atBottom = function () { return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40; };
    source.addEventListener("log", function (event) {
      var data = {};
      try { data = JSON.parse(event.data); } catch (e) { return; }
      markRunning();
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

  // The editor's tabs: without JavaScript every panel is shown one under the other.
  function setUpTabs(box) {
    var list = box.querySelector("[role=tablist]");
    var tabs = Array.prototype.slice.call(box.querySelectorAll("[role=tab]"));
    function select(tab) {
      tabs.forEach(function (t) {
        var on = t === tab;
        t.setAttribute("aria-selected", on ? "true" : "false");
        t.tabIndex = on ? 0 : -1;
        var panel = document.getElementById(t.getAttribute("aria-controls"));
        if (panel) { panel.hidden = !on; }
      });
    }
    tabs.forEach(function (tab, i) {
      tab.addEventListener("click", function () { select(tab); });
      tab.addEventListener("keydown", function (event) {
        var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
        if (!step) { return; }
        var next = tabs[(i + step + tabs.length) % tabs.length];
        select(next);
        next.focus();
      });
    });
    list.hidden = false;
    var first = tabs.filter(function (t) { return t.getAttribute("aria-selected") === "true"; })[0] || tabs[0];
    select(first);
  }

  // Line numbers beside the CWL text, following its lines and its scrolling.
  function setUpGutter(area, gutter) {
    var shown = 0;
    function renumber() {
      var lines = area.value.split("\n").length;
      if (lines === shown) { return; }
      shown = lines;
      var text = "";
      for (var n = 1; n <= lines; n += 1) { text += n + "\n"; }
      gutter.textContent = text;
    }
    area.addEventListener("input", renumber);
    area.addEventListener("scroll", function () { gutter.scrollTop = area.scrollTop; });
    renumber();
  }

  document.addEventListener("DOMContentLoaded", function () {
    var pre = document.getElementById("run-log");
    if (pre && pre.hasAttribute("data-events") && window.EventSource) { followLog(pre); }
    document.querySelectorAll("[data-tabs]").forEach(setUpTabs);
    var area = document.getElementById("cwl");
    var gutter = document.getElementById("cwl-gutter");
    if (area && gutter) { setUpGutter(area, gutter); }
  });
})();
