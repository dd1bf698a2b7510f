// The operator plane's pages in headless Chromium (Debian's /usr/bin/chromium,
// driven by playwright-core): sign-in, TOTP enrolment and sign-in, a reused
// code, lockout, password expiry, every page as an administrator, a viewer's
// 403, tenant scoping and CSRF. Every page visited is screenshotted (the PNG
// must not be empty), must show its <h1>, must never carry the full test PAN,
// and must log no console error nor throw (an error page's own "Failed to load
// resource: … status of 4xx" line is expected for that status only).
//
// Run by host/switchyard/tests/browser.rs, which starts the switch, creates
// the users and sends the transactions. Environment:
//   SWITCHYARD_URL        https://127.0.0.1:PORT of the admin server
//   SWITCHYARD_SHOT_DIR   where the screenshots go
//   SWITCHYARD_USERS      JSON {role-in-test: {name, password}}: admin, viewer,
//                         totp, lockout, expired, other_tenant, same_tenant
//   SWITCHYARD_NEW_PASSWORD  the expired user's new password
//   SWITCHYARD_LOCKOUT    [admin] lockout_failures of the switch
//   SWITCHYARD_STAN       a STAN the switch logged (6 digits)
//   SWITCHYARD_LAST4      the test card's last four
//   SWITCHYARD_ENDPOINT   an endpoint the transactions went to
// Exit status 0 when every check passed; 1 with the failures listed. Nothing
// printed carries card data (digit runs of 13–19 are masked).

import { chromium } from 'playwright-core';
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const started = Date.now();
// A hard bound on the whole run, whatever hangs.
const HARD_LIMIT_MS = 110_000;
setTimeout(() => {
  console.error(`browser test: over ${HARD_LIMIT_MS / 1000} s, giving up`);
  process.exit(3);
}, HARD_LIMIT_MS).unref();

function env(k) {
  const v = process.env[k];
  if (!v) throw new Error(`environment variable ${k} is not set`);
  return v;
}

const BASE = env('SWITCHYARD_URL').replace(/\/+$/, '');
const SHOTS = env('SWITCHYARD_SHOT_DIR');
const USERS = JSON.parse(env('SWITCHYARD_USERS'));
const NEW_PASSWORD = env('SWITCHYARD_NEW_PASSWORD');
const LOCKOUT = Number(env('SWITCHYARD_LOCKOUT'));
const STAN = env('SWITCHYARD_STAN');
const LAST4 = env('SWITCHYARD_LAST4');
const ENDPOINT = env('SWITCHYARD_ENDPOINT');
// The test card (the default of `switchyard send`): never on a page, never printed.
const FULL_PAN = ['47617390', '01010119'].join('');
const MASKED_PAN = '476173******0119';
const NAV_TIMEOUT = 15_000;
const ACTION_TIMEOUT = 10_000;

mkdirSync(SHOTS, { recursive: true });

/** Masks anything that looks like a card number. */
function redact(s) {
  return String(s).replace(/\d{13,19}/g, (m) => `${m.slice(0, 6)}…(${m.length} digits)`);
}

function log(msg) {
  const t = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
  console.log(`[${t} s] ${redact(msg)}`);
}

const failures = [];
/** A check that lets the run go on. */
function check(ok, msg) {
  if (!ok) {
    failures.push(redact(msg));
    log(`FAIL ${msg}`);
  }
  return ok;
}
/** A check the rest of a flow depends on. */
function must(ok, msg) {
  if (!ok) throw new Error(redact(msg));
}

// ---- TOTP (RFC 6238 over RFC 4226, SHA-1, computed here independently) --------

function base32Decode(s) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of s.replace(/=+$/, '').replace(/\s+/g, '').toUpperCase()) {
    const i = alphabet.indexOf(c);
    if (i < 0) throw new Error(`not base32: ${c}`);
    value = ((value << 5) | i) & 0xffff;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

function hotp(key, counter, digits = 6) {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(BigInt(counter));
  const h = createHmac('sha1', key).update(msg).digest();
  const o = h[h.length - 1] & 0x0f;
  const n = ((h[o] & 0x7f) << 24) | (h[o + 1] << 16) | (h[o + 2] << 8) | h[o + 3];
  return String(n % 10 ** digits).padStart(digits, '0');
}

const STEP_S = 30;
const stepNow = () => Math.floor(Date.now() / 1000 / STEP_S);

// RFC 6238 appendix B, SHA-1, T = 59 s: 94287082 (8 digits) → 287082 (6).
must(hotp(Buffer.from('12345678901234567890'), 1, 8) === '94287082', 'the TOTP implementation fails RFC 6238 test vector T=59');
must(hotp(Buffer.from('12345678901234567890'), Math.floor(1111111109 / 30), 8) === '07081804', 'the TOTP implementation fails RFC 6238 test vector T=1111111109');

// ---- the browser and its pages ------------------------------------------------

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  timeout: 30_000,
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
  ],
});

/** Console errors and page errors of every page, with what was allowed then. */
const consoleErrors = [];
let shotCount = 0;

/** A fresh browser context (its own cookies) for one user, and its page. */
async function session(label) {
  const ctx = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 900 },
  });
  ctx.setDefaultTimeout(ACTION_TIMEOUT);
  ctx.setDefaultNavigationTimeout(NAV_TIMEOUT);
  const page = await ctx.newPage();
  const s = { label, ctx, page, allowed: new Set(), step: 'start' };
  page.on('console', (m) => {
    if (m.type() === 'error') {
      consoleErrors.push({ who: label, step: s.step, allowed: new Set(s.allowed), text: m.text(), url: page.url() });
    }
  });
  page.on('pageerror', (e) => {
    consoleErrors.push({ who: label, step: s.step, allowed: new Set(), text: `uncaught: ${e.message}`, url: page.url() });
  });
  return s;
}

/** Names the step (for the report) and the HTTP statuses an error line may name. */
function step(s, name, allowedStatuses = []) {
  s.step = name;
  s.allowed = new Set(allowedStatuses);
  log(`${s.label}: ${name}`);
}

/** GET `path`; checks the final status. */
async function visit(s, path, status = 200) {
  const res = await s.page.goto(BASE + path, { waitUntil: 'load', timeout: NAV_TIMEOUT });
  must(res, `${s.label}: GET ${path}: no response`);
  check(res.status() === status, `${s.label}: GET ${path}: status ${res.status()}, expected ${status}`);
  return res;
}

/** Clicks the submit button of `form` and waits for the page it leads to. */
async function submit(s, form) {
  const [res] = await Promise.all([
    s.page.waitForNavigation({ waitUntil: 'load', timeout: NAV_TIMEOUT }),
    s.page.locator(form).locator('button').first().click(),
  ]);
  return res;
}

function pathOf(page) {
  return new URL(page.url()).pathname;
}

/**
 * The checks every page gets: its <h1> (and the main content) visible, the
 * stylesheet applied, no full PAN in its HTML, a non-empty screenshot.
 */
async function checkPage(s, name, { h1 } = {}) {
  const { page } = s;
  const where = `${s.label}: ${name} (${pathOf(page)})`;
  const heading = page.locator('main h1').first();
  const visible = await heading.isVisible().catch(() => false);
  check(visible, `${where}: no visible <h1> in <main>`);
  const title = visible ? (await heading.innerText()).trim() : '';
  if (h1 !== undefined) {
    check(h1 instanceof RegExp ? h1.test(title) : title === h1, `${where}: <h1> is ${JSON.stringify(title)}, expected ${h1}`);
  }
  check(await page.locator('main').isVisible(), `${where}: <main> not visible`);
  const html = await page.content();
  check(!html.includes(FULL_PAN), `${where}: the full test PAN is in the page's HTML`);
  const styled = await page.evaluate(() =>
    [...document.styleSheets].some((sh) => {
      try {
        return sh.cssRules.length > 0;
      } catch {
        return false;
      }
    }),
  );
  check(styled, `${where}: /static/style.css not applied`);
  shotCount += 1;
  const file = join(SHOTS, `${String(shotCount).padStart(2, '0')}-${s.label}-${name}.png`.replace(/[^A-Za-z0-9._-]/g, '_'));
  await page.screenshot({ path: file, fullPage: true, timeout: ACTION_TIMEOUT });
  const size = statSync(file).size;
  const sig = readFileSync(file).subarray(0, 8).toString('hex');
  check(size > 1000 && sig === '89504e470d0a1a0a', `${where}: screenshot ${file} is ${size} bytes (${sig})`);
  return html;
}

async function login(s, name, password) {
  await visit(s, '/login');
  await s.page.fill('form.login input[name=name]', name);
  await s.page.fill('form.login input[name=password]', password);
  return submit(s, 'form.login');
}

async function alertText(s) {
  const a = s.page.locator('main [role=alert]').first();
  return (await a.isVisible().catch(() => false)) ? (await a.innerText()).trim() : '';
}

async function signOut(s) {
  const res = await submit(s, 'nav form[action="/logout"]');
  check(pathOf(s.page) === '/login', `${s.label}: sign-out led to ${pathOf(s.page)}, not /login`);
  return res;
}

/** Data rows of a table (not the "No … match." placeholder row). */
async function rowsOf(s, table) {
  return s.page.locator(`${table} tbody tr:not(:has(td[colspan]))`).count();
}

// ---- the flows -------------------------------------------------------------------

let txPath = null;

async function adminPages() {
  const u = USERS.admin;
  const s = await session('admin');

  step(s, 'login-wrong-password', [401]);
  let res = await login(s, u.name, `${u.password} but wrong 1`);
  check(res.status() === 401, `admin: a wrong password answered ${res.status()}, not 401`);
  check(pathOf(s.page) === '/login', `admin: a wrong password led to ${pathOf(s.page)}`);
  check(/wrong name or password/i.test(await alertText(s)), 'admin: a wrong password shows no error');
  check((await s.ctx.cookies()).every((c) => c.name !== 'sy_session'), 'admin: a failed sign-in set a session cookie');
  await checkPage(s, 'login-wrong', { h1: 'Sign in' });

  step(s, 'login');
  res = await login(s, u.name, u.password);
  check(res.status() === 200 && pathOf(s.page) === '/', `admin: sign-in led to ${pathOf(s.page)} (${res.status()})`);
  const cookie = (await s.ctx.cookies()).find((c) => c.name === 'sy_session');
  must(cookie, 'admin: no session cookie after sign-in');
  check(cookie.httpOnly && cookie.secure && cookie.sameSite === 'Strict', `admin: session cookie flags ${JSON.stringify({ httpOnly: cookie.httpOnly, secure: cookie.secure, sameSite: cookie.sameSite })}`);
  check(!(await s.page.evaluate(() => document.cookie)).includes('sy_session'), 'admin: the session cookie is readable from script');

  step(s, 'dashboard');
  await visit(s, '/');
  await checkPage(s, 'dashboard', { h1: 'Dashboard' });
  check((await s.page.locator('.cards .card').count()) >= 4, 'dashboard: fewer than 4 figure cards');
  const rcs = await s.page.locator('#rcs').innerText();
  check(/\b00\b/.test(rcs), 'dashboard: RC 00 not in the response-code table');
  check(await s.page.locator('#endpoints').isVisible(), 'dashboard: no endpoints table');
  check(await s.page.locator('#saf').isVisible(), 'dashboard: no store-and-forward table');
  for (const href of ['/transactions', '/saf', '/plugins', '/latency', '/users', '/roles', '/clients', '/webhooks', '/audit']) {
    check((await s.page.locator(`nav a[href="${href}"]`).count()) === 1, `dashboard: no navigation link to ${href} for an admin`);
  }

  step(s, 'transactions');
  await visit(s, '/transactions');
  await checkPage(s, 'transactions', { h1: 'Transactions' });
  check((await rowsOf(s, '#results')) >= 3, 'transactions: fewer than 3 rows without a filter');

  step(s, 'search-last4');
  await s.page.fill('#search input[name=last4]', LAST4);
  res = await submit(s, '#search');
  check(res.status() === 200, `search by last four: status ${res.status()}`);
  check(new URL(s.page.url()).searchParams.get('last4') === LAST4, 'search by last four: the query lacks last4');
  const byLast4 = await rowsOf(s, '#results');
  check(byLast4 >= 3, `search by last four: ${byLast4} row(s)`);
  const pans = await s.page.locator('#results tbody tr td:nth-child(5)').allInnerTexts();
  check(pans.length > 0 && pans.every((p) => p.trim() === MASKED_PAN), `search by last four: PAN column ${JSON.stringify(pans.slice(0, 3))}, expected ${MASKED_PAN}`);
  await checkPage(s, 'search-last4', { h1: 'Transactions' });

  step(s, 'search-stan');
  await visit(s, '/transactions');
  await s.page.fill('#search input[name=stan]', STAN);
  await submit(s, '#search');
  const byStan = await rowsOf(s, '#results');
  check(byStan === 1, `search by STAN ${STAN}: ${byStan} row(s), expected 1`);
  check((await s.page.locator('#count').innerText()).startsWith('1 row'), 'search by STAN: the count line does not say 1 row');
  await checkPage(s, 'search-stan', { h1: 'Transactions' });
  const link = s.page.locator('#results a[href^="/transactions/"]').first();
  must((await link.count()) === 1, 'search by STAN: no link to a transaction');
  txPath = await link.getAttribute('href');

  step(s, 'search-nothing');
  await visit(s, '/transactions?stan=999999');
  check(/^0 row/.test(await s.page.locator('#count').innerText()), 'search for an unknown STAN: not 0 rows');
  await checkPage(s, 'search-nothing', { h1: 'Transactions' });

  step(s, 'transaction-detail');
  await visit(s, `/transactions?stan=${STAN}`);
  await Promise.all([
    s.page.waitForNavigation({ waitUntil: 'load', timeout: NAV_TIMEOUT }),
    s.page.locator(`#results a[href="${txPath}"]`).click(),
  ]);
  check(pathOf(s.page) === txPath, `detail: at ${pathOf(s.page)}, expected ${txPath}`);
  const detail = await checkPage(s, 'transaction-detail', { h1: /^Transaction \d+$/ });
  const facts = await s.page.locator('#facts').innerText();
  check(facts.includes(MASKED_PAN), 'detail: the masked PAN is not among the facts');
  check(facts.includes(STAN), `detail: STAN ${STAN} is not among the facts`);
  check(await s.page.locator('#trace').isVisible(), 'detail: no profiler trace');
  check((await rowsOf(s, '#request')) > 3, 'detail: the request fields table is (nearly) empty');
  check(await s.page.locator('#response').isVisible(), 'detail: no response fields table');
  check(!detail.includes(FULL_PAN), 'detail: full PAN');

  step(s, 'transaction-unknown', [404]);
  await visit(s, '/transactions/99999999', 404);
  await checkPage(s, 'transaction-unknown', { h1: 'Not found' });

  step(s, 'saf');
  await visit(s, '/saf');
  await checkPage(s, 'saf', { h1: 'Store and forward' });
  check(await s.page.locator('#queues').isVisible(), 'saf: no queues table for an untenanted user');
  await visit(s, '/saf?all=true');
  check((await rowsOf(s, '#entries')) >= 1, 'saf (all): no entry (the timed-out transaction\'s reversal)');
  await checkPage(s, 'saf-all', { h1: 'Store and forward' });

  step(s, 'plugins');
  await visit(s, '/plugins');
  await checkPage(s, 'plugins', { h1: 'Plugins' });
  check((await s.page.locator('section.plugin').count()) >= 1, 'plugins: no plugin section');

  step(s, 'latency');
  await visit(s, '/latency');
  await checkPage(s, 'latency', { h1: 'Latency' });
  const svg = s.page.locator('#chart svg');
  check((await svg.count()) === 1 && (await svg.isVisible()), 'latency: no visible <svg> chart');
  const box = (await svg.count()) ? await svg.boundingBox() : null;
  check(box && box.width > 200 && box.height > 100, `latency: the chart is ${JSON.stringify(box)}`);
  check((await s.page.locator('#chart svg line').count()) > 0, 'latency: the chart has no axes');
  check((await s.page.locator('#chart svg path, #chart svg polyline, #chart svg circle').count()) > 0, 'latency: the chart draws no series');
  const minutes = await s.page.locator('#minutes tbody').innerText();
  check(!/No transactions in this period/.test(minutes), 'latency: no minute with transactions in the last hour');

  step(s, 'latency-endpoint');
  const option = s.page.locator(`#period select[name=by] option[value="endpoint:${ENDPOINT}"]`);
  if (check((await option.count()) === 1, `latency: endpoint ${ENDPOINT} is not offered`)) {
    await s.page.selectOption('#period select[name=by]', `endpoint:${ENDPOINT}`);
    await submit(s, '#period');
    check(new URL(s.page.url()).searchParams.get('by') === `endpoint:${ENDPOINT}`, 'latency: the endpoint choice is not in the query');
    check((await s.page.locator('#chart svg').count()) === 1, 'latency (endpoint): no <svg> chart');
    // The form as the page pre-filled it (the last hour up to now): the
    // transactions just sent must be in it.
    const ext = await s.page.locator('#minutes tbody tr').first().innerText();
    check(
      /\d/.test(ext) && !/No transactions/.test(ext),
      `latency (endpoint ${ENDPOINT}, the form's own period ${new URL(s.page.url()).searchParams.get('from')} to ${new URL(s.page.url()).searchParams.get('to')}): no figures`,
    );
    await checkPage(s, 'latency-endpoint', { h1: 'Latency' });
  }
  step(s, 'latency-endpoint-url');
  await visit(s, `/latency?by=endpoint:${ENDPOINT}`);
  const byUrl = await s.page.locator('#minutes tbody tr').first().innerText();
  check(/\d/.test(byUrl) && !/No transactions/.test(byUrl), `latency (?by=endpoint:${ENDPOINT}, no period): no figures`);
  check((await s.page.locator('#chart svg circle').count()) > 0, `latency (?by=endpoint:${ENDPOINT}): no data points drawn`);
  await checkPage(s, 'latency-endpoint-url', { h1: 'Latency' });

  step(s, 'users');
  await visit(s, '/users');
  const usersHtml = await checkPage(s, 'users', { h1: 'Users' });
  for (const k of Object.keys(USERS)) {
    check(usersHtml.includes(`<td>${USERS[k].name}</td>`), `users: user ${USERS[k].name} not listed`);
  }
  check(!/argon2|\$argon/i.test(usersHtml), 'users: a password hash is on the page');

  step(s, 'csrf', [403]);
  // A state change from the page without the session's token is refused;
  // with the token from the page's own form it goes through.
  const target = encodeURIComponent(USERS.viewer.name);
  const csrf = await s.page.evaluate(async (target) => {
    const post = async (path, body, headers = {}) => {
      const r = await fetch(path, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body,
        redirect: 'follow',
        credentials: 'same-origin',
      });
      return { status: r.status, url: new URL(r.url).pathname, text: (await r.text()).slice(0, 200) };
    };
    const token = document.querySelector('input[name=csrf]')?.value ?? '';
    return {
      tokenLength: token.length,
      none: await post(`/users/${target}/unlock`, ''),
      wrong: await post(`/users/${target}/unlock`, 'csrf=00000000'),
      apiNone: await post(`/api/users/${target}/unlock`, '', { 'content-type': 'application/json' }),
      right: await post(`/users/${target}/unlock`, `csrf=${encodeURIComponent(token)}`),
      header: await post(`/api/users/${target}/unlock`, '', { 'x-csrf-token': token }),
    };
  }, target);
  check(csrf.tokenLength >= 32, `csrf: the page's token is ${csrf.tokenLength} characters`);
  check(csrf.none.status === 403, `csrf: a POST without the token answered ${csrf.none.status}`);
  check(csrf.wrong.status === 403, `csrf: a POST with a wrong token answered ${csrf.wrong.status}`);
  check(csrf.apiNone.status === 403, `csrf: an API POST without the header answered ${csrf.apiNone.status}`);
  check(csrf.right.status === 200 && csrf.right.url === '/users', `csrf: a POST with the token answered ${csrf.right.status} at ${csrf.right.url}`);
  check(csrf.header.status === 200, `csrf: an API POST with the header answered ${csrf.header.status}`);

  step(s, 'roles');
  await visit(s, '/roles');
  const roles = await checkPage(s, 'roles', { h1: 'Roles' });
  for (const r of ['viewer', 'operator', 'security', 'admin']) {
    check(roles.includes(`<td>${r}</td>`), `roles: built-in role ${r} not listed`);
  }

  step(s, 'clients');
  await visit(s, '/clients');
  const clients = await checkPage(s, 'clients', { h1: 'API clients' });
  check(clients.includes('<td>cli</td>'), "clients: the CLI's API client is not listed");

  step(s, 'webhooks');
  await visit(s, '/webhooks');
  await checkPage(s, 'webhooks', { h1: 'Webhooks' });
  check(await s.page.locator('form[action="/webhooks"]').isVisible(), 'webhooks: no add form');

  step(s, 'not-found', [404]);
  await visit(s, '/no-such-page', 404);
  await checkPage(s, 'not-found', { h1: 'Not found' });
  return s;
}

async function adminAudit(s) {
  step(s, 'audit');
  await visit(s, '/audit');
  const html = await checkPage(s, 'audit', { h1: 'Audit log' });
  const trail = await s.page.locator('#trail').innerText();
  for (const ev of ['login', 'login.failed', 'user.locked_out', 'totp.enrolled', 'password.changed', 'transaction.view']) {
    check(new RegExp(`(^|\\s)${ev.replace('.', '\\.')}(\\s|$)`, 'm').test(trail), `audit: no ${ev} row`);
  }
  check(!html.includes(FULL_PAN), 'audit: full PAN');

  step(s, 'audit-filter');
  await s.page.fill('#filter input[name=event]', 'user.locked_out');
  await submit(s, '#filter');
  const rows = await s.page.locator('#trail tbody tr').allInnerTexts();
  check(rows.length >= 1 && rows.every((r) => r.includes('user.locked_out')), `audit filtered by event: ${rows.length} row(s), not all user.locked_out`);
  check(rows.some((r) => r.includes(USERS.lockout.name)), 'audit: the lockout row does not name the user');
  await checkPage(s, 'audit-filter', { h1: 'Audit log' });

  step(s, 'sign-out');
  await signOut(s);
  await visit(s, '/users');
  check(pathOf(s.page) === '/login', `admin: after sign-out /users led to ${pathOf(s.page)}`);
  check(new URL(s.page.url()).searchParams.get('next') === '/users', 'admin: the sign-in page does not carry next=/users');
}

async function viewer() {
  const u = USERS.viewer;
  const s = await session('viewer');
  step(s, 'login');
  await login(s, u.name, u.password);
  check(pathOf(s.page) === '/', `viewer: sign-in led to ${pathOf(s.page)}`);
  await checkPage(s, 'dashboard', { h1: 'Dashboard' });
  check((await s.page.locator('nav a[href="/users"]').count()) === 0, 'viewer: the navigation offers /users');
  check((await s.page.locator('nav a[href="/audit"]').count()) === 0, 'viewer: the navigation offers /audit');

  step(s, 'users-forbidden', [403]);
  await visit(s, '/users', 403);
  await checkPage(s, 'users-403', { h1: 'Forbidden' });
  check(/users\.view/.test(await alertText(s)), 'viewer: the 403 page does not name users.view');
  check(!(await s.page.content()).includes(`<td>${USERS.admin.name}</td>`), 'viewer: the 403 page lists users');

  step(s, 'audit-forbidden', [403]);
  await visit(s, '/audit', 403);
  await checkPage(s, 'audit-403', { h1: 'Forbidden' });

  step(s, 'transactions');
  await visit(s, `/transactions?last4=${LAST4}`);
  check((await rowsOf(s, '#results')) >= 3, 'viewer: no transactions');
  await checkPage(s, 'transactions', { h1: 'Transactions' });
  await s.ctx.close();
}

async function totpFlow() {
  const u = USERS.totp;
  const s = await session('totp');
  step(s, 'login');
  await login(s, u.name, u.password);
  check(pathOf(s.page) === '/', `totp: sign-in led to ${pathOf(s.page)}`);

  step(s, 'enrol');
  await visit(s, '/account/totp');
  await checkPage(s, 'enrol', { h1: 'Two-factor sign-in' });
  const uriText = (await s.page.locator('p.uri code').innerText()).trim();
  const uri = new URL(uriText);
  must(uri.protocol === 'otpauth:' && uri.host === 'totp', `totp: the enrolment URI is not otpauth://totp/…`);
  check(decodeURIComponent(uri.pathname).includes(u.name), 'totp: the URI does not name the account');
  check((uri.searchParams.get('algorithm') ?? 'SHA1').toUpperCase() === 'SHA1', 'totp: not SHA1');
  check((uri.searchParams.get('digits') ?? '6') === '6', 'totp: not 6 digits');
  check((uri.searchParams.get('period') ?? '30') === '30', 'totp: not 30 s');
  check(uri.searchParams.get('issuer') === 'Switchyard', 'totp: no issuer');
  const secretB32 = uri.searchParams.get('secret');
  must(secretB32, 'totp: no secret in the URI');
  const shown = (await s.page.locator('main p', { hasText: 'Secret:' }).locator('code').innerText()).trim();
  check(shown === secretB32, 'totp: the secret shown differs from the URI');
  check((await s.page.locator('.qr svg').count()) === 1, 'totp: no QR code');
  const key = base32Decode(secretB32);
  check(key.length >= 16, `totp: a ${key.length}-byte secret`);

  step(s, 'enrol-wrong-code', [400]);
  const enrolStep = stepNow();
  const near = new Set([-1, 0, 1, 2, 3].map((d) => hotp(key, enrolStep + d)));
  let wrong = '000000';
  while (near.has(wrong)) wrong = String((Number(wrong) + 111111) % 1000000).padStart(6, '0');
  await s.page.fill('form[action="/account/totp"] input[name=code]', wrong);
  let res = await submit(s, 'form[action="/account/totp"]');
  check(res.status() >= 400, `totp: a wrong enrolment code answered ${res.status()}`);
  check(/wrong|already used/i.test(await alertText(s)), 'totp: a wrong enrolment code shows no error');
  await checkPage(s, 'enrol-wrong', { h1: 'Two-factor sign-in' });

  step(s, 'enrol-ok');
  await s.page.fill('form[action="/account/totp"] input[name=code]', hotp(key, enrolStep));
  res = await submit(s, 'form[action="/account/totp"]');
  check(res.status() === 200 && pathOf(s.page) === '/', `totp: enrolment led to ${pathOf(s.page)} (${res.status()})`);
  await visit(s, '/account/totp');
  check(/is on/.test(await s.page.locator('main').innerText()), 'totp: after enrolment the page does not say TOTP is on');
  await checkPage(s, 'enrolled', { h1: 'Two-factor sign-in' });

  step(s, 'sign-out');
  await signOut(s);
  await checkPage(s, 'signed-out', { h1: 'Sign in' });

  step(s, 'login-code');
  await login(s, u.name, u.password);
  check(pathOf(s.page) === '/login/totp', `totp: a password sign-in led to ${pathOf(s.page)}, not /login/totp`);
  await checkPage(s, 'code-form', { h1: 'Second factor' });
  // Everything else waits for the code.
  await visit(s, '/users');
  check(pathOf(s.page) === '/login/totp', `totp: before the code, /users led to ${pathOf(s.page)}`);
  // The enrolment used step `enrolStep`: the next one (within the ±1 step skew) is fresh.
  const code = hotp(key, enrolStep + 1);
  step(s, 'login-wrong-code', [401]);
  await s.page.fill('form[action="/login/totp"] input[name=code]', wrong);
  res = await submit(s, 'form[action="/login/totp"]');
  check(res.status() === 401, `totp: a wrong code answered ${res.status()}`);
  check(/wrong code/i.test(await alertText(s)), 'totp: a wrong code shows no error');
  await checkPage(s, 'code-wrong', { h1: 'Second factor' });
  step(s, 'login-code-ok');
  await s.page.fill('form[action="/login/totp"] input[name=code]', code);
  res = await submit(s, 'form[action="/login/totp"]');
  check(res.status() === 200 && pathOf(s.page) === '/', `totp: the code led to ${pathOf(s.page)} (${res.status()})`);
  await checkPage(s, 'signed-in', { h1: 'Dashboard' });

  step(s, 'sign-out-again');
  await signOut(s);
  step(s, 'code-reused', [401]);
  await login(s, u.name, u.password);
  check(pathOf(s.page) === '/login/totp', `totp: the second sign-in led to ${pathOf(s.page)}`);
  await s.page.fill('form[action="/login/totp"] input[name=code]', code);
  res = await submit(s, 'form[action="/login/totp"]');
  check(res.status() === 401 && pathOf(s.page) === '/login/totp', `totp: a reused code answered ${res.status()} at ${pathOf(s.page)}`);
  check(/already used/i.test(await alertText(s)), 'totp: a reused code shows no error');
  await checkPage(s, 'code-reused', { h1: 'Second factor' });
  await visit(s, '/');
  check(pathOf(s.page) === '/login/totp', `totp: after a reused code / led to ${pathOf(s.page)}`);
  await s.ctx.close();
}

async function lockout() {
  const u = USERS.lockout;
  const s = await session('lockout');
  for (let i = 1; i <= LOCKOUT; i += 1) {
    step(s, `wrong-${i}`, [401]);
    const res = await login(s, u.name, `not the password ${i}x`);
    check(res.status() === 401, `lockout: failure ${i} answered ${res.status()}`);
    check(/wrong name or password/i.test(await alertText(s)), `lockout: failure ${i} shows no error`);
  }
  await checkPage(s, 'failed', { h1: 'Sign in' });
  step(s, 'locked', [401]);
  const res = await login(s, u.name, u.password);
  check(res.status() === 401 && pathOf(s.page) === '/login', `lockout: the right password after ${LOCKOUT} failures answered ${res.status()} at ${pathOf(s.page)}`);
  check(/locked/i.test(await alertText(s)), 'lockout: the page does not say the account is locked');
  check((await s.ctx.cookies()).every((c) => c.name !== 'sy_session'), 'lockout: a locked user got a session cookie');
  await checkPage(s, 'locked', { h1: 'Sign in' });
  await s.ctx.close();
}

async function expired() {
  const u = USERS.expired;
  const s = await session('expired');
  step(s, 'login');
  await login(s, u.name, u.password);
  check(pathOf(s.page) === '/password', `expired: sign-in led to ${pathOf(s.page)}, not /password`);
  await checkPage(s, 'forced-change', { h1: 'Change password' });
  check(/expired/i.test(await s.page.locator('main .notice').innerText().catch(() => '')), 'expired: the page does not say the password expired');
  await visit(s, '/transactions');
  check(pathOf(s.page) === '/password', `expired: before the change, /transactions led to ${pathOf(s.page)}`);

  step(s, 'same-password', [400]);
  const form = 'form[action="/password"]';
  await s.page.fill(`${form} input[name=current]`, u.password);
  await s.page.fill(`${form} input[name=new]`, u.password);
  await s.page.fill(`${form} input[name=repeat]`, u.password);
  let res = await submit(s, form);
  check(res.status() === 400, `expired: reusing the password answered ${res.status()}`);
  check(/last 4/i.test(await alertText(s)), 'expired: reusing the password names no rule');
  await checkPage(s, 'reuse-refused', { h1: 'Change password' });

  step(s, 'change');
  await s.page.fill(`${form} input[name=current]`, u.password);
  await s.page.fill(`${form} input[name=new]`, NEW_PASSWORD);
  await s.page.fill(`${form} input[name=repeat]`, NEW_PASSWORD);
  res = await submit(s, form);
  check(res.status() === 200 && pathOf(s.page) === '/', `expired: the change led to ${pathOf(s.page)} (${res.status()})`);
  await checkPage(s, 'changed', { h1: 'Dashboard' });
  await signOut(s);
  step(s, 'old-password', [401]);
  await login(s, u.name, u.password);
  check(pathOf(s.page) === '/login', 'expired: the old password still signs in');
  step(s, 'new-password');
  await login(s, u.name, NEW_PASSWORD);
  check(pathOf(s.page) === '/', `expired: the new password led to ${pathOf(s.page)}`);
  await s.ctx.close();
}

async function tenants() {
  must(txPath, 'tenants: no transaction id from the search');
  const other = await session('other-tenant');
  step(other, 'login');
  await login(other, USERS.other_tenant.name, USERS.other_tenant.password);
  check(pathOf(other.page) === '/', `other tenant: sign-in led to ${pathOf(other.page)}`);
  check(/tenant/.test(await other.page.locator('nav .who').innerText()), 'other tenant: the navigation does not show the tenant');
  const last15 = await other.page.locator('.cards .card').nth(3).innerText();
  check(/\b0\s*$/.test(last15.trim()), `other tenant: the dashboard counts another tenant's transactions (${last15.replace(/\s+/g, ' ')})`);
  await checkPage(other, 'dashboard', { h1: 'Dashboard' });
  step(other, 'transactions');
  await visit(other, `/transactions?last4=${LAST4}`);
  check((await other.page.locator('#results a[href^="/transactions/"]').count()) === 0, "other tenant: the search shows another tenant's transactions");
  check(/^0 row/.test(await other.page.locator('#count').innerText()), 'other tenant: the count is not 0');
  await checkPage(other, 'transactions', { h1: 'Transactions' });
  step(other, 'detail', [404]);
  await visit(other, txPath, 404);
  await checkPage(other, 'detail-404', { h1: 'Not found' });
  check(!(await other.page.locator('#facts').count()), "other tenant: another tenant's transaction detail is shown");
  step(other, 'saf');
  await visit(other, '/saf?all=true');
  check(/No entries/.test(await other.page.locator('#entries').innerText()), "other tenant: another tenant's SAF entries are shown");
  await checkPage(other, 'saf', { h1: 'Store and forward' });
  step(other, 'latency');
  await visit(other, '/latency');
  check(/No transactions in this period/.test(await other.page.locator('#minutes').innerText()), "other tenant: the latency table has another tenant's minutes");
  await checkPage(other, 'latency', { h1: 'Latency' });
  await other.ctx.close();

  const same = await session('same-tenant');
  step(same, 'login');
  await login(same, USERS.same_tenant.name, USERS.same_tenant.password);
  step(same, 'transactions');
  await visit(same, `/transactions?last4=${LAST4}`);
  check((await rowsOf(same, '#results')) >= 3, "same tenant: the tenant's own transactions are not shown");
  await checkPage(same, 'transactions', { h1: 'Transactions' });
  step(same, 'detail');
  await visit(same, txPath);
  check((await same.page.locator('#facts').count()) === 1, "same tenant: the tenant's own transaction detail is not shown");
  await checkPage(same, 'detail', { h1: /^Transaction \d+$/ });
  await same.ctx.close();
}

// ---- run --------------------------------------------------------------------------

let crashed = null;
try {
  const admin = await adminPages();
  await viewer();
  await totpFlow();
  await lockout();
  await expired();
  await tenants();
  await adminAudit(admin);
  await admin.ctx.close();
} catch (e) {
  crashed = e;
}
await browser.close().catch(() => {});

for (const e of consoleErrors) {
  const status = /status of (\d{3})/.exec(e.text);
  const expected = status && e.allowed.has(Number(status[1])) && /Failed to load resource/.test(e.text);
  if (!expected) {
    check(false, `console error (${e.who}, step ${e.step}, ${new URL(e.url).pathname}): ${e.text}`);
  }
}
if (crashed) {
  failures.push(redact(`stopped: ${crashed.stack ?? crashed}`));
}
const took = ((Date.now() - started) / 1000).toFixed(1);
if (failures.length) {
  console.log(`\nbrowser test FAILED (${took} s, ${shotCount} screenshots): ${failures.length} failure(s)`);
  for (const f of failures) console.log(`  - ${f}`);
  process.exit(1);
}
console.log(`\nbrowser test passed: ${shotCount} screenshots in ${SHOTS}, ${took} s`);
