// Independent WebSocket peer for the ekws server-mode tests (npm "ws").
//
// Usage: node send.js URL COUNT [HEADERS_JSON] [CLIENT_ID]
// Opens URL, sends COUNT JSON text messages {"client": CLIENT_ID, "seq": i},
// closes with 1000 and prints one JSON result line on stdout:
//   {"ok": true, "sent": N, "code": 1000}          on success
//   {"ok": false, "status": 401, "sent": 0}         when the upgrade is refused
//   {"ok": false, "error": "...", "sent": N}        on any other failure
// Exit code 0 when ok, 1 otherwise. A watchdog ends the script after 20 s.
'use strict';

const WebSocket = require('ws');

const [url, countArg, headersArg, clientArg] = process.argv.slice(2);
if (!url || countArg === undefined) {
  console.error('usage: node send.js URL COUNT [HEADERS_JSON] [CLIENT_ID]');
  process.exit(2);
}
const count = Number.parseInt(countArg, 10);
const headers = headersArg ? JSON.parse(headersArg) : {};
const client = clientArg || 'node';
let sent = 0;
let done = false;

function finish(result) {
  if (done) return;
  done = true;
  process.stdout.write(JSON.stringify({ sent, ...result }) + '\n');
  process.exit(result.ok ? 0 : 1);
}

setTimeout(() => finish({ ok: false, error: 'timeout' }), 20000).unref();

const ws = new WebSocket(url, { headers, perMessageDeflate: false });
ws.on('unexpected-response', (_req, res) => finish({ ok: false, status: res.statusCode }));
ws.on('error', (err) => finish({ ok: false, error: String(err && err.message) }));
ws.on('open', () => {
  for (let seq = 0; seq < count; seq += 1) {
    ws.send(JSON.stringify({ client, seq }));
    sent += 1;
  }
  ws.close(1000, 'done');
});
ws.on('close', (code) => finish({ ok: code === 1000, code }));
