// The webpack `optimization` settings the caching page builds with; the tests
// pass each to snippets/web/webpack.config.js. splitChunks.minSize: 0 gives the
// small shared module a chunk of its own, as a large shared library gets one.
const split = { splitChunks: { minSize: 0 } };

// --8<-- [start:natural]
// Ids by order of use: a new chunk early in the order renumbers later ones.
export const natural = { ...split, moduleIds: "natural", chunkIds: "natural" };
// --8<-- [end:natural]

// --8<-- [start:deterministic]
// webpack 5's default in production mode: short numeric hashes of names and
// paths, stable while a module or chunk exists.
export const deterministic = {
  ...split,
  moduleIds: "deterministic",
  chunkIds: "deterministic",
};
// --8<-- [end:deterministic]

// --8<-- [start:runtime]
// The chunk-name table moves out of the entry into runtime.[hash].js, so a
// changed lazy chunk renames the small runtime instead of the entry.
export const runtimeSingle = { ...deterministic, runtimeChunk: "single" };
// --8<-- [end:runtime]
