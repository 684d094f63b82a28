// report.html: filter and page the clusters. Reads text with textContent and
// writes only textContent, attributes and `hidden`: never markup.
(function () {
  "use strict";
  var box = document.getElementById("filter");
  var count = document.getElementById("count");
  var expand = document.getElementById("expand");
  var collapse = document.getElementById("collapse");
  var sections = [];
  Array.prototype.forEach.call(document.querySelectorAll("[data-pager]"), function (el) {
    var items = Array.prototype.slice.call(el.querySelectorAll(".item"));
    sections.push({
      el: el,
      items: items,
      keys: items.map(function (item) {
        return ((item.getAttribute("data-key") || "") + " " + item.textContent).toLowerCase();
      }),
      size: parseInt(el.getAttribute("data-pager"), 10) || 50,
      page: 0,
      matches: items,
      nav: el.querySelector(".pager"),
      none: el.querySelector(".nomatch")
    });
  });

  function show(section) {
    var pages = Math.max(1, Math.ceil(section.matches.length / section.size));
    section.page = Math.min(Math.max(section.page, 0), pages - 1);
    var start = section.page * section.size;
    var visible = section.matches.slice(start, start + section.size);
    section.items.forEach(function (item) { item.hidden = true; });
    visible.forEach(function (item) { item.hidden = false; });
    if (section.none) { section.none.hidden = visible.length > 0 || section.items.length === 0; }
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
      section.matches = section.items.filter(function (_item, i) {
        return terms.every(function (t) { return section.keys[i].indexOf(t) !== -1; });
      });
      section.page = 0;
      show(section);
      parts.push(section.matches.length + " of " + section.items.length + " " +
        (section.el.id === "clusters" ? "clusters" : "singletons"));
    });
    count.textContent = terms.length ? parts.join(", ") + " match" : "";
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
  var clusters = document.querySelectorAll("details.cluster");
  expand.hidden = collapse.hidden = clusters.length === 0;
  expand.addEventListener("click", function () {
    Array.prototype.forEach.call(clusters, function (d) { if (!d.hidden) { d.open = true; } });
  });
  collapse.addEventListener("click", function () {
    Array.prototype.forEach.call(clusters, function (d) { d.open = false; });
  });
  // report.html#q=words opens the report filtered
  if (location.hash.indexOf("#q=") === 0) {
    try { box.value = decodeURIComponent(location.hash.slice(3)); } catch (e) { box.value = ""; }
  }
  apply();
  document.documentElement.setAttribute("data-ready", "1");
})();
