// A script the hints page only hints at; it records that it ran.
(window.ran ??= []).push("preloaded.js");
