// Browser end-to-end test of the operators' dashboard against a running `beffroi demo`
// (platform + embedded broker + SQLite + simulated gateways over mTLS), driven by
// playwright-core in Debian's Chromium. Run with `npm run e2e` after `npm run build` and
// `cargo build -p beffroi`; `tests/run` does all of it.
//
// Steps: log in with the demo's token → a live tile value changes → create an alarm rule in
// the Rules page → the alarm it raises appears in the Supervision feed → acknowledge it with a
// comment → open a sensor's chart. A screenshot of each step goes to
// `target/browser-artifacts/` (kept as test artifacts; on failure, `failure.png` too).
//
// Environment: BEFFROI_BIN (default ../target/debug/beffroi), CHROMIUM (default
// /usr/bin/chromium), BEFFROI_ARTIFACTS (default ../target/browser-artifacts).

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const dashboards = resolve(here, '..');
const binary = process.env.BEFFROI_BIN ?? resolve(dashboards, '../target/debug/beffroi');
const artifacts = process.env.BEFFROI_ARTIFACTS ?? resolve(dashboards, '../target/browser-artifacts');
const browserPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

/** Polls `check` every 100 ms until it returns a truthy value or `ms` pass. */
async function waitFor(what, ms, check) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
      if (last) return last;
    } catch (error) {
      last = error;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
}

let demo;
let demoLog = '';
let dataDir;
let browser;
let page;
let shot = 0;

async function screenshot(name) {
  shot += 1;
  await page.screenshot({ path: join(artifacts, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
}

before(async () => {
  assert.ok(existsSync(binary), `no platform binary at ${binary}: cargo build -p beffroi`);
  assert.ok(existsSync(join(dashboards, 'dist/index.html')), 'no dist/: npm run build');
  mkdirSync(artifacts, { recursive: true });
  dataDir = mkdtempSync(join(tmpdir(), 'beffroi-browser-'));
  demo = spawn(
    binary,
    ['demo', '--data-dir', join(dataDir, 'demo'), '--gate-port', '0', '--api-port', '0',
      '--rate', '40', '--dashboard-dir', dashboards],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  for (const stream of [demo.stdout, demo.stderr]) {
    stream.on('data', (chunk) => { demoLog += chunk.toString(); });
  }
  const info = await waitFor('the demo to start (demo.json)', 60_000, () => {
    if (demo.exitCode !== null) throw new Error(`the demo exited: ${demoLog}`);
    const file = join(dataDir, 'demo', 'demo.json');
    return existsSync(file) && JSON.parse(readFileSync(file, 'utf8'));
  });
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-GB' });
  page = await context.newPage();
  page.on('pageerror', (error) => { demoLog += `\n[page error] ${error.message}`; });
  page.info = info;
});

after(async () => {
  await browser?.close();
  if (demo && demo.exitCode === null) {
    demo.kill('SIGINT');
    await waitFor('the demo to stop', 15_000, () => demo.exitCode !== null).catch(() => demo.kill('SIGKILL'));
  }
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

/** Runs a step; on failure saves a screenshot and prints the demo's output. */
async function step(name, body) {
  try {
    await body();
    await screenshot(name);
  } catch (error) {
    await page.screenshot({ path: join(artifacts, 'failure.png'), fullPage: true }).catch(() => {});
    console.error(`--- step "${name}" failed; demo output:\n${demoLog.slice(-4000)}`);
    throw error;
  }
}

test('an operator logs in, watches live values, handles an alarm and opens a chart', async () => {
  const { api, token } = page.info;
  const byTestId = (id) => page.getByTestId(id);

  await step('login', async () => {
    await page.goto(`${api}/`);
    await byTestId('login-token').fill(token);
    await byTestId('login-submit').click();
    await waitFor('the live connection', 20_000, async () =>
      (await byTestId('connection-status').getAttribute('data-status')) === 'connected');
  });

  await step('live-value-changes', async () => {
    const tile = page.locator('[data-testid="zone-tile"][data-metric="air.pm25"]').first();
    await tile.waitFor({ timeout: 20_000 });
    const value = tile.getByTestId('tile-value');
    const first = await waitFor('a first tile value', 20_000, async () => {
      const v = await value.getAttribute('data-value');
      return v !== null && v !== '' ? v : null;
    });
    await waitFor(`the tile value to change from ${first}`, 30_000, async () =>
      (await value.getAttribute('data-value')) !== first);
    assert.equal(await tile.getAttribute('data-stale'), 'false');
  });

  await step('rule-created', async () => {
    await byTestId('nav-rules').click();
    await byTestId('rule-new').click();
    await byTestId('rule-name').fill('E2E: any PM2.5');
    await byTestId('rule-severity').selectOption('critical');
    await byTestId('rule-kind').selectOption('threshold');
    await byTestId('rule-metric').fill('air.pm25');
    await byTestId('rule-op').selectOption('gt');
    await byTestId('rule-value').fill('0');
    await byTestId('rule-for').fill('0');
    await byTestId('rule-save').click();
    await page.locator('[data-testid="rule-row"]', { hasText: 'E2E: any PM2.5' }).waitFor({ timeout: 10_000 });
  });

  let alarmId;
  await step('alarm-raised', async () => {
    await byTestId('nav-supervision').click();
    const item = page.locator('[data-testid="alarm-item"][data-state="open"]', { hasText: 'E2E: any PM2.5' }).first();
    await item.waitFor({ timeout: 30_000 });
    alarmId = await item.getAttribute('data-alarm-id');
    assert.ok(alarmId, 'the alarm item has an id');
    assert.equal(await item.getAttribute('data-severity'), 'critical');
  });

  await step('alarm-acknowledged', async () => {
    const item = page.locator(`[data-testid="alarm-item"][data-alarm-id="${alarmId}"]`);
    await item.getByTestId('alarm-ack').click();
    await item.getByTestId('alarm-comment').fill('checked on site');
    await item.getByTestId('alarm-confirm').click();
    await waitFor('the alarm to be acknowledged', 15_000, async () =>
      (await item.getAttribute('data-state')) === 'acknowledged');
    const stored = await (await fetch(`${api}/api/v1/alarms/${alarmId}`, {
      headers: { authorization: `Bearer ${token}` },
    })).json();
    assert.equal(stored.state, 'acknowledged');
    assert.equal(stored.acknowledged.comment, 'checked on site');
  });

  await step('sensor-chart', async () => {
    const alarm = await (await fetch(`${api}/api/v1/alarms/${alarmId}`, {
      headers: { authorization: `Bearer ${token}` },
    })).json();
    const sensor = alarm.subject.sensor;
    await page.goto(`${api}/#/sensor/${sensor}?bucket=1m`);
    const chart = page.locator(`[data-testid="sensor-chart"][data-sensor="${sensor}"]`);
    await chart.waitFor({ timeout: 15_000 });
    await chart.locator('figure[data-metric="air.pm25"] canvas').first().waitFor({ timeout: 15_000 });
    await waitFor('a latest value on the sensor page', 20_000, async () =>
      ((await byTestId('latest-value').first().textContent()) ?? '').match(/\d/));
  });
});
