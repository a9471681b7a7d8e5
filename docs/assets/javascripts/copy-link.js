/*
 * Copy a link to any section, as a plain URL or as a Markdown link:
 *   [Competing Consumers — See it break](https://…/competing-consumers/#see-it-break)
 * The address is the page's canonical URL, so a link copied from a local or
 * offline copy of the guide still points at the published site.
 */
(function () {
  "use strict";

  var ICON =
    '<svg viewBox="0 0 24 24" aria-hidden="true" focusable="false"><path d="M10.6 13.4a1 1 0 0 ' +
    "1 0-1.4l3.5-3.5a3 3 0 0 1 4.2 4.2l-2.1 2.1a1 1 0 1 1-1.4-1.4l2.1-2.1a1 1 0 0 0-1.4-1.4L12 " +
    "13.4a1 1 0 0 1-1.4 0Zm2.8-2.8a1 1 0 0 1 0 1.4l-3.5 3.5a3 3 0 0 1-4.2-4.2l2.1-2.1a1 1 0 1 1 " +
    '1.4 1.4l-2.1 2.1a1 1 0 0 0 1.4 1.4l3.5-3.5a1 1 0 0 1 1.4 0Z"/></svg>';

  function pageAddress() {
    var canonical = document.querySelector('link[rel="canonical"]');
    return (canonical ? canonical.href : location.href).split("#")[0];
  }

  function pageTitle() {
    var title = document.querySelector('meta[property="og:title"]');
    return title ? title.content : document.title;
  }

  function headingText(heading) {
    var clone = heading.cloneNode(true);
    clone.querySelectorAll(".headerlink, .cp-copy").forEach(function (el) {
      el.remove();
    });
    return clone.textContent.replace(/\s+/g, " ").trim();
  }

  function markdownText(text) {
    return text.replace(/([\\\[\]])/g, "\\$1");
  }

  function closeAll(except) {
    document.querySelectorAll(".cp-copy__menu:not([hidden])").forEach(function (menu) {
      if (menu !== except) {
        menu.hidden = true;
        menu.previousElementSibling.setAttribute("aria-expanded", "false");
      }
    });
  }

  function decorate(heading) {
    if (heading.querySelector(".cp-copy")) return;
    var url = pageAddress() + "#" + heading.id;
    var text = headingText(heading);
    var markdown = "[" + markdownText(pageTitle()) + " — " + markdownText(text) + "](" + url + ")";

    var wrapper = document.createElement("span");
    wrapper.className = "cp-copy";
    wrapper.innerHTML =
      '<button type="button" class="cp-copy__toggle" aria-haspopup="menu" aria-expanded="false">' +
      ICON + "</button>" +
      '<span class="cp-copy__menu" hidden>' +
      '<span class="cp-copy__items" role="menu" aria-label="Copy a link">' +
      '<button type="button" role="menuitem" data-copy="url">Copy link</button>' +
      '<button type="button" role="menuitem" data-copy="markdown">Copy Markdown link</button>' +
      "</span>" +
      '<span class="cp-copy__status" role="status" aria-live="polite"></span>' +
      "</span>";
    var toggle = wrapper.querySelector(".cp-copy__toggle");
    var menu = wrapper.querySelector(".cp-copy__menu");
    var status = wrapper.querySelector(".cp-copy__status");
    toggle.setAttribute("aria-label", "Copy a link to the section " + text);
    toggle.title = "Copy a link to this section";

    toggle.addEventListener("click", function (event) {
      event.preventDefault();
      closeAll(menu);
      menu.hidden = !menu.hidden;
      toggle.setAttribute("aria-expanded", String(!menu.hidden));
      status.textContent = "";
      if (!menu.hidden) menu.querySelector("button").focus();
    });
    menu.addEventListener("click", function (event) {
      var choice = event.target.closest("button[data-copy]");
      if (!choice) return;
      var text = choice.dataset.copy === "markdown" ? markdown : url;
      navigator.clipboard.writeText(text).then(
        function () { status.textContent = "Copied"; },
        function () { status.textContent = "Could not copy: " + text; }
      );
    });
    wrapper.addEventListener("keydown", function (event) {
      if (event.key === "Escape") {
        closeAll();
        toggle.focus();
      }
    });
    heading.appendChild(wrapper);
  }

  /* Not in the task that starts the page: the theme mounts its components
     in that one, and a long page has some fifty headings. When the browser
     is next idle (or after a second at the latest), the buttons are there. */
  var later = window.requestIdleCallback || function (run) { return setTimeout(run, 1); };

  function decorateAll() {
    var headings = document.querySelectorAll(
      ".md-content h2[id], .md-content h3[id], .md-content h4[id]"
    );
    later(function () { headings.forEach(decorate); }, { timeout: 1000 });
  }

  document.addEventListener("click", function (event) {
    if (!event.target.closest(".cp-copy")) closeAll();
  });
  if (typeof document$ !== "undefined") {
    document$.subscribe(decorateAll); // the theme's page-load signal, instant navigation too
  } else {
    document.addEventListener("DOMContentLoaded", decorateAll);
  }
})();
