// Adaptive quality: a receiver on a slow link makes the relay drop our video for it; the relay
// says CONGESTION and the sender steps down its quality ladder at once. When the link recovers
// and stays quiet, the sender climbs back, one rung at a time.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join, openBrowser, startNode, throttleProxy, waitForFrames } from './helpers.js';

/** The sender's diagnostics line: { rung, down, up, text }. */
async function sendQuality(page) {
  return page.evaluate(() => {
    const p = document.querySelector('#send-quality');
    return p && {
      rung: Number(p.dataset.rung),
      down: Number(p.dataset.stepsDown),
      up: Number(p.dataset.stepsUp),
      text: p.textContent,
    };
  });
}

test('a throttled receiver makes the sender step down, and back up once the link recovers', async () => {
  // A 64 KiB kernel send buffer per connection (default 256): the backlog reaches the relay's
  // queue, and so CONGESTION, a few seconds sooner.
  const node = await startNode({ extraArgs: ['--tcp-send-buffer-kib', '64'] });
  const proxy = await throttleProxy(node.http);
  const alice = await openBrowser();
  const bob = await openBrowser();
  try {
    await join(alice.page, node.url, 'alice', 'quality');
    await alice.page.click('#toggle-diagnostics');
    await alice.page.waitForSelector('#send-quality');
    const start = await sendQuality(alice.page);
    assert.equal(start.down, 0, start.text);

    // Bob over WebSocket through the proxy, on a healthy link first.
    await join(bob.page, proxy.url, 'bob', 'quality', '?transport=websocket');
    await waitForFrames(bob.page, 'alice', 10);
    // 8 kB/s down: an eighth of alice's video.
    const throttledAt = Date.now();
    proxy.setRate(8 * 1024);
    await alice.page.waitForFunction(
      (rung) => Number(document.querySelector('#send-quality')?.dataset.rung) > rung,
      start.rung,
      { timeout: 90000, polling: 200 },
    );
    const down = await sendQuality(alice.page);
    const downAt = (Date.now() - throttledAt) / 1000;
    assert.ok(down.down >= 1, down.text);
    assert.match(down.text, /congestion|round trip/);
    // The relay told alice: the CONGESTION count in her diagnostics grows.
    await alice.page.waitForFunction(
      () => /Congestion signals: [1-9]/.test(document.querySelector('#diagnostics')?.textContent ?? ''),
      null,
      { timeout: 30000, polling: 200 },
    );

    // The link recovers: alice climbs back at least one rung, and bob sees her again.
    const liftedAt = Date.now();
    proxy.setRate(null);
    // Bob's backlog drains and what he decodes is smaller: the encoder really sent the lower
    // rung (WebCodecs scaled the camera's frames).
    const canvas = '.tile[data-user="alice"] canvas';
    const startWidth = start.text.match(/Sending (\d+)×/)[1];
    await bob.page.waitForFunction(
      ([sel, w]) => Number(document.querySelector(sel)?.width) < w,
      [canvas, Number(startWidth)],
      { timeout: 30000, polling: 200 },
    );

    await alice.page.waitForFunction(
      () => Number(document.querySelector('#send-quality')?.dataset.stepsUp) >= 1,
      null,
      { timeout: 90000, polling: 200 },
    );
    const up = await sendQuality(alice.page);
    assert.match(up.text, /link quiet/);
    console.log(`quality: start ${start.text} | down after ${downAt} s: ${down.text} | up after ${(Date.now() - liftedAt) / 1000} s: ${up.text}`);
    const frames = Number(await bob.page.getAttribute(canvas, 'data-frames'));
    await waitForFrames(bob.page, 'alice', frames + 10, 'camera', 20000);
    const upWidth = Number(up.text.match(/Sending (\d+)×/)[1]);
    await bob.page.waitForFunction(
      ([sel, w]) => Number(document.querySelector(sel)?.width) === w,
      [canvas, upWidth],
      { timeout: 20000, polling: 200 },
    );
  } finally {
    await alice.close();
    await bob.close();
    await proxy.close();
    await node.stop();
  }
});
