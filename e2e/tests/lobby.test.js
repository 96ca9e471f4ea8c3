// A protected meeting made on the home page, through the meeting API: the host creates it with
// a waiting room, a guest asks to join and waits, the host admits them, both see each other,
// and when the host ends it the guest sees "meeting ended".
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ARTIFACTS, openBrowser, startNode, waitForFrames } from './helpers.js';

/** The logged-in user of a page (its cookie), as the API states it. */
function me(page) {
  return page.evaluate(async () => (await fetch('/api/v1/me')).json());
}

/** Presses Connect on the meeting page and waits until joined. */
async function connect(page) {
  await page.click('#connect', { timeout: 15000 });
  await page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 15000 });
}

describe('a protected meeting with a waiting room', () => {
  let node, host, guest;
  before(async () => {
    node = await startNode();
    host = await openBrowser();
    guest = await openBrowser();
  });
  after(async () => {
    await host?.close();
    await guest?.close();
    await node?.stop();
  });

  test('host creates, guest waits, host admits, both see each other; host ends', async () => {
    await host.page.goto(`${node.url}/`);
    await host.page.fill('#name', 'Hana');
    assert.equal(await host.page.isChecked('#waiting-room-setting'), true);
    await host.page.click('#create');
    await host.page.waitForFunction(() => location.pathname.startsWith('/m/'), null, { timeout: 10000 });
    const meeting = decodeURIComponent(new URL(host.page.url()).pathname.split('/')[2]);
    await connect(host.page);
    const hostUser = await me(host.page);
    assert.equal(hostUser.display_name, 'Hana');

    await guest.page.goto(`${node.url}/`);
    await guest.page.fill('#name', 'Gus');
    await guest.page.fill('#meeting', meeting);
    await guest.page.click('#ask-to-join');
    await guest.page.waitForSelector('#waiting-room', { timeout: 10000 });
    const guestUser = await me(guest.page);

    // The host sees the guest waiting (the page asks every 2 s) and admits them.
    const waiting = `#waiting-list li[data-user="${guestUser.id}"]`;
    await host.page.waitForSelector(waiting, { timeout: 10000 });
    assert.match(await host.page.textContent(waiting), /Gus/);
    await host.page.click(`${waiting} .admit`);
    await host.page.waitForSelector(waiting, { state: 'detached', timeout: 10000 });
    await connect(guest.page);

    await waitForFrames(host.page, guestUser.id, 10);
    await waitForFrames(guest.page, hostUser.id, 10);
    // Host controls are the host's alone.
    await host.page.waitForSelector(`#peer-list li[data-user="${guestUser.id}"] .remove`, { timeout: 10000 });
    assert.equal(await host.page.locator('#end-meeting').count(), 1);
    assert.equal(await guest.page.locator('#end-meeting').count(), 0);
    assert.equal(await guest.page.locator('#peer-list .remove').count(), 0);
    await host.page.screenshot({ path: `${ARTIFACTS}lobby-host.png` });

    await host.page.click('#end-meeting');
    await host.page.waitForSelector('#lobby-ended', { timeout: 10000 });
    await guest.page.waitForSelector('#lobby-ended', { timeout: 10000 });
    assert.match(await guest.page.textContent('#lobby-ended'), /The meeting has ended/);
    await guest.page.screenshot({ path: `${ARTIFACTS}lobby-ended.png` });
    const view = await guest.page.evaluate(async (id) => (await fetch(`/api/v1/meetings/${id}`)).json(), meeting);
    assert.equal(view.meeting.state, 'ended');
  });
});
