// The status bar item: what the server is doing; a click toggles completions.
import * as vscode from 'vscode';

export type State = 'loading' | 'ready' | 'busy' | 'error' | 'disabled' | 'stopped';

const LOOK: Record<State, { icon: string; tip: string }> = {
  loading: { icon: '$(sync~spin)', tip: 'loading the model' },
  ready: { icon: '$(sparkle)', tip: 'ready' },
  busy: { icon: '$(loading~spin)', tip: 'generating' },
  error: { icon: '$(error)', tip: 'error' },
  disabled: { icon: '$(circle-slash)', tip: 'disabled' },
  stopped: { icon: '$(debug-disconnect)', tip: 'server stopped' },
};

export class StatusItem implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  state: State = 'loading';

  constructor(toggleCommand: string) {
    this.item = vscode.window.createStatusBarItem('offpilot.status', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'offpilot';
    this.item.command = toggleCommand;
    this.set('loading');
    this.item.show();
  }

  set(state: State, message = ''): void {
    this.state = state;
    const look = LOOK[state] ?? LOOK.error;
    this.item.text = `${look.icon} offpilot`;
    this.item.accessibilityInformation = { label: `offpilot: ${state}` };
    this.item.tooltip = `offpilot: ${message || look.tip} (click to ${state === 'disabled' ? 'enable' : 'disable'})`;
    this.item.backgroundColor =
      state === 'error' ? new vscode.ThemeColor('statusBarItem.errorBackground') : undefined;
  }

  dispose(): void {
    this.item.dispose();
  }
}
