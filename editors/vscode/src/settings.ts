// Settings: read `offpilot.*` once per change and shape what the server understands.
import * as fs from 'fs';
import * as path from 'path';
import * as vscode from 'vscode';

export const SECTION = 'offpilot';

/** The settings object the server parses (`initializationOptions`, didChangeConfiguration). */
export interface ServerSettings {
  enable: boolean;
  languages: Record<string, boolean>;
  debounceMs: number;
  maxTokens: number;
  multiLine: boolean;
  timeBudgetMs: number;
  model?: string;
}

export function serverSettings(): ServerSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  const settings: ServerSettings = {
    enable: c.get<boolean>('enable', true),
    languages: c.get<Record<string, boolean>>('languages', { '*': true }),
    debounceMs: c.get<number>('debounceMs', 40),
    maxTokens: c.get<number>('maxTokens', 48),
    multiLine: c.get<boolean>('multiLine', true),
    timeBudgetMs: c.get<number>('timeBudgetMs', 2000),
  };
  const model = c.get<string | null>('model', null);
  if (model) settings.model = model;
  return settings;
}

export function isEnabled(): boolean {
  return vscode.workspace.getConfiguration(SECTION).get<boolean>('enable', true);
}

export function languageEnabled(languageId: string): boolean {
  const s = serverSettings();
  return s.enable && (s.languages[languageId] ?? s.languages['*'] ?? true);
}

export async function setEnabled(enable: boolean): Promise<void> {
  await vscode.workspace
    .getConfiguration(SECTION)
    .update('enable', enable, vscode.ConfigurationTarget.Global);
}

/** Settings whose change needs a new server process. */
export function needsRestart(e: vscode.ConfigurationChangeEvent): boolean {
  return (
    e.affectsConfiguration(`${SECTION}.server.command`) ||
    e.affectsConfiguration(`${SECTION}.server.logLevel`)
  );
}

/**
 * The command that starts the server: `offpilot.server.command`, else `offpilot` from a
 * `.venv` in a workspace folder or beside the extension (a checkout), else from PATH.
 */
export function serverCommand(extensionPath: string): { command: string; args: string[] } {
  const c = vscode.workspace.getConfiguration(SECTION);
  const logLevel = c.get<string>('server.logLevel', 'INFO');
  const configured = c.get<string[]>('server.command', []);
  if (configured.length > 0) {
    return { command: configured[0], args: [...configured.slice(1), '--log-level', logLevel] };
  }
  const roots = [
    ...(vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.fsPath),
    path.resolve(extensionPath, '..', '..'),
  ];
  const found = roots
    .map((root) => path.join(root, '.venv', 'bin', 'offpilot'))
    .find((candidate) => fs.existsSync(candidate));
  return { command: found ?? 'offpilot', args: ['serve', '--log-level', logLevel] };
}
