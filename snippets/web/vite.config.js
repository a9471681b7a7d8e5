// Vite builds the test bed's app named by $APP (a folder here) into $OUT_DIR;
// $RELEASE ends up in every chunk, so each release gets new hashed names.
import { resolve } from "node:path";
import { defineConfig } from "vite";

const app = process.env.APP ?? "chunk-load";

export default defineConfig({
  root: resolve(import.meta.dirname, app),
  base: "/",
  logLevel: "warn",
  define: {
    __BUNDLER__: JSON.stringify("vite"),
    __RELEASE__: JSON.stringify(process.env.RELEASE ?? "dev"),
  },
  build: {
    outDir: resolve(process.env.OUT_DIR ?? "dist/vite"),
    emptyOutDir: true,
    minify: false,
  },
});
