// Test OpenID Provider for tollgate integration tests and the demo.
//
// Wraps panva's `oidc-provider` with:
//   * config from a JSON file (argv[2]) or the IDP_CONFIG_JSON env var
//   * a minimal, plain-HTML login form (any login, any password) and
//     automatic consent (every requested scope/claim is granted)
//   * per-request logging to stderr and a GET /__stats counter endpoint
//
// Prints exactly one line to stdout once listening: `IDP_READY <issuer>`.
// See README.md in this directory.

import { generateKeyPairSync, randomBytes, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

import Provider from 'oidc-provider';

// stdout is reserved for the single IDP_READY line: oidc-provider prints its
// NOTICEs with console.info, so route console.info/console.log to stderr.
console.info = (...args) => console.error(...args);
console.log = (...args) => console.error(...args);

// ---------------------------------------------------------------- config ---

function loadConfig() {
  const file = process.argv[2];
  if (file) return JSON.parse(readFileSync(file, 'utf8'));
  if (process.env.IDP_CONFIG_JSON) return JSON.parse(process.env.IDP_CONFIG_JSON);
  return {};
}

const config = loadConfig();
const host = config.host || '127.0.0.1';
const requestedPort = Number(config.port ?? 0);

const log = (...args) => process.stderr.write(`[idp] ${args.join(' ')}\n`);

// ---------------------------------------------------------------- accounts ---

const accounts = config.accounts || {};

function bigGroups() {
  const out = [];
  for (let i = 1; i <= 150; i += 1) {
    out.push(`cn=tollgate-test-group-with-a-deliberately-long-name-${String(i).padStart(4, '0')},ou=groups,dc=example,dc=com`);
  }
  return out;
}

function claimsFor(login) {
  const base = {
    email: `${login}@example.com`,
    email_verified: true,
    name: login,
    preferred_username: login,
    groups: login === 'biggroups' ? bigGroups() : [],
  };
  const configured = Object.prototype.hasOwnProperty.call(accounts, login) ? accounts[login] : {};
  // `sub` is always the login (it is the oidc-provider accountId).
  return { ...base, ...configured, sub: login };
}

async function findAccount(_ctx, id) {
  if (typeof id !== 'string' || id === '') return undefined;
  return {
    accountId: id,
    async claims() {
      return claimsFor(id);
    },
  };
}

// ------------------------------------------------------------------- keys ---

function signingKeys() {
  if (config.jwks) return config.jwks;
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' });
  return {
    keys: [
      { ...rsa, kid: 'rsa-1', use: 'sig', alg: 'RS256' },
      { ...ec, kid: 'ec-1', use: 'sig', alg: 'ES256' },
    ],
  };
}

// ------------------------------------------------------------------- ttls ---

const DEFAULT_TTL = {
  AccessToken: 3600,
  AuthorizationCode: 60,
  IdToken: 3600,
  RefreshToken: 14 * 24 * 3600,
  Interaction: 3600,
  Session: 14 * 24 * 3600,
  Grant: 14 * 24 * 3600,
  ClientCredentials: 600,
  DeviceCode: 600,
  BackchannelAuthenticationRequest: 600,
};

function ttls() {
  const out = { ...DEFAULT_TTL };
  for (const [k, v] of Object.entries(config.ttl || {})) out[k] = Number(v);
  return out;
}

// ------------------------------------------------------------------- html ---

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (c) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[c]));

const page = (title, body) => `<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>${esc(title)}</title>
<style>
body{font-family:sans-serif;margin:40px auto;max-width:360px;color:#222}
input{display:block;width:100%;box-sizing:border-box;margin:6px 0 12px;padding:8px;font-size:15px}
button{padding:8px 16px;font-size:15px}
.muted{color:#777;font-size:13px}
</style>
</head>
<body>
<h1>${esc(title)}</h1>
${body}
</body>
</html>
`;

function loginPage(uid, params, error) {
  const hint = params.login_hint ? ` value="${esc(params.login_hint)}"` : '';
  return page('Test IdP sign-in', `
${error ? `<p style="color:#b00">${esc(error)}</p>` : ''}
<p class="muted">Client: <code>${esc(params.client_id)}</code> &middot; any login, any password.</p>
<form method="post" action="/interaction/${esc(uid)}">
<label for="login">Login</label>
<input id="login" type="text" name="login" autofocus autocomplete="off"${hint}>
<label for="password">Password</label>
<input id="password" type="password" name="password">
<button type="submit" id="submit">Sign in</button>
</form>
`);
}

// ---------------------------------------------------------------- provider ---

const stats = {
  requests: 0,
  token_requests: 0,
  authorization_requests: 0,
  userinfo_requests: 0,
  introspection_requests: 0,
  revocation_requests: 0,
  end_session_requests: 0,
  jwks_requests: 0,
  par_requests: 0,
  discovery_requests: 0,
  logins: 0,
};

// `"tls": {"cert": FILE, "key": FILE, "ca": FILE}` in the config: HTTPS,
// asking every client for a certificate (verified against `ca`, but not
// required), for mutual-TLS client authentication (RFC 8705).
const tls = config.tls
  ? {
    cert: readFileSync(config.tls.cert),
    key: readFileSync(config.tls.key),
    ca: readFileSync(config.tls.ca),
    requestCert: true,
    rejectUnauthorized: false,
  }
  : undefined;
const server = tls ? https.createServer(tls) : http.createServer();

await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(requestedPort, host, () => {
    server.off('error', reject);
    resolve();
  });
});

const { port } = server.address();
const issuer = config.issuer || `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

/** The TLS client certificate of the request, PEM; undefined without one. */
function peerCertificate(ctx) {
  const peer = ctx.socket.getPeerCertificate?.();
  return peer && peer.raw ? new X509Certificate(peer.raw) : undefined;
}

const providerConfig = {
  clients: config.clients || [],
  findAccount,
  jwks: signingKeys(),
  cookies: {
    keys: [randomBytes(32).toString('hex')],
    // Issuer is plain http: SameSite=None (the 8.x default for the session
    // cookie) needs Secure in browsers, so use Lax everywhere.
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    // `groups` is under `profile` so it is in the ID token for the common
    // `openid email profile` request; a dedicated `groups` scope exists too.
    profile: ['name', 'preferred_username', 'groups'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  // Put scope-derived claims in the ID token as well, not only in userinfo.
  // `"conformIdTokenClaims": true` in the config: scope claims only from
  // userinfo, as OIDC Core §5.4 has it for the code flow.
  conformIdTokenClaims: Boolean(config.conformIdTokenClaims),
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      // Plain form that auto-submits (logout=yes ends the whole IdP session).
      async logoutSource(ctx, form) {
        const withYes = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
        ctx.body = page('Sign out of the test IdP', `
${withYes}
<button type="submit" form="op.logoutForm" id="logout">Yes, sign me out</button>
<script>document.getElementById('op.logoutForm').submit();</script>
`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p>You are signed out of the test IdP.</p>');
      },
    },
    revocation: { enabled: true },
    introspection: { enabled: true },
    backchannelLogout: { enabled: true },
    claimsParameter: { enabled: true },
    // With `tls`: tls_client_auth (CA-issued certificate, subject DN) and
    // self_signed_tls_client_auth (certificate in the client's jwks), and
    // certificate-bound access tokens.
    mTLS: {
      enabled: Boolean(tls),
      tlsClientAuth: true,
      selfSignedTlsClientAuth: true,
      certificateBoundAccessTokens: true,
      getCertificate: (ctx) => peerCertificate(ctx)?.toString(),
      certificateAuthorized: (ctx) => ctx.socket.authorized === true,
      certificateSubjectMatches: (ctx, property, expected) => property === 'tls_client_auth_subject_dn'
        && peerCertificate(ctx)?.subject.split('\n').join(',') === expected,
    },
    // `"dpop": true` in the config: sender-constrained tokens by DPoP
    // (RFC 9449), with server nonces required.
    dPoP: {
      enabled: Boolean(config.dpop),
      nonceSecret: randomBytes(32),
      requireNonce: () => Boolean(config.dpop),
    },
    // `"fapi": "2.0"` in the config: the FAPI 2.0 Security Profile.
    ...(config.fapi ? { fapi: { enabled: true, profile: config.fapi } } : {}),
    // `"requirePar": true` in the config: every authorization request must
    // be pushed (RFC 9126), and discovery says so.
    pushedAuthorizationRequests: { enabled: true, requirePushedAuthorizationRequests: Boolean(config.requirePar) },
    // Machine clients: client_credentials with a `resource` parameter get a
    // JWT access token whose `aud` is that resource (RFC 8707), signed with
    // the provider's keys. Requests without `resource` keep opaque tokens.
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (_ctx, resourceIndicator) => ({
        scope: 'api',
        audience: resourceIndicator,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
      }),
    },
  },
  // Refresh tokens for every client allowed the refresh_token grant, not only
  // when offline_access was requested.
  async issueRefreshToken(_ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  // PKCE is accepted from everyone, required only from public clients.
  pkce: {
    required(_ctx, client) {
      return client.clientAuthMethod === 'none';
    },
  },
  // Automatic consent: the grant always covers what is being requested.
  async loadExistingGrant(ctx) {
    const { oidc } = ctx;
    const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
    let grant = grantId ? await oidc.provider.Grant.find(grantId) : undefined;
    if (!grant) {
      grant = new oidc.provider.Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
    }
    const scopes = [...oidc.requestParamOIDCScopes];
    if (scopes.length) grant.addOIDCScope(scopes.join(' '));
    const claims = [...oidc.requestParamClaims];
    if (claims.length) grant.addOIDCClaims(claims);
    await grant.save();
    return grant;
  },
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Test IdP error', Object.entries(out)
      .map(([k, v]) => `<p><strong>${esc(k)}</strong>: <span class="${esc(k)}">${esc(v)}</span></p>`).join('\n'));
  },
  ttl: ttls(),
  clientBasedCORS: () => true,
  // `"clientAuthMethods": [...]` in the config narrows what the token
  // endpoint accepts (and what discovery lists).
  ...(config.clientAuthMethods ? { clientAuthMethods: config.clientAuthMethods } : {}),
  ...(tls && !config.clientAuthMethods ? {
    clientAuthMethods: ['client_secret_basic', 'client_secret_jwt', 'client_secret_post', 'private_key_jwt',
      'none', 'tls_client_auth', 'self_signed_tls_client_auth'],
  } : {}),
  // `"rotateRefreshToken": true` in the config: a new refresh token on every
  // refresh, and reuse of an old one revokes the grant (as strict providers do).
  ...(config.rotateRefreshToken !== undefined ? { rotateRefreshToken: config.rotateRefreshToken } : {}),
};

const provider = new Provider(issuer, providerConfig);
provider.on('server_error', (_ctx, err) => log('server_error', err?.stack || err));
provider.on('backchannel.error', (_ctx, err, client) => log('backchannel.error', client?.clientId, err?.message));
provider.on('backchannel.success', (_ctx, client) => log('backchannel.success', client?.clientId));
provider.on('pushed_authorization_request.error', (_ctx, err) => log('par.error', err?.name, err?.error_description || err?.message));
provider.on('revocation.error', (_ctx, err) => log('revocation.error', err?.name, err?.error_description || err?.message));
provider.on('grant.error', (_ctx, err) => log('grant.error', err?.name, err?.error_description || err?.message, err?.error_detail || ''));
provider.on('authorization.error', (_ctx, err) => log('authorization.error', err?.name, err?.error_description || err?.message));
provider.on('end_session.error', (_ctx, err) => log('end_session.error', err?.name, err?.error_description || err?.message));

const providerHandler = provider.callback();

// ------------------------------------------------------------ interactions ---

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 64 * 1024) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(Object.fromEntries(new URLSearchParams(body))));
    req.on('error', reject);
  });
}

function sendHtml(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
  });
  res.end(html);
}

async function handleInteraction(req, res, uid) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (err) {
    sendHtml(res, 400, page('Test IdP error', `<p>interaction not found or expired: ${esc(err?.message)}</p>`));
    return;
  }
  if (details.uid !== uid) {
    sendHtml(res, 400, page('Test IdP error', '<p>interaction id mismatch</p>'));
    return;
  }
  const { prompt, params } = details;

  if (prompt.name !== 'login') {
    // Consent (should not happen thanks to loadExistingGrant): grant it all.
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    if (prompt.details.missingResourceScopes) {
      for (const [indicator, scope] of Object.entries(prompt.details.missingResourceScopes)) {
        grant.addResourceScope(indicator, scope.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    return;
  }

  if (req.method === 'GET') {
    sendHtml(res, 200, loginPage(uid, params));
    return;
  }

  const form = await readForm(req);
  const login = (form.login || '').trim();
  if (!login) {
    sendHtml(res, 400, loginPage(uid, params, 'login must not be empty'));
    return;
  }
  stats.logins += 1;
  log(`login accepted for "${login}"`);
  await provider.interactionFinished(req, res, {
    login: { accountId: login, remember: true },
  }, { mergeWithLastSubmission: false });
}

// ------------------------------------------------------------------ server ---

const ROUTE_STATS = [
  ['/token/introspection', 'introspection_requests'],
  ['/token/revocation', 'revocation_requests'],
  ['/token', 'token_requests'],
  ['/request', 'par_requests'],
  ['/auth', 'authorization_requests'],
  ['/me', 'userinfo_requests'],
  ['/session/end', 'end_session_requests'],
  ['/jwks', 'jwks_requests'],
  ['/.well-known/openid-configuration', 'discovery_requests'],
];

server.on('request', (req, res) => {
  const path = (req.url || '/').split('?')[0];

  if (path === '/__stats' && req.method === 'GET') {
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
    res.end(JSON.stringify(stats));
    return;
  }

  stats.requests += 1;
  const n = stats.requests;
  for (const [prefix, key] of ROUTE_STATS) {
    if (path === prefix || (prefix === '/auth' && path.startsWith('/auth/'))) {
      stats[key] += 1;
      break;
    }
  }
  let line = `#${n} ${req.method} ${path}`;
  if (path === '/token' || path === '/request') {
    line += ` authorization-header=${req.headers.authorization ? 'present' : 'absent'}`;
  }
  if (path === '/token' || path === '/me') {
    line += ` dpop=${req.headers.dpop ? 'present' : 'absent'}`;
  }
  res.on('finish', () => log(`${line} -> ${res.statusCode}`));

  const m = /^\/interaction\/([^/]+)$/.exec(path);
  if (m && (req.method === 'GET' || req.method === 'POST')) {
    handleInteraction(req, res, m[1]).catch((err) => {
      log('interaction error', err?.stack || err);
      if (!res.headersSent) sendHtml(res, 500, page('Test IdP error', `<p>${esc(err?.message)}</p>`));
      else res.end();
    });
    return;
  }

  providerHandler(req, res);
});

function shutdown(signal) {
  log(`${signal} received, exiting`);
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

process.stdout.write(`IDP_READY ${issuer}\n`);
