'use strict';
// End-to-end run of the Node.js beanstalkd client fivebeans against spool's beanstalkd port,
// started by beanstalk/node_test.go:
//
//   node e2e.js HOST:PORT SPOOL_VERSION
//
// Every step checks the client's view of the reply. A failed check exits non-zero with the
// reason on stderr; success prints one JSON line (the ids, for the Go test to look up).

const assert = require('node:assert/strict');
const fivebeans = require('fivebeans');

const [addr, spoolVersion] = process.argv.slice(2);
if (!addr || spoolVersion === undefined) {
  console.error('usage: node e2e.js HOST:PORT SPOOL_VERSION');
  process.exit(2);
}
const sep = addr.lastIndexOf(':');
const host = addr.slice(0, sep);
const port = Number(addr.slice(sep + 1));

function connect() {
  return new Promise((resolve, reject) => {
    const client = new fivebeans.client(host, port);
    client.once('connect', () => resolve(client));
    client.once('error', reject);
    client.connect();
  });
}

// call runs one command; it resolves to the reply's values, or rejects with the reply word.
function call(client, cmd, ...args) {
  return new Promise((resolve, reject) => {
    client[cmd](...args, (err, ...values) => {
      if (err) {
        reject(new Error(String(err)));
      } else {
        resolve(values);
      }
    });
  });
}

async function rejects(promise, word, what) {
  await assert.rejects(promise, (err) => err.message === word, `${what}: want ${word}`);
}

// eventually retries check until it passes: the job counts of stats-tube may lag a write.
async function eventually(check, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await check();
    } catch (err) {
      if (Date.now() > deadline) {
        throw err;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

// sameID compares an id that js-yaml parsed as a number (stats-job) with the id of a reply
// line (a string): exactly when the id is a safe integer, else as JavaScript holds it.
function sameID(parsed, id, what) {
  if (Number.isSafeInteger(Number(id))) {
    assert.equal(String(parsed), id, what);
  } else {
    assert.equal(parsed, Number(id), what);
  }
}

async function main() {
  const c = await connect();
  const tube = 'node.e2e';

  // The server's version reads as a beanstalkd release that has kick-job (1.8+).
  const [stats] = await call(c, 'stats');
  assert.equal(stats.version, '1.12', 'stats version');
  const [major, minor] = stats.version.split('.').map(Number);
  assert.ok(major > 1 || (major === 1 && minor >= 8), 'stats version allows kick-job');
  assert.equal(stats['spool-version'], spoolVersion, 'stats spool-version');
  assert.equal(stats['current-connections'], 1, 'stats current-connections');

  // use, put
  assert.deepEqual(await call(c, 'use', tube), [tube], 'use');
  assert.deepEqual(await call(c, 'list_tube_used'), [tube], 'list-tube-used');
  const [hello] = await call(c, 'put', 10, 0, 30, 'hello');
  assert.match(hello, /^[0-9]+$/, 'put id');
  const binary = Buffer.from([0x00, 0x0d, 0x0a, 0xff, 0x41, 0x0d, 0x0a]);
  const [bin] = await call(c, 'put', 5, 0, 30, binary);
  const [later] = await call(c, 'put', 0, 3600, 30, 'later');
  assert.equal(new Set([hello, bin, later]).size, 3, 'distinct ids');

  // watch, ignore
  assert.deepEqual(await call(c, 'watch', tube), ['2'], 'watch');
  assert.deepEqual(await call(c, 'ignore', 'default'), ['1'], 'ignore');
  assert.deepEqual(await call(c, 'list_tubes_watched'), [[tube]], 'list-tubes-watched');
  const [tubes] = await call(c, 'list_tubes');
  assert.ok(tubes.includes(tube) && tubes.includes('default'), `list-tubes: ${tubes}`);
  await rejects(call(c, 'ignore', tube), 'NOT_IGNORED', 'ignore of the last watched tube');

  // peek
  let [id, body] = await call(c, 'peek', hello);
  assert.equal(id, hello, 'peek id');
  assert.equal(body.toString(), 'hello', 'peek body');
  [id, body] = await call(c, 'peek_ready');
  assert.equal(id, bin, 'peek-ready: the more urgent job');
  assert.deepEqual(body, binary, 'peek-ready body');
  [id, body] = await call(c, 'peek_delayed');
  assert.equal(id, later, 'peek-delayed');
  assert.equal(body.toString(), 'later', 'peek-delayed body');
  await rejects(call(c, 'peek_buried'), 'NOT_FOUND', 'peek-buried with none buried');

  // stats-job, stats-tube
  let [js] = await call(c, 'stats_job', hello);
  sameID(js.id, hello, 'stats-job id');
  assert.equal(js.tube, tube, 'stats-job tube');
  assert.equal(js.state, 'ready', 'stats-job state');
  assert.equal(js.pri, 10, 'stats-job pri');
  assert.equal(js.ttr, 30, 'stats-job ttr');
  [js] = await call(c, 'stats_job', later);
  assert.equal(js.state, 'delayed', 'stats-job state of the delayed job');
  assert.equal(js.delay, 3600, 'stats-job delay');
  assert.ok(js['time-left'] > 3500 && js['time-left'] <= 3600, `stats-job time-left ${js['time-left']}`);
  await eventually(async () => {
    const [ts] = await call(c, 'stats_tube', tube);
    assert.equal(ts.name, tube, 'stats-tube name');
    assert.equal(ts['current-jobs-ready'], 2, 'stats-tube current-jobs-ready');
    assert.equal(ts['current-jobs-urgent'], 2, 'stats-tube current-jobs-urgent');
    assert.equal(ts['current-jobs-delayed'], 1, 'stats-tube current-jobs-delayed');
    assert.equal(ts['current-watching'], 1, 'stats-tube current-watching');
  });

  // reserve, touch, release, reserve again
  [id, body] = await call(c, 'reserve_with_timeout', 5);
  assert.equal(id, bin, 'reserve: the more urgent job');
  assert.deepEqual(body, binary, 'reserve: binary body intact');
  [js] = await call(c, 'stats_job', bin);
  assert.equal(js.state, 'reserved', 'stats-job state after reserve');
  assert.deepEqual(await call(c, 'touch', bin), [], 'touch');
  assert.deepEqual(await call(c, 'release', bin, 5, 0), [], 'release');
  [id] = await call(c, 'reserve_with_timeout', 5);
  assert.equal(id, bin, 'reserve after release');
  [js] = await call(c, 'stats_job', bin);
  assert.equal(js.releases, 1, 'stats-job releases');
  assert.equal(js.reserves, 2, 'stats-job reserves');

  // bury, kick
  assert.deepEqual(await call(c, 'bury', bin, 20), [], 'bury');
  [id, body] = await call(c, 'peek_buried');
  assert.equal(id, bin, 'peek-buried');
  assert.deepEqual(body, binary, 'peek-buried body');
  [js] = await call(c, 'stats_job', bin);
  assert.equal(js.state, 'buried', 'stats-job state after bury');
  assert.equal(js.pri, 20, 'stats-job pri after bury');
  assert.equal(js.buries, 1, 'stats-job buries');
  assert.deepEqual(await call(c, 'kick', 10), ['1'], 'kick');
  [js] = await call(c, 'stats_job', bin);
  assert.equal(js.state, 'ready', 'stats-job state after kick');
  assert.equal(js.kicks, 1, 'stats-job kicks');

  // reserve (band of pri 10 before pri 20), delete
  [id, body] = await call(c, 'reserve');
  assert.equal(id, hello, 'reserve: pri 10 before pri 20');
  assert.equal(body.toString(), 'hello', 'reserve body');
  assert.deepEqual(await call(c, 'destroy', hello), [], 'delete');
  await rejects(call(c, 'peek', hello), 'NOT_FOUND', 'peek of a deleted job');
  await rejects(call(c, 'stats_job', hello), 'NOT_FOUND', 'stats-job of a deleted job');
  await rejects(call(c, 'destroy', hello), 'NOT_FOUND', 'second delete');

  // bury, kick-job, bury again: left buried for the Go test
  [id] = await call(c, 'reserve_with_timeout', 5);
  assert.equal(id, bin, 'reserve of the kicked job');
  assert.deepEqual(await call(c, 'bury', bin, 20), [], 'bury');
  assert.deepEqual(await call(c, 'kick_job', bin), [], 'kick-job');
  await rejects(call(c, 'kick_job', bin), 'NOT_FOUND', 'kick-job of a ready job');
  [id] = await call(c, 'reserve_with_timeout', 5);
  assert.equal(id, bin, 'reserve after kick-job');
  assert.deepEqual(await call(c, 'bury', bin, 7), [], 'bury');
  [js] = await call(c, 'stats_job', bin);
  assert.equal(js.kicks, 2, 'stats-job kicks after kick-job');
  assert.equal(js.buries, 3, 'stats-job buries');

  // delete of a delayed job; nothing ready is left
  assert.deepEqual(await call(c, 'destroy', later), [], 'delete of a delayed job');
  await rejects(call(c, 'reserve_with_timeout', 0), 'TIMED_OUT', 'reserve with nothing ready');

  c.end();
  console.log(JSON.stringify({ deleted: hello, cancelled: later, buried: bin }));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
