// Shared by the browser tests: a real single node (actix-api, optionally with WebTransport)
// on free ports, and Debian's Chromium with a fake camera and microphone.
import { spawn } from 'node:child_process';
import { mkdtempSync, mkdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { chromium } from 'playwright-core';

export const ARTIFACTS = new URL('../artifacts/', import.meta.url).pathname;
mkdirSync(ARTIFACTS, { recursive: true });

// Only tests that start their own node need these (the compose test targets a running stack).
const BIN = process.env.ACTIX_API_BIN;
const UI_DIR = process.env.UI_DIR;

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** Starts `actix-api` with `args`; resolves with the child once it prints that it runs. */
function spawnNode(args) {
  if (!BIN || !UI_DIR) throw new Error('set ACTIX_API_BIN and UI_DIR (make e2e does)');
  const child = spawn(BIN, args, { env: { ...process.env, RUST_LOG: 'warn' }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`node did not start: ${out}`)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      if (out.includes('Ctrl-C stops.')) { clearTimeout(timer); resolve(child); }
    });
    child.on('exit', (code) => reject(new Error(`node exited ${code}: ${out}`)));
  });
}

/** Starts a node on free ports; `stop()` ends it and `restart()` starts it again on the same ports. */
export async function startNode({ webtransport = true, listen = '127.0.0.1', extraArgs = [] } = {}) {
  const http = await freePort();
  const udp = await freePort();
  const args = ['--listen', `${listen}:${http}`, '--ui-dir', UI_DIR, ...extraArgs];
  if (webtransport) args.push('--webtransport', '--webtransport-listen', `[::]:${udp}`);
  let child = await spawnNode(args);
  const node = {
    url: `http://localhost:${http}`,
    http,
    udp,
    stop: () => new Promise((resolve) => {
      if (child.exitCode !== null) return resolve();
      child.on('exit', resolve);
      child.kill('SIGTERM');
    }),
    restart: async () => {
      await node.stop();
      child = await spawnNode(args);
    },
  };
  return node;
}

/** A fresh Chromium profile with fake devices (`cameras` fake cameras); collects console errors. */
export async function openBrowser({ cameras = 1 } = {}) {
  const context = await chromium.launchPersistentContext(mkdtempSync(joinPath(tmpdir(), 'videocall-e2e-')), {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    viewport: { width: 1280, height: 720 },
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run',
      cameras > 1 ? `--use-fake-device-for-media-stream=device-count=${cameras}` : '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--auto-select-desktop-capture-source=Entire screen', '--autoplay-policy=no-user-gesture-required',
    ],
  });
  const page = context.pages()[0] ?? await context.newPage();
  const errors = [];
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', (e) => errors.push(String(e)));
  return { context, page, errors, close: () => context.close() };
}

/** Opens the meeting page and presses Connect. */
export async function join(page, base, user, meeting, query = '') {
  await page.goto(`${base}/meeting/${user}/${meeting}${query}`);
  await page.click('#connect');
  await page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 15000 });
}

/** The tile of `user` (camera by default). */
export function tileOf(page, user, kind = 'camera') {
  return page.locator(`.tile[data-user="${user}"][data-kind="${kind}"]`);
}

/** Frames decoded so far in a tile's canvas. */
export async function framesIn(tile) {
  return Number(await tile.locator('canvas').getAttribute('data-frames') ?? 0);
}

/** Waits until `user`'s tile has decoded at least `n` frames; returns the count. */
export async function waitForFrames(page, user, n, kind = 'camera', timeout = 15000) {
  const selector = `.tile[data-user="${user}"][data-kind="${kind}"] canvas`;
  await page.waitForFunction(
    ([sel, want]) => Number(document.querySelector(sel)?.dataset.frames ?? 0) >= want,
    [selector, n],
    { timeout },
  );
  return framesIn(tileOf(page, user, kind));
}

/** Standard deviation of the canvas's pixel values: 0 for a blank canvas. */
export async function pixelSpread(tile) {
  return tile.locator('canvas').evaluate((canvas) => {
    const ctx = canvas.getContext('2d');
    const { data } = ctx.getImageData(0, 0, canvas.width, canvas.height);
    let sum = 0, sq = 0, n = 0;
    for (let i = 0; i < data.length; i += 16) { sum += data[i]; sq += data[i] * data[i]; n++; }
    const mean = sum / n;
    return Math.sqrt(sq / n - mean * mean);
  });
}

/**
 * Debian's Firefox ESR over WebDriver BiDi (puppeteer-core), fake camera and microphone, in a
 * fresh profile. This machine has no sound card: cubeb's mock context stands in for the audio
 * device (without one an AudioContext never runs), as the fake devices stand in for the camera
 * and microphone. Collects page errors.
 */
export async function openFirefox() {
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
    userDataDir: mkdtempSync(joinPath(tmpdir(), 'videocall-e2e-firefox-')),
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.cubeb.force_mock_context': true,
    },
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 720 });
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  return { browser, page, errors, close: () => browser.close() };
}

/**
 * A TCP proxy to `127.0.0.1:targetPort` whose server-to-client direction can be slowed to
 * `setRate(bytesPerSecond)` (`null`: full speed). It stops reading from the server while a
 * read's time at that rate passes, so the server meets real TCP back-pressure, as behind a slow
 * link (DevTools' network throttling buffers inside the browser instead).
 */
export async function throttleProxy(targetPort) {
  let rate = null;
  const sockets = new Set();
  const server = createServer((client) => {
    // Small reads (4 KiB at a time) so the kernel sees a slow reader and its receive window
    // stays small: the server's queue, not a kernel buffer, takes the backlog.
    const upstream = connect({
      port: targetPort,
      host: '127.0.0.1',
      onread: {
        buffer: Buffer.alloc(4096),
        callback: (n, buffer) => {
          client.write(Buffer.from(buffer.subarray(0, n)));
          if (!rate) return true;
          setTimeout(() => upstream.resume(), (n * 1000) / rate);
          return false;
        },
      },
    });
    sockets.add(client);
    sockets.add(upstream);
    client.pipe(upstream);
    upstream.on('end', () => client.end());
    const kill = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    for (const s of [client, upstream]) {
      s.on('error', kill);
      s.on('close', kill);
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    url: `http://localhost:${port}`,
    setRate: (bytesPerSecond) => { rate = bytesPerSecond; },
    close: () => new Promise((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    }),
  };
}
