// Firefox ESR and Chromium in one encrypted meeting over WebTransport: each sees the other's
// video, decodes the other's audio, reads the other's chat and sees the other's raised hand. Firefox has no MediaStreamTrackProcessor, so its
// microphone goes through the AudioWorklet capture path; it also refuses autoplay that Chromium
// allows, which the page must handle without unhandled errors.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join, openBrowser, openFirefox, startNode, waitForFrames } from './helpers.js';

/** In the puppeteer page `page`: waits until `user`'s tile has `attr` (a counter) ≥ `n`. */
async function firefoxCounter(page, user, attr, n, timeout = 20000) {
  await page.waitForFunction(
    (u, a, want) => {
      const tile = document.querySelector(`.tile[data-user="${u}"][data-kind="camera"]`);
      const value = a === 'frames' ? tile?.querySelector('canvas')?.dataset.frames : tile?.dataset[a];
      return Number(value ?? 0) >= want;
    },
    { timeout, polling: 100 },
    user, attr, n,
  );
}

test('a Firefox ESR page and a Chromium page see and hear each other, chat and raise hands', async () => {
  const node = await startNode();
  const chrome = await openBrowser();
  const firefox = await openFirefox();
  try {
    await join(chrome.page, node.url, 'alice', 'firefox');
    await firefox.page.goto(`${node.url}/meeting/fox/firefox`);
    await firefox.page.waitForSelector('#connect', { timeout: 20000 });
    await firefox.page.click('#connect');
    await firefox.page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 20000 });
    assert.equal(await firefox.page.$eval('#transport', (e) => e.textContent), 'WebTransport');
    assert.match(await firefox.page.$eval('#e2ee', (e) => e.textContent), /End-to-end encrypted/);

    // Video both ways.
    await waitForFrames(chrome.page, 'fox', 10, 'camera', 20000);
    await firefoxCounter(firefox.page, 'alice', 'frames', 10);

    // Audio both ways, decoded (50 frames = 1 s of 20 ms Opus frames).
    await chrome.page.waitForFunction(
      () => Number(document.querySelector('.tile[data-user="fox"]')?.dataset.audioDecoded ?? 0) >= 50,
      null,
      { timeout: 20000 },
    );
    await firefoxCounter(firefox.page, 'alice', 'audioDecoded', 50);

    // Both still flowing: the counters advance.
    const before = Number(await chrome.page.getAttribute('.tile[data-user="fox"]', 'data-audio-decoded'));
    await chrome.page.waitForFunction(
      (n) => Number(document.querySelector('.tile[data-user="fox"]')?.dataset.audioDecoded ?? 0) >= n,
      before + 50,
      { timeout: 10000 },
    );
    // Encrypted chat and a raised hand, both ways.
    await firefox.page.click('#toggle-chat');
    await firefox.page.waitForSelector('#chat-input');
    await firefox.page.type('#chat-input', 'hello from firefox');
    await firefox.page.click('#chat-send');
    await chrome.page.click('#toggle-chat');
    const fromFox = chrome.page.locator('#chat-messages li[data-from="fox"] .text');
    await fromFox.waitFor({ timeout: 15000 });
    assert.equal((await fromFox.textContent()).trim(), 'hello from firefox');
    await chrome.page.fill('#chat-input', 'hello from chromium');
    await chrome.page.click('#chat-send');
    await firefox.page.waitForSelector('#chat-messages li[data-from="alice"] .text', { timeout: 15000 });
    assert.equal(
      (await firefox.page.$eval('#chat-messages li[data-from="alice"] .text', (e) => e.textContent)).trim(),
      'hello from chromium',
    );
    await firefox.page.click('#toggle-hand');
    await chrome.page.locator('.tile[data-user="fox"] .hand').waitFor({ timeout: 10000 });
    await chrome.page.click('#toggle-hand');
    await firefox.page.waitForSelector('.tile[data-user="alice"] .hand', { timeout: 10000 });

    assert.deepEqual(firefox.errors, [], `Firefox page errors: ${firefox.errors.join(' | ')}`);
  } finally {
    await firefox.close();
    await chrome.close();
    await node.stop();
  }
});
