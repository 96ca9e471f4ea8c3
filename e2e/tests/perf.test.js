// Join → first remote frame on screen, measured (not asserted beyond sanity) over 10 joins of an
// end-to-end encrypted meeting and 10 of a meeting in clear: the difference is what E2EE adds
// to a join. Also E2EE's own costs in this browser (WebCrypto keygen, wraps, seal + open).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { ARTIFACTS, join, openBrowser, startNode } from './helpers.js';

async function joins(node, host, guest, meeting) {
  await join(host.page, node.url, 'host', meeting);
  const samples = [];
  for (let i = 0; i < 10; i++) {
    await guest.page.goto(`${node.url}/meeting/guest/${meeting}`);
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
  return { samples, p50: samples[Math.floor(samples.length / 2)] };
}

test('join to first remote frame, 10 joins encrypted and 10 in clear; E2EE costs', async () => {
  const node = await startNode({ extraArgs: ['--plaintext-meeting', 'perf-clear'] });
  const host = await openBrowser();
  const guest = await openBrowser();
  try {
    const encrypted = await joins(node, host, guest, 'perf');
    const clear = await joins(node, host, guest, 'perf-clear');
    for (const [name, r] of [['encrypted', encrypted], ['in clear', clear]]) {
      console.log(`join → first remote frame (${name}): p50 ${r.p50} ms, min ${r.samples[0]} ms, max ${r.samples.at(-1)} ms`);
    }
    writeFileSync(`${ARTIFACTS}first-frame.json`, JSON.stringify({ encrypted, clear }, null, 2));
    assert.ok(encrypted.p50 < 10000 && clear.p50 < 10000, 'first frames took over 10 s');

    const bench = await guest.page.evaluate(() => window.videocallE2eeBench(2000));
    console.log(`browser E2EE: ${JSON.stringify(bench)}`);
    writeFileSync(`${ARTIFACTS}e2ee-browser.json`, JSON.stringify(bench, null, 2));
    assert.equal(bench.opened, bench.frames, 'every sealed frame opened');
  } finally {
    await guest.close();
    await host.close();
    await node.stop();
  }
});
