/* File manager: drag-and-drop uploads (streamed PUTs to the API, with progress) and delete confirmation.
   Without this file the plain forms still work. */
(function () {
  "use strict";

  function csrfToken() {
    var input = document.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  function encodePath(name) {
    return name.split("/").map(encodeURIComponent).join("/");
  }

  function put(url, file, onProgress) {
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      xhr.open("PUT", url);
      xhr.setRequestHeader("X-CSRF-Token", csrfToken());
      xhr.setRequestHeader("Content-Type", "application/octet-stream");
      xhr.upload.addEventListener("progress", function (e) { if (e.lengthComputable) { onProgress(e.loaded, e.total); } });
      xhr.addEventListener("load", function () {
        if (xhr.status < 300) { resolve(); return; }
        var message = "upload failed (" + xhr.status + ")";
        try { message = JSON.parse(xhr.responseText).error.message; } catch (err) { /* keep the status */ }
        reject(new Error(message));
      });
      xhr.addEventListener("error", function () { reject(new Error("the connection failed")); });
      xhr.send(file);
    });
  }

  function uploadAll(zone, files) {
    var base = zone.getAttribute("data-upload-base").replace(/\/?$/, "/");
    var status = zone.querySelector("[data-upload-status]");
    var list = Array.prototype.slice.call(files);
    var done = 0;
    zone.classList.add("uploading");
    var next = function () {
      if (done >= list.length) {
        status.textContent = "Uploaded " + done + " file" + (done === 1 ? "" : "s") + ".";
        window.location.reload();
        return;
      }
      var file = list[done];
      var name = file.webkitRelativePath || file.name;
      return put(base + encodePath(name), file, function (loaded, total) {
        status.textContent = "Uploading " + name + ": " + Math.round(100 * loaded / total) + "%";
      }).then(function () { done += 1; return next(); });
    };
    Promise.resolve().then(next).catch(function (err) {
      zone.classList.remove("uploading");
      status.textContent = "Upload stopped: " + err.message;
      status.classList.add("form-error");
    });
  }

  function setUp(zone) {
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (e) { e.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) { uploadAll(zone, e.dataTransfer.files); }
    });
    zone.addEventListener("submit", function (e) {
      var input = zone.querySelector("input[type=file]");
      if (input && input.files.length) { e.preventDefault(); uploadAll(zone, input.files); }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-dropzone]").forEach(setUp);
    // The whole file list also accepts drops into the current folder.
    var zone = document.querySelector("[data-dropzone]");
    var panel = document.querySelector(".files-panel");
    if (zone && panel) {
      panel.addEventListener("dragover", function (e) { e.preventDefault(); });
      panel.addEventListener("drop", function (e) {
        if (e.target.closest("[data-dropzone]")) { return; }
        e.preventDefault();
        if (e.dataTransfer && e.dataTransfer.files.length) { uploadAll(zone, e.dataTransfer.files); }
      });
    }
    document.querySelectorAll("form[data-confirm]").forEach(function (form) {
      form.addEventListener("submit", function (e) {
        if (!window.confirm(form.getAttribute("data-confirm"))) { e.preventDefault(); }
      });
    });
  });
})();
