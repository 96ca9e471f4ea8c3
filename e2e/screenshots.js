// The README's screenshots, from real pages: a single node, three Chromium participants with
// fake cameras and microphones, a short chat, and the speaker view following the one page whose
// microphone is on. Writes docs/screenshots/chat.png and docs/screenshots/speaker-view.png
// (1280×720).
//
//   cd e2e && ACTIX_API_BIN=… UI_DIR=… node screenshots.js     (make screenshots does this)
import { mkdirSync } from 'node:fs';
import { openBrowser, startNode } from './tests/helpers.js';

const OUT = new URL('../docs/screenshots/', import.meta.url).pathname;
mkdirSync(OUT, { recursive: true });

async function joinAs(page, base, user, meeting, muted) {
  await page.goto(`${base}/meeting/${user}/${meeting}`);
  if (muted) await page.click('#prejoin-mic');
  await page.click('#connect');
  await page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 15000 });
}

async function send(page, text) {
  await page.fill('#chat-input', text);
  await page.click('#chat-send');
  await page.waitForFunction((t) => [...document.querySelectorAll('#chat-messages li.mine .text')].some((e) => e.textContent === t), text);
}

/** Waits until every camera tile on `page` has drawn frames. */
async function framesEverywhere(page, users) {
  for (const user of users) {
    await page.waitForFunction(
      (u) => Number(document.querySelector(`.tile[data-user="${u}"] canvas`)?.dataset.frames ?? 0) > 30,
      user,
      { timeout: 20000 },
    );
  }
}

const node = await startNode({ webtransport: false });
const pages = [];
try {
  const [alice, bob, carol] = [await openBrowser(), await openBrowser(), await openBrowser()];
  pages.push(alice, bob, carol);
  await joinAs(alice.page, node.url, 'alice', 'design-review', false);
  await joinAs(bob.page, node.url, 'bob', 'design-review', true);
  await joinAs(carol.page, node.url, 'carol', 'design-review', true);
  await framesEverywhere(bob.page, ['alice', 'carol']);

  for (const p of [alice, bob, carol]) await p.page.click('#toggle-chat');
  await send(alice.page, 'Morning! Slides are at https://example.org/q3-review');
  await send(carol.page, 'Thanks, opening them now.');
  await send(bob.page, 'Can everyone hear alice? The speaker view follows her.');
  await send(alice.page, 'Loud and clear 👍 (this chat is end-to-end encrypted)');
  await bob.page.waitForFunction(() => document.querySelectorAll('#chat-messages li').length >= 4);
  await carol.page.click('#toggle-hand');
  await bob.page.locator('.tile[data-user="carol"] .hand').waitFor();
  await bob.page.screenshot({ path: `${OUT}chat.png` });

  await carol.page.click('#toggle-chat');
  await carol.page.click('#layout-speaker');
  await carol.page.waitForSelector('#grid[data-active-speaker="alice"] .tile.main[data-user="alice"]', { timeout: 20000 });
  await framesEverywhere(carol.page, ['alice', 'bob']);
  await carol.page.screenshot({ path: `${OUT}speaker-view.png` });
  console.log(`wrote ${OUT}chat.png and ${OUT}speaker-view.png`);
} finally {
  for (const p of pages) await p.close();
  await node.stop();
}
