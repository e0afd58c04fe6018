// Entry point: wires the output channel, status item, language client and commands. No telemetry.
import * as vscode from 'vscode';
import { OffpilotClient } from './client';
import { ACCEPTED_COMMAND } from './events';
import { isEnabled, needsRestart, SECTION, setEnabled } from './settings';
import { StatusItem } from './status';

let client: OffpilotClient | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  const output = vscode.window.createOutputChannel('offpilot', { log: true });
  const status = new StatusItem('offpilot.toggleEnabled');
  client = new OffpilotClient(context.extensionPath, output, status);
  const c = client;
  context.subscriptions.push(
    output,
    status,
    c,
    vscode.commands.registerCommand('offpilot.toggleEnabled', () => setEnabled(!isEnabled())),
    vscode.commands.registerCommand('offpilot.triggerSuggestion', () =>
      vscode.commands.executeCommand('editor.action.inlineSuggest.trigger'),
    ),
    vscode.commands.registerCommand('offpilot.restartServer', () => c.restart()),
    vscode.commands.registerCommand('offpilot.showLog', () => output.show(true)),
    vscode.commands.registerCommand('offpilot.showStatistics', () => showStats(c, output)),
    vscode.commands.registerCommand('offpilot.acceptNextWord', () =>
      c.events.acceptPartially('editor.action.inlineSuggest.acceptNextWord'),
    ),
    vscode.commands.registerCommand('offpilot.acceptNextLine', () =>
      c.events.acceptPartially('editor.action.inlineSuggest.acceptNextLine'),
    ),
    vscode.commands.registerCommand(ACCEPTED_COMMAND, (uri: string, languageId: string, length: number) =>
      c.events.accepted(uri, languageId, length),
    ),
    vscode.workspace.onDidChangeConfiguration((e) => {
      if (!e.affectsConfiguration(SECTION)) return;
      if (needsRestart(e)) void c.restart();
      else void c.sendSettings();
    }),
  );
  await c.start();
}

export async function deactivate(): Promise<void> {
  await client?.stop();
}

interface LanguageStats {
  shown: number;
  accepted: number;
  accepted_chars: number;
  acceptance_rate: number;
}

async function showStats(c: OffpilotClient, output: vscode.LogOutputChannel): Promise<void> {
  try {
    const stats = (await c.stats()) as { total?: LanguageStats; languages?: Record<string, LanguageStats> };
    output.appendLine(`[stats] ${JSON.stringify(stats, null, 2)}`);
    const t = stats.total;
    const summary = t
      ? `${t.shown} shown, ${t.accepted} accepted (${(t.acceptance_rate * 100).toFixed(1)}%), ${t.accepted_chars} characters accepted`
      : 'no completions yet';
    const choice = await vscode.window.showInformationMessage(`offpilot (local statistics): ${summary}`, 'Details');
    if (choice === 'Details') output.show(true);
  } catch (err) {
    void vscode.window.showErrorMessage(`offpilot: ${err}`);
  }
}
