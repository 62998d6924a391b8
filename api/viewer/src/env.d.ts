/**
 * The viewer runs in a browser. api/viewer/tsconfig.json checks it with the DOM library; this
 * reference lets the project's Node program (root tsconfig, which includes api/) check these
 * files too. CSS imports are bundled by esbuild.
 */
/// <reference lib="dom" />
/// <reference lib="dom.iterable" />

declare module '*.css';
