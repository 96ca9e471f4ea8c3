// Chat, raised hands and reactions (issue #18) between two real Chromium pages on a real single
// node, in an end-to-end encrypted meeting: a message typed on one page shows on the other
// (with its link clickable and markup shown as text), the unread badge counts while the panel is
// closed, a raised hand shows on the other's tile and in its people list, a reaction shows on
// the tile, and a late joiner gets the history.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ARTIFACTS, join, openBrowser, startNode, tileOf } from './helpers.js';

describe('chat, hands and reactions', () => {
  let node, alice, bob;
  before(async () => {
    node = await startNode({ webtransport: false });
    alice = await openBrowser();
    bob = await openBrowser();
    await join(alice.page, node.url, 'alice', 'chat');
    await join(bob.page, node.url, 'bob', 'chat');
    // Each sees the other before anyone speaks (keys follow the roster).
    await alice.page.waitForSelector('#peer-list li[data-user="bob"]', { timeout: 15000 });
    await bob.page.waitForSelector('#peer-list li[data-user="alice"]', { timeout: 15000 });
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await node?.stop();
  });

  test('a message reaches the other page, escaped, with its link clickable', async () => {
    assert.match(await alice.page.textContent('#e2ee'), /End-to-end encrypted/);
    await alice.page.click('#toggle-chat');
    const text = 'hi bob <b>bold?</b> see https://example.org/x';
    await alice.page.fill('#chat-input', text);
    await alice.page.click('#chat-send');
    await alice.page.waitForSelector('#chat-messages li.mine', { timeout: 5000 });
    // Bob's panel is closed: the badge counts it.
    await bob.page.waitForSelector('#chat-unread', { timeout: 15000 });
    assert.equal((await bob.page.textContent('#chat-unread')).trim(), '1');
    await bob.page.click('#toggle-chat');
    const line = bob.page.locator('#chat-messages li[data-from="alice"]');
    await line.waitFor({ timeout: 5000 });
    assert.equal(await bob.page.locator('#chat-unread').count(), 0, 'opening reads it');
    assert.equal((await line.locator('.text').textContent()).trim(), text);
    assert.equal(await line.locator('b').count(), 0, 'markup in a message is text');
    const link = line.locator('a');
    assert.equal(await link.getAttribute('href'), 'https://example.org/x');
    assert.match(await link.getAttribute('rel'), /noopener/);
    await bob.page.screenshot({ path: `${ARTIFACTS}chat.png` });
  });

  test('a raised hand and a reaction show on the other page', async () => {
    await bob.page.click('#toggle-hand');
    assert.equal((await bob.page.textContent('#toggle-hand')).trim(), 'Lower hand');
    const tile = tileOf(alice.page, 'bob');
    await tile.locator('.hand').waitFor({ timeout: 10000 });
    await alice.page.locator('#peer-list li[data-user="bob"] .hand').waitFor({ timeout: 5000 });
    await bob.page.click('.reactions .react[data-emoji="🎉"]');
    await tile.locator('.reaction').waitFor({ timeout: 10000 });
    assert.equal((await tile.locator('.reaction').textContent()).trim(), '🎉');
    // Lowered again: gone from the tile.
    await bob.page.click('#toggle-hand');
    await tile.locator('.hand').waitFor({ state: 'detached', timeout: 10000 });
  });

  test('a late joiner gets the history', async () => {
    const carol = await openBrowser();
    try {
      await join(carol.page, node.url, 'carol', 'chat');
      await carol.page.waitForSelector('#chat-unread', { timeout: 15000 });
      await carol.page.click('#toggle-chat');
      const line = carol.page.locator('#chat-messages li[data-from="alice"]');
      await line.waitFor({ timeout: 5000 });
      assert.match(await line.locator('.text').textContent(), /^hi bob/);
      assert.equal(await carol.page.locator('#chat-messages li').count(), 1, 'shown once');
    } finally {
      await carol.close();
    }
  });
});
