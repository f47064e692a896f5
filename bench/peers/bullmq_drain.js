// bench/peers/bullmq_drain.js - the BullMQ side of `make bench-peers`
// (run by bench/peers/drain.py, which owns the redis-server and the timing).
//
//   node bullmq_drain.js prefill PORT N   adds N no-op jobs with addBulk
//                                         (chunks of 1,000), then exits
//   node bullmq_drain.js work PORT N      a Worker (concurrency 50, no-op
//                                         processor) on the prefilled queue;
//                                         exits 0 when N jobs completed,
//                                         printing one JSON line
//
// Jobs use BullMQ's default options (completed jobs kept, as bygated keeps
// its execution records). Exit status 1 on any error or failed job.
'use strict';

const { Queue, Worker } = require('bullmq');

const QUEUE = 'bench-drain';
const CHUNK = 1000;
const CONCURRENCY = 50;

function fail(msg) {
  process.stderr.write('bullmq_drain: ' + msg + '\n');
  process.exit(1);
}

async function prefill(connection, n) {
  const q = new Queue(QUEUE, { connection });
  for (let first = 0; first < n; first += CHUNK) {
    const jobs = [];
    for (let k = first; k < Math.min(n, first + CHUNK); k++)
      jobs.push({ name: 'noop', data: { k } });
    await q.addBulk(jobs);
  }
  const waiting = await q.getWaitingCount();
  await q.close();
  if (waiting !== n) fail(`prefill: ${waiting} jobs waiting, want ${n}`);
}

function work(connection, n) {
  const t0 = process.hrtime.bigint();
  let done = 0;
  const w = new Worker(QUEUE, async () => {}, { connection,
                                              concurrency: CONCURRENCY });
  w.on('failed', (job, err) => fail(`job ${job && job.id} failed: ${err}`));
  w.on('error', (err) => fail(`worker error: ${err}`));
  w.on('completed', () => {
    if (++done === n) {
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      process.stdout.write(JSON.stringify({ completed: done, elapsed_s: s,
                                            tasks_per_s: n / s }) + '\n');
      process.exit(0);
    }
  });
}

function main() {
  const [mode, port, count] = process.argv.slice(2);
  const n = parseInt(count, 10);
  if (!['prefill', 'work'].includes(mode) || !(n > 0) || !(port > 0))
    fail('usage: node bullmq_drain.js prefill|work PORT N');
  const connection = { host: '127.0.0.1', port: Number(port),
                       maxRetriesPerRequest: null };
  if (mode === 'prefill')
    prefill(connection, n).then(() => process.exit(0),
                                (e) => fail(`prefill: ${e}`));
  else
    work(connection, n);
}

main();
