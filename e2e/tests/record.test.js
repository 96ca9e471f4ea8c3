// `videocall-cli receive` records a browser participant: Chromium (fake camera and microphone)
// sends VP9 (VP8 where VP9 is missing) and Opus, end to end encrypted; the recorder, a member of
// the meeting, writes <user>.webm without re-encoding. ffprobe (Debian's ffmpeg, a verifier only:
// scripts/ensure-deps.sh ffmpeg) must decode >= 90 % of the frames the browser sent while the
// recorder was there, and find the Opus audio.
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { test } from 'node:test';
import { join, openBrowser, startNode, waitForFrames } from './helpers.js';

const CLI = process.env.VIDEOCALL_CLI_BIN;

/** Resolves once `child` printed a line matching `re` on stdout (rejects after `ms`). */
function lineMatching(child, lines, re, ms = 20000) {
  return new Promise((resolve, reject) => {
    const found = lines.find((l) => re.test(l));
    if (found) return resolve(found);
    const timer = setTimeout(() => reject(new Error(`no line ${re} in:\n${lines.join('\n')}`)), ms);
    const onLine = (line) => {
      if (re.test(line)) { clearTimeout(timer); child.off('line', onLine); resolve(line); }
    };
    child.on('line', onLine);
  });
}

function probe(path) {
  const out = execFileSync('ffprobe', [
    '-v', 'error', '-count_frames', '-show_entries',
    'stream=codec_type,codec_name,nb_read_frames:format=duration', '-of', 'json', path,
  ]);
  return JSON.parse(out);
}

test('the CLI records an encrypted browser participant: its VP9/VP8 + Opus WebM decodes >= 90 % of the frames sent', async () => {
  assert.ok(CLI, 'set VIDEOCALL_CLI_BIN (make e2e does)');
  const node = await startNode();
  const out = mkdtempSync(joinPath(tmpdir(), 'videocall-record-'));
  const recorder = spawn(CLI, [
    'receive', '--user-id', 'recorder', '--meeting-id', 'rec', '--transport', 'websocket',
    '--websocket-url', node.url, '--out', out, '--print-frames', '--no-y4m',
  ], { stdio: ['ignore', 'pipe', 'inherit'] });
  const lines = [];
  let partial = '';
  recorder.stdout.on('data', (d) => {
    partial += d;
    const parts = partial.split('\n');
    partial = parts.pop();
    for (const line of parts) { lines.push(line); recorder.emit('line', line); }
  });
  const exited = new Promise((resolve) => recorder.on('exit', (code, signal) => resolve({ code, signal })));
  const browser = await openBrowser();
  try {
    await lineMatching(recorder, lines, /^joined meeting rec/);
    await join(browser.page, node.url, 'alice', 'rec');
    // The browser sends while the recorder records: 150 decoded frames (about 5 s at 30 fps).
    const frames = () => lines.filter((l) => l.startsWith('frame alice '));
    const deadline = Date.now() + 60000;
    while (frames().length < 150 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(frames().length >= 150, `${frames().length} frames recorded:\n${lines.slice(-20).join('\n')}`);
    // Stop recording while alice is still there (a closed page leaves only after the relay's
    // reconnect grace period).
    recorder.kill('SIGTERM');
    assert.deepEqual(await exited, { code: 0, signal: null }, lines.join('\n'));

    console.log(lines.filter((l) => /^(received|audio|recorded|not) .*alice/.test(l)).join('\n'));
    // Frames the browser sent from the first the recorder decoded to the last it saw.
    const sequences = frames().map((l) => Number(l.split(' ')[2]));
    const sent = Math.max(...sequences) - Math.min(...sequences) + 1;
    const probed = probe(joinPath(out, 'alice.webm'));
    const video = probed.streams.find((s) => s.codec_type === 'video');
    const audio = probed.streams.find((s) => s.codec_type === 'audio');
    const duration = Number(probed.format.duration);
    console.log(`alice.webm: ${video?.codec_name} ${video?.nb_read_frames} frames of ${sent} sent, `
      + `${audio?.codec_name} ${audio?.nb_read_frames} audio frames, ${duration} s`);
    assert.ok(['vp9', 'vp8'].includes(video?.codec_name), JSON.stringify(probed));
    assert.ok(Number(video.nb_read_frames) >= 0.9 * sent, `${video.nb_read_frames} of ${sent} frames decode`);
    // The fake microphone's audio, as Opus, for most of the recording (20 ms frames).
    assert.equal(audio?.codec_name, 'opus', JSON.stringify(probed));
    assert.ok(Number(audio.nb_read_frames) >= 0.5 * duration * 50, `${audio.nb_read_frames} audio frames in ${duration} s`);
    assert.match(lines.find((l) => l.startsWith('audio from alice:')) ?? '', /decode errors 0\)/);
  } finally {
    if (recorder.exitCode === null) recorder.kill('SIGKILL');
    await browser.close().catch(() => {});
    await node.stop();
    rmSync(out, { recursive: true, force: true });
  }
});
