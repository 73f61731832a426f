// Browser test of the playground: headless Chromium, driven by playwright-core.
//
//   node t/playground/test_playground.mjs URL SCREENSHOT
//
// URL: the server's base URL (the page is at URL + "/"); SCREENSHOT: where to
// save a picture of the page after the first run. Environment: CHROMIUM (the
// browser, default /usr/bin/chromium), PLAYWRIGHT_CORE (the package's
// directory, default: resolved from here, e.g. after `npm ci --prefix
// t/playground`). Prints TAP-like lines; exits 1 at the first failure.
// t/e2e/test_playground.py runs it against a real nginx + pyexec.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { chromium } = require(process.env.PLAYWRIGHT_CORE || 'playwright-core');

const [base, screenshot] = process.argv.slice(2);
if (!base || !screenshot) {
  console.error('usage: node test_playground.mjs URL SCREENSHOT');
  process.exit(2);
}

// The script builds a PNG with zlib and struct, as a plotting library would.
const PNG_WIDTH = 37;
const MAIN = `import os, struct, zlib
from helper import greet

def png(width, height):
    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    rows = b"".join(b"\\x00" + bytes(v for x in range(width)
                                     for v in (x * 7 % 256, y * 11 % 256, 180))
                    for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\\x89PNG\\r\\n\\x1a\\n" + chunk(b"IHDR", ihdr) +
            chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))

print(greet("playground"))
out = os.environ["OUTPUT_DIR"]
with open(os.path.join(out, "gradient.png"), "wb") as f:
    f.write(png(${PNG_WIDTH}, 23))
with open(os.path.join(out, "notes.txt"), "w") as f:
    f.write("written by main.py\\n")
`;
const HELPER = 'def greet(who):\n    return "hello from the " + who\n';
// stdout with terminal escapes: not printable, so it comes as base64
const FAILING = 'import sys\nprint("\\x1b[1mabout to fail\\x1b[0m")\nprint("something went wrong", file=sys.stderr)\nsys.exit(3)\n';

let n = 0;
const ok = (what) => console.log(`ok ${++n} - ${what}`);

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: isRoot ? ['--no-sandbox'] : [],
  timeout: 60000,
});
const problems = [];
try {
  const context = await browser.newContext({ viewport: { width: 1000, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(60000);
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // the refused request of run 3 is logged by the browser itself
    const refused = /^Failed to load resource: .* 400 /.test(m.text()) &&
      /\/execute\?/.test(m.location().url);
    if (m.type() === 'error' && !refused) problems.push('console: ' + m.text());
  });

  const runs = async (count) => {
    await page.waitForFunction((c) => document.getElementById('result').dataset.runs === String(c),
      count, { timeout: 90000 });
  };

  const res = await page.goto(base + '/');
  assert.equal(res.status(), 200);
  assert.equal(await page.title(), 'pyexec playground');
  ok('the page loads at /');

  // the link to the API's description reaches pyexec's document
  const api = await page.request.get(new URL(await page.locator('#openapi').getAttribute('href'),
    base + '/').href);
  assert.equal(api.status(), 200);
  assert.equal((await api.json()).openapi, '3.1.0');
  ok('the page links to openapi.json, which pyexec serves');

  // main.py: labelled, and Tab indents
  const editor = page.getByLabel('main.py', { exact: true });
  await editor.fill('');
  await editor.press('Tab');
  assert.equal(await editor.inputValue(), '    ');
  assert.ok(await editor.evaluate((el) => el === document.activeElement));
  ok('Tab in the editor inserts four spaces and keeps the focus');
  await editor.fill(MAIN);

  // a second file, through "Add file"
  await page.getByRole('button', { name: 'Add file' }).click();
  await page.getByLabel('Name').fill('helper.py');
  await page.getByLabel('Content').fill(HELPER);
  await page.getByLabel('Timeout (seconds)').fill('20');

  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await runs(1);
  assert.equal(await page.locator('#error').isHidden(), true, await page.locator('#error').textContent());
  assert.equal((await page.locator('#stdout').textContent()).trim(), 'hello from the playground');
  assert.equal(await page.locator('#status').textContent(), 'ok');
  assert.match(await page.locator('#status').getAttribute('class'), /\bstatus-ok\b/);
  assert.equal(await page.locator('#exit').textContent(), 'exit code 0');
  assert.match(await page.locator('#times').textContent(), /wall \d+\.\d{3} s · CPU \d+\.\d{3} s/);
  ok('run 1: status ok, exit code 0, times, and the stdout text are shown');

  const img = page.locator('#files img');
  assert.equal(await img.count(), 1);
  assert.equal(await img.getAttribute('alt'), 'gradient.png');
  assert.match(await img.getAttribute('src'), /^data:image\/png;base64,/);
  const width = await img.evaluate((el) => el.decode().then(() => el.naturalWidth));
  assert.equal(width, PNG_WIDTH);
  ok(`run 1: the PNG is rendered inline (naturalWidth ${width})`);

  const link = page.locator('#files a', { hasText: 'notes.txt' });
  assert.equal(await link.getAttribute('download'), 'notes.txt');
  assert.match(await link.getAttribute('href'), /^blob:/);
  const [download] = await Promise.all([page.waitForEvent('download'), link.click()]);
  assert.equal(download.suggestedFilename(), 'notes.txt');
  assert.equal(readFileSync(await download.path(), 'utf8'), 'written by main.py\n');
  ok('run 1: the text file is a download link (a Blob URL) that saves notes.txt');

  await page.screenshot({ path: screenshot, fullPage: true });
  ok('screenshot saved to ' + screenshot);

  // run 2: the extra file removed, a script that fails
  await page.getByRole('button', { name: 'Remove file helper.py' }).click();
  assert.equal(await page.locator('.extra-file').count(), 0);
  await editor.fill(FAILING);
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await runs(2);
  assert.equal(await page.locator('#status').textContent(), 'error');
  assert.match(await page.locator('#status').getAttribute('class'), /\bstatus-error\b/);
  assert.equal(await page.locator('#exit').textContent(), 'exit code 3');
  assert.equal((await page.locator('#stdout').textContent()).trim(),
    '\x1b[1mabout to fail\x1b[0m');
  assert.equal((await page.locator('#stderr').textContent()).trim(), 'something went wrong');
  assert.equal(await page.locator('#files img').count(), 0);
  assert.equal(await page.locator('#files-section').isHidden(), true);
  ok('run 2: status error, exit code 3, stdout sent as base64 shown decoded, and stderr');

  // run 3: a request pyexec refuses: its JSON detail is shown
  await page.getByLabel('Timeout (seconds)').fill('soon');
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await runs(3);
  const alert = page.getByRole('alert');
  assert.equal(await alert.isVisible(), true);
  assert.match(await alert.textContent(), /^HTTP 400 \(bad_parameter\): .*timeout/);
  assert.equal(await page.locator('#result').isHidden(), true);
  ok('run 3: a 400 is shown with its detail: ' + (await alert.textContent()));

  // run 4: the output shows as the program writes it, before the run ends
  await page.getByLabel('Timeout (seconds)').fill('20');
  await editor.fill('import time\nprint("tick", flush=True)\ntime.sleep(3)\nprint("tock")\n');
  const started = Date.now();
  await page.getByRole('button', { name: 'Run', exact: true }).click();
  await page.waitForFunction(() => document.getElementById('stdout').textContent.includes('tick'),
    null, { timeout: 10000 });
  const seen = Date.now() - started;
  assert.equal(await page.locator('#status').textContent(), 'running');
  assert.ok(seen < 2500, `tick shown after ${seen} ms`);
  assert.ok(!(await page.locator('#stdout').textContent()).includes('tock'));
  await runs(4);
  assert.equal(await page.locator('#status').textContent(), 'ok');
  assert.equal((await page.locator('#stdout').textContent()).trim(), 'tick\ntock');
  ok(`run 4: live output: "tick" shown after ${seen} ms while running, then the result`);

  // the interpreters the server has ($PYEXEC_PLAYGROUND_PYTHONS, its
  // /healthz's names): a choice when there are two or more
  const names = (process.env.PYEXEC_PLAYGROUND_PYTHONS || '').split(',').filter(Boolean);
  if (names.length > 1) {
    const select = page.getByLabel('Interpreter');
    assert.deepEqual(await select.locator('option').evaluateAll((os) => os.map((o) => o.value)),
      names);
    assert.equal(await select.inputValue(), names[0]);
    await select.selectOption(names[1]);
    await editor.fill('import sys\nprint(sys.implementation.name)\n');
    await page.getByRole('button', { name: 'Run', exact: true }).click();
    await runs(5);
    assert.equal(await page.locator('#status').textContent(), 'ok');
    assert.equal((await page.locator('#stdout').textContent()).trim(), 'pypy');
    ok(`run 5: the interpreters ${names} are offered, and ${names[1]} runs when chosen`);
  } else {
    assert.equal(await page.locator('#python-field').isHidden(), true);
    ok('one interpreter: no choice is shown');
  }

  // a narrow window: nothing wider than the screen
  await page.setViewportSize({ width: 360, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth);
  assert.ok(overflow <= 360, `page is ${overflow} px wide in a 360 px window`);
  ok('a 360 px window needs no horizontal scrolling');

  assert.deepEqual(problems, []);
  ok('no script error and no console error (CSP included)');
} catch (e) {
  console.log(`not ok ${++n} - ${e.message}`);
  if (problems.length) console.log('# ' + problems.join('\n# '));
  process.exitCode = 1;
} finally {
  await browser.close();
}
