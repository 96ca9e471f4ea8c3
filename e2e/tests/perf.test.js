// Join → first remote frame on screen, measured (not asserted beyond sanity) over 10 joins.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { ARTIFACTS, join, openBrowser, startNode } from './helpers.js';

test('join to first remote frame, 10 joins', async () => {
  const node = await startNode();
  const host = await openBrowser();
  const guest = await openBrowser();
  try {
    await join(host.page, node.url, 'host', 'perf');
    const samples = [];
    for (let i = 0; i < 10; i++) {
      await guest.page.goto(`${node.url}/meeting/guest/perf`);
      await guest.page.waitForSelector('#connect:not([disabled])');
      const started = Date.now();
      await guest.page.click('#connect');
      await guest.page.waitForFunction(
        () => Number(document.querySelector('.tile[data-user="host"] canvas')?.dataset.frames ?? 0) >= 1,
        null,
        { timeout: 15000 },
      );
      samples.push(Date.now() - started);
    }
    samples.sort((a, b) => a - b);
    const p50 = samples[Math.floor(samples.length / 2)];
    console.log(`join → first remote frame: p50 ${p50} ms, min ${samples[0]} ms, max ${samples.at(-1)} ms`);
    writeFileSync(`${ARTIFACTS}first-frame.json`, JSON.stringify({ samples, p50 }, null, 2));
    assert.ok(p50 < 10000, `first frame took ${p50} ms`);
  } finally {
    await guest.close();
    await host.close();
    await node.stop();
  }
});
