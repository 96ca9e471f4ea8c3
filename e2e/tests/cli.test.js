// The CLI streaming its test pattern (H.264) into a meeting shows as a tile in the browser.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { ARTIFACTS, join, openBrowser, pixelSpread, startNode, tileOf, waitForFrames } from './helpers.js';

const CLI = process.env.VIDEOCALL_CLI_BIN;

test('a CLI test pattern decodes as H.264 in a browser tile', async () => {
  assert.ok(CLI, 'set VIDEOCALL_CLI_BIN (make e2e does)');
  const node = await startNode();
  const viewer = await openBrowser();
  const cli = spawn(CLI, [
    'stream', '--test-pattern', '--user-id', 'pi', '--meeting-id', 'cli',
    '--url', `https://localhost:${node.udp}`, '--websocket-url', node.url,
    '--resolution', '640x480', '--fps', '15',
  ], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    await join(viewer.page, node.url, 'viewer', 'cli');
    const first = await waitForFrames(viewer.page, 'pi', 10, 'camera', 20000);
    const later = await waitForFrames(viewer.page, 'pi', first + 15, 'camera', 20000);
    assert.ok(later > first);
    assert.ok(await pixelSpread(tileOf(viewer.page, 'pi')) > 5, 'the CLI tile looks blank');
    await viewer.page.screenshot({ path: `${ARTIFACTS}meeting-cli.png` });
    assert.deepEqual(viewer.errors, []);
  } finally {
    cli.kill('SIGINT');
    await viewer.close();
    await node.stop();
  }
});
