// Which server the extension starts: `node --test` (Node >= 22.6 loads the .ts directly).
// Run by tests/unit/editors/test_vscode_server_command.py.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, test } from 'node:test';
import { resolveServerCommand } from '../src/serverCommand.ts';

const roots = [];
after(() => roots.forEach((root) => fs.rmSync(root, { recursive: true, force: true })));

function tree() {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'offpilot-vscode-'));
  roots.push(root);
  const exe = (dir, mode = 0o755) => {
    fs.mkdirSync(dir, { recursive: true });
    const file = path.join(dir, 'offpilot');
    fs.writeFileSync(file, '#!/bin/sh\n', { mode });
    return file;
  };
  return { root, exe };
}

test('the configured command wins, with the log level', () => {
  const got = resolveServerCommand(['/opt/offpilot', 'serve', '--log-file', 'x'], 'DEBUG', '/nowhere', '');
  assert.deepEqual(got, { command: '/opt/offpilot', args: ['serve', '--log-file', 'x', '--log-level', 'DEBUG'] });
});

test("a workspace's .venv is never run, even with a relative PATH entry", () => {
  const { root, exe } = tree();
  const workspace = path.join(root, 'repo');
  exe(path.join(workspace, '.venv', 'bin'));
  exe(path.join(workspace, 'bin'));
  const extension = path.join(root, 'extensions', 'offpilot.offpilot-0.1.0');
  fs.mkdirSync(extension, { recursive: true });
  const before = process.cwd();
  process.chdir(workspace); // the language client starts the server in the workspace
  try {
    const relative = ['.venv/bin', 'bin', '.'].join(path.delimiter);
    assert.equal(resolveServerCommand([], 'INFO', extension, relative), undefined);
    const user = exe(path.join(root, 'home', '.local', 'bin'));
    const got = resolveServerCommand([], 'INFO', extension, `.venv/bin${path.delimiter}${path.dirname(user)}`);
    assert.deepEqual(got, { command: user, args: ['serve', '--log-level', 'INFO'] });
  } finally {
    process.chdir(before);
  }
});

test("the checkout the extension runs from comes before PATH; a non-executable file is skipped", () => {
  const { root, exe } = tree();
  const checkout = path.join(root, 'offpilot');
  const own = exe(path.join(checkout, '.venv', 'bin'));
  const onPath = exe(path.join(root, 'usr', 'bin'));
  const extension = path.join(checkout, 'editors', 'vscode');
  assert.equal(resolveServerCommand([], 'INFO', extension, path.dirname(onPath))?.command, own);
  fs.chmodSync(own, 0o644);
  assert.equal(resolveServerCommand([], 'INFO', extension, path.dirname(onPath))?.command, onPath);
});
