/*
 * The 404 page: suggest the three pages whose addresses are closest to the one
 * that was asked for, from the site's own sitemap.xml.
 */
(function () {
  "use strict";
  var list = document.getElementById("cp-suggestions");
  if (!list) return;

  function words(path) {
    return path.toLowerCase().split(/[\/\-_.#?]+/).filter(Boolean);
  }

  function bigrams(text) {
    var grams = new Set();
    for (var i = 0; i < text.length - 1; i++) grams.add(text.slice(i, i + 2));
    return grams;
  }

  function similarity(asked, candidate) {
    var a = new Set(words(asked)), b = new Set(words(candidate));
    var shared = 0;
    a.forEach(function (w) { if (b.has(w)) shared += 1; });
    var wordScore = shared / Math.max(1, new Set([].concat(Array.from(a), Array.from(b))).size);
    var ga = bigrams(asked.toLowerCase()), gb = bigrams(candidate.toLowerCase()), both = 0;
    ga.forEach(function (g) { if (gb.has(g)) both += 1; });
    var charScore = (2 * both) / Math.max(1, ga.size + gb.size);
    return wordScore + charScore;
  }

  var base = new URL(list.dataset.sitemap, location.href).pathname.replace(/sitemap\.xml$/, "");
  var asked = location.pathname.indexOf(base) === 0 ? location.pathname.slice(base.length) : location.pathname;

  fetch(list.dataset.sitemap)
    .then(function (response) { return response.text(); })
    .then(function (xml) {
      var locs = Array.from(new DOMParser().parseFromString(xml, "application/xml").getElementsByTagName("loc"));
      var pages = locs.map(function (loc) {
        var path = new URL(loc.textContent.trim()).pathname;
        var siteRoot = new URL(locs[0].textContent.trim()).pathname;
        return path.indexOf(siteRoot) === 0 ? path.slice(siteRoot.length) : path;
      }).filter(function (path) { return path !== ""; });
      var best = pages
        .map(function (path) { return { path: path, score: similarity(asked, path) }; })
        .sort(function (x, y) { return y.score - x.score; })
        .slice(0, 3);
      list.innerHTML = "";
      best.forEach(function (page) {
        var item = document.createElement("li");
        var link = document.createElement("a");
        link.href = base + page.path;
        link.textContent = page.path.replace(/\/$/, "").replace(/[-\/]/g, function (c) { return c === "/" ? " › " : " "; });
        item.appendChild(link);
        list.appendChild(item);
      });
    })
    .catch(function () { /* keep the link to the home page */ });
})();
