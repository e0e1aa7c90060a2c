/* The référent's form pages, better with JavaScript (they work without it: the
   server does the same on each submit button, and its validation is the truth).
   - list rows ("Ajouter une ligne" / "Supprimer la ligne n") added and removed in place;
   - the EDE's total and proposed orientation as the paliers are chosen, with the
     bounds the page gives in data attributes (EDE_BOUND_LOW / EDE_BOUND_HIGH);
   - ROME codes suggested from /rome?q= while typing, picked with the arrow keys and Enter;
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
      row.querySelectorAll("[name],[id],[for],[aria-describedby],[aria-controls]").forEach(function (el) {
        ["name", "id", "for", "aria-controls"].forEach(function (attr) {
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
    row.querySelectorAll(".suggestions").forEach(function (el) { el.textContent = ""; el.hidden = true; });
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

  // -- ROME: codes suggested while typing (an ARIA 1.2 combobox with a listbox) --------
  // Arrow keys move through the suggestions, Enter picks one, Escape closes the list.
  var timer = null;
  function romeList(input) { return document.getElementById(input.id + "-codes"); }
  function romeOptions(input) {
    var list = romeList(input);
    return list ? Array.prototype.slice.call(list.querySelectorAll("[role=option]")) : [];
  }
  function romeClose(input) {
    var list = romeList(input);
    if (list) { list.hidden = true; list.textContent = ""; }
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
  }
  function romeSetup(input) {
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", input.id + "-codes");
  }
  function romeMove(input, step) {
    var options = romeOptions(input);
    if (!options.length) { return; }
    var current = -1;
    options.forEach(function (o, n) { if (o.getAttribute("aria-selected") === "true") { current = n; } });
    var next = current < 0 ? (step > 0 ? 0 : options.length - 1)
      : (current + step + options.length) % options.length;
    options.forEach(function (o, n) { o.setAttribute("aria-selected", n === next ? "true" : "false"); });
    input.setAttribute("aria-activedescendant", options[next].id);
    options[next].scrollIntoView({ block: "nearest" });
  }
  function romePick(input, option) {
    input.value = option.getAttribute("data-code");
    romeClose(input);
    annonce("Code ROME " + input.value + " choisi : " + option.getAttribute("data-label"));
  }
  function romeShow(input, items) {
    var list = romeList(input);
    if (!list) { return; }
    list.textContent = "";
    items.forEach(function (item, n) {
      var option = document.createElement("li");
      option.id = list.id + "-" + n;
      option.setAttribute("role", "option");
      option.setAttribute("aria-selected", "false");
      option.setAttribute("data-code", item.code);
      option.setAttribute("data-label", item.label);
      option.textContent = item.code + " – " + item.label;
      list.appendChild(option);
    });
    list.hidden = items.length === 0;
    input.setAttribute("aria-expanded", items.length ? "true" : "false");
    input.removeAttribute("aria-activedescendant");
    annonce(items.length ? items.length + " codes ROME proposés : flèches pour choisir, Entrée pour valider."
      : "Aucun code ROME trouvé.");
  }
  form.querySelectorAll("input[data-rome]").forEach(romeSetup);
  form.addEventListener("input", function (event) {
    var input = event.target;
    if (!input.hasAttribute || !input.hasAttribute("data-rome")) { return; }
    clearTimeout(timer);
    timer = setTimeout(function () {
      var q = input.value.trim();
      if (q.length < 2) { romeClose(input); return; }
      fetch("/rome?q=" + encodeURIComponent(q), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (items) { if (input.value.trim() === q) { romeShow(input, items); } });
    }, 200);
  });
  form.addEventListener("keydown", function (event) {
    var input = event.target;
    if (!input.hasAttribute || !input.hasAttribute("data-rome")) { return; }
    var open = input.getAttribute("aria-expanded") === "true";
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      if (open) { event.preventDefault(); romeMove(input, event.key === "ArrowDown" ? 1 : -1); }
    } else if (event.key === "Enter" && open && input.getAttribute("aria-activedescendant")) {
      event.preventDefault();          // picks the code; does not submit the form
      romePick(input, document.getElementById(input.getAttribute("aria-activedescendant")));
    } else if (event.key === "Escape" && open) {
      event.preventDefault();
      romeClose(input);
    }
  });
  form.addEventListener("mousedown", function (event) {
    var option = event.target.closest && event.target.closest(".suggestions [role=option]");
    if (!option) { return; }
    event.preventDefault();            // the input keeps the focus
    romePick(document.getElementById(option.parentNode.id.replace(/-codes$/, "")), option);
  });
  form.addEventListener("focusout", function (event) {
    if (event.target.hasAttribute && event.target.hasAttribute("data-rome")) { romeClose(event.target); }
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
