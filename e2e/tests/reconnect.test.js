// A relay restart in the middle of a meeting: both pages say they are reconnecting, then see
// each other again without anyone touching them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join, openBrowser, startNode, waitForFrames } from './helpers.js';

test('after a relay restart the pages reconnect and video resumes', async () => {
  const node = await startNode();
  const alice = await openBrowser();
  const bob = await openBrowser();
  try {
    await join(alice.page, node.url, 'alice', 'restart');
    await join(bob.page, node.url, 'bob', 'restart');
    await waitForFrames(alice.page, 'bob', 5);
    await node.stop();
    await alice.page.waitForSelector('#reconnecting', { timeout: 10000 });
    await node.restart();
    await alice.page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 20000 });
    await bob.page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 20000 });
    await waitForFrames(alice.page, 'bob', 5, 'camera', 20000);
    await waitForFrames(bob.page, 'alice', 5, 'camera', 20000);
    assert.equal(await alice.page.textContent('#transport'), 'WebTransport');
  } finally {
    await alice.close();
    await bob.close();
    await node.stop();
  }
});
