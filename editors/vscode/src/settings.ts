// Settings: read `offpilot.*` once per change and shape what the server understands.
import * as vscode from 'vscode';
import { resolveServerCommand, ServerCommand } from './serverCommand';

export const SECTION = 'offpilot';

/** The settings object the server parses (`initializationOptions`, didChangeConfiguration). */
export interface ServerSettings {
  enable: boolean;
  languages: Record<string, boolean>;
  debounceMs: number;
  maxTokens: number;
  multiLine: boolean;
  timeBudgetMs: number;
  gate: Gate;
  model?: string;
}

/** The show-or-not gate's operating points (the server's `gate` setting). */
export type Gate = 'off' | 'quiet' | 'balanced' | 'eager';

export function serverSettings(): ServerSettings {
  const c = vscode.workspace.getConfiguration(SECTION);
  const settings: ServerSettings = {
    enable: c.get<boolean>('enable', true),
    languages: c.get<Record<string, boolean>>('languages', { '*': true }),
    debounceMs: c.get<number>('debounceMs', 40),
    maxTokens: c.get<number>('maxTokens', 48),
    multiLine: c.get<boolean>('multiLine', true),
    timeBudgetMs: c.get<number>('timeBudgetMs', 2000),
    gate: c.get<Gate>('gate', 'balanced'),
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

/** The command that starts the server (see `resolveServerCommand`); undefined: none found. */
export function serverCommand(extensionPath: string): ServerCommand | undefined {
  const c = vscode.workspace.getConfiguration(SECTION);
  // the user's (or remote machine's) value only, whatever a workspace's settings say
  const configured = c.inspect<string[]>('server.command')?.globalValue;
  const logLevel = c.get<string>('server.logLevel', 'INFO');
  return resolveServerCommand(Array.isArray(configured) ? configured : [], logLevel, extensionPath);
}
