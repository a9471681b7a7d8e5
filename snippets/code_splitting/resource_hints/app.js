// The hints page's own module: it runs at once and records that it ran.
(window.ran ??= []).push("app.js");
