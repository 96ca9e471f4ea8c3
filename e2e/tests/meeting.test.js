// Two (and three) real Chromium participants in one meeting on a real single node.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  ARTIFACTS, framesIn, join, openBrowser, pixelSpread, startNode, tileOf, waitForFrames,
} from './helpers.js';

/** Waits until every page shows the same 60-digit safety code; returns it. */
async function sameSafetyCode(pages) {
  const deadline = Date.now() + 10000;
  let codes = [];
  while (Date.now() < deadline) {
    codes = await Promise.all(pages.map(async (p) => (await p.textContent('#safety-code')).trim()));
    if (/^\d{5}( \d{5}){11}$/.test(codes[0]) && codes.every((c) => c === codes[0])) return codes[0];
    await pages[0].waitForTimeout(100);
  }
  assert.fail(`safety codes differ: ${codes.join(' / ')}`);
}

describe('a meeting over WebTransport', () => {
  let node, alice, bob;
  before(async () => {
    node = await startNode();
    alice = await openBrowser();
    bob = await openBrowser();
    await join(alice.page, node.url, 'alice', 'e2e');
    await join(bob.page, node.url, 'bob', 'e2e');
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await node?.stop();
  });

  test('each sees the other with frames advancing, real pixels and audio', async () => {
    for (const me of [alice, bob]) {
      assert.match(await me.page.textContent('#e2ee'), /End-to-end encrypted/);
    }
    await sameSafetyCode([alice.page, bob.page]);
    for (const [me, other] of [[alice, 'bob'], [bob, 'alice']]) {
      assert.equal(await me.page.textContent('#transport'), 'WebTransport');
      const first = await waitForFrames(me.page, other, 10);
      const later = await waitForFrames(me.page, other, first + 20);
      assert.ok(later > first, `${other}'s frame counter did not advance`);
      const spread = await pixelSpread(tileOf(me.page, other));
      assert.ok(spread > 5, `${other}'s canvas looks blank (spread ${spread})`);
      await me.page.waitForFunction(
        (user) => Number(document.querySelector(`.tile[data-user="${user}"]`)?.dataset.audioPackets ?? 0) > 10,
        other,
        { timeout: 10000 },
      );
    }
    await alice.page.screenshot({ path: `${ARTIFACTS}meeting-two.png` });
  });

  test('a third participant appears and disappears, with no console errors', async () => {
    const carol = await openBrowser();
    try {
      await join(carol.page, node.url, 'carol', 'e2e');
      await waitForFrames(alice.page, 'carol', 5);
      await waitForFrames(carol.page, 'alice', 5);
      await waitForFrames(carol.page, 'bob', 5);
      await alice.page.screenshot({ path: `${ARTIFACTS}meeting-three.png` });
      // Everyone holds the same three keys: one safety code, shown by all.
      const three = await sameSafetyCode([alice.page, bob.page, carol.page]);
      // The code commits to the key holders listed next to it: the same three on every page.
      const holders = await Promise.all([alice.page, bob.page, carol.page].map(async (p) =>
        (await p.locator('#key-holders li').allTextContents()).map((t) => t.trim()).sort()));
      assert.equal(holders[0].length, 3, holders[0].join(' / '));
      assert.deepEqual(holders[1], holders[0]);
      assert.deepEqual(holders[2], holders[0]);
      await carol.page.click('#leave');
      await alice.page.waitForSelector('.tile[data-user="carol"]', { state: 'detached', timeout: 15000 });
      const two = await sameSafetyCode([alice.page, bob.page]);
      assert.notEqual(two, three, 'the code changes when someone leaves');
    } finally {
      await carol.close();
    }
    await alice.page.waitForSelector('.tile[data-user="carol"]', { state: 'detached', timeout: 15000 });
    await bob.page.waitForSelector('.tile[data-user="carol"]', { state: 'detached', timeout: 15000 });
    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    assert.deepEqual(carol.errors, []);
  });

  test('a shared screen shows as its own tile at the other side', async () => {
    await alice.page.click('#toggle-screen');
    await waitForFrames(bob.page, 'alice', 3, 'screen');
    assert.ok(await framesIn(tileOf(bob.page, 'alice', 'screen')) >= 3);
    await bob.page.screenshot({ path: `${ARTIFACTS}meeting-screen.png` });
    await alice.page.click('#toggle-screen');
  });
});

describe('the WebSocket fallback', () => {
  test('without WebTransport the meeting runs over WebSocket and says so', async () => {
    const node = await startNode({ webtransport: false });
    const a = await openBrowser();
    const b = await openBrowser();
    try {
      await join(a.page, node.url, 'ann', 'ws');
      await join(b.page, node.url, 'ben', 'ws');
      assert.equal(await a.page.textContent('#transport'), 'WebSocket');
      assert.equal(await b.page.textContent('#transport'), 'WebSocket');
      await waitForFrames(a.page, 'ben', 10);
      await waitForFrames(b.page, 'ann', 10);
    } finally {
      await a.close();
      await b.close();
      await node.stop();
    }
  });
});

describe('an unreachable relay', () => {
  test('is reported within 10 seconds with a retry, never shown as joined', async () => {
    const node = await startNode();
    const a = await openBrowser();
    try {
      await a.page.goto(`${node.url}/meeting/alone/gone`);
      await a.page.waitForSelector('#connect');
      await node.stop();
      const started = Date.now();
      await a.page.click('#connect');
      await a.page.waitForSelector('#error', { timeout: 10000 });
      assert.ok(Date.now() - started < 10000);
      assert.match(await a.page.textContent('#error'), /cannot reach the relay/);
      assert.equal(await a.page.locator('.meeting').count(), 0);
      assert.equal(await a.page.locator('#retry').count(), 1);
    } finally {
      await a.close();
    }
  });
});
