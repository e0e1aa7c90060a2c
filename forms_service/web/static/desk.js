/* The SLAI desk (Guichet SLAI): drag and drop, progress of a batch, review shortcuts.
   Everything here only improves pages that work without it. */
(function () {
  "use strict";

  /* -- upload: files dropped on the zone go into the plain file input -- */
  function initDepot() {
    var zone = document.getElementById("zone-depot");
    var input = document.getElementById("fichiers");
    var list = document.getElementById("fichiers-choisis");
    if (!zone || !input) { return; }
    function show() {
      list.textContent = "";
      Array.prototype.forEach.call(input.files, function (f) {
        var li = document.createElement("li");
        li.textContent = f.name;
        list.appendChild(li);
      });
    }
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("survol"); });
    });
    ["dragleave", "drop"].forEach(function (name) {
      zone.addEventListener(name, function () { zone.classList.remove("survol"); });
    });
    zone.addEventListener("drop", function (e) {
      e.preventDefault();
      if (e.dataTransfer && e.dataTransfer.files.length) {
        input.files = e.dataTransfer.files;
        show();
      }
    });
    input.addEventListener("change", show);
  }

  /* -- a batch's progress: poll its JSON state until it is done, then show the summary -- */
  function initProgression() {
    var box = document.getElementById("progression");
    if (!box || box.dataset.statut === "done") { return; }
    function update(state) {
      document.getElementById("statut").textContent = state.status_label;
      document.getElementById("pages-lues").textContent = state.progress.pages_done;
      document.getElementById("pages-total").textContent = state.progress.pages_total;
      var bar = document.getElementById("barre");
      bar.max = state.progress.pages_total || 1;
      bar.value = state.progress.pages_done;
      Object.keys(state.summary).forEach(function (key) {
        var dd = document.querySelector('#resume [data-cle="' + key + '"]');
        if (dd) { dd.textContent = state.summary[key]; }
      });
      state.pages.forEach(function (p) {
        var li = document.getElementById("page-" + p.file + "-" + p.file_page);
        if (li) {
          li.className = "page etat-" + p.status;
          li.querySelector(".etat").textContent = p.label;
        }
      });
    }
    function poll() {
      fetch(box.dataset.etat, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (state) {
          update(state);
          if (state.status === "done") { window.location.reload(); } else { window.setTimeout(poll, 1500); }
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 1000);
  }

  /* -- review: Entrée confirms, 1..9 choose, N goes to the next one, Échap leaves a field -- */
  function initRaccourcis() {
    var form = document.querySelector("form[data-raccourcis]");
    if (!form && !document.querySelector('a[data-touche="n"]')) { return; }
    document.addEventListener("keydown", function (e) {
      if (e.altKey || e.ctrlKey || e.metaKey || e.isComposing) { return; }
      var t = e.target;
      var typing = t.matches && t.matches("input[type=text], input[type=search], textarea, select");
      if (typing) {
        if (e.key === "Escape") { t.blur(); }
        return;                       /* Entrée in a text field submits its own form */
      }
      if (e.key === "n" || e.key === "N") {
        var next = document.querySelector('a[data-touche="n"]');
        if (next) { e.preventDefault(); window.location.href = next.href; }
        return;
      }
      if (!form) { return; }
      if (e.key === "Enter") {
        if (t.matches && t.matches("button, a, summary")) { return; }
        e.preventDefault();
        var def = form.querySelector("[data-defaut]");
        if (form.reportValidity()) { form.requestSubmit(def || undefined); }
      } else if (/^[1-9]$/.test(e.key)) {
        var el = form.querySelector('[data-touche="' + e.key + '"]');
        if (!el) { return; }
        e.preventDefault();
        if (el.type === "checkbox") {
          el.checked = !el.checked;
          el.focus();
        } else if (el.type === "radio") {
          el.checked = true;
          form.requestSubmit(form.querySelector("[data-defaut]") || undefined);
        } else {
          el.click();
        }
      }
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    initDepot();
    initProgression();
    initRaccourcis();
  });
}());
