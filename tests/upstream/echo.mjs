// Tiny upstream "echo" server for the tollgate demo (no npm dependencies).
//
// Usage: node tests/upstream/echo.mjs [port]      (port 0 or omitted = free port)
// Prints exactly one line to stdout once listening:
//   UPSTREAM_READY http://127.0.0.1:<port>
// Answers every request with 200: an HTML page when Accept includes text/html,
// JSON otherwise, listing the method, path (with query) and all request headers
// (so a demo user can see X-Forwarded-User, X-Forwarded-Email, etc.).

import http from 'node:http';

const requestedPort = Number(process.argv[2] ?? 0);
const host = process.env.UPSTREAM_HOST || '127.0.0.1';

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

let counter = 0;

const server = http.createServer((req, res) => {
  counter += 1;
  const chunks = [];
  let size = 0;
  req.on('data', (c) => {
    size += c.length;
    if (size <= 64 * 1024) chunks.push(c);
  });
  req.on('end', () => {
    // Header pairs in arrival order, names as sent (rawHeaders keeps repeats).
    const headers = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) {
      headers.push([req.rawHeaders[i], req.rawHeaders[i + 1]]);
    }
    const info = {
      method: req.method,
      path: req.url,
      headers: Object.fromEntries(headers.map(([k, v]) => [k.toLowerCase(), v])),
      raw_headers: headers,
      body_bytes: size,
      request_number: counter,
    };
    process.stderr.write(`[upstream] #${counter} ${req.method} ${(req.url || '').split('?')[0]}\n`);

    const accept = req.headers.accept || '';
    if (accept.includes('text/html')) {
      const rows = headers.map(([k, v]) => {
        const hl = /^x-(forwarded|auth)-|^authorization$|^cookie$/i.test(k) ? ' class="hl"' : '';
        return `<tr${hl}><th>${esc(k)}</th><td><code>${esc(v)}</code></td></tr>`;
      }).join('\n');
      const html = `<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Upstream echo</title>
<style>
body{font-family:sans-serif;margin:32px;color:#222}
table{border-collapse:collapse}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
td code{word-break:break-all}tr.hl{background:#fff6cc}
</style>
</head>
<body>
<h1>Upstream echo</h1>
<p>This page is served by the protected upstream application behind tollgate.</p>
<p><strong>${esc(req.method)}</strong> <code>${esc(req.url)}</code></p>
<h2>Request headers</h2>
<table id="headers">
${rows}
</table>
</body>
</html>
`;
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else {
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
      res.end(`${JSON.stringify(info, null, 2)}\n`);
    }
  });
});

server.listen(requestedPort, host, () => {
  const { port } = server.address();
  process.stdout.write(`UPSTREAM_READY http://127.0.0.1:${port}\n`);
});

function shutdown() {
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
