// A real browser through Portcullis: Debian's Chromium, headless, driven by playwright-core.
//
//   node browser.mjs                    both targets
//   node browser.mjs --target oidc-provider | --target demo | --target sso
//
// Target `oidc-provider`: Portcullis in front of Node upstreams (a console page showing the
// identity headers it saw, a JSON API, a WebSocket echo speaking `guacamole`), logging in at
// oidc-provider, the certified provider of tests/oidc-provider. Target `demo`: `portcullis
// demo` as a new user runs it. Each step asserts what a user would see; screenshots of every
// step (the proxy's own pages included) go to target/browser-screenshots/<target>/.
// Output: `ok - …` / `not ok - …` per step, then `browser: N passed, M failed`.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';
import { WebSocketServer } from 'ws';

import { freePort } from '../oidc-provider/ports.mjs';
import { startProvider } from '../oidc-provider/provider.mjs';
import { ssoScenario } from './sso.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const SHOTS = path.join(REPO, 'target', 'browser-screenshots');
const HOST = '127.0.0.1';
const argTarget = process.argv.indexOf('--target');
const TARGETS = argTarget > 0 ? [process.argv[argTarget + 1]] : ['oidc-provider', 'demo', 'sso'];

const results = [];
const cleanups = [];

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

async function step(name, fn) {
  try {
    const note = await fn();
    results.push(true);
    console.log(`ok - ${name}${note ? ` (${note})` : ''}`);
    return true;
  } catch (err) {
    results.push(false);
    console.log(`not ok - ${name}`);
    for (const line of String(err?.message ?? err).split('\n').slice(0, 8)) console.log(`#   ${line}`);
    return false;
  }
}

function findBinary() {
  const candidates = [process.env.PORTCULLIS_BIN,
    path.join(REPO, 'target', 'debug', 'portcullis'), path.join(REPO, 'target', 'release', 'portcullis')];
  const bin = candidates.find((c) => c && fs.existsSync(c));
  assert(bin, 'no portcullis binary: run `cargo build` first or set PORTCULLIS_BIN');
  return bin;
}

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      cleanups.push(() => new Promise((r) => { server.closeAllConnections?.(); server.close(() => r()); }));
      resolve(server.address().port);
    });
  });
}

function spawnTracked(bin, args, options) {
  const child = spawn(bin, args, options);
  cleanups.push(() => new Promise((resolve) => {
    if (child.exitCode !== null) return resolve();
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 5000).unref();
  }));
  return child;
}

async function waitForPort(port, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const open = await new Promise((resolve) => {
      const s = net.connect(port, HOST, () => { s.destroy(); resolve(true); });
      s.on('error', () => resolve(false));
    });
    if (open) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
}

// ---------------------------------------------------------------------------
// Target: Portcullis + oidc-provider + Node upstreams
// ---------------------------------------------------------------------------

const escapeHtml = (v) => String(v ?? '—').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// One upstream for every route: what a console, an API and a desktop would answer.
async function startUpstream() {
  const server = http.createServer((req, res) => {
    const who = req.headers['x-remote-user'];
    const url = new URL(req.url, 'http://upstream');
    if (url.pathname.startsWith('/api/')) {
      const body = JSON.stringify({ user: who ?? null, groups: req.headers['x-remote-groups'] ?? null, path: url.pathname });
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end(body);
    }
    if (/^\/desktop\/[^/]+\/$/.test(url.pathname)) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      return res.end(`<!doctype html><title>Desktop</title><h1>Desktop of ${escapeHtml(who)}</h1>`
        + '<p>Tunnel: <b id="state">connecting…</b></p><ol id="log"></ol><script src="app.js"></script>');
    }
    if (/^\/desktop\/[^/]+\/app\.js$/.test(url.pathname)) {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      return res.end(`const ws = new WebSocket(new URL('tunnel', location.href).href.replace(/^http/, 'ws'), ['guacamole']);
window.tunnel = ws;
ws.onopen = () => { document.getElementById('state').textContent = 'open (' + ws.protocol + ')'; ws.send('hello'); };
ws.onmessage = (e) => { const li = document.createElement('li'); li.textContent = 'echo: ' + e.data; document.getElementById('log').appendChild(li); };
ws.onclose = (e) => { document.getElementById('state').textContent = 'closed (' + e.code + ')'; };`);
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(`<!doctype html><title>Console</title><h1 id="who">Hello, ${escapeHtml(who)}</h1>`
      + `<table><tr><th>x-remote-user</th><td>${escapeHtml(who)}</td></tr>`
      + `<tr><th>x-remote-groups</th><td id="groups">${escapeHtml(req.headers['x-remote-groups'])}</td></tr>`
      + `<tr><th>path</th><td id="path">${escapeHtml(req.url)}</td></tr></table>`
      + '<form method="post" action="/oauth2/logout"><button id="logout">Log out</button></form>');
  });
  const wss = new WebSocketServer({
    noServer: true,
    handleProtocols: (protocols) => (protocols.has('guacamole') ? 'guacamole' : false),
  });
  server.on('upgrade', (req, socket, head) => {
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
  });
  cleanups.push(() => new Promise((r) => { for (const c of wss.clients) c.terminate(); wss.close(() => r()); }));
  return listen(server);
}

const USERS = {
  alice: { accountId: 'alice-sub', claims: { sub: 'alice-sub', preferred_username: 'alice', email: 'alice@example.com', groups: ['staff'] } },
  bob: { accountId: 'bob-sub', claims: { sub: 'bob-sub', preferred_username: 'bob', email: 'bob@example.com', groups: ['staff'] } },
};

async function startWithOidcProvider() {
  const upstreamPort = await startUpstream();
  const proxyPort = await freePort();
  const origin = `http://${HOST}:${proxyPort}`;
  const idp = await startProvider({
    proxyOrigin: origin, users: USERS, clientId: 'portcullis', clientSecret: 'browser-secret', listen,
  });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-browser-'));
  cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'portcullis.yaml'), `listen:
  - address: "${HOST}:${proxyPort}"
metrics: { enabled: false }
upstreams_file: upstreams.yaml
oidc:
  issuer: ${idp.issuer}
  client_id: portcullis
  client_secret: browser-secret
  public_url: ${origin}
  scopes: [openid, profile, email, groups]
session: { key: "${Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64')}" }
routes:
  - { prefix: /api/, upstream: app, auth: api }
  - { prefix: "/desktop/{id}/", desktops: true, auth: login, allow: owner, websocket: true }
  - { prefix: /broken/, upstream: dead, auth: public }
  - { prefix: /console/, upstream: app, auth: login }
plugins:
  - script: ${path.join(REPO, 'plugins', 'security-headers.lua')}
`);
  fs.writeFileSync(path.join(dir, 'upstreams.yaml'), `upstreams:
  app: { backends: ["${HOST}:${upstreamPort}"] }
  dead: { backends: ["${HOST}:1"] }
desktops:
  alice: { backend: "${HOST}:${upstreamPort}", owner: alice }
  bob: { backend: "${HOST}:${upstreamPort}", owner: bob }
`);
  const log = fs.openSync(path.join(dir, 'portcullis.log'), 'a');
  spawnTracked(findBinary(), ['run', '--config', path.join(dir, 'portcullis.yaml')], { stdio: ['ignore', log, log] });
  await waitForPort(proxyPort);
  return {
    origin,
    home: '/console/',
    async logIn(page, user) {
      await page.waitForSelector('input[name=login]');
      await page.fill('input[name=login]', user);
      await page.fill('input[name=password]', 'any');
      await page.click('button[type=submit]');
      // Consent, the first time.
      if (await page.locator('input[name=prompt][value=consent]').count()) await page.click('button[type=submit]');
    },
    async logOutAtProvider(page) {
      const yes = page.locator('button[name=logout][value=yes]');
      if (await yes.count()) await yes.click();
    },
    deadRoute: '/broken/',
    noRoute: '/nowhere',
  };
}

// ---------------------------------------------------------------------------
// Target: `portcullis demo`
// ---------------------------------------------------------------------------

async function startDemo() {
  const [port, idpPort] = [await freePort(), await freePort()];
  const child = spawnTracked(findBinary(), ['demo', '--port', String(port), '--idp-port', String(idpPort)],
    { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = await new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => reject(new Error('no `demo: ready` line in 60 s')), 60000);
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      const m = /demo: ready (\S+)/.exec(buffered);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.once('exit', (code) => reject(new Error(`the demo exited with ${code}`)));
  });
  assert(ready === `http://localhost:${port}/`, `ready line names ${ready}`);
  return {
    origin: `http://localhost:${port}`,
    home: '/',
    async logIn(page, user) {
      await page.waitForSelector(`button[value=${user}]`);
      await page.click(`button[value=${user}]`);
    },
    async logOutAtProvider() {},
    deadRoute: undefined,
    noRoute: undefined,
  };
}

// ---------------------------------------------------------------------------
// The scenario, for either target
// ---------------------------------------------------------------------------

async function scenario(name, start, browser) {
  const dir = path.join(SHOTS, name);
  fs.mkdirSync(dir, { recursive: true });
  let n = 0;
  const shot = (page, what) => page.screenshot({ path: path.join(dir, `${String(++n).padStart(2, '0')}-${what}.png`), fullPage: true });
  let t;
  if (!await step(`${name}: starts`, async () => { t = await start(); return t.origin; })) return;
  const alice = await browser.newContext();
  const page = await alice.newPage();
  const deepLink = `${t.origin}/console/reports?id=7#frag`;

  await step(`${name}: a deep link goes through the provider's login and lands back on it exactly, fragment included`, async () => {
    await page.goto(deepLink);
    await t.logIn(page, 'alice');
    await page.waitForURL((u) => u.href.startsWith(`${t.origin}/console/`), { timeout: 15000 });
    await page.waitForLoadState('load');
    assert(page.url() === deepLink, `landed on ${page.url()}, not ${deepLink}`);
    const text = await page.textContent('body');
    assert(text.includes('alice'), `the console does not show alice: ${text.slice(0, 200)}`);
    await shot(page, 'console-after-login');
  });

  await step(`${name}: the page's fetch to the API gets JSON as alice`, async () => {
    const got = await page.evaluate(async () => {
      const r = await fetch('/api/whoami', { headers: { accept: 'application/json' } });
      return { status: r.status, body: await r.json() };
    });
    assert(got.status === 200 && got.body.user === 'alice', JSON.stringify(got));
  });

  const desktop = await alice.newPage();
  await step(`${name}: the desktop page opens its WebSocket tunnel (guacamole) and frames go both ways`, async () => {
    await desktop.goto(`${t.origin}/desktop/alice/`);
    await desktop.waitForFunction(() => document.getElementById('state')?.textContent.startsWith('open (guacamole)'), null, { timeout: 10000 });
    await desktop.waitForFunction(() => document.body.textContent.includes('echo: hello'), null, { timeout: 10000 });
    await shot(desktop, 'desktop-tunnel-open');
  });

  await step(`${name}: bob is refused on alice's desktop with the proxy's 403 page`, async () => {
    const bobContext = await browser.newContext();
    const bob = await bobContext.newPage();
    await bob.goto(`${t.origin}${t.home}`);
    await t.logIn(bob, 'bob');
    await bob.waitForURL((u) => u.href.startsWith(t.origin), { timeout: 15000 });
    const resp = await bob.goto(`${t.origin}/desktop/alice/`);
    assert(resp.status() === 403, `status ${resp.status()}`);
    const title = await bob.title();
    assert(/forbidden/i.test(title), `title ${title}`);
    await shot(bob, 'proxy-403-other-users-desktop');
    await bobContext.close();
  });

  if (t.noRoute) {
    await step(`${name}: the proxy's 404 and 502 pages`, async () => {
      const p = await alice.newPage();
      let resp = await p.goto(`${t.origin}${t.noRoute}`);
      assert(resp.status() === 404, `404 page: ${resp.status()}`);
      await shot(p, 'proxy-404');
      resp = await p.goto(`${t.origin}${t.deadRoute}`);
      assert(resp.status() === 502, `502 page: ${resp.status()}`);
      await shot(p, 'proxy-502');
      await p.close();
    });
  }

  await step(`${name}: logout ends the session, closes the open tunnel, and the API answers 401, never a redirect`, async () => {
    await page.goto(`${t.origin}/console/`);
    await Promise.all([page.waitForNavigation(), page.click('form[action="/oauth2/logout"] button')]);
    await t.logOutAtProvider(page);
    await desktop.waitForFunction(() => document.getElementById('state')?.textContent.startsWith('closed'), null, { timeout: 5000 });
    await shot(desktop, 'desktop-tunnel-closed');
    const api = await desktop.evaluate(async () => {
      const r = await fetch('/api/whoami', { headers: { accept: 'application/json' } });
      return { status: r.status, redirected: r.redirected };
    });
    assert(api.status === 401 && !api.redirected, JSON.stringify(api));
    const resp = await desktop.goto(`${t.origin}/api/whoami`);
    assert(resp.status() === 401, `the API page after logout: ${resp.status()}`);
    await shot(desktop, 'proxy-401-logged-out');
  });
  await alice.close();
}

async function main() {
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
  cleanups.unshift(() => browser.close());
  for (const target of TARGETS) {
    if (target === 'oidc-provider') await scenario('oidc-provider', startWithOidcProvider, browser);
    else if (target === 'demo') await scenario('demo', startDemo, browser);
    else if (target === 'sso') {
      const dir = path.join(SHOTS, 'sso');
      fs.mkdirSync(dir, { recursive: true });
      let n = 0;
      const shot = (page, what) => page.screenshot({ path: path.join(dir, `${String(++n).padStart(2, '0')}-${what}.png`), fullPage: true });
      await ssoScenario({
        step, shot, listen, freePort, waitForPort, spawnTracked, findBinary, cleanups, startUpstream, users: USERS,
      });
    }
    else throw new Error(`unknown target ${target}`);
  }
}

let failed = 0;
try {
  await main();
} catch (err) {
  failed += 1;
  console.log(`not ok - harness error: ${err?.stack ?? err}`);
} finally {
  for (const c of cleanups.reverse()) {
    try { await c(); } catch { /* best effort */ }
  }
}
const passed = results.filter(Boolean).length;
failed += results.length - passed;
console.log(`browser: ${passed} passed, ${failed} failed (screenshots: ${path.relative(REPO, SHOTS)}/)`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
