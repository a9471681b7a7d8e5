// ESLint (flat config) for the test bed and every page's JavaScript, run by
// tests/test_frontend.py from the repository root:
//   snippets/web/node_modules/.bin/eslint -c snippets/web/eslint.config.js snippets
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["**/node_modules/", "**/dist/"] },
  js.configs.recommended,
  {
    files: ["**/*.js"],
    languageOptions: {
      ecmaVersion: 2024,
      sourceType: "module",
      globals: { ...globals.browser, __BUNDLER__: "readonly", __RELEASE__: "readonly" },
    },
    rules: {
      "no-unused-vars": "error",
      eqeqeq: "error",
      "prefer-const": "error",
    },
  },
  {
    files: ["snippets/web/*.config.js"],
    languageOptions: { globals: globals.node },
  },
];
