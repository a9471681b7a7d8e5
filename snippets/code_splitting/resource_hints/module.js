// A module the hints page preloads with rel=modulepreload; it records that it ran.
import { dependency } from "./module-dep.js";

(window.ran ??= []).push(`module.js (${dependency})`);
