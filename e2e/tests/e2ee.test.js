// End-to-end encryption settings as people meet them: a meeting set to travel in clear says so,
// and a page that cannot encrypt is told why it cannot join an encrypted meeting.
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { test } from 'node:test';
import { join, openBrowser, startNode, waitForFrames } from './helpers.js';

test('a meeting set to travel in clear works and says it is not encrypted', async () => {
  const node = await startNode({ extraArgs: ['--plaintext-meeting', 'open'] });
  const a = await openBrowser();
  const b = await openBrowser();
  try {
    await join(a.page, node.url, 'ann', 'open');
    await join(b.page, node.url, 'ben', 'open');
    await waitForFrames(a.page, 'ben', 10);
    await waitForFrames(b.page, 'ann', 10);
    assert.equal(await a.page.textContent('#e2ee'), 'Not end-to-end encrypted');
    assert.equal(await a.page.locator('#safety-code').count(), 0);
    assert.deepEqual(a.errors, []);
  } finally {
    await a.close();
    await b.close();
    await node.stop();
  }
});

test('a page that cannot encrypt (not a secure context) is told why it cannot join', async (t) => {
  // Plain http:// on an address other than localhost is not a secure context: no WebCrypto.
  const address = Object.values(networkInterfaces()).flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (!address) {
    t.skip('this machine has no non-loopback IPv4 address');
    return;
  }
  const node = await startNode({ listen: '0.0.0.0', webtransport: false });
  const page = await openBrowser();
  try {
    await page.page.goto(`http://${address}:${node.http}/meeting/eve/secret`);
    await page.page.click('#connect');
    const error = await page.page.waitForSelector('#error', { timeout: 15000 });
    const text = await error.textContent();
    assert.match(text, /end-to-end encrypted/);
    assert.match(text, /https:\/\//);
    assert.equal(await page.page.locator('.meeting').count(), 0, 'never shown as joined');
  } finally {
    await page.close();
    await node.stop();
  }
});
