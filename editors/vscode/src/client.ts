// The language client's lifecycle: start, restart, stop; status and settings go to the server.
import * as vscode from 'vscode';
import {
  DidChangeConfigurationNotification,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ServerOptions,
  State as ClientState,
} from 'vscode-languageclient/node';
import { CursorRests } from './cursor';
import { CompletionEvents } from './events';
import { languageEnabled, serverCommand, serverSettings } from './settings';
import { State, StatusItem } from './status';

export class OffpilotClient implements vscode.Disposable {
  private client: LanguageClient | undefined;
  readonly events = new CompletionEvents(() => this.client);
  private readonly rests = new CursorRests(() => this.client);

  constructor(
    private readonly extensionPath: string,
    private readonly output: vscode.LogOutputChannel,
    private readonly status: StatusItem,
  ) {}

  async start(): Promise<void> {
    const found = serverCommand(this.extensionPath);
    if (!found) {
      const message = 'offpilot is not on PATH: install it, or set offpilot.server.command';
      this.status.set('error', message);
      this.output.appendLine(message);
      return;
    }
    const { command, args } = found;
    this.output.appendLine(`starting: ${command} ${args.join(' ')}`);
    const serverOptions: ServerOptions = { command, args };
    const clientOptions: LanguageClientOptions = {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      initializationOptions: serverSettings(),
      outputChannel: this.output,
      traceOutputChannel: this.output,
      middleware: {
        provideInlineCompletionItems: async (document, position, context, token, next) => {
          if (!languageEnabled(document.languageId)) return null;
          const result = await next(document, position, context, token);
          if (token.isCancellationRequested || !result) return result;
          this.events.shown(document, Array.isArray(result) ? result : result.items);
          return result;
        },
      },
    };
    const client = new LanguageClient('offpilot', 'offpilot', serverOptions, clientOptions);
    client.onNotification('offpilot/status', (p: { state: State; message?: string }) => {
      this.status.set(p.state, p.message);
      if (p.message) this.output.appendLine(`[status] ${p.state}: ${p.message}`);
    });
    client.onDidChangeState((e) => {
      if (e.newState === ClientState.Stopped) this.status.set('stopped');
    });
    this.client = client;
    this.status.set('loading');
    try {
      await client.start();
    } catch (err) {
      this.status.set('error', `could not start ${command}: ${err}`);
      this.output.appendLine(`could not start the server: ${err}`);
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    if (client?.isRunning()) await client.stop();
  }

  /** Send the current settings (only the keys the server knows). */
  async sendSettings(): Promise<void> {
    if (!this.client?.isRunning()) return;
    await this.client.sendNotification(DidChangeConfigurationNotification.type, {
      settings: { offpilot: serverSettings() },
    });
  }

  async stats(token?: vscode.CancellationToken): Promise<unknown> {
    if (!this.client?.isRunning()) throw new Error('the offpilot server is not running');
    return this.client.sendRequest(ExecuteCommandRequest.type, { command: 'offpilot.stats', arguments: [] }, token);
  }

  dispose(): void {
    this.rests.dispose();
    void this.stop();
  }
}
