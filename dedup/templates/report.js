// report.html: build each cluster's members and evidence from the embedded
// JSON when the cluster is opened, and filter and page the clusters. Text is
// written only with textContent (never markup), so no document text can run.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var box = document.getElementById("filter");
  var count = document.getElementById("count");
  var expand = document.getElementById("expand");
  var collapse = document.getElementById("collapse");

  // --- building the DOM from data ---------------------------------------------------------

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function add(parent) {
    for (var i = 1; i < arguments.length; i++) {
      var child = arguments[i];
      parent.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    }
    return parent;
  }

  function row(cells) {
    var tr = el("tr");
    cells.forEach(function (cell) { tr.appendChild(cell); });
    return tr;
  }

  function cell(tag, className, text, title) {
    var node = el(tag, className, text);
    if (title) { node.title = title; }
    return node;
  }

  function table(className, head, rows) {
    var t = el("table", "grid " + className);
    add(t, add(el("thead"), row(head)));
    var body = el("tbody");
    rows.forEach(function (r) { body.appendChild(r); });
    t.appendChild(body);
    return t;
  }

  function idAndLang(member) {
    return [el("span", "mono", member.id), " ", el("span", "note", member.lang)];
  }

  function membersTable(members) {
    return table("members", [
      cell("th"), cell("th", "", "id"), cell("th", "", "language"),
      cell("th", "num", "sentences"), cell("th", "num", "characters"), cell("th", "", "beginning")
    ], members.map(function (m) {
      var keep = cell("td");
      if (m.keep) {
        keep.appendChild(cell("span", "badge", "keep", "representative: the copy to keep"));
      }
      var lang = add(cell("td", "", m.lang + " "), el("span", "note", m.script));
      var text = cell("td", "text");
      text.dir = "auto";
      if (m.title) { add(text, el("strong", "", m.title), " "); }
      add(text, m.excerpt);
      var tr = row([keep, cell("td", "mono", m.id), lang, cell("td", "num", m.sentences),
        cell("td", "num", m.chars), text]);
      if (m.keep) { tr.className = "kept"; }
      return tr;
    }));
  }

  function sentenceCell(member, number) {
    var text = member.text[number];
    var td = cell("td", "text", text === undefined ? "" : text);
    td.dir = "auto";
    return td;
  }

  function pairsTable(link, left, right) {
    var colgroup = el("colgroup");
    ["c-idx", "c-text", "c-text", "c-num", "c-num", "c-num"].forEach(function (c) {
      colgroup.appendChild(el("col", c));
    });
    var t = table("pairs", [
      cell("th", "", "#"),
      add.apply(null, [cell("th")].concat(idAndLang(left))),
      add.apply(null, [cell("th")].concat(idAndLang(right))),
      cell("th", "num", "similarity", "cosine of the language-centred sentence vectors"),
      cell("th", "num", "z", "standard deviations above the partner language's null"),
      cell("th", "num", "weight", "contribution to the pair score")
    ], link.pairs.map(function (p) {
      return row([
        cell("td", "idx", (p[0] + 1) + "↔" + (p[1] + 1)),
        sentenceCell(left, p[0]), sentenceCell(right, p[1]),
        cell("td", "num", p[2].toFixed(3)), cell("td", "num", p[3].toFixed(1)),
        cell("td", "num", p[4].toFixed(2))
      ]);
    }));
    t.insertBefore(colgroup, t.firstChild);
    return t;
  }

  function linkView(link, members, open) {
    var left = members[link.left];
    var right = members[link.right];
    if (link.kind === "copy") {
      return add(el("p", "link copy"), el("span", "mono", right.id), " is a copy of ",
        el("span", "mono", left.id),
        " ", el("span", "note", "(found before alignment: " + link.why + ")"));
    }
    if (link.kind === "adopted") {
      return add(el("p", "link adopted"), el("span", "mono", right.id),
        " has no link of its own and was adopted ",
        el("span", "note", "(" + link.why + ")"));
    }
    var details = el("details", "link");
    var n = link.pairs.length + link.more_pairs;
    var summary = add.apply(null, [el("summary")].concat(idAndLang(left), [" ↔ "],
      idAndLang(right), [" · score " + link.score.toFixed(3) + " · coverage " +
      link.coverage.toFixed(2) + " · " + n + " aligned sentence pairs"]));
    details.appendChild(summary);
    function fill() {
      if (!details.open || details.childNodes.length > 1) { return; }
      if (link.pairs.length) { details.appendChild(pairsTable(link, left, right)); }
      if (link.more_pairs) {
        details.appendChild(el("p", "note",
          link.more_pairs + " more aligned pairs in clusters.json."));
      }
    }
    details.addEventListener("toggle", fill);
    details.open = open;
    fill();
    return details;
  }

  function fillCluster(details) {
    var body = details.querySelector(".body");
    if (!details.open || body.childNodes.length) { return; }
    var c = data.clusters[parseInt(details.getAttribute("data-n"), 10)];
    if (!c) {
      body.appendChild(el("p", "note", "Members and evidence of this cluster are in " +
        "clusters.json: report.html holds them for the largest clusters, up to its size limit."));
      return;
    }
    body.appendChild(membersTable(c.members));
    if (c.more_members) {
      body.appendChild(el("p", "note", c.more_members +
        " more members in clusters.json and assignments.csv."));
    }
    c.links.forEach(function (link, i) {
      body.appendChild(linkView(link, c.members, i === 0 && c.links.length <= 3));
    });
    if (c.more_links) {
      body.appendChild(el("p", "note", c.more_links + " more links (weaker) in clusters.json."));
    }
  }

  var clusters = Array.prototype.slice.call(document.querySelectorAll("details.cluster"));
  clusters.forEach(function (details) {
    details.addEventListener("toggle", function () { fillCluster(details); });
    fillCluster(details);
  });

  // --- filter and pages -----------------------------------------------------------------

  // what a filter word can match in a cluster: its members and the sentences shown
  function clusterWords(c) {
    if (!c) { return ""; }
    return c.members.map(function (m) {
      var texts = Object.keys(m.text).map(function (k) { return m.text[k]; });
      return [m.id, m.lang, m.title, m.excerpt].concat(texts).join(" ");
    }).join(" ");
  }

  var sections = [];
  Array.prototype.forEach.call(document.querySelectorAll("[data-pager]"), function (el) {
    var items = Array.prototype.slice.call(el.querySelectorAll(".item"));
    sections.push({
      el: el,
      items: items,
      keys: null,  // made on the first filter word: opening the report does not pay for it
      size: parseInt(el.getAttribute("data-pager"), 10) || 50,
      page: 0,
      matches: items,
      nav: el.querySelector(".pager"),
      none: el.querySelector(".nomatch")
    });
  });

  function keys(section) {
    if (!section.keys) {
      section.keys = section.items.map(function (item) {
        var n = item.getAttribute("data-n");
        var words = n === null ? item.textContent
          : item.querySelector("summary").textContent + " " + clusterWords(data.clusters[n]);
        return ((item.getAttribute("data-key") || "") + " " + words).toLowerCase();
      });
    }
    return section.keys;
  }

  // the markup comes paged (items past the first page hidden): only changes are written
  function show(section) {
    var pages = Math.max(1, Math.ceil(section.matches.length / section.size));
    section.page = Math.min(Math.max(section.page, 0), pages - 1);
    var start = section.page * section.size;
    var visible = new Set(section.matches.slice(start, start + section.size));
    section.items.forEach(function (item) {
      var hide = !visible.has(item);
      if (item.hidden !== hide) { item.hidden = hide; }
    });
    if (section.none) { section.none.hidden = visible.size > 0 || section.items.length === 0; }
    if (section.nav) {
      section.nav.hidden = pages < 2;
      section.nav.querySelector(".status").textContent =
        "page " + (section.page + 1) + " of " + pages;
      section.nav.querySelector("[data-step='-1']").disabled = section.page === 0;
      section.nav.querySelector("[data-step='1']").disabled = section.page >= pages - 1;
    }
  }

  function apply() {
    var terms = box.value.toLowerCase().split(/\s+/).filter(Boolean);
    var parts = [];
    sections.forEach(function (section) {
      var words = terms.length ? keys(section) : null;
      section.matches = terms.length ? section.items.filter(function (_item, i) {
        return terms.every(function (t) { return words[i].indexOf(t) !== -1; });
      }) : section.items;
      section.page = 0;
      show(section);
      parts.push(section.matches.length + " of " + section.items.length + " " +
        (section.el.id === "clusters" ? "clusters" : "singletons"));
    });
    count.textContent = terms.length ? parts.join(", ") + " match" : "";
  }

  // report.html#c0042 opens that cluster on its page
  function openNamed() {
    var target = clusters.filter(function (d) { return "#" + d.id === location.hash; })[0];
    if (!target) { return; }
    var section = sections.filter(function (s) { return s.el.id === "clusters"; })[0];
    if (section.matches.indexOf(target) === -1) { box.value = ""; apply(); }
    section.page = Math.floor(section.matches.indexOf(target) / section.size);
    show(section);
    target.open = true;
    fillCluster(target);
    target.scrollIntoView();
  }

  sections.forEach(function (section) {
    if (!section.nav) { return; }
    section.nav.addEventListener("click", function (event) {
      var step = event.target.getAttribute && event.target.getAttribute("data-step");
      if (!step) { return; }
      section.page += parseInt(step, 10);
      show(section);
      section.el.scrollIntoView();
    });
  });
  box.addEventListener("input", apply);
  expand.hidden = collapse.hidden = clusters.length === 0;
  expand.addEventListener("click", function () {
    clusters.forEach(function (d) { if (!d.hidden) { d.open = true; } });
  });
  collapse.addEventListener("click", function () {
    clusters.forEach(function (d) { d.open = false; });
  });
  // report.html#q=words opens the report filtered
  if (location.hash.indexOf("#q=") === 0) {
    try { box.value = decodeURIComponent(location.hash.slice(3)); } catch (e) { box.value = ""; }
  }
  apply();
  openNamed();
  addEventListener("hashchange", openNamed);
  document.documentElement.setAttribute("data-ready", "1");
})();
