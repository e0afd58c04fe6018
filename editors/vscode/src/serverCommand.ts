// Which program starts the server. No `vscode` import, so a plain Node test can run it.
import * as fs from 'fs';
import * as path from 'path';

export interface ServerCommand {
  command: string;
  args: string[];
}

/**
 * The command that starts the server: `offpilot.server.command` as the user set it (a
 * machine-scoped setting, which a workspace cannot set), else `.venv/bin/offpilot` in the
 * offpilot checkout the extension runs from, else `offpilot` in an absolute `PATH` entry.
 * Never a program inside the workspace: opening a repository must not run its code.
 * Undefined when there is none.
 */
export function resolveServerCommand(
  configured: readonly string[],
  logLevel: string,
  extensionPath: string,
  pathVariable: string = process.env.PATH ?? '',
  isExecutable: (file: string) => boolean = executable,
): ServerCommand | undefined {
  if (configured.length > 0) {
    return { command: configured[0], args: [...configured.slice(1), '--log-level', logLevel] };
  }
  const checkout = path.resolve(extensionPath, '..', '..', '.venv', 'bin', 'offpilot');
  // a relative PATH entry would be looked up in the server's working directory: the workspace
  const onPath = pathVariable
    .split(path.delimiter)
    .filter((dir) => path.isAbsolute(dir))
    .map((dir) => path.join(dir, 'offpilot'));
  const found = [checkout, ...onPath].find(isExecutable);
  return found ? { command: found, args: ['serve', '--log-level', logLevel] } : undefined;
}

function executable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
