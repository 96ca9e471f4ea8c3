// The CLI streaming its test pattern (H.264) and test tone (Opus) into a meeting shows as a tile in
// the browser, end to end encrypted (the default): both show the lock and the same safety code.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { ARTIFACTS, join, openBrowser, pixelSpread, startNode, tileOf, waitForFrames } from './helpers.js';

const CLI = process.env.VIDEOCALL_CLI_BIN;

test('an encrypted CLI test pattern decodes as H.264 in a browser tile, with the same safety code', async () => {
  assert.ok(CLI, 'set VIDEOCALL_CLI_BIN (make e2e does)');
  const node = await startNode();
  const viewer = await openBrowser();
  const cli = spawn(CLI, [
    'stream', '--test-pattern', '--user-id', 'pi', '--meeting-id', 'cli',
    '--url', `https://localhost:${node.udp}`, '--websocket-url', node.url,
    '--resolution', '640x480', '--fps', '15',
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  cli.stdout.on('data', (d) => { out += d; });
  // The page logs (console.log) a failing AudioDecoder: none of the CLI's Opus may fail.
  const decoderErrors = [];
  viewer.page.on('console', (m) => { if (/AudioDecoder error/.test(m.text())) decoderErrors.push(m.text()); });
  const cliCodes = () => [...out.matchAll(/^safety code (.+)$/gm)].map((m) => m[1]);
  try {
    await join(viewer.page, node.url, 'viewer', 'cli');
    const first = await waitForFrames(viewer.page, 'pi', 10, 'camera', 20000);
    const later = await waitForFrames(viewer.page, 'pi', first + 15, 'camera', 20000);
    assert.ok(later > first);
    assert.ok(await pixelSpread(tileOf(viewer.page, 'pi')) > 5, 'the CLI tile looks blank');
    // The CLI's test tone (Opus 20 ms frames, as the browser sends audio) reaches the page's
    // audio path: a second's worth of packets on the tile.
    await viewer.page.waitForFunction(
      () => Number(document.querySelector('.tile[data-user="pi"]')?.dataset.audioPackets ?? 0) >= 50,
      null,
      { timeout: 10000 },
    );
    assert.deepEqual(decoderErrors, []);
    assert.match(out, /^E2EE on: RSA-2048 identity/m, out);
    assert.match(await viewer.page.textContent('#e2ee'), /End-to-end encrypted/);
    // Frames decode only once both hold each other's keys: the codes have settled.
    const deadline = Date.now() + 10000;
    let pageCode;
    while (Date.now() < deadline) {
      pageCode = (await viewer.page.textContent('#safety-code')).trim();
      if (cliCodes().at(-1) === pageCode) break;
      await viewer.page.waitForTimeout(100);
    }
    assert.match(pageCode, /^\d{5}( \d{5}){11}$/);
    assert.equal(cliCodes().at(-1), pageCode, `CLI said ${cliCodes()}`);
    assert.ok(cliCodes().length >= 2, 'the CLI code changed when the viewer arrived');
    await viewer.page.screenshot({ path: `${ARTIFACTS}meeting-cli.png` });
    assert.deepEqual(viewer.errors, []);
  } finally {
    cli.kill('SIGINT');
    await viewer.close();
    await node.stop();
  }
});
