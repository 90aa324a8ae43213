#!/usr/bin/env node
// The CLI entry point; the code lives in src/ and is compiled to dist/ by `npm run build`.
import { main } from '../dist/cli.js';

main(process.argv.slice(2));
