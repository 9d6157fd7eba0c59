// node-postgres through Meridian: named prepared statements reused many times, transactions,
// errors and recovery.
'use strict';
const { Client } = require('pg');

let checks = 0;
function check(cond, what) {
  checks++;
  if (!cond) {
    console.error('FAILED: ' + what);
    process.exit(1);
  }
}

async function main() {
  const client = new Client({ connectionString: process.env.MERIDIAN_DSN_URL });
  await client.connect();
  await client.query('CREATE TABLE IF NOT EXISTS driver_node (id int PRIMARY KEY, v text)');
  await client.query('TRUNCATE driver_node');

  for (let i = 0; i < 200; i++) {
    const r = await client.query({ name: 'double-it', text: 'SELECT $1::int * 2 AS d', values: [i] });
    check(r.rows[0].d === i * 2, 'named prepared ' + i);
  }

  await client.query('BEGIN');
  for (let i = 0; i < 50; i++) {
    await client.query({ name: 'ins', text: 'INSERT INTO driver_node VALUES ($1, $2)', values: [i, 'r' + i] });
  }
  await client.query('COMMIT');
  let r = await client.query('SELECT count(*)::int AS n FROM driver_node');
  check(r.rows[0].n === 50, 'transaction committed');

  await client.query('BEGIN');
  try {
    await client.query({ name: 'ins', text: 'INSERT INTO driver_node VALUES ($1, $2)', values: [1, 'dup'] });
    check(false, 'duplicate must fail');
  } catch (e) {
    check(e.code === '23505', 'unique violation code, got ' + e.code);
  }
  try {
    await client.query('SELECT 1');
    check(false, 'statement in failed transaction must fail');
  } catch (e) {
    check(e.code === '25P02', 'in failed transaction, got ' + e.code);
  }
  await client.query('ROLLBACK');
  r = await client.query({ name: 'double-it', text: 'SELECT $1::int * 2 AS d', values: [21] });
  check(r.rows[0].d === 42, 'prepared reuse after rollback');

  try {
    await client.query('SELECT * FROM no_such_table');
    check(false, 'missing table must fail');
  } catch (e) {
    check(e.code === '42P01', 'undefined table code');
  }
  r = await client.query('SELECT $1::text AS t', ['recovered']);
  check(r.rows[0].t === 'recovered', 'unnamed extended query after error');
  await client.end();

  // connect() then end() at once: node-postgres sends Terminate before its startup packet.
  // PostgreSQL closes such a connection without a word and connect() never fails; so here.
  const quick = new Client({ connectionString: process.env.MERIDIAN_DSN_URL });
  let rejected = null;
  quick.connect().catch((e) => { rejected = e; });
  await quick.end();
  await new Promise((resolve) => setTimeout(resolve, 500));  // an answer would have come by now
  check(rejected === null, 'connect() then end() raises nothing, got ' + rejected);
  console.log('node-postgres: ' + checks + ' passed, 0 failed');
}

main().catch((e) => {
  console.error('FAILED: ' + (e.stack || e));
  process.exit(1);
});
