// A static dependency of module.js.
export const dependency = "module-dep.js";
(window.ran ??= []).push(dependency);
