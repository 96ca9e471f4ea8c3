// Speaker view, keyboard shortcuts, accessible state and the phone layout (issue #18), with real
// Chromium pages on a real single node. Chromium's fake microphone beeps; only one page at a time
// has its microphone on (a muted page sends no audio), so the speaker view must show that one,
// and follow when another unmutes and it mutes. The active speaker is chosen from the levels
// measured where each peer's audio is decoded (after decryption: the meeting is encrypted).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ARTIFACTS, openBrowser, startNode } from './helpers.js';

/** Opens the meeting page, mutes the microphone first when `muted`, and joins. */
async function joinAs(page, base, user, meeting, { muted }) {
  await page.goto(`${base}/meeting/${user}/${meeting}`);
  if (muted) {
    await page.click('#prejoin-mic');
    assert.equal((await page.textContent('#prejoin-mic')).trim(), 'Mic off');
  }
  await page.click('#connect');
  await page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 15000 });
}

/** Waits until `page`'s speaker view shows `user` large as the active speaker. */
async function waitForSpeaker(page, user, timeout = 15000) {
  await page.waitForSelector(`#grid[data-active-speaker="${user}"] .tile.main.active-speaker[data-user="${user}"]`, { timeout });
}

/** The levels each tile shows, for failure messages. */
function levels(page) {
  return page.$$eval('.tile[data-kind="camera"]', (tiles) => tiles.map((t) => `${t.dataset.user}=${t.dataset.level}`).join(' '));
}

describe('speaker view, shortcuts and the phone layout', () => {
  let node, alice, bob, carol;
  before(async () => {
    node = await startNode({ webtransport: false });
    alice = await openBrowser();
    bob = await openBrowser();
    carol = await openBrowser();
    await joinAs(alice.page, node.url, 'alice', 'speakers', { muted: false });
    await joinAs(bob.page, node.url, 'bob', 'speakers', { muted: true });
    await joinAs(carol.page, node.url, 'carol', 'speakers', { muted: true });
    for (const [me, others] of [[alice, ['bob', 'carol']], [bob, ['alice', 'carol']], [carol, ['alice', 'bob']]]) {
      for (const other of others) {
        await me.page.waitForSelector(`#peer-list li[data-user="${other}"]`, { timeout: 15000 });
      }
    }
  });
  after(async () => {
    await alice?.close();
    await bob?.close();
    await carol?.close();
    await node?.stop();
  });

  test('the speaker view shows whoever has the microphone on, and follows a swap', async (t) => {
    for (const me of [alice, bob, carol]) {
      await me.page.click('#layout-speaker');
      await me.page.waitForSelector('#grid[data-layout="speaker"]', { timeout: 5000 });
      assert.equal(await me.page.getAttribute('#layout-speaker', 'aria-pressed'), 'true');
    }
    try {
      await waitForSpeaker(carol.page, 'alice');
      await waitForSpeaker(bob.page, 'alice');
      t.diagnostic(`levels on carol's page: ${await levels(carol.page)}`);
    } catch (e) {
      assert.fail(`alice is not the speaker on carol's page (levels ${await levels(carol.page)}): ${e.message}`);
    }
    // The muted peer is heard as silent.
    assert.equal(Number(await carol.page.getAttribute('.tile[data-user="bob"]', 'data-level')), 0);
    // The others are in the strip, not large.
    assert.equal(await carol.page.locator('.tile.main').count(), 1);
    assert.equal(await carol.page.locator('.tile.main[data-user="bob"]').count(), 0);
    await carol.page.screenshot({ path: `${ARTIFACTS}speaker-alice.png` });

    // Swap: alice mutes, bob unmutes. Carol's view follows bob; it must not go back.
    await alice.page.click('#toggle-mic');
    await alice.page.waitForSelector('#toggle-mic[aria-pressed="true"]', { timeout: 5000 });
    await bob.page.click('#toggle-mic');
    await bob.page.waitForSelector('#toggle-mic[aria-pressed="false"]', { timeout: 5000 });
    const swapped = Date.now();
    try {
      await waitForSpeaker(carol.page, 'bob');
      t.diagnostic(`carol's speaker view followed bob ${Date.now() - swapped} ms after he unmuted`);
    } catch (e) {
      assert.fail(`carol's view did not follow bob (levels ${await levels(carol.page)}): ${e.message}`);
    }
    await waitForSpeaker(alice.page, 'bob');
    // Alice is silent now: her level falls to (nearly) nothing on carol's page.
    await carol.page.waitForFunction(
      () => Number(document.querySelector('.tile[data-user="alice"]')?.dataset.level ?? 1) < 0.01,
      null,
      { timeout: 10000 },
    );
    assert.equal(await carol.page.getAttribute('#grid', 'data-active-speaker'), 'bob');

    // The grid shows no large tile; pinning shows the pinned one large whoever speaks.
    await carol.page.click('#layout-grid');
    await carol.page.waitForSelector('#grid[data-layout="grid"]', { timeout: 5000 });
    assert.equal(await carol.page.locator('.tile.main').count(), 0);
    await carol.page.click('.tile[data-user="alice"] .pin');
    await carol.page.waitForSelector('#grid[data-layout="pinned"] .tile.main[data-user="alice"]', { timeout: 5000 });
    assert.equal(await carol.page.getAttribute('#layout-pinned', 'aria-pressed'), 'true');
    await carol.page.click('.tile[data-user="alice"] .pin');
    await carol.page.waitForSelector('#grid[data-layout="grid"]', { timeout: 5000 });
  });

  test('keyboard shortcuts toggle mic, camera, chat, hand and layout, but not while typing', async () => {
    const page = carol.page;
    await page.locator('body').focus();
    const pressed = (id) => page.getAttribute(id, 'aria-pressed');
    // Titles name the keys.
    assert.match(await page.getAttribute('#toggle-mic', 'title'), /\(M\)$/);
    assert.equal(await page.getAttribute('#toggle-hand', 'aria-keyshortcuts'), 'h');

    assert.equal(await pressed('#toggle-mic'), 'true', 'carol joined muted');
    await page.keyboard.press('m');
    await page.waitForSelector('#toggle-mic[aria-pressed="false"]', { timeout: 5000 });
    // Bob hears carol's microphone state change.
    await bob.page.waitForSelector('.tile[data-user="carol"] .mic:not(.off)', { timeout: 10000 });
    await page.keyboard.press('m');
    await page.waitForSelector('#toggle-mic[aria-pressed="true"]', { timeout: 5000 });

    await page.keyboard.press('v');
    await page.waitForSelector('#toggle-camera[aria-pressed="true"]', { timeout: 5000 });
    await page.waitForSelector('#tile-self .avatar', { timeout: 5000 });
    await page.keyboard.press('v');
    await page.waitForSelector('#toggle-camera[aria-pressed="false"]', { timeout: 5000 });

    await page.keyboard.press('h');
    await page.waitForSelector('#toggle-hand[aria-pressed="true"]', { timeout: 5000 });
    await alice.page.locator('.tile[data-user="carol"] .hand').waitFor({ timeout: 10000 });
    // The others hear of it in their live region.
    await alice.page.waitForFunction(() => /carol raised their hand/.test(document.querySelector('#announcer')?.textContent ?? ''), null, { timeout: 5000 });
    await page.keyboard.press('h');
    await page.waitForSelector('#toggle-hand[aria-pressed="false"]', { timeout: 10000 });

    await page.keyboard.press('l');
    await page.waitForSelector('#grid[data-layout="speaker"]', { timeout: 5000 });
    await page.keyboard.press('l');
    await page.waitForSelector('#grid[data-layout="grid"]', { timeout: 5000 });

    // C opens the chat with the focus in its box; typing there is text, not shortcuts.
    await page.keyboard.press('c');
    await page.waitForSelector('#chat-panel', { timeout: 5000 });
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'chat-input');
    await page.keyboard.type('mvhcl');
    assert.equal(await page.inputValue('#chat-input'), 'mvhcl', 'no shortcut key leaks into the box');
    await page.keyboard.press('Enter');
    // Escape closes the chat and gives the focus back to its button.
    await page.keyboard.press('Escape');
    await page.waitForSelector('#chat-panel', { state: 'detached', timeout: 5000 });
    // Rendered after the letters: none of them acted.
    assert.equal(await pressed('#toggle-mic'), 'true', 'm typed in the chat did not unmute');
    assert.equal(await pressed('#toggle-camera'), 'false');
    assert.equal(await pressed('#toggle-hand'), 'false');
    assert.equal(await page.getAttribute('#grid', 'data-layout'), 'grid');
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'toggle-chat');
    assert.equal(await pressed('#toggle-chat'), 'false');
    // The message went out, and bob's live region read it.
    await bob.page.waitForFunction(() => /Message from carol: mvhcl/.test(document.querySelector('#announcer')?.textContent ?? ''), null, { timeout: 10000 });
    // Ctrl+C is the browser's, not ours.
    await page.keyboard.press('Control+c');
    await page.keyboard.press('m');
    await page.waitForSelector('#toggle-mic[aria-pressed="false"]', { timeout: 5000 });
    assert.equal(await page.locator('#chat-panel').count(), 0, 'Ctrl+C did not open the chat');
    await page.keyboard.press('m');
    await page.waitForSelector('#toggle-mic[aria-pressed="true"]', { timeout: 5000 });
  });

  test('joins and leaves are announced, and controls have accessible names', async () => {
    const dave = await openBrowser();
    try {
      await joinAs(dave.page, node.url, 'dave', 'speakers', { muted: true });
      await alice.page.waitForFunction(() => /dave joined/.test(document.querySelector('#announcer')?.textContent ?? ''), null, { timeout: 15000 });
      assert.equal(await alice.page.getAttribute('#announcer', 'aria-live'), 'polite');
      for (const id of ['#toggle-mic', '#toggle-camera', '#toggle-hand', '#toggle-chat']) {
        assert.ok(await alice.page.getAttribute(id, 'aria-pressed'), `${id} says whether it is pressed`);
      }
      assert.equal(await alice.page.getByRole('button', { name: 'Mute microphone' }).count(), 1);
      assert.equal(await alice.page.getByRole('navigation', { name: 'Meeting controls' }).count(), 1);
    } finally {
      await dave.close();
    }
    await alice.page.waitForFunction(() => /dave left/.test(document.querySelector('#announcer')?.textContent ?? ''), null, { timeout: 15000 });
  });

  test('at 390 px wide nothing overflows and the people list and chat open as panels', async () => {
    const page = bob.page;
    await page.setViewportSize({ width: 390, height: 844 });
    try {
      await page.waitForFunction(() => window.innerWidth === 390);
      const width = await page.evaluate(() => document.documentElement.scrollWidth);
      assert.ok(width <= 390, `the page is ${width} px wide`);
      // Hidden until asked for.
      assert.equal(await page.locator('#peer-list').isVisible(), false);
      await page.click('#toggle-people');
      await page.waitForSelector('#peer-list li[data-user="alice"]', { state: 'visible', timeout: 5000 });
      const box = await page.locator('#people-panel').boundingBox();
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `people panel at ${box.x}+${box.width}`);
      await page.screenshot({ path: `${ARTIFACTS}phone-people.png` });
      await page.click('#people-panel .close');
      await page.waitForSelector('#peer-list', { state: 'hidden', timeout: 5000 });
      await page.click('#toggle-chat');
      await page.waitForSelector('#chat-input', { state: 'visible', timeout: 5000 });
      const chat = await page.locator('#chat-panel').boundingBox();
      assert.ok(chat.x >= 0 && chat.x + chat.width <= 390, `chat panel at ${chat.x}+${chat.width}`);
      assert.ok(await page.locator('#chat-send').isVisible());
      assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 390);
      await page.screenshot({ path: `${ARTIFACTS}phone-chat.png` });
      await page.click('#chat-panel header button');
      await page.waitForSelector('#chat-panel', { state: 'detached', timeout: 5000 });
      // Every control is on screen.
      for (const id of ['#toggle-mic', '#toggle-camera', '#toggle-hand', '#toggle-chat', '#toggle-people', '#leave']) {
        const b = await page.locator(id).boundingBox();
        assert.ok(b && b.x >= 0 && b.x + b.width <= 390, `${id} at ${b?.x}+${b?.width}`);
      }
    } finally {
      await page.setViewportSize({ width: 1280, height: 720 });
    }
  });

  test('the chosen layout is remembered for the meeting across a reload', async () => {
    const page = carol.page;
    await page.click('#layout-speaker');
    await page.waitForSelector('#grid[data-layout="speaker"]', { timeout: 5000 });
    await joinAs(page, node.url, 'carol', 'speakers', { muted: true });
    await page.waitForSelector('#grid[data-layout="speaker"]', { timeout: 5000 });
    assert.equal(await page.getAttribute('#layout-speaker', 'aria-pressed'), 'true');
    // Another meeting starts in the grid.
    await joinAs(page, node.url, 'carol', 'elsewhere', { muted: true });
    assert.equal(await page.getAttribute('#grid', 'data-layout'), 'grid');
  });
});
