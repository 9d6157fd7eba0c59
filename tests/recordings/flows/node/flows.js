// node-postgres flows to record: `node flows.js <flow>`, connecting to $PGHOST:$PGPORT.
const { Client } = require('pg');

async function main(flow) {
  const client = new Client({ host: process.env.PGHOST, port: +process.env.PGPORT, user: 'app', database: 'app' });
  if (flow === 'connect-end') {
    // end() at once after connect(): the client may send Terminate before its startup packet.
    client.connect().catch(() => {});
    await client.end();
    return;
  }
  await client.connect();
  try {
    if (flow === 'query') {
      await client.query('SELECT 1 AS one');
      await client.query('SELECT $1::int AS n', [2]);
      await client.query({ name: 'ins', text: 'INSERT INTO rec_t (id, v) VALUES ($1, $2)', values: [500, 'node'] });
      await client.query({ name: 'ins', text: 'INSERT INTO rec_t (id, v) VALUES ($1, $2)', values: [501, 'node'] });
      await client.query('BEGIN');
      await client.query('INSERT INTO rec_t (id, v) VALUES ($1, $2)', [502, 'node']);
      await client.query('COMMIT');
    } else if (flow === 'error') {
      await client.query('SELECT 1/0').catch(() => {});
      await client.query('BEGIN');
      await client.query('SELECT * FROM no_such_table').catch(() => {});
      await client.query('SELECT 1').catch(() => {});
      await client.query('ROLLBACK');
    } else {
      throw new Error(`unknown flow ${flow}`);
    }
  } finally {
    await client.end();
  }
}

main(process.argv[2]).catch((e) => { console.error(e); process.exit(1); });
