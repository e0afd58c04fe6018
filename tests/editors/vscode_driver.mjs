// Drive code-server in headless Chromium: open sample.py, type, wait for the ghost text,
// screenshot, Tab; then open a line under a docstring, wait for a block of ghost text,
// screenshot, Tab; save. Prints one JSON line with what it saw and how long it took.
// usage: node vscode_driver.mjs URL SCREENSHOT.png BLOCK.png   (env: OFFPILOT_E2E_PLAYWRIGHT, OFFPILOT_E2E_CHROMIUM)
import path from 'node:path';

const [url, screenshot, blockShot] = process.argv.slice(2);
const { chromium } = await import(path.join(process.env.OFFPILOT_E2E_PLAYWRIGHT, 'index.mjs'));
const TYPED = process.env.OFFPILOT_E2E_TYPED ?? 'return ';
const step = (msg) => console.error(`[vscode-driver] ${msg}`);

const browser = await chromium.launch({
  executablePath: process.env.OFFPILOT_E2E_CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});
const result = {};
try {
  const page = await browser.newPage({ viewport: { width: 1000, height: 420 } });
  const t0 = Date.now();
  await page.goto(url, { waitUntil: 'domcontentloaded' });
  const row = page.locator('.explorer-folders-view .monaco-list-row[aria-label^="sample.py"]');
  await row.waitFor({ timeout: 120_000 });
  step(`workbench up in ${Date.now() - t0} ms`);
  await row.click();
  const editor = page.locator('.editor-instance .monaco-editor').first();
  await editor.waitFor({ timeout: 60_000 });
  await page.locator('.statusbar-item[aria-label="offpilot: ready"]').waitFor({ timeout: 120_000 });
  result.ready_ms = Date.now() - t0;
  step(`offpilot ready after ${result.ready_ms} ms`);
  await editor.locator('.view-lines').click();
  await page.keyboard.press('Control+Home');
  for (let i = 0; i < 4; i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('End');
  await page.waitForTimeout(1000); // the user looks before typing: the cursor rests (warm)
  await page.keyboard.type(TYPED, { delay: 30 });
  const typedAt = Date.now();
  const ghost = page.locator('.ghost-text-decoration, .ghost-text').first();
  await ghost.waitFor({ state: 'visible', timeout: 60_000 });
  result.keystroke_to_ghost_ms = Date.now() - typedAt;
  result.ghost = await page.locator('.ghost-text-decoration, .ghost-text').allInnerTexts();
  step(`ghost text ${JSON.stringify(result.ghost)} after ${result.keystroke_to_ghost_ms} ms`);
  await page.screenshot({ path: screenshot });
  await page.keyboard.press('Tab');
  // a block: Enter under the docstring (the last line); VS Code indents the new line
  await page.keyboard.press('Control+End');
  await page.keyboard.press('ArrowUp');
  await page.keyboard.press('End');
  await page.keyboard.press('Enter');
  const enteredAt = Date.now();
  // the first line alone may come first (a block's first line is shown as soon as it is
  // written); the block is there once the ghost spans several lines. Pieces are tokens:
  // group them into lines by where they are drawn.
  const ghostLines = () => page.locator('.ghost-text-decoration, .ghost-text').evaluateAll((els) => {
    const rows = new Map();
    for (const el of els) {
      const top = Math.round(el.getBoundingClientRect().top);
      rows.set(top, [...(rows.get(top) ?? []), [el.getBoundingClientRect().left, el.innerText]]);
    }
    return [...rows.entries()].sort((a, b) => a[0] - b[0])
      .map(([, parts]) => parts.sort((a, b) => a[0] - b[0]).map((p) => p[1]).join(''))
      .filter((line) => line.trim());
  });
  let block = [];
  while (Date.now() - enteredAt < 90_000) {
    block = await ghostLines();
    if (block.length >= 1 && result.first_line_ms === undefined) {
      result.first_line_ms = Date.now() - enteredAt; // the first grey line the user sees
    }
    if (block.length >= 2) break;
    if (block.length === 1) { // a first line on its own: accept it, the rest follows
      await page.waitForTimeout(500); // unless it was a block still being drawn
      if ((await ghostLines()).length === 1) await page.keyboard.press('Tab');
    }
    await page.waitForTimeout(100);
  }
  result.block_ms = Date.now() - enteredAt;
  result.block = block;
  step(`block ghost text ${JSON.stringify(block)} after ${result.block_ms} ms`);
  if (block.length < 2) throw new Error(`no multi-line ghost text: ${JSON.stringify(block)}`);
  await page.screenshot({ path: blockShot });
  await page.keyboard.press('Tab');
  await page.keyboard.press('Control+S');
  await page.waitForTimeout(1500);
  result.ok = true;
} catch (err) {
  result.ok = false;
  result.error = String(err);
  try { await (await browser.contexts()[0]?.pages()[0])?.screenshot({ path: screenshot }); } catch {}
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));
