/* The référent's form pages, better with JavaScript (they work without it: the
   server does the same on each submit button, and its validation is the truth).
   - list rows ("Ajouter une ligne" / "Supprimer la ligne n") added and removed in place;
   - the EDE's total and proposed orientation as the paliers are chosen, with the
     bounds the page gives in data attributes (EDE_BOUND_LOW / EDE_BOUND_HIGH);
   - ROME codes suggested from /rome?q= while typing;
   - the error summary takes the focus when the page shows one. */
(function () {
  "use strict";
  var form = document.getElementById("saisie");
  if (!form) { return; }
  var annonces = document.getElementById("annonces");

  function annonce(text) {
    if (!annonces) { return; }
    annonces.textContent = "";
    var p = document.createElement("p");
    p.textContent = text;
    annonces.appendChild(p);
  }

  // -- rows ------------------------------------------------------------------
  function renumber(liste) {
    var path = liste.getAttribute("data-liste");
    var id = path.replace(/\./g, "-");
    var rows = liste.querySelectorAll("fieldset.ligne");
    var pattern = new RegExp("^" + id + "-\\d+-");
    rows.forEach(function (row, n) {
      var prefix = id + "-" + n + "-";
      row.setAttribute("data-ligne", String(n));
      row.querySelector("legend").textContent = "Ligne " + (n + 1);
      row.querySelectorAll("[name],[id],[for],[aria-describedby],[list]").forEach(function (el) {
        ["name", "id", "for", "list"].forEach(function (attr) {
          var v = el.getAttribute(attr);
          if (v && pattern.test(v)) { el.setAttribute(attr, v.replace(pattern, prefix)); }
        });
        var d = el.getAttribute("aria-describedby");
        if (d) {
          el.setAttribute("aria-describedby", d.split(" ").map(function (x) {
            return x.replace(pattern, prefix);
          }).join(" "));
        }
      });
      var del = row.querySelector("button.supprimer");
      del.value = "supprimer:" + path + ":" + n;
      del.textContent = "Supprimer la ligne " + (n + 1);
    });
    var add = liste.querySelector("button.ajouter");
    var max = parseInt(liste.getAttribute("data-max") || "0", 10);
    if (add) { add.hidden = max > 0 && rows.length >= max; }
    return rows.length;
  }

  function clear(row) {
    row.querySelectorAll("input, select, textarea").forEach(function (el) {
      if (el.type === "radio" || el.type === "checkbox") { el.checked = el.value === ""; }
      else if (el.tagName === "SELECT") { el.selectedIndex = 0; }
      else { el.value = ""; }
      el.removeAttribute("aria-invalid");
    });
    row.querySelectorAll(".erreur-champ").forEach(function (el) { el.remove(); });
    row.querySelectorAll(".en-erreur").forEach(function (el) { el.classList.remove("en-erreur"); });
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button");
    if (!button) { return; }
    var liste = button.closest(".liste");
    if (!liste) { return; }
    var rows = liste.querySelectorAll("fieldset.ligne");
    if (button.classList.contains("ajouter") && rows.length) {
      event.preventDefault();
      var copy = rows[rows.length - 1].cloneNode(true);
      clear(copy);
      button.parentNode.insertBefore(copy, button);
      var n = renumber(liste);
      annonce("Ligne " + n + " ajoutée.");
      var first = copy.querySelector("input, select, textarea");
      if (first) { first.focus(); }
    } else if (button.classList.contains("supprimer")) {
      event.preventDefault();
      var row = button.closest("fieldset.ligne");
      if (rows.length > 1) { row.remove(); } else { clear(row); }
      renumber(liste);
      annonce("Ligne supprimée.");
      var next = liste.querySelector("fieldset.ligne button.supprimer") || liste.querySelector("button.ajouter");
      if (next) { next.focus(); }
    }
  });

  // -- EDE -------------------------------------------------------------------
  var ede = document.getElementById("ede-total");
  function edeUpdate() {
    var groups = {};
    form.querySelectorAll("input[data-points]").forEach(function (el) {
      groups[el.name] = groups[el.name] || null;
      if (el.checked) { groups[el.name] = el; }
    });
    var names = Object.keys(groups);
    var total = 0, complete = names.length > 0, colours = {};
    names.forEach(function (name) {
      var el = groups[name];
      if (!el) { complete = false; return; }
      total += parseInt(el.getAttribute("data-points"), 10);
      colours[el.getAttribute("data-couleur")] = true;
    });
    var low = parseInt(ede.getAttribute("data-low"), 10);
    var high = parseInt(ede.getAttribute("data-high"), 10);
    var points = document.getElementById("ede-points");
    var orientation = document.getElementById("ede-orientation");
    ["bleu", "rose", "vert"].forEach(function (c) { ede.classList.remove("alerte-" + c); });
    if (!complete) {
      var none = document.getElementById("ede-alerte");
      if (none) { none.textContent = ""; }
      points.textContent = "—";
      orientation.textContent = "à compléter (un palier par item)";
      return;
    }
    points.textContent = String(total);
    var key = total < low ? "professionnelle" : (total > high ? "solidarite" : "equipe");
    orientation.textContent = ede.getAttribute("data-" + key);
    var worst = ["bleu", "rose", "vert"].filter(function (c) { return colours[c]; })[0];
    var alerte = document.getElementById("ede-alerte");
    if (worst) { ede.classList.add("alerte-" + worst); }
    if (alerte) {
      alerte.textContent = worst ? "Alerte couleur " + worst + " : " + ede.getAttribute("data-couleur-" + worst) : "";
    }
  }
  if (ede) {
    form.addEventListener("change", function (event) {
      if (event.target.hasAttribute("data-points")) { edeUpdate(); }
    });
    edeUpdate();
  }

  // -- ROME ------------------------------------------------------------------
  var timer = null;
  form.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.hasAttribute || !input.hasAttribute("data-rome")) { return; }
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = input.value.trim();
      var list = document.getElementById(input.getAttribute("list"));
      if (!list || q.length < 2) { return; }
      fetch("/rome?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (items) {
          list.textContent = "";
          items.forEach(function (item) {
            var option = document.createElement("option");
            option.value = item.code;
            option.label = item.code + " – " + item.label;
            option.textContent = item.code + " – " + item.label;
            list.appendChild(option);
          });
        });
    }, 200);
  });

  // -- sections a request needs (the definition's needed_when) ---------------
  function holds(c) {
    if (c.any) { return c.any.some(holds); }
    if (c.all) { return c.all.every(holds); }
    if (c.not) { return !holds(c.not); }
    var name = c.path.replace(/\./g, "-");
    if ("has" in c) {
      return form.querySelector('[name="' + name + '"][value="' + c.has + '"]:checked') !== null;
    }
    if ("is" in c) {
      var box = form.querySelector('[name="' + name + '"]');
      return box ? box.checked === (c.is === true) : true;
    }
    return true;
  }
  var needed = form.querySelectorAll("section[data-needed-when]");
  function showNeeded() {
    needed.forEach(function (section) {
      var show = holds(JSON.parse(section.getAttribute("data-needed-when"))) ||
        section.querySelector(".en-erreur, .en-avertissement") !== null;
      section.hidden = !show;
    });
  }
  if (needed.length) {
    form.addEventListener("change", showNeeded);
    showNeeded();
  }

  // -- errors ----------------------------------------------------------------
  var summary = document.getElementById("resume-erreurs");
  if (summary) { summary.focus(); }
})();
