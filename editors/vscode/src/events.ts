// Show / accept / reject notifications for the server's local statistics (never sent anywhere else).
import * as vscode from 'vscode';
import { BaseLanguageClient } from 'vscode-languageclient';

export const ACCEPTED_COMMAND = 'offpilot._accepted';

interface Shown {
  uri: string;
  languageId: string;
  text: string;
  accepted: boolean;
}

export class CompletionEvents {
  private last: Shown | undefined;

  constructor(private readonly client: () => BaseLanguageClient | undefined) {}

  /** Items VS Code is about to show: remember them and tag each with an accept command. */
  shown(document: vscode.TextDocument, items: vscode.InlineCompletionItem[]): void {
    if (items.length === 0) return;
    const uri = document.uri.toString();
    const languageId = document.languageId;
    const text = typeof items[0].insertText === 'string' ? items[0].insertText : items[0].insertText.value;
    if (this.last && !this.last.accepted && this.last.text !== text) {
      this.notify('offpilot/didRejectCompletion', { uri: this.last.uri, languageId: this.last.languageId });
    }
    if (this.last?.text !== text || this.last.accepted) {
      this.notify('offpilot/didShowCompletion', { uri, languageId, text });
    }
    this.last = { uri, languageId, text, accepted: false };
    for (const item of items) {
      const itemText = typeof item.insertText === 'string' ? item.insertText : item.insertText.value;
      item.command = { title: 'offpilot: accepted', command: ACCEPTED_COMMAND, arguments: [uri, languageId, itemText.length] };
    }
  }

  accepted(uri: string, languageId: string, acceptedLength: number): void {
    if (this.last) this.last.accepted = true;
    this.notify('offpilot/didAcceptCompletion', { uri, languageId, acceptedLength });
  }

  /**
   * Accept the next word or line through VS Code's own command, and report how much went in.
   * (The stable API tells a provider nothing about partial accepts, so we wrap the command.)
   */
  async acceptPartially(builtin: string): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (!editor) return;
    const document = editor.document;
    let inserted = 0;
    const listener = vscode.workspace.onDidChangeTextDocument((e) => {
      if (e.document === document) inserted += e.contentChanges.reduce((n, c) => n + c.text.length, 0);
    });
    try {
      await vscode.commands.executeCommand(builtin);
    } finally {
      listener.dispose();
    }
    if (inserted > 0) {
      if (this.last) this.last.accepted = true;
      this.notify('offpilot/didAcceptCompletion', {
        uri: document.uri.toString(),
        languageId: document.languageId,
        acceptedLength: inserted,
      });
    }
  }

  private notify(method: string, params: object): void {
    const client = this.client();
    if (client?.isRunning()) void client.sendNotification(method, params);
  }
}
