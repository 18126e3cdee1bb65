// The explorer's map: an offline world map (bundled world-atlas), optional tiles, clustered markers of
// the current results' locations; clicking one narrows the search to it (the hidden bbox field). Also
// shows the "Open in Datalab" dialog.
(function () {
  "use strict";
  var map, cluster;

  function form() { return document.getElementById("explorer-form"); }

  function search() {
    var f = form();
    if (window.htmx) { window.htmx.trigger(f, "submit"); } else { f.submit(); }
  }

  function pick(bbox) {
    document.getElementById("bbox").value = bbox.join(",");
    search();
  }

  // A class naming the point (e.g. loc-m61d528_16d262), so a location can be found on the page.
  function locClass(b) {
    var part = function (x) { return x.toFixed(3).replace("-", "m").replace(".", "d"); };
    return "explorer-loc loc-" + part(b[0]) + "_" + part(b[1]);
  }

  var drawn = null;  // the locations on the map now: a facet click that leaves them as they are redraws nothing

  function drawLocations() {
    var data = document.getElementById("explorer-locations");
    if (!map || !data) { return; }
    var json = data.dataset.json || "[]";
    if (json === drawn) { return; }
    drawn = json;
    cluster.clearLayers();
    var layers = JSON.parse(json).map(function (loc) {
      var b = loc.bbox, layer;
      if (b[0] === b[2] && b[1] === b[3]) {
        layer = L.circleMarker([b[1], b[0]], { radius: 6, color: "#f28c28", weight: 2, className: locClass(b) });
      } else {
        layer = L.rectangle([[b[1], b[0]], [b[3], b[2]]], { color: "#3b6fb6", weight: 1 });
      }
      layer.bindTooltip(loc.count.toLocaleString() + " file(s)");
      layer.on("click", function () { pick(b); });
      return layer;
    });
    cluster.addLayers(layers);  // in one go: the cluster is computed once, not per marker
  }

  function init() {
    var el = document.getElementById("map");
    if (!el || !window.L) { return; }
    map = L.map(el, { worldCopyJump: true, minZoom: 1, maxZoom: 14 }).setView([20, 0], 1);
    if (el.dataset.tiles) {
      L.tileLayer(el.dataset.tiles, { attribution: el.dataset.attribution || "" }).addTo(map);
    }
    fetch(el.dataset.world).then(function (r) { return r.json(); }).then(function (world) {
      var countries = topojson.feature(world, world.objects.countries);
      L.geoJSON(countries, { style: { color: "#8a9bb0", weight: 0.6, fillColor: "#f4f1ea", fillOpacity: 1 },
                             interactive: false }).addTo(map).bringToBack();
    });
    cluster = L.markerClusterGroup({ showCoverageOnHover: false, maxClusterRadius: 40 });
    map.addLayer(cluster);
    drawLocations();
  }

  // "Open in Datalab": htmx loads the choices into the <dialog>; show it as a modal once they are in.
  function showOpenDialog(event) {
    var dialog = event.detail && event.detail.target;
    if (dialog && dialog.id === "open-dialog" && !dialog.open) { dialog.showModal(); }
  }

  // A lab launched to open a file as a notebook comes back here once it runs: make the notebook now
  // (a POST: the page without JavaScript shows the button instead).
  function resumeOpen() {
    var form = document.getElementById("open-resume");
    if (form) { form.requestSubmit(); }
  }

  document.addEventListener("DOMContentLoaded", init);
  document.addEventListener("DOMContentLoaded", resumeOpen);
  document.addEventListener("htmx:afterSwap", drawLocations);
  document.addEventListener("htmx:afterSwap", showOpenDialog);
  document.addEventListener("click", function (event) {
    var close = event.target.closest("[data-close-dialog]");
    if (close && close.closest("dialog")) {
      close.closest("dialog").close();
      return;
    }
    if (event.target.matches("[data-clear-bbox]")) {
      event.preventDefault();
      document.getElementById("bbox").value = "";
      search();
    }
  });
})();
