// Browser end-to-end tests of the operators' dashboard against a running `beffroi demo`
// (platform + embedded broker + SQLite + simulated gateways over mTLS), driven by
// playwright-core in Debian's Chromium. Run with `npm run e2e` after `npm run build` and
// `cargo build -p beffroi`; `tests/run` does all of it.
//
// 1. An operator logs in with the demo's token → a live tile value changes → creates an alarm
//    rule in the Rules page → the alarm it raises appears in the Supervision feed → acknowledges
//    it with a comment → opens a sensor's chart → the platform stops (values marked stale, the
//    status no longer live) and restarts with the same data (`beffroi serve` with the demo's
//    `beffroi.toml`, no gateways): the dashboard reconnects by itself.
// 2. A city of 10,000 sensors (50 gateways × 200) stays fluid: clustered markers, a handful of
//    subscriptions whatever the number of sensors, no long freeze while values stream.
// 3. Data governance: the data officer creates a raw, pseudonymised sharing agreement for the
//    demo's partner lab, activates it, previews what the partner gets (rows, sensor ids as
//    pseudonyms), finds the preview's access entry in the audit log and verifies the log; the
//    partner signs in with its own token and follows the shared readings live (pseudonyms);
//    the officer revokes the agreement and the partner's live view ends. The tenant admin
//    creates a gateway's one-time enrollment token and revokes a running gateway.
// 4. Pooled sensors: the neighbouring commune signs in and finds, on its Supervision page,
//    exactly the demo city's sensors that stand inside its boundary, marked as operated by the
//    demo tenant, with live values (in its own zone's tiles too, and hollow markers on its
//    map); it creates an alarm rule that also watches pooled sensors, whose alarm names a
//    pooled sensor and its operator; the demo's data officer opens the Pooled network page,
//    sees the agreement, its beneficiary and what it served, and downloads the usage as CSV.
//
// A screenshot of each step goes to `target/browser-artifacts/` (kept as test artifacts; on
// failure, `failure-<step>.png` too). Environment: BEFFROI_BIN (default
// ../target/debug/beffroi), CHROMIUM (default /usr/bin/chromium), BEFFROI_ARTIFACTS (default
// ../target/browser-artifacts).

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

/** A `beffroi` process (demo or serve) and its output. */
class Platform {
  constructor(args) {
    this.log = '';
    this.child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [this.child.stdout, this.child.stderr]) {
      stream.on('data', (chunk) => { this.log += chunk.toString(); });
    }
  }

  get running() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGINT (the demo's Ctrl-C, an ordered stop), then waits for the exit. */
  async stop() {
    if (!this.running) return;
    this.child.kill('SIGINT');
    await waitFor('the platform to stop', 20_000, () => !this.running)
      .catch(() => this.child.kill('SIGKILL'));
  }
}

/** Starts `beffroi demo` with `extra` arguments in a fresh data directory. */
async function startDemo(extra) {
  const dataDir = mkdtempSync(join(tmpdir(), 'beffroi-browser-'));
  const demoDir = join(dataDir, 'demo');
  const platform = new Platform(['demo', '--data-dir', demoDir, '--gate-port', '0',
    '--api-port', '0', '--dashboard-dir', dashboards, ...extra]);
  const info = await waitFor('the demo to start (demo.json)', 90_000, () => {
    if (!platform.running) throw new Error(`the demo exited: ${platform.log}`);
    const file = join(demoDir, 'demo.json');
    return existsSync(file) && JSON.parse(readFileSync(file, 'utf8'));
  });
  return { platform, info, dataDir, demoDir };
}

let browser;
const cleanups = [];
let shot = 0;

before(async () => {
  assert.ok(existsSync(binary), `no platform binary at ${binary}: cargo build -p beffroi`);
  assert.ok(existsSync(join(dashboards, 'dist/index.html')), 'no dist/: npm run build');
  mkdirSync(artifacts, { recursive: true });
  browser = await chromium.launch({
    executablePath: browserPath,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await browser?.close();
  for (const cleanup of cleanups.reverse()) await cleanup();
});

async function newPage() {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 }, locale: 'en-GB' });
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (error) => page.errors.push(error.message));
  return page;
}

/** Runs a step; saves a screenshot after it, or on failure with the platforms' output. */
async function step(page, name, platforms, body) {
  try {
    await body();
    shot += 1;
    await page.screenshot({ path: join(artifacts, `${String(shot).padStart(2, '0')}-${name}.png`), fullPage: true });
  } catch (error) {
    await page.screenshot({ path: join(artifacts, `failure-${name}.png`), fullPage: true }).catch(() => {});
    for (const p of platforms()) console.error(`--- platform output:\n${p.log.slice(-4000)}`);
    if (page.errors.length) console.error(`--- page errors:\n${page.errors.join('\n')}`);
    throw error;
  }
}

const status = (page) => page.getByTestId('connection-status').getAttribute('data-status');

test('an operator logs in, watches live values, handles an alarm, opens a chart, rides a restart', async () => {
  const demo = await startDemo(['--rate', '40']);
  let serve;
  cleanups.push(async () => {
    await demo.platform.stop();
    await serve?.stop();
    rmSync(demo.dataDir, { recursive: true, force: true });
  });
  const { api, token } = demo.info;
  const page = await newPage();
  const byTestId = (id) => page.getByTestId(id);
  const platforms = () => [demo.platform, serve].filter(Boolean);

  await step(page, 'login', platforms, async () => {
    await page.goto(`${api}/`);
    await byTestId('login-token').fill(token);
    await byTestId('login-submit').click();
    await waitFor('the live connection', 20_000, async () => (await status(page)) === 'connected');
  });

  const tile = page.locator('[data-testid="zone-tile"][data-metric="air.pm25"]').first();
  await step(page, 'live-value-changes', platforms, async () => {
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

  await step(page, 'rule-created', platforms, async () => {
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
  await step(page, 'alarm-raised', platforms, async () => {
    await byTestId('nav-supervision').click();
    const item = page.locator('[data-testid="alarm-item"][data-state="open"]', { hasText: 'E2E: any PM2.5' }).first();
    await item.waitFor({ timeout: 30_000 });
    alarmId = await item.getAttribute('data-alarm-id');
    assert.ok(alarmId, 'the alarm item has an id');
    assert.equal(await item.getAttribute('data-severity'), 'critical');
  });

  const alarm = async () => (await fetch(`${api}/api/v1/alarms/${alarmId}`, {
    headers: { authorization: `Bearer ${token}` },
  })).json();
  await step(page, 'alarm-acknowledged', platforms, async () => {
    const item = page.locator(`[data-testid="alarm-item"][data-alarm-id="${alarmId}"]`);
    await item.getByTestId('alarm-ack').click();
    await item.getByTestId('alarm-comment').fill('checked on site');
    await item.getByTestId('alarm-confirm').click();
    await waitFor('the alarm to be acknowledged', 15_000, async () =>
      (await item.getAttribute('data-state')) === 'acknowledged');
    const stored = await alarm();
    assert.equal(stored.state, 'acknowledged');
    assert.equal(stored.acknowledged.comment, 'checked on site');
  });

  await step(page, 'sensor-chart', platforms, async () => {
    const sensor = (await alarm()).subject.sensor;
    await page.goto(`${api}/#/sensor/${sensor}?bucket=1m`);
    const chart = page.locator(`[data-testid="sensor-chart"][data-sensor="${sensor}"]`);
    await chart.waitFor({ timeout: 15_000 });
    await chart.locator('figure[data-metric="air.pm25"] canvas').first().waitFor({ timeout: 15_000 });
    await waitFor('a latest value on the sensor page', 20_000, async () =>
      ((await byTestId('latest-value').first().textContent()) ?? '').match(/\d/));
  });

  await step(page, 'platform-stopped', platforms, async () => {
    await byTestId('nav-supervision').click();
    await tile.waitFor({ timeout: 10_000 });
    await demo.platform.stop();
    await waitFor('the status to leave "connected"', 20_000, async () =>
      ['reconnecting', 'offline'].includes(await status(page)));
    await waitFor('the tiles to be marked stale', 10_000, async () =>
      (await tile.getAttribute('data-stale')) === 'true');
  });

  await step(page, 'platform-restarted', platforms, async () => {
    serve = new Platform(['--config', join(demo.demoDir, 'beffroi.toml'), 'serve']);
    await waitFor('the dashboard to reconnect by itself', 60_000, async () => {
      if (!serve.running) throw new Error(`serve exited: ${serve.log}`);
      return (await status(page)) === 'connected';
    });
    // The latest stored values come back with the subscriptions' snapshot.
    await waitFor('the tile to show a value again', 20_000, async () =>
      (await tile.getByTestId('tile-value').getAttribute('data-value')) ?? null);
  });
  assert.deepEqual(page.errors, [], 'no uncaught error in the page');
});

test('a city of 10,000 sensors stays fluid', async () => {
  const demo = await startDemo(['--gateways', '50', '--sensors', '200', '--rate', '20']);
  cleanups.push(async () => {
    await demo.platform.stop();
    rmSync(demo.dataDir, { recursive: true, force: true });
  });
  const { api, token } = demo.info;
  const page = await newPage();
  const platforms = () => [demo.platform];
  const sensors = await (await fetch(`${api}/api/v1/sensors`, {
    headers: { authorization: `Bearer ${token}` },
  })).json();
  assert.equal(sensors.items.length, 10_000);

  await step(page, 'city-map', platforms, async () => {
    // Long tasks (main thread blocked ≥ 50 ms) from the first paint on.
    await page.addInitScript(() => {
      window.__longTasks = [];
      new PerformanceObserver((list) => {
        for (const entry of list.getEntries()) window.__longTasks.push(entry.duration);
      }).observe({ type: 'longtask', buffered: true });
    });
    await page.goto(`${api}/#token=${token}`);
    await waitFor('the live connection', 30_000, async () => (await status(page)) === 'connected');
    await page.getByTestId('zone-tile').first().waitFor({ timeout: 30_000 });
    // Let values stream for a while (1,000 readings/s across the city).
    await page.waitForTimeout(8_000);
    const markers = await page.locator('[data-testid="sensor-marker"]').count();
    const clusters = await page.locator('[data-testid="cluster-marker"]').count();
    const clustered = await page.locator('[data-testid="cluster-marker"]').evaluateAll(
      (spans) => spans.reduce((n, s) => n + Number(s.getAttribute('data-count')), 0));
    const nodes = await page.evaluate(() => document.getElementsByTagName('*').length);
    console.log(`10,000 sensors: ${markers} sensor markers, ${clusters} clusters of ${clustered}, ${nodes} DOM nodes`);
    assert.ok(markers + clustered >= 9_000, `the map shows the city (${markers} + ${clustered})`);
    assert.ok(markers + clusters < 1_000, `the map clusters (${markers} markers, ${clusters} clusters)`);
    assert.ok(nodes < 10_000, `the page stays small (${nodes} nodes)`);
  });

  await step(page, 'city-live', platforms, async () => {
    // A handful of subscriptions serve this page, not one per sensor.
    const metrics = await (await fetch(`${api}/metrics`)).text();
    const subscriptions = Number(/^beffroi_live_subscriptions (\d+)/m.exec(metrics)?.[1]);
    assert.ok(subscriptions > 0 && subscriptions <= 8, `${subscriptions} live subscriptions`);
    const tasks = await page.evaluate(() => window.__longTasks);
    const longest = Math.max(0, ...tasks);
    const blocked = tasks.reduce((a, b) => a + b, 0);
    console.log(`long tasks: ${tasks.length}, longest ${longest.toFixed(0)} ms, ${blocked.toFixed(0)} ms in all`);
    // Generous bounds for a loaded 2-core CI machine without a GPU; a per-sensor rendering or
    // subscription would blow them by far.
    assert.ok(longest < 2_000, `the page froze for ${longest.toFixed(0)} ms`);
    assert.ok(blocked < 6_000, `the main thread was blocked ${blocked.toFixed(0)} ms in ~10 s`);
    assert.equal(await page.getByTestId('connection-status').getAttribute('data-status'), 'connected');
  });
  assert.deepEqual(page.errors, [], 'no uncaught error in the page');
});

test('a data officer shares with a partner, previews as the partner, audits and verifies', async () => {
  const demo = await startDemo(['--gateways', '1', '--rate', '20']);
  cleanups.push(async () => {
    await demo.platform.stop();
    rmSync(demo.dataDir, { recursive: true, force: true });
  });
  const { api, token } = demo.info;
  const page = await newPage();
  page.on('dialog', (dialog) => dialog.accept());
  const byTestId = (id) => page.getByTestId(id);
  const platforms = () => [demo.platform];
  const row = page.locator('[data-testid="agreement-row"][data-agreement-id="e2e-air-lab"]');

  await step(page, 'agreement-created', platforms, async () => {
    await page.goto(`${api}/#token=${token}`);
    await byTestId('nav-agreements').click();
    await byTestId('agr-new').click();
    await byTestId('agr-id').fill('e2e-air-lab');
    await byTestId('agr-grantee-kind').selectOption('partner');
    await byTestId('agr-grantee-id').fill('air-lab');
    await byTestId('agr-purposes-research').check();
    await byTestId('agr-metrics').fill('air.*');
    await byTestId('agr-action').selectOption('read_raw');
    await byTestId('agr-min-bucket').fill('');
    await byTestId('agr-k').fill('1');
    await byTestId('agr-level').selectOption('sensor');
    await byTestId('agr-pseudonymise').check();
    for (const field of ['time', 'value', 'unit', 'metric', 'sensor']) await byTestId(`agr-fields-${field}`).check();
    await byTestId('agr-save').click();
    await row.waitFor({ timeout: 10_000 });
    assert.equal(await row.getAttribute('data-state'), 'draft');
  });

  await step(page, 'agreement-active', platforms, async () => {
    await row.getByTestId('agr-state-active').click();
    await page.locator('[data-testid="agreement-row"][data-agreement-id="e2e-air-lab"][data-state="active"]')
      .waitFor({ timeout: 10_000 });
  });

  await step(page, 'preview-as-partner', platforms, async () => {
    await row.getByTestId('agr-preview').click();
    assert.equal(await byTestId('preview-kind').inputValue(), 'readings');
    assert.equal(await byTestId('preview-purpose').inputValue(), 'research');
    // The demo's readings started with it: ask again until some are committed.
    await waitFor('preview rows', 30_000, async () => {
      await byTestId('preview-run').click();
      await byTestId('governed-answer').or(byTestId('governed-denied')).or(byTestId('governed-error'))
        .first().waitFor({ timeout: 10_000 });
      return (await page.locator('[data-testid="governed-row"]').count()) > 0;
    });
    const sensors = await page.locator('[data-testid="governed-row"] code').allTextContents();
    assert.ok(sensors.length > 0 && sensors.every((s) => s.startsWith('p_')), `pseudonyms: ${sensors.slice(0, 3)}`);
  });

  await step(page, 'audit-preview-entry', platforms, async () => {
    await byTestId('nav-audit').click();
    await byTestId('audit-kind').selectOption('access_permit');
    await byTestId('audit-apply').click();
    const entry = page.locator('[data-testid="audit-row"][data-kind="access_permit"][data-preview="true"]',
      { hasText: 'partner:air-lab' }).first();
    await entry.waitFor({ timeout: 10_000 });
    const text = await entry.textContent();
    assert.match(text, /e2e-air-lab v2/);
    await entry.getByTestId('audit-details').click();
    assert.match(await byTestId('audit-entry-json').textContent(), /"preview": true/);
  });

  await step(page, 'audit-verified', platforms, async () => {
    await byTestId('audit-verify').click();
    await byTestId('audit-verify-ok').waitFor({ timeout: 15_000 });
  });

  // The partner signs in with its own token and follows the shared readings live.
  const partner = await newPage();
  await step(partner, 'shared-live-as-partner', platforms, async () => {
    await partner.goto(`${api}/#token=${demo.info.partner_token}`);
    await partner.getByTestId('shared-grantor').selectOption(demo.info.tenant);
    await partner.getByTestId('shared-purpose').selectOption('research');
    await partner.getByTestId('shared-metric').fill('air.*');
    await partner.getByTestId('shared-live-follow').click();
    await partner.locator('[data-testid="shared-live-status"][data-phase="live"]').waitFor({ timeout: 10_000 });
    const sensors = await waitFor('live shared values', 20_000, async () => {
      const codes = await partner.locator('[data-testid="shared-live-row"] code').allTextContents();
      return codes.length > 0 && codes;
    });
    assert.ok(sensors.every((s) => s.startsWith('p_')), `live pseudonyms: ${sensors.slice(0, 3)}`);
  });

  // Revoking the agreement ends the partner's live view within a second.
  await step(partner, 'shared-live-ended-on-revocation', platforms, async () => {
    await byTestId('nav-agreements').click();
    const revoke = row.getByTestId('agr-state-revoked');
    await revoke.waitFor({ timeout: 10_000 });
    const revokedAt = Date.now();
    await revoke.click();
    await partner.getByTestId('shared-live-ended').waitFor({ timeout: 5_000 });
    assert.equal(await partner.getByTestId('shared-live-ended').getAttribute('data-reason'), 'revoked');
    assert.ok(Date.now() - revokedAt < 3_000, `ended after ${Date.now() - revokedAt} ms (includes the click and the page)`);
  });
  // The tenant admin puts a new gateway in service (one-time token) and revokes another.
  await step(page, 'gateway-token-and-revocation', platforms, async () => {
    await byTestId('nav-gateways').click();
    await byTestId('enroll-id').fill('gw-new');
    await byTestId('enroll-hours').fill('2');
    await byTestId('enroll-submit').click();
    const command = await byTestId('enroll-command').textContent({ timeout: 10_000 });
    assert.match(command, /^beffroi-agent enroll --url \S+ --token bfe1\.[A-Za-z0-9_-]{43}\.[0-9a-f]{64}$/);
    await page.locator('[data-testid="enroll-pending-item"][data-gateway="gw-new"]').waitFor({ timeout: 10_000 });

    const gateway = page.locator('[data-testid="gateway-row"][data-gateway="gw-01"]');
    // Its certificate's expiry, from the platform's record: valid, well before the warning.
    const cert = gateway.locator('[data-cert]');
    assert.equal(await cert.getAttribute('data-cert', { timeout: 10_000 }), 'ok');
    const daysLeft = (Date.parse(await cert.getAttribute('title')) - Date.now()) / 86_400_000;
    assert.ok(daysLeft > 7 && daysLeft <= 30.01, `certificate expires in ${daysLeft} days (issued for at most 30)`);
    await gateway.getByTestId('revoke').click();
    await gateway.getByTestId('revoke-confirm').click();
    await page.locator('[data-testid="gateway-row"][data-gateway="gw-01"][data-status="revoked"]')
      .waitFor({ timeout: 10_000 });
    assert.equal(await cert.count(), 0, 'a revoked gateway shows no expiry');
  });
  assert.deepEqual(page.errors, [], 'no uncaught error in the page');
  assert.deepEqual(partner.errors, [], 'no uncaught error in the partner page');
});

/** Whether `[lon, lat]` lies inside a GeoJSON polygon's outer ring (crossing number). */
function inside([x, y], ring) {
  let odd = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if ((yi > y) !== (yj > y) && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) odd = !odd;
  }
  return odd;
}

test('a commune uses the pooled sensors inside its boundary; the operator sees what they served', async () => {
  const demo = await startDemo(['--gateways', '2', '--rate', '20']);
  cleanups.push(async () => {
    await demo.platform.stop();
    rmSync(demo.dataDir, { recursive: true, force: true });
  });
  const { api, token, tenant, neighbour, neighbour_token: neighbourToken } = demo.info;
  const platforms = () => [demo.platform];
  const get = async (path, bearer) => {
    const response = await fetch(`${api}${path}`, { headers: { authorization: `Bearer ${bearer}` } });
    assert.equal(response.status, 200, `${path}: ${await response.clone().text()}`);
    return response.json();
  };
  // What the commune must see: the operator's sensors inside the commune's own boundary.
  const [boundary] = (await get('/api/v1/zones', neighbourToken)).items;
  const expected = (await get('/api/v1/sensors', token)).items
    .filter((s) => s.lat !== null && inside([s.lon, s.lat], boundary.geometry.coordinates[0]))
    .map((s) => s.id)
    .sort();
  assert.ok(expected.length > 0, 'some of the demo sensors stand inside the commune');

  const commune = await newPage();
  await step(commune, 'pooled-sensors-in-supervision', platforms, async () => {
    await commune.goto(`${api}/#token=${neighbourToken}`);
    const rows = commune.locator('[data-testid="pooled-sensor"]');
    await rows.first().waitFor({ timeout: 20_000 });
    const seen = (await rows.evaluateAll((els) => els.map((e) => e.dataset.sensor))).sort();
    assert.deepEqual(seen, expected, 'exactly the sensors inside the boundary');
    const operators = new Set(await rows.evaluateAll((els) => els.map((e) => e.dataset.operator)));
    assert.deepEqual([...operators], [tenant]);
    assert.match(await rows.first().textContent(), new RegExp(`operated by ${tenant}`));
    await waitFor('live values of the pooled sensors', 30_000, async () =>
      (await commune.locator('[data-testid="pooled-value"]').count()) > 0);
    // They count in the commune's own zone tiles, like its own sensors.
    await commune.locator(`[data-testid="zone-tile"][data-zone="${boundary.id}"]`).first().waitFor({ timeout: 10_000 });
    assert.ok((await commune.locator('[data-testid="sensor-marker"][data-pooled="true"]').count()) > 0, 'pooled markers');
  });

  // The commune's own alarm rule on a metric the pooled sensors measure, watching them for a
  // purpose the agreement allows: its alarm names the pooled sensor and its operator.
  const metric = await commune.locator('[data-testid="pooled-value"]').first().getAttribute('data-metric');
  await step(commune, 'pooled-alarm-rule', platforms, async () => {
    await commune.locator('[data-testid="nav-rules"]').click();
    const demoRule = commune.locator('[data-testid="rule-row"][data-rule-id="pm25-pooled"]');
    await demoRule.waitFor({ timeout: 10_000 });
    assert.equal(
      await demoRule.locator('[data-testid="rule-pooled-marker"]').getAttribute('data-purpose'),
      'environmental_monitoring',
    );
    const byTestId = (id) => commune.locator(`[data-testid="${id}"]`);
    await byTestId('rule-new').click();
    await byTestId('rule-name').fill('E2E: any pooled value');
    await byTestId('rule-kind').selectOption('threshold');
    await byTestId('rule-metric').fill(metric);
    await byTestId('rule-op').selectOption('gt');
    await byTestId('rule-value').fill('-1000000');
    await byTestId('rule-for').fill('0');
    await byTestId('rule-pooled').selectOption('environmental_monitoring');
    await byTestId('rule-save').click();
    await commune.locator('[data-testid="rule-row"]', { hasText: 'E2E: any pooled value' })
      .locator('[data-testid="rule-pooled-marker"]').waitFor({ timeout: 10_000 });
  });
  await step(commune, 'pooled-alarm-raised', platforms, async () => {
    await commune.locator('[data-testid="nav-supervision"]').click();
    const item = commune.locator(
      `[data-testid="alarm-item"][data-subject="pooled"][data-operator="${tenant}"]`,
      { hasText: 'E2E: any pooled value' },
    ).first();
    await item.waitFor({ timeout: 30_000 });
    const meta = await item.textContent();
    assert.match(meta, new RegExp(`operated by ${tenant}`));
    assert.ok(expected.some((id) => meta.includes(`${id} · ${metric}`)), `a sensor inside the boundary: ${meta}`);
  });
  await commune.close();

  const officer = await newPage();
  await step(officer, 'pooled-network-page', platforms, async () => {
    await officer.goto(`${api}/#token=${token}`);
    await officer.getByTestId('nav-pooling').click();
    const agreement = officer.locator(`[data-testid="pooling-agreement"][data-agreement="pool-${neighbour}"]`);
    await agreement.waitFor({ timeout: 10_000 });
    assert.equal(await agreement.getByTestId('pooling-beneficiary').textContent(), neighbour);
    // The commune's registry read and its live view, counted from the audit log.
    // Today's row (by day: the agreement began yesterday), asked again until the log has it.
    const today = officer.locator(`[data-testid="pooling-usage-row"][data-beneficiary="${neighbour}"]`).last();
    const count = async (testid) => Number((await today.getByTestId(testid).textContent()).replace(/\D/g, ''));
    let asks = 0;
    await waitFor('the commune\'s usage', 20_000, async () => {
      asks += 1;
      await officer.getByTestId('pooling-period').selectOption(asks % 2 ? 'day' : 'month');
      await today.waitFor({ timeout: 5_000 });
      return (await count('usage-readings')) >= expected.length && (await count('usage-accesses')) > 0;
    });
    assert.equal(await count('usage-sensors'), expected.length, 'the sensors pooled today');
    const [download] = await Promise.all([
      officer.waitForEvent('download', { timeout: 10_000 }),
      officer.getByTestId('pooling-download').click(),
    ]);
    assert.match(download.suggestedFilename(), new RegExp(`^pooling-usage_${tenant}_.*\\.csv$`));
    const csv = readFileSync(await download.path(), 'utf8');
    assert.match(csv, /^beneficiary,agreement,period_from,period_to,sensors,accesses,readings_served,denied\r\n/);
    assert.match(csv, new RegExp(`\\r\\n${neighbour},pool-${neighbour},`));
  });
  assert.deepEqual(officer.errors, [], 'no uncaught error in the officer page');
});
