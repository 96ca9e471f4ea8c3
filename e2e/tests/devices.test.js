// Devices in the call: switching camera, microphone and speaker without leaving. The other
// participant keeps seeing and hearing us; our self-view shows the new camera.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { join, openBrowser, startNode, waitForFrames } from './helpers.js';

/** Picks the option labelled `label` in select `id` of `page`; answers its device id. */
async function pick(page, id, label) {
  const value = await page.$eval(`#${id}`, (select, want) =>
    [...select.options].find((o) => o.textContent.trim() === want)?.value, label);
  assert.ok(value, `no ${label} in #${id}`);
  await page.selectOption(`#${id}`, value);
  return value;
}

test('camera, microphone and speaker switch mid-call and the other side keeps seeing and hearing', async () => {
  const node = await startNode();
  // Chromium's second fake camera gives frames of no pixel format (a depth camera) that its
  // VP9 encoder refuses; the third is an ordinary one.
  const alice = await openBrowser({ cameras: 3 });
  const bob = await openBrowser();
  try {
    await join(alice.page, node.url, 'alice', 'devices');
    // Bob picks a speaker before joining: once joined, remote audio plays there.
    await bob.page.goto(`${node.url}/meeting/bob/devices`);
    await bob.page.waitForFunction(() => [...(document.querySelector('#speaker-select')?.options ?? [])]
      .some((o) => o.textContent.trim() === 'Fake Audio Output 2'), null, { timeout: 15000 });
    const beforeJoin = await pick(bob.page, 'speaker-select', 'Fake Audio Output 2');
    await bob.page.click('#connect');
    await bob.page.waitForSelector('.meeting[data-phase="joined"]', { timeout: 15000 });
    await waitForFrames(bob.page, 'alice', 10);
    const selfCamera = () => alice.page.evaluate(
      () => document.querySelector('#self-view')?.srcObject?.getVideoTracks()[0]?.label);
    assert.equal(await selfCamera(), 'fake_device_0');

    await alice.page.click('#toggle-devices');
    await alice.page.waitForSelector('#devices-panel');

    // Camera: another fake camera; the self-view shows it, bob's frames go on.
    const camera = await pick(alice.page, 'call-camera-select', 'fake_device_2');
    await alice.page.waitForSelector(`#devices-panel[data-camera="${camera}"]`);
    await alice.page.waitForFunction(
      () => document.querySelector('#self-view')?.srcObject?.getVideoTracks()[0]?.label === 'fake_device_2');
    const frames = Number(await bob.page.getAttribute('.tile[data-user="alice"] canvas', 'data-frames'));
    await waitForFrames(bob.page, 'alice', frames + 20);

    // Microphone: another fake input; bob goes on decoding alice's audio.
    const before = Number(await bob.page.getAttribute('.tile[data-user="alice"]', 'data-audio-decoded'));
    const mic = await pick(alice.page, 'call-microphone-select', 'Fake Audio Input 1');
    await alice.page.waitForSelector(`#devices-panel[data-microphone="${mic}"]`);
    assert.equal(await alice.page.evaluate(
      () => document.querySelector('#self-view')?.srcObject?.getAudioTracks().length), 1, 'one microphone track');
    await bob.page.waitForFunction(
      (n) => Number(document.querySelector('.tile[data-user="alice"]')?.dataset.audioDecoded ?? 0) >= n,
      before + 100,
      { timeout: 15000 },
    );

    // Speaker: bob plays alice on the output he chose before joining, then on another one
    // (AudioContext.setSinkId).
    await bob.page.click('#toggle-devices');
    await bob.page.waitForSelector(`#devices-panel[data-speaker="${beforeJoin}"]`);
    const speaker = await pick(bob.page, 'call-speaker-select', 'Fake Audio Output 1');
    await bob.page.waitForSelector(`#devices-panel[data-speaker="${speaker}"]`);
    const decoded = Number(await bob.page.getAttribute('.tile[data-user="alice"]', 'data-audio-decoded'));
    await bob.page.waitForFunction(
      (n) => Number(document.querySelector('.tile[data-user="alice"]')?.dataset.audioDecoded ?? 0) >= n,
      decoded + 50,
      { timeout: 15000 },
    );
    assert.equal(await alice.page.locator('.notice').count(), 0, 'no device notice on alice');
    assert.equal(await bob.page.locator('.notice').count(), 0, 'no device notice on bob');
  } finally {
    await alice.close();
    await bob.close();
    await node.stop();
  }
});
