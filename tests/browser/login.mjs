// Browser end-to-end test of tollgate's login flow, driving Debian's headless
// Chromium with playwright-core. See README.md in this directory.
//
// Env: TOLLGATE_URL (required, e.g. http://127.0.0.1:4180), ISSUER (the
// provider's URL; when unset it is learned from the login form's origin),
// LOGIN (default alice), SHOTS_DIR (default ./shots), CHROMIUM (default
// /usr/bin/chromium), COOKIE_NAME (tollgate's session.cookie_name, default
// _tollgate).
//
// Prints one line per step; `BROWSER_OK` and exit 0 on success; on failure
// the step, the current URL and an excerpt of the page text, and exit 1.

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

const STEP_TIMEOUT_MS = 15_000;
const TOTAL_TIMEOUT_MS = 60_000;

const TOLLGATE = (process.env.TOLLGATE_URL || '').replace(/\/+$/, '');
const LOGIN = process.env.LOGIN || 'alice';
const SHOTS_DIR = path.resolve(process.env.SHOTS_DIR || 'shots');
const EXECUTABLE = process.env.CHROMIUM || '/usr/bin/chromium';
const COOKIE_NAME = process.env.COOKIE_NAME || '_tollgate';
let issuer = (process.env.ISSUER || '').replace(/\/+$/, '');

if (!TOLLGATE) {
  console.log('FAIL setup: TOLLGATE_URL is not set');
  process.exit(1);
}

const started = Date.now();
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const say = (msg) => console.log(`[${elapsed()}] ${msg}`);

let browserContext;
let page;
let profileDir;
let currentStep = 'setup';
let finished = false;

function cleanup() {
  if (profileDir) {
    try {
      rmSync(profileDir, { recursive: true, force: true });
    } catch {
      // best effort
    }
  }
}

async function pageExcerpt() {
  if (!page) return '(no page)';
  try {
    const text = await Promise.race([
      page.evaluate(() => (document.body ? document.body.innerText : document.documentElement.outerHTML)),
      new Promise((resolve) => { setTimeout(() => resolve('(page text not available)'), 2_000); }),
    ]);
    return String(text).replace(/\s+/g, ' ').trim().slice(0, 800);
  } catch (e) {
    return `(page text not available: ${e.message.split('\n')[0]})`;
  }
}

async function fail(message) {
  if (finished) return;
  finished = true;
  console.log(`FAIL ${currentStep}: ${message}`);
  console.log(`  url:  ${page ? page.url() : '(no page)'}`);
  console.log(`  text: ${await pageExcerpt()}`);
  if (page) {
    try {
      await Promise.race([
        page.screenshot({ path: path.join(SHOTS_DIR, '99-failure.png'), fullPage: true, timeout: 3_000 }),
        new Promise((resolve) => { setTimeout(resolve, 3_500); }),
      ]);
      console.log(`  shot: ${path.join(SHOTS_DIR, '99-failure.png')}`);
    } catch {
      // no screenshot then
    }
  }
  try {
    await Promise.race([browserContext?.close(), new Promise((r) => { setTimeout(r, 3_000); })]);
  } catch {
    // ignore
  }
  cleanup();
  process.exit(1);
}

// The whole run is bounded, whatever hangs.
const watchdog = setTimeout(() => {
  fail(`the whole run took longer than ${TOTAL_TIMEOUT_MS / 1000} s`);
  setTimeout(() => process.exit(1), 8_000).unref();
}, TOTAL_TIMEOUT_MS);

function check(cond, message) {
  if (!cond) throw new Error(message);
}

async function shot(name) {
  const file = path.join(SHOTS_DIR, name);
  await page.screenshot({ path: file, fullPage: true });
  say(`  screenshot ${file}`);
}

// tollgate's session cookie (one cookie, or numbered chunks) on its host.
async function sessionCookies() {
  const host = new URL(TOLLGATE).hostname;
  const chunk = new RegExp(`^${COOKIE_NAME}_\\d+$`);
  return (await browserContext.cookies())
    .filter((c) => c.domain === host && (c.name === COOKIE_NAME || chunk.test(c.name)))
    .map((c) => c.name);
}

// The provider's login form: the page is on <issuer>/interaction/<uid> and
// shows the `login` and `password` inputs.
async function expectProviderLogin() {
  await page.waitForURL((u) => u.pathname.startsWith('/interaction/'), { timeout: STEP_TIMEOUT_MS });
  await page.locator('input[name="login"]').waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  await page.locator('input[name="password"]').waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  const origin = new URL(page.url()).origin;
  if (!issuer) issuer = origin;
  check(origin === new URL(issuer).origin, `login form is on ${origin}, expected the provider ${issuer}`);
}

// The upstream echo page, showing `X-Forwarded-User: <LOGIN>`.
async function expectUpstreamPage(expectedUrl) {
  check(page.url() === expectedUrl, `expected to be on ${expectedUrl}, am on ${page.url()}`);
  const h1 = (await page.locator('h1').first().textContent({ timeout: STEP_TIMEOUT_MS }))?.trim();
  check(h1 === 'Upstream echo', `expected the upstream echo page, the <h1> is ${JSON.stringify(h1)}`);
  const headers = await page.$$eval('#headers tr', (rows) => rows.map((r) => [
    r.querySelector('th')?.textContent?.trim() ?? '',
    r.querySelector('td')?.textContent?.trim() ?? '',
  ]));
  const user = headers.filter(([k]) => k.toLowerCase() === 'x-forwarded-user').map(([, v]) => v);
  check(user.length === 1, `expected one X-Forwarded-User header upstream, saw ${JSON.stringify(user)}`);
  check(user[0] === LOGIN, `X-Forwarded-User is ${JSON.stringify(user[0])}, expected ${JSON.stringify(LOGIN)}`);
  return user[0];
}

async function main() {
  mkdirSync(SHOTS_DIR, { recursive: true });
  profileDir = mkdtempSync(path.join(tmpdir(), 'tollgate-chromium-'));

  currentStep = 'launch';
  browserContext = await chromium.launchPersistentContext(profileDir, {
    executablePath: EXECUTABLE,
    headless: true,
    timeout: STEP_TIMEOUT_MS,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1024, height: 720 },
  });
  page = browserContext.pages()[0] || (await browserContext.newPage());
  page.setDefaultTimeout(STEP_TIMEOUT_MS);
  page.setDefaultNavigationTimeout(STEP_TIMEOUT_MS);
  say(`launch: Chromium ${browserContext.browser()?.version() ?? ''} (${EXECUTABLE}), profile ${profileDir}`.replace(' ()', ''));

  // Every document request the page makes, to tell whether the provider was
  // visited.
  const documents = [];
  page.on('request', (r) => {
    if (r.isNavigationRequest() && r.frame() === page.mainFrame()) documents.push(r.url());
  });
  const providerVisits = () => documents.filter((u) => issuer && u.startsWith(`${issuer}/`));

  // 1. An unauthenticated page visit ends on the provider's login form.
  currentStep = '1 start';
  const appUrl = `${TOLLGATE}/dashboard?x=1`;
  await page.goto(appUrl, { waitUntil: 'load' });
  await expectProviderLogin();
  say(`1 start: ${appUrl} -> provider login form ${page.url().split('?')[0]}`);
  await shot('01-provider-login.png');

  // 2. Sign in; back on the original URL, served by the upstream.
  currentStep = '2 login';
  await page.locator('input[name="login"]').fill(LOGIN);
  await page.locator('input[name="password"]').fill('any-password');
  await Promise.all([
    page.waitForURL(appUrl, { timeout: STEP_TIMEOUT_MS, waitUntil: 'load' }),
    page.locator('button[type="submit"], input[type="submit"]').first().click(),
  ]);
  const user = await expectUpstreamPage(appUrl);
  const session = await sessionCookies();
  check(session.length > 0, `no ${COOKIE_NAME} session cookie after login`);
  say(`2 login: signed in as ${LOGIN}; back on ${page.url()}, upstream sees X-Forwarded-User: ${user}; session cookie ${session.join(', ')}`);
  await shot('02-app.png');

  // 3. Reload: the session is kept, the provider is not visited.
  currentStep = '3 reload';
  const before = providerVisits().length;
  const reloaded = await page.reload({ waitUntil: 'load' });
  check(reloaded && reloaded.status() === 200, `reload answered ${reloaded?.status()}`);
  await expectUpstreamPage(appUrl);
  const visits = providerVisits().slice(before);
  check(visits.length === 0, `the reload went to the provider: ${visits.join(', ')}`);
  say('3 reload: still on the app page, no provider visit');

  // 4. /oauth2/userinfo answers the session's identity as JSON.
  currentStep = '4 userinfo';
  const infoResp = await page.goto(`${TOLLGATE}/oauth2/userinfo`, { waitUntil: 'load' });
  check(infoResp, 'no response for /oauth2/userinfo');
  check(infoResp.status() === 200, `/oauth2/userinfo answered HTTP ${infoResp.status()}`);
  const ctype = infoResp.headers()['content-type'] || '';
  check(ctype.includes('application/json'), `/oauth2/userinfo content-type is ${ctype}`);
  let info;
  try {
    info = JSON.parse(await infoResp.text());
  } catch (e) {
    throw new Error(`/oauth2/userinfo is not JSON: ${e.message}`);
  }
  check(info.user === LOGIN, `/oauth2/userinfo user is ${JSON.stringify(info.user)}, expected ${JSON.stringify(LOGIN)}`);
  say(`4 userinfo: ${JSON.stringify(info)}`);

  // 5. Sign out: tollgate -> provider end-session (auto-submitting form) ->
  // post_logout_redirect_uri (tollgate "/") -> provider login; or the
  // provider's own "Signed out" page.
  currentStep = '5 sign out';
  const mark = documents.length;
  await page.goto(`${TOLLGATE}/oauth2/sign_out`, { waitUntil: 'commit' });
  const done = page.locator('input[name="login"], h1:text-is("Signed out")').first();
  await done.waitFor({ state: 'visible', timeout: STEP_TIMEOUT_MS });
  await page.waitForLoadState('load');
  const chain = documents.slice(mark).map((u) => {
    const x = new URL(u);
    return `${x.origin === issuer ? 'idp' : x.origin === TOLLGATE ? 'tollgate' : x.origin}${x.pathname}`;
  });
  check(chain.some((u) => u.startsWith('idp/session/end')), `sign-out did not go through the provider's end-session endpoint: ${chain.join(' -> ')}`);
  const onLogin = new URL(page.url()).pathname.startsWith('/interaction/');
  say(`5 sign out: ${chain.join(' -> ')} => ${onLogin ? 'provider login form' : 'provider "Signed out" page'}`);
  await shot('03-signed-out.png');
  // Cookies ignore ports: on one host the provider's cookies show up too.
  const host = new URL(TOLLGATE).hostname;
  const jar = (await browserContext.cookies()).filter((c) => c.domain === host).map((c) => `${c.name}(${c.path})`);
  say(`  cookies for ${host} now: ${jar.length ? jar.join(' ') : '(none)'}`);
  const kept = await sessionCookies();
  check(kept.length === 0, `the session cookie survived sign-out: ${kept.join(', ')}`);

  // 6. The app needs a new login: tollgate session and provider session are
  // both gone (with either alive the browser would land on the app).
  currentStep = '6 back to login';
  await page.goto(`${TOLLGATE}/dashboard`, { waitUntil: 'load' });
  await expectProviderLogin();
  say(`6 back to login: ${TOLLGATE}/dashboard -> provider login form`);

  // 7. tollgate's own error page: a callback with a state it never issued.
  currentStep = '7 error page';
  const errResp = await page.goto(`${TOLLGATE}/oauth2/callback?state=bogus`, { waitUntil: 'load' });
  check(errResp, 'no response for the bogus callback');
  check(errResp.status() === 400, `the bogus callback answered HTTP ${errResp.status()}, expected 400`);
  check((errResp.headers()['content-type'] || '').includes('text/html'), `error page content-type is ${errResp.headers()['content-type']}`);
  const h1s = await page.locator('h1').allTextContents();
  check(h1s.length >= 1 && h1s[0].trim() !== '', 'the error page has no <h1>');
  say(`7 error page: HTTP 400, <h1> ${JSON.stringify(h1s[0].trim())}`);
  await shot('04-error-page.png');

  currentStep = 'close';
  await browserContext.close();
  cleanup();
}

main().then(
  () => {
    if (finished) return;
    finished = true;
    clearTimeout(watchdog);
    console.log(`BROWSER_OK (${elapsed()})`);
    process.exit(0);
  },
  (e) => fail(String(e && e.message ? e.message : e)
    .replace(/\x1b\[[0-9;]*m/g, '')
    .split('\n')
    .filter((l) => l.trim() && !/^=+ logs =+$/.test(l.trim()))
    .slice(0, 3)
    .join(' | ')),
);
