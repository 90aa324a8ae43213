#!/usr/bin/env node
// The CLI entry point; the code lives in src/ and is compiled to dist/ by `npm run build`.
import { main } from '../dist/ops/cli.js';

// A one-shot command exits as soon as it is done; if a client library still holds a socket or a
// timer open, the unref'd timer below ends the process anyway (it never delays a clean exit).
main(process.argv.slice(2)).finally(() => {
  setTimeout(() => process.exit(), 1000).unref();
});
