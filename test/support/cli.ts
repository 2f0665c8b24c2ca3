// Run the pg-lake-export command as a user would: a child process through the package's "bin"
// entry (bin/cli.js, which checks the Node version and loads bin/cli.ts), its exit code and output.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const CLI = path.resolve(import.meta.dirname, '../../bin/cli.js');

export interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `node`: the Node binary to run it with (default: the one running the tests). */
export async function cli(args: string[], env: Record<string, string | undefined> = {}, options: { node?: string; cwd?: string } = {}): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(options.node ?? process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, cwd: options.cwd });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A running command: send it signals, read its output so far, await its end. */
export interface CliProcess {
  readonly child: ChildProcess;
  output(): { stdout: string; stderr: string };
  done: Promise<CliResult>;
}

export function startCli(args: string[], env: Record<string, string | undefined> = {}): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
  child.stderr!.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
  const done = new Promise<CliResult>((resolve) => {
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr }));
  });
  return { child, output: () => ({ stdout, stderr }), done };
}
