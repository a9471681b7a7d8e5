// webpack builds the same app as vite.config.js: $APP into $OUT_DIR, with
// $RELEASE in every chunk. A small plugin writes index.html for the hashed entry.
import { resolve } from "node:path";
import webpack from "webpack";

const app = process.env.APP ?? "chunk-load";

class IndexHtml {
  apply(compiler) {
    compiler.hooks.thisCompilation.tap("IndexHtml", (compilation) => {
      compilation.hooks.processAssets.tap(
        { name: "IndexHtml", stage: webpack.Compilation.PROCESS_ASSETS_STAGE_SUMMARIZE },
        () => {
          const scripts = [...compilation.entrypoints.get("main").getFiles()]
            .filter((file) => file.endsWith(".js"))
            .map((file) => `<script defer src="/${file}"></script>`)
            .join("");
          const html =
            '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
            '<link rel="icon" href="data:,">' +
            `<title>chunk-load test bed</title>${scripts}</head><body>` +
            '<nav><a href="#/settings">Settings</a></nav><main id="view">home</main>' +
            "</body></html>\n";
          compilation.emitAsset("index.html", new webpack.sources.RawSource(html));
        },
      );
    });
  }
}

export default {
  mode: "production",
  context: resolve(import.meta.dirname, app),
  entry: { main: "./main.js" },
  output: {
    path: resolve(process.env.OUT_DIR ?? "dist/webpack"),
    publicPath: "/",
    filename: "[name].[contenthash:8].js",
    chunkFilename: "[id].[contenthash:8].js",
    clean: true,
  },
  // $WEBPACK_OPTIMIZATION (JSON) adds to `optimization`, e.g. {"chunkIds": "natural"}.
  optimization: { minimize: false, ...JSON.parse(process.env.WEBPACK_OPTIMIZATION ?? "{}") },
  performance: { hints: false },
  stats: "errors-warnings",
  plugins: [
    new webpack.DefinePlugin({
      __BUNDLER__: JSON.stringify("webpack"),
      __RELEASE__: JSON.stringify(process.env.RELEASE ?? "dev"),
    }),
    new IndexHtml(),
  ],
};
