// Tell the server where the cursor comes to rest, so it computes the prompt there before the
// first keystroke asks for it (the server's `warm` setting; nothing leaves the machine).
import * as vscode from 'vscode';
import { BaseLanguageClient } from 'vscode-languageclient';

/** How long the cursor stays put before the server is told (a click, a jump, a new file). */
export const REST_MS = 300;

export class CursorRests implements vscode.Disposable {
  private timer: ReturnType<typeof setTimeout> | undefined;
  private readonly subscriptions: vscode.Disposable[];

  constructor(private readonly client: () => BaseLanguageClient | undefined) {
    this.subscriptions = [
      vscode.window.onDidChangeTextEditorSelection((e) => this.moved(e.textEditor)),
      vscode.window.onDidChangeActiveTextEditor((editor) => editor && this.moved(editor)),
      // typing moves the cursor too, but then the completion request computes the prompt
      vscode.workspace.onDidChangeTextDocument(() => this.clear()),
    ];
  }

  private moved(editor: vscode.TextEditor): void {
    this.clear();
    if (editor.selections.length !== 1 || !editor.selection.isEmpty) return;
    this.timer = setTimeout(() => this.rested(editor), REST_MS);
  }

  private rested(editor: vscode.TextEditor): void {
    this.timer = undefined;
    const client = this.client();
    if (editor !== vscode.window.activeTextEditor || !client?.isRunning()) return;
    const position = editor.selection.active;
    void client.sendNotification('offpilot/cursorRested', {
      textDocument: { uri: editor.document.uri.toString() },
      position: { line: position.line, character: position.character },
    });
  }

  private clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  dispose(): void {
    this.clear();
    for (const s of this.subscriptions) s.dispose();
  }
}
