#!/usr/bin/env node
// create-berth-plugin — writes a new berth plugin package (`pnpm create berth-plugin NAME`).
import { main } from '../dist/main.js';

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`create-berth-plugin: ${err && err.stack ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
