// Browser test of the compose stack (scripts/test-compose.sh runs it): two Chromium pages, one
// over WebTransport (webtransport-server) and one over WebSocket (actix-api), meet through NATS
// and see each other; `docker-compose restart actix-api` in the middle of the meeting and the
// WebSocket page reconnects by itself and video flows both ways again.
//   VIDEOCALL_BASE_URL   the published actix-api, e.g. http://127.0.0.1:8080
//   COMPOSE_RESTART_CMD  the command that restarts actix-api (a JSON array: program and args)
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { ARTIFACTS, framesIn, join, openBrowser, tileOf, waitForFrames } from '../tests/helpers.js';

const BASE = process.env.VIDEOCALL_BASE_URL;
const RESTART = JSON.parse(process.env.COMPOSE_RESTART_CMD ?? 'null');
if (!BASE || !RESTART) throw new Error('set VIDEOCALL_BASE_URL and COMPOSE_RESTART_CMD (scripts/test-compose.sh does)');

test('two pages meet across both relays, and recover from an actix-api restart', async () => {
  const alice = await openBrowser();
  const bob = await openBrowser();
  try {
    await join(alice.page, BASE, 'alice', 'compose');
    await join(bob.page, BASE, 'bob', 'compose', '?transport=websocket');
    await waitForFrames(alice.page, 'bob', 5, 'camera', 30000);
    await waitForFrames(bob.page, 'alice', 5, 'camera', 30000);
    assert.equal(await alice.page.textContent('#transport'), 'WebTransport');
    assert.equal(await bob.page.textContent('#transport'), 'WebSocket');
    await alice.page.screenshot({ path: `${ARTIFACTS}/compose-alice.png` });
    console.log('alice (WebTransport) and bob (WebSocket) see each other');

    // Settled to null or the error, so that it cannot reject unobserved while we restart.
    const reconnecting = bob.page.waitForSelector('#reconnecting', { timeout: 30000 }).then(() => null, (e) => e);
    const started = Date.now();
    await promisify(execFile)(RESTART[0], RESTART.slice(1), { timeout: 90000 });
    console.log(`actix-api restarted in ${Date.now() - started} ms`);
    const missed = await reconnecting;
    if (missed) throw missed;
    await bob.page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 45000 });
    const bobSaw = await framesIn(tileOf(bob.page, 'alice'));
    const aliceSaw = await framesIn(tileOf(alice.page, 'bob'));
    await waitForFrames(bob.page, 'alice', bobSaw + 10, 'camera', 30000);
    await waitForFrames(alice.page, 'bob', aliceSaw + 10, 'camera', 30000);
    console.log(`recovered ${Date.now() - started} ms after the restart began`);
    assert.equal(await alice.page.textContent('#transport'), 'WebTransport');
    assert.equal(await bob.page.textContent('#transport'), 'WebSocket');
    // The WebTransport page never lost its relay: nothing went wrong there.
    assert.deepEqual(alice.errors, []);
  } finally {
    await alice.close();
    await bob.close();
  }
});
