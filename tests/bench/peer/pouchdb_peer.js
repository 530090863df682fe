// The PouchDB side of Careline's peer benchmark (tests/bench/peer_bench.py runs this).
//
//   node pouchdb_peer.js serve DIR PORT RECORDS
//     express-pouchdb over HTTP on 127.0.0.1:PORT, databases in DIR (LevelDB). The database
//     "clinic" gets RECORDS patients first, written straight into the store 1,000 per
//     bulkDocs, as the Careline benchmark writes straight into its server's replica. Prints
//     one JSON line {"ready": true, ...} once it listens.
//   node pouchdb_peer.js replicate URL DIR BATCH EDITS [SERVER_PID CLK_TCK]
//     A fresh PouchDB (pouchdb-node, LevelDB in DIR) replicates URL (batch_size BATCH), then
//     EDITS times: changes one patient locally and runs one PouchDB.sync with URL (both
//     directions, as a Careline sync session), timed. Prints one JSON line of figures: with
//     SERVER_PID, the server's CPU seconds over the replication too (/proc, CLK_TCK ticks/s).
//
// The patients are the Careline benchmark's (tests/bench/desktop_sync_bench.py):
// id p0000000..., family Fam000000..., given "G", birth_date "1980-01-01".
'use strict';

const PouchDB = require('pouchdb-node');

function patient(i) {
  const n = String(i);
  return {
    _id: 'p' + n.padStart(7, '0'),
    family: 'Fam' + n.padStart(6, '0'),
    given: 'G',
    birth_date: '1980-01-01',
  };
}

function serverCpuS(pid, ticks) {
  if (!pid) return 0;
  const stat = require('fs').readFileSync('/proc/' + pid + '/stat', 'utf8');
  const fields = stat.split(')').pop().trim().split(/\s+/);
  return (Number(fields[11]) + Number(fields[12])) / ticks; // utime, stime
}

function cpuS() {
  const used = process.cpuUsage();
  return (used.user + used.system) / 1e6;
}

function seconds(start) {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

async function serve(dir, port, records) {
  const express = require('express');
  const Store = PouchDB.defaults({ prefix: dir + '/' });
  const db = new Store('clinic');
  const start = process.hrtime.bigint();
  const have = (await db.info()).doc_count;
  for (let i = have; i < records; i += 1000) {
    const docs = [];
    for (let j = i; j < Math.min(i + 1000, records); j++) docs.push(patient(j));
    const results = await db.bulkDocs(docs);
    const failed = results.filter((r) => r.error);
    if (failed.length) throw new Error('bulkDocs refused ' + JSON.stringify(failed[0]));
  }
  const loadS = seconds(start);
  const app = express();
  app.use(
    '/',
    require('express-pouchdb')(Store, {
      mode: 'minimumForPouchDB',
      inMemoryConfig: true,
      logPath: dir + '/express-pouchdb.log',
    }),
  );
  const server = app.listen(port, '127.0.0.1', () => {
    console.log(JSON.stringify({ ready: true, port: port, records: records, load_s: loadS }));
  });
  const stop = () => server.close(() => db.close().then(() => process.exit(0)));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function replicate(url, dir, batchSize, edits, serverPid, ticks) {
  const local = new PouchDB(dir);
  const remote = new PouchDB(url);
  let serverCpu = serverCpuS(serverPid, ticks);
  let cpu = cpuS();
  let start = process.hrtime.bigint();
  const result = await local.replicate.from(remote, { batch_size: batchSize });
  const downloadS = seconds(start);
  cpu = cpuS() - cpu;
  serverCpu = serverCpuS(serverPid, ticks) - serverCpu;
  const docCount = (await local.info()).doc_count;
  // One sync both ways first, so the push side has its checkpoint (Careline's session
  // after a first download needs none), then the timed ones.
  await PouchDB.sync(local, remote, { batch_size: batchSize });
  const incremental = [];
  for (let i = 0; i < edits; i++) {
    const doc = await local.get('p0000000');
    doc.given = 'G' + i;
    await local.put(doc);
    start = process.hrtime.bigint();
    const done = await PouchDB.sync(local, remote, { batch_size: batchSize });
    incremental.push(seconds(start) * 1000);
    if (done.push.docs_written !== 1) {
      throw new Error('the edit did not reach the server: ' + JSON.stringify(done.push));
    }
  }
  await local.close();
  console.log(
    JSON.stringify({
      seconds: downloadS,
      cpu_s: cpu,
      server_cpu_s: serverPid ? serverCpu : null,
      docs_written: result.docs_written,
      doc_count: docCount,
      incremental_ms: incremental,
      peak_rss_kb: process.resourceUsage().maxRSS,
    }),
  );
}

async function main(argv) {
  const [command, ...args] = argv;
  if (command === 'serve') {
    await serve(args[0], Number(args[1]), Number(args[2]));
  } else if (command === 'replicate') {
    const [url, dir, batch, edits, serverPid, ticks] = args;
    await replicate(url, dir, Number(batch), Number(edits), Number(serverPid || 0), Number(ticks || 100));
  } else {
    throw new Error('usage: pouchdb_peer.js serve DIR PORT RECORDS | replicate URL DIR BATCH EDITS');
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
