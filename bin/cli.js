#!/usr/bin/env node
// The pg-lake-export command's entry (package.json "bin"). Plain JavaScript on purpose: the
// command is TypeScript run directly by Node 24, and an older Node cannot even load a `.ts`
// file (ERR_UNKNOWN_FILE_EXTENSION) — this file runs on any Node and says what to do instead.
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  process.stderr.write(
    `error: pg-lake-export needs Node.js 24 or newer; this shell runs Node ${process.version} (${process.execPath}).\n`
      + 'Run, inside the clone:  source scripts/use-node24.sh   (it installs Node 24 into .tools/ if needed and puts it first on PATH for this shell), then run the command again.\n',
  );
  process.exit(1);
}
await import('./cli.ts');
