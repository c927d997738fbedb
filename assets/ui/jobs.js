// mailvet dashboard, Jobs: drag and drop onto the upload form, and the
// live progress of one job. No dependencies; the pages work without it.
(function () {
  "use strict";

  var drop = document.getElementById("drop");
  var input = document.getElementById("list");
  if (drop && input) {
    ["dragenter", "dragover"].forEach(function (name) {
      drop.addEventListener(name, function (event) {
        event.preventDefault();
        drop.classList.add("over");
      });
    });
    ["dragleave", "drop"].forEach(function (name) {
      drop.addEventListener(name, function () { drop.classList.remove("over"); });
    });
    drop.addEventListener("drop", function (event) {
      event.preventDefault();
      if (event.dataTransfer && event.dataTransfer.files.length > 0) {
        input.files = event.dataTransfer.files;
        var form = document.getElementById("upload");
        if (form) { form.requestSubmit(); }
      }
    });
  }

  var box = document.getElementById("progress");
  if (!box) { return; }
  var finished = ["completed", "cancelled", "failed"];
  var format = new Intl.NumberFormat("en");
  function set(id, text) {
    var node = document.getElementById(id);
    if (node) { node.textContent = text; }
  }
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    if (seconds < 60) { return seconds + " s"; }
    if (seconds < 3600) { return Math.floor(seconds / 60) + " min " + (seconds % 60) + " s"; }
    return Math.floor(seconds / 3600) + " h " + Math.floor((seconds % 3600) / 60) + " min";
  }
  function show(job) {
    var percent = (job.progress * 100).toFixed(1) + " %";
    var bar = document.getElementById("bar");
    if (bar) { bar.value = Math.round(job.progress * 1000); bar.textContent = percent; }
    set("percent", percent);
    set("status", job.status);
    set("processed", format.format(job.processed) + " of " + format.format(job.total));
    ["deliverable", "undeliverable", "risky", "unknown"].forEach(function (status) {
      set("count-" + status, format.format(job.counts[status]));
    });
    var end = job.completed_at ? Date.parse(job.completed_at) : Date.now();
    var elapsed = Math.max(1, end - Date.parse(job.created_at)) / 1000;
    set("rate", (job.processed / elapsed).toFixed(1) + " addresses/s");
    set("eta", job.eta_seconds == null ? "—" : duration(job.eta_seconds));
    box.setAttribute("data-status", job.status);
  }
  function poll() {
    fetch("/ui/jobs/" + box.getAttribute("data-job") + "/progress", { credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (job) {
        if (!job) { return; }
        show(job);
        if (finished.indexOf(job.status) >= 0) {
          set("announce", "The job is " + job.status + ".");
          var cancel = document.getElementById("cancel");
          if (cancel) { cancel.remove(); }
        } else {
          window.setTimeout(poll, 1000);
        }
      })
      .catch(function () { window.setTimeout(poll, 5000); });
  }
  if (finished.indexOf(box.getAttribute("data-status")) < 0) { window.setTimeout(poll, 500); }
})();
