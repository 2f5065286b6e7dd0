#!/usr/bin/env node
// The installed command. It loads the built CLI (`npm run build` makes dist/); a file of its
// own so that installing the package never links a bin that does not exist yet.
import '../dist/cli.js';
