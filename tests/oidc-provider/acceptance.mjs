// Acceptance test: the Portcullis OpenID Connect login flow against
// oidc-provider (a certified OpenID Provider), driven like a browser.
//
//   node acceptance.mjs                 full run against the Portcullis binary
//   node acceptance.mjs --provider-only check the provider set-up alone, with
//                                       a minimal relying party written here
//
// Environment:
//   PORTCULLIS_BIN   binary to run (default <repo>/target/debug/portcullis,
//                    then <repo>/target/release/portcullis)
//   KEEP_TMP=1       keep the temporary config/log directory
//   VERBOSE=1        print every HTTP exchange the "browser" makes
//   ID_TOKEN_CLAIMS=1 the provider also puts profile/email/groups claims in
//                    the ID token (default: only at userinfo, per OIDC Core 5.4)
//
// Everything listens on 127.0.0.1 only. Output: one `ok - ...` / `not ok - ...`
// line per check, then `acceptance: N passed, M failed`. Exit 0 only if all
// checks passed.

import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { freePort } from './ports.mjs';
import {
  escapeHtml, page, readBody, startProvider,
} from './provider.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '..', '..');
const HOST = '127.0.0.1';
const VERBOSE = process.env.VERBOSE === '1';
const PROVIDER_ONLY = process.argv.includes('--provider-only');

const CLIENT_ID = 'portcullis';
const CLIENT_SECRET = 'acceptance-secret';
const USERS = {
  // login name -> account
  alice: {
    accountId: 'alice-sub',
    claims: {
      sub: 'alice-sub',
      preferred_username: 'alice',
      name: 'Alice Example',
      email: 'alice@example.com',
      groups: ['staff', 'desktop-users'],
    },
  },
};

// ---------------------------------------------------------------------------
// Resources to release at exit
// ---------------------------------------------------------------------------

const children = new Set();
const servers = new Set();
let tmpDir;
let cleaning;

function cleanup() {
  cleaning ??= release();
  return cleaning;
}

async function release() {
  await Promise.all([...children].map(stopChild));
  for (const server of servers) {
    server.closeAllConnections?.();
    server.close();
  }
  if (tmpDir && process.env.KEEP_TMP !== '1') {
    fs.rmSync(tmpDir, { recursive: true, force: true });
  } else if (tmpDir) {
    console.log(`# kept ${tmpDir}`);
  }
}

function stopChild(child) {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) {
      children.delete(child);
      resolve();
      return;
    }
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    child.once('exit', () => {
      clearTimeout(timer);
      children.delete(child);
      resolve();
    });
    // SIGINT: Portcullis exits at once (SIGTERM would wait out its grace period).
    child.kill('SIGINT');
  });
}

function killChildrenNow() {
  for (const child of children) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
}

process.on('exit', killChildrenNow);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, async () => {
    console.log(`not ok - interrupted by ${signal}`);
    await cleanup();
    summary(1);
    process.exit(130);
  });
}

// ---------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------

function log(msg) {
  if (VERBOSE) console.log(`# ${msg}`);
}

function listen(server, port = 0) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, HOST, () => {
      server.off('error', reject);
      servers.add(server);
      resolve(server.address().port);
    });
  });
}

function unescapeHtml(value) {
  return value
    .replace(/&#x([0-9a-f]+);/gi, (_, hex) => String.fromCodePoint(parseInt(hex, 16)))
    .replace(/&#([0-9]+);/g, (_, dec) => String.fromCodePoint(parseInt(dec, 10)))
    .replace(/&quot;/g, '"')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&amp;/g, '&');
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}

function describe(res) {
  const interesting = ['location', 'www-authenticate', 'content-type', 'set-cookie'];
  const parts = [`${res.status}`];
  for (const name of interesting) {
    const value = name === 'set-cookie' ? res.headers.getSetCookie().join(' | ') : res.headers.get(name);
    if (value) parts.push(`${name}: ${value}`);
  }
  if (res.text !== undefined && res.text.length) parts.push(`body: ${res.text.slice(0, VERBOSE ? 2000 : 300).replace(/\s+/g, ' ')}`);
  return parts.join('; ');
}

// One HTTP/1.1 exchange with node:http. Node's fetch() cannot act as a
// browser here: it overwrites Sec-Fetch-Mode with "cors", which is exactly
// the header Portcullis reads to tell a page navigation from an API call.
// Resolves to { status, headers: Headers, text }; never follows redirects.
function send(url, { method = 'GET', headers = new Headers(), body } = {}) {
  const u = new URL(url);
  const outgoing = {};
  for (const [name, value] of headers) outgoing[name] = value;
  if (!headers.has('user-agent')) outgoing['user-agent'] = 'Mozilla/5.0 (portcullis-acceptance)';
  if (body !== undefined) outgoing['content-length'] = Buffer.byteLength(body);
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method, headers: outgoing, agent: false,
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const h = new Headers();
        for (let i = 0; i < res.rawHeaders.length; i += 2) h.append(res.rawHeaders[i], res.rawHeaders[i + 1]);
        resolve({ status: res.statusCode, headers: h, text: Buffer.concat(chunks).toString('utf8') });
      });
    });
    req.setTimeout(15000, () => req.destroy(new Error(`${method} ${url}: no answer within 15 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

// ---------------------------------------------------------------------------
// Cookie jar, keyed by host:port (enough for one browser against 127.0.0.1)
// ---------------------------------------------------------------------------

class CookieJar {
  constructor() {
    this.origins = new Map(); // "host:port" -> Map(name -> cookie)
  }

  static parse(header, requestUrl) {
    const [pair, ...attrs] = header.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) return undefined;
    const cookie = {
      name: pair.slice(0, eq).trim(),
      value: pair.slice(eq + 1).trim(),
      path: undefined,
      expires: undefined, // ms since epoch; undefined = session cookie
      httpOnly: false,
      secure: false,
      sameSite: undefined,
      raw: header,
    };
    let maxAge;
    for (const attr of attrs) {
      const i = attr.indexOf('=');
      const key = (i === -1 ? attr : attr.slice(0, i)).trim().toLowerCase();
      const val = i === -1 ? '' : attr.slice(i + 1).trim();
      switch (key) {
        case 'path': if (val.startsWith('/')) cookie.path = val; break;
        case 'max-age': if (/^-?\d+$/.test(val)) maxAge = Number(val); break;
        case 'expires': {
          const t = Date.parse(val);
          if (!Number.isNaN(t)) cookie.expires = t;
          break;
        }
        case 'httponly': cookie.httpOnly = true; break;
        case 'secure': cookie.secure = true; break;
        case 'samesite': cookie.sameSite = val.toLowerCase(); break;
        default: break;
      }
    }
    if (maxAge !== undefined) cookie.expires = maxAge <= 0 ? 0 : Date.now() + maxAge * 1000;
    if (!cookie.path) {
      // default-path (RFC 6265 5.1.4)
      const p = new URL(requestUrl).pathname;
      const slash = p.lastIndexOf('/');
      cookie.path = slash <= 0 ? '/' : p.slice(0, slash);
    }
    return cookie;
  }

  store(requestUrl, res) {
    const origin = new URL(requestUrl).host;
    let cookies = this.origins.get(origin);
    if (!cookies) {
      cookies = new Map();
      this.origins.set(origin, cookies);
    }
    const set = [];
    for (const header of res.headers.getSetCookie()) {
      const cookie = CookieJar.parse(header, requestUrl);
      if (!cookie) continue;
      set.push(cookie);
      const key = `${cookie.name}\u0000${cookie.path}`;
      if (cookie.expires !== undefined && cookie.expires <= Date.now()) {
        cookies.delete(key);
      } else {
        cookies.set(key, cookie);
      }
    }
    return set;
  }

  static pathMatches(cookiePath, requestPath) {
    if (requestPath === cookiePath) return true;
    if (!requestPath.startsWith(cookiePath)) return false;
    return cookiePath.endsWith('/') || requestPath[cookiePath.length] === '/';
  }

  // `crossSite`: the navigation was started by another origin (the IdP);
  // SameSite=Strict cookies are then withheld, as a browser does when the
  // IdP is on another site (as it is in production).
  header(url, { crossSite = false } = {}) {
    const u = new URL(url);
    const cookies = this.origins.get(u.host);
    if (!cookies) return undefined;
    const now = Date.now();
    const matching = [];
    for (const [key, cookie] of cookies) {
      if (cookie.expires !== undefined && cookie.expires <= now) {
        cookies.delete(key);
        continue;
      }
      if (!CookieJar.pathMatches(cookie.path, u.pathname)) continue;
      if (crossSite && cookie.sameSite === 'strict') continue;
      // Secure cookies are sent anyway: everything here is http://127.0.0.1.
      matching.push(cookie);
    }
    matching.sort((a, b) => b.path.length - a.path.length);
    return matching.length ? matching.map((c) => `${c.name}=${c.value}`).join('; ') : undefined;
  }

  all(host) {
    return [...(this.origins.get(host)?.values() ?? [])];
  }

  clear(host) {
    this.origins.delete(host);
  }
}

// ---------------------------------------------------------------------------
// A browser-ish client: manual redirects and a cookie jar
// ---------------------------------------------------------------------------

class Browser {
  constructor() {
    this.jar = new CookieJar();
  }

  // One request, no redirect following. Returns the Response with `.text`
  // read, `.url` set, and `.setCookies` (the parsed Set-Cookie headers).
  async request(url, {
    method = 'GET', headers = {}, form, body, cookies = true, crossSite = false,
  } = {}) {
    const h = new Headers(headers);
    if (cookies) {
      const cookieHeader = this.jar.header(url, { crossSite });
      if (cookieHeader) h.set('cookie', cookieHeader);
    }
    let payload = body;
    if (form) {
      payload = new URLSearchParams(form).toString();
      h.set('content-type', 'application/x-www-form-urlencoded');
    }
    const res = await send(url, { method, headers: h, body: payload });
    res.requestUrl = url;
    res.setCookies = cookies ? this.jar.store(url, res) : CookieJar.storeNothing(res, url);
    log(`${method} ${url} [cookie: ${h.get('cookie') ?? '-'}] -> ${describe(res)}`);
    return res;
  }

  // A top-level navigation: like request() with the headers a browser sends.
  navigate(url, opts = {}) {
    return this.request(url, {
      ...opts,
      headers: {
        accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8',
        'sec-fetch-mode': 'navigate',
        'sec-fetch-dest': 'document',
        'sec-fetch-site': opts.crossSite ? 'cross-site' : 'same-origin',
        ...(opts.headers ?? {}),
      },
    });
  }

  // Follow redirects (and submit the provider's HTML forms through `onPage`)
  // until a redirect points at the `stopAt` host:port, which is not followed.
  // Returns { stopUrl, trail }.
  async journey(startUrl, { stopAt, onPage, maxSteps = 20 }) {
    const trail = [];
    let res = await this.navigate(startUrl, { crossSite: true });
    trail.push(res);
    for (let step = 0; step < maxSteps; step += 1) {
      if (res.status >= 300 && res.status < 400) {
        const next = new URL(res.headers.get('location'), res.requestUrl);
        if (next.host === stopAt) return { stopUrl: next.toString(), trail };
        res = await this.navigate(next.toString(), { crossSite: next.host !== new URL(res.requestUrl).host });
      } else if (res.status === 401 && loginHop(res)) {
        // Portcullis's login page for page loads: its script moves on to the login link.
        res = await this.navigate(new URL(loginHop(res), res.requestUrl).toString());
      } else if (res.status === 200 && onPage) {
        const submission = await onPage(res);
        if (!submission) throw new Error(`no way forward from page ${res.requestUrl}: ${describe(res)}`);
        res = await this.navigate(submission.action, {
          method: submission.method, form: submission.fields,
        });
      } else {
        throw new Error(`unexpected response at ${res.requestUrl}: ${describe(res)}`);
      }
      trail.push(res);
    }
    throw new Error(`more than ${maxSteps} steps without reaching ${stopAt}`);
  }
}

// The login link of Portcullis's page for page loads without a session, if `res` is one.
function loginHop(res) {
  const href = /<a id="go" href="([^"]+)"/.exec(res.text ?? '')?.[1];
  return href ? unescapeHtml(href) : undefined;
}

CookieJar.storeNothing = (res, url) => res.headers.getSetCookie()
  .map((h) => CookieJar.parse(h, url)).filter(Boolean);

// ---------------------------------------------------------------------------
// HTML forms (enough for the provider's pages)
// ---------------------------------------------------------------------------

function attributes(tag) {
  const attrs = {};
  const re = /([^\s"'<>/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  const inner = tag.replace(/^<\s*[a-z]+/i, '').replace(/\/?>$/, '');
  let m;
  while ((m = re.exec(inner))) {
    attrs[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

function parseForms(html, pageUrl) {
  const forms = [];
  const formRe = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
  let m;
  while ((m = formRe.exec(html))) {
    const open = m[0].match(/^<form\b[^>]*>/i)[0];
    const attrs = attributes(open);
    const form = {
      id: attrs.id,
      method: (attrs.method || 'GET').toUpperCase(),
      action: new URL(attrs.action || pageUrl, pageUrl).toString(),
      inputs: [],
      buttons: [],
    };
    for (const input of m[1].match(/<input\b[^>]*>/gi) ?? []) {
      const a = attributes(input);
      if (a.name) form.inputs.push({ name: a.name, value: a.value ?? '', type: (a.type || 'text').toLowerCase() });
    }
    forms.push(form);
  }
  // Submit buttons, inside a form or pointing at one with form="ID".
  const buttonRe = /<button\b[^>]*>([\s\S]*?)<\/button>/gi;
  while ((m = buttonRe.exec(html))) {
    const a = attributes(m[0].match(/^<button\b[^>]*>/i)[0]);
    if (a.type && a.type.toLowerCase() !== 'submit') continue;
    const button = { name: a.name, value: a.value ?? '', label: m[1].replace(/<[^>]*>/g, '').trim() };
    let owner;
    if (a.form) {
      owner = forms.find((f) => f.id === a.form);
    } else {
      // the form whose source span contains the button
      const at = m.index;
      formRe.lastIndex = 0;
      let f;
      let i = 0;
      while ((f = formRe.exec(html))) {
        if (at > f.index && at < f.index + f[0].length) { owner = forms[i]; break; }
        i += 1;
      }
    }
    if (owner) owner.buttons.push(button);
  }
  return forms;
}

// The user at the provider's pages: sign in as alice, grant consent, confirm
// sign-out.
function userAtProvider(page) {
  const forms = parseForms(page.text, page.requestUrl);
  for (const form of forms) {
    const names = new Set(form.inputs.map((i) => i.name));
    const fields = Object.fromEntries(form.inputs.map((i) => [i.name, i.value]));
    if (names.has('login') && names.has('password')) {
      fields.login = 'alice';
      fields.password = 'any';
      return { action: form.action, method: form.method, fields, kind: 'login' };
    }
    if (fields.prompt === 'consent') {
      return { action: form.action, method: form.method, fields, kind: 'consent' };
    }
    if (names.has('xsrf')) {
      const yes = form.buttons.find((b) => b.name === 'logout' && b.value === 'yes')
        ?? form.buttons.find((b) => b.name);
      if (yes) fields[yes.name] = yes.value;
      return { action: form.action, method: form.method, fields, kind: 'logout' };
    }
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// Echo upstream
// ---------------------------------------------------------------------------

async function startEcho() {
  const seen = [];
  const server = http.createServer((req, res) => {
    const record = { method: req.method, path: req.url, headers: req.headers };
    seen.push(record);
    req.resume();
    req.on('end', () => {
      const body = JSON.stringify(record);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  // A tunnel end: accepts the WebSocket handshake and keeps the connection open until the
  // proxy closes it.
  server.on('upgrade', (req, socket) => {
    const accept = crypto.createHash('sha1')
      .update(`${req.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
      + `Sec-WebSocket-Accept: ${accept}\r\n\r\n`);
    socket.on('error', () => {});
  });
  const port = await listen(server);
  return { port, seen };
}

// ---------------------------------------------------------------------------
// OpenID Provider
// ---------------------------------------------------------------------------



// ---------------------------------------------------------------------------
// Portcullis
// ---------------------------------------------------------------------------

function findBinary() {
  if (process.env.PORTCULLIS_BIN) {
    const bin = path.resolve(process.env.PORTCULLIS_BIN);
    if (!fs.existsSync(bin)) throw new Error(`PORTCULLIS_BIN=${bin} does not exist`);
    return bin;
  }
  for (const profile of ['debug', 'release']) {
    const bin = path.join(REPO, 'target', profile, 'portcullis');
    if (fs.existsSync(bin)) return bin;
  }
  throw new Error(`no Portcullis binary: build it (cargo build) or set PORTCULLIS_BIN; looked in ${REPO}/target/{debug,release}/portcullis`);
}

function writeConfig(dir, { proxyPort, idpIssuer, upstreamPort }) {
  const config = `# written by tests/oidc-provider/acceptance.mjs
listen:
  - address: "${HOST}:${proxyPort}"
metrics: { enabled: false }
upstreams_file: upstreams.yaml
oidc:
  issuer: ${idpIssuer}
  client_id: ${CLIENT_ID}
  client_secret: \${OIDC_CLIENT_SECRET}
  client_auth: client_secret_basic
  scopes: [openid, profile, email, groups]
  public_url: http://${HOST}:${proxyPort}
  claims: { user: preferred_username, groups: groups, email: email }
session:
  store: memory
  key: \${SESSION_KEY}
  max_lifetime: 10h
  inactivity_timeout: 1h
identity_headers: { user: X-Remote-User, groups: X-Remote-Groups, email: X-Remote-Email, access_token: false }
routes:
  - { prefix: /api/, upstream: app, auth: api }
  - { prefix: /tunnel/, upstream: app, auth: login, websocket: true }
  - { prefix: /, upstream: app, auth: login }
`;
  const upstreams = `upstreams:\n  app: { backends: ["${HOST}:${upstreamPort}"] }\n`;
  const configPath = path.join(dir, 'portcullis.yaml');
  fs.writeFileSync(configPath, config);
  fs.writeFileSync(path.join(dir, 'upstreams.yaml'), upstreams);
  return configPath;
}

function portcullisEnv() {
  return {
    ...process.env,
    OIDC_CLIENT_SECRET: CLIENT_SECRET,
    SESSION_KEY: crypto.randomBytes(32).toString('base64'),
    PORTCULLIS_LOG: process.env.PORTCULLIS_LOG ?? 'info',
  };
}

function startPortcullis(bin, configPath, env, logPath) {
  const out = fs.openSync(logPath, 'a');
  const child = spawn(bin, ['run', '--config', configPath], {
    env, stdio: ['ignore', out, out], cwd: path.dirname(configPath),
  });
  fs.closeSync(out);
  children.add(child);
  child.on('exit', () => children.delete(child));
  return child;
}

async function waitForPort(port, child, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`portcullis exited early (code ${child.exitCode}, signal ${child.signalCode})`);
    }
    const connected = await new Promise((resolve) => {
      const socket = net.connect(port, HOST);
      socket.once('connect', () => { socket.destroy(); resolve(true); });
      socket.once('error', () => resolve(false));
    });
    if (connected) return;
    await sleep(100);
  }
  throw new Error(`portcullis did not accept on ${HOST}:${port} within ${timeoutMs} ms`);
}

// ---------------------------------------------------------------------------
// Checks
// ---------------------------------------------------------------------------

const results = [];
let skipReason; // set when the flow cannot run at all: its checks fail fast

async function check(name, fn) {
  if (skipReason) {
    results.push(false);
    console.log(`not ok - ${name}`);
    console.log(`#   skipped: ${skipReason}`);
    return false;
  }
  try {
    const detail = await fn();
    results.push(true);
    console.log(`ok - ${name}${detail ? ` (${detail})` : ''}`);
    return true;
  } catch (err) {
    results.push(false);
    console.log(`not ok - ${name}`);
    for (const line of String(err?.message ?? err).split('\n')) console.log(`#   ${line}`);
    if (VERBOSE && err?.stack) console.log(`#   ${err.stack.split('\n').slice(1, 4).join('\n#   ')}`);
    return false;
  }
}

function sessionCookieNames(setCookies) {
  return setCookies.filter((c) => c.value && !(c.expires !== undefined && c.expires <= Date.now()));
}

async function portcullisChecks({ proxyOrigin, proxyHost, idpIssuer, echo }) {
  const browser = new Browser();
  const state = {};
  const discovery = await (await fetch(`${idpIssuer}/.well-known/openid-configuration`)).json();
  state.authorizationEndpoint = discovery.authorization_endpoint;
  state.endSessionEndpoint = discovery.end_session_endpoint;

  await check('unauthenticated page load is sent to /oauth2/login (a page that keeps the URL fragment)', async () => {
    const res = await browser.navigate(`${proxyOrigin}/console/page`);
    // A page load (Sec-Fetch-Dest: document) gets a page whose script carries the fragment
    // into the login; its link is the same /oauth2/login?redirect=... a redirect would name.
    assert(res.status === 401, `GET /console/page: expected the 401 login page, got ${describe(res)}`);
    const href = loginHop(res);
    assert(href, `no login link in the page: ${res.text.slice(0, 200)}`);
    const loc = new URL(href, proxyOrigin);
    assert(loc.origin === proxyOrigin && loc.pathname === '/oauth2/login',
      `expected Location ${proxyOrigin}/oauth2/login?redirect=..., got ${res.headers.get('location')}`);
    const redirect = loc.searchParams.get('redirect');
    assert(redirect && redirect.includes('/console/page'), `redirect parameter should name /console/page, got ${redirect}`);
    state.loginUrl = loc.toString();
    return `login link: ${loc.pathname}${loc.search}`;
  });

  await check('/oauth2/login sends the browser to the provider with PKCE S256, state and nonce', async () => {
    assert(state.loginUrl, 'no login URL from the previous step');
    const res = await browser.navigate(state.loginUrl);
    assert(res.status === 302 || res.status === 303, `GET ${state.loginUrl}: expected 302, got ${describe(res)}`);
    const loc = new URL(res.headers.get('location'), proxyOrigin);
    const endpoint = new URL(state.authorizationEndpoint);
    assert(loc.origin === endpoint.origin && loc.pathname === endpoint.pathname,
      `expected the provider's authorization endpoint ${state.authorizationEndpoint}, got ${loc}`);
    const p = loc.searchParams;
    const problems = [];
    if (p.get('response_type') !== 'code') problems.push(`response_type=${p.get('response_type')}`);
    if (p.get('client_id') !== CLIENT_ID) problems.push(`client_id=${p.get('client_id')}`);
    if (p.get('redirect_uri') !== `${proxyOrigin}/oauth2/callback`) problems.push(`redirect_uri=${p.get('redirect_uri')}`);
    if (p.get('code_challenge_method') !== 'S256') problems.push(`code_challenge_method=${p.get('code_challenge_method')}`);
    if (!/^[A-Za-z0-9_-]{43}$/.test(p.get('code_challenge') ?? '')) problems.push(`code_challenge=${p.get('code_challenge')}`);
    if (!p.get('state') || p.get('state').length < 16) problems.push(`state=${p.get('state')} (missing or short)`);
    if (!p.get('nonce') || p.get('nonce').length < 16) problems.push(`nonce=${p.get('nonce')} (missing or short)`);
    const scopes = new Set((p.get('scope') ?? '').split(' '));
    for (const s of ['openid', 'profile', 'email', 'groups']) if (!scopes.has(s)) problems.push(`scope lacks ${s}`);
    assert(problems.length === 0, `authorization request ${loc}: ${problems.join(', ')}`);
    state.authorizeUrl = loc.toString();
    state.state = p.get('state');
    state.loginCookies = res.setCookies;
  });

  await check('sign-in and consent at the provider come back to /oauth2/callback with code, state and iss', async () => {
    assert(state.authorizeUrl, 'no authorization URL from the previous step');
    const kinds = [];
    const { stopUrl } = await browser.journey(state.authorizeUrl, {
      stopAt: proxyHost,
      onPage: (p) => {
        const s = userAtProvider(p);
        if (s) kinds.push(s.kind);
        return s;
      },
    });
    const cb = new URL(stopUrl);
    assert(cb.pathname === '/oauth2/callback', `provider redirected to ${stopUrl}, expected /oauth2/callback`);
    assert(cb.searchParams.get('code'), `no code in ${stopUrl}`);
    assert(cb.searchParams.get('state') === state.state, `state ${cb.searchParams.get('state')} != sent ${state.state}`);
    assert(cb.searchParams.get('iss') === idpIssuer, `iss ${cb.searchParams.get('iss')} != ${idpIssuer}`);
    assert(kinds.includes('login'), `the provider never asked to sign in (pages: ${kinds.join(',')})`);
    state.callbackUrl = stopUrl;
    return `pages: ${kinds.join(', ')}`;
  });

  await check('callback redirects to the original page and sets an HttpOnly, SameSite=Lax session cookie', async () => {
    assert(state.callbackUrl, 'no callback URL from the previous step');
    const res = await browser.navigate(state.callbackUrl, { crossSite: true });
    assert(res.status === 302 || res.status === 303, `GET ${state.callbackUrl}: expected 302, got ${describe(res)}`);
    const loc = new URL(res.headers.get('location'), proxyOrigin);
    assert(loc.origin === proxyOrigin && loc.pathname === '/console/page',
      `expected redirect to /console/page, got ${res.headers.get('location')}`);
    const live = sessionCookieNames(res.setCookies);
    assert(live.length > 0, `no cookie set by the callback: ${describe(res)}`);
    const bad = live.filter((c) => !c.httpOnly || c.sameSite !== 'lax');
    assert(bad.length === 0, `session cookie(s) not HttpOnly + SameSite=Lax: ${bad.map((c) => c.raw).join(' | ')}`);
    const secure = live.filter((c) => c.secure);
    assert(secure.length === 0, `cookie(s) marked Secure on a plain-http public_url: ${secure.map((c) => c.raw).join(' | ')}`);
    state.sessionCookies = live.map((c) => ({ name: c.name, value: c.value }));
    state.cookieNames = new Set(live.map((c) => c.name));
    return live.map((c) => c.raw.replace(/=[^;]*/, '=…')).join(' | ');
  });

  await check('signed-in page request reaches the upstream as alice, without the session cookie', async () => {
    assert(state.sessionCookies, 'no session from the previous step');
    const res = await browser.navigate(`${proxyOrigin}/console/page`);
    assert(res.status === 200, `GET /console/page: expected 200, got ${describe(res)}`);
    const seen = JSON.parse(res.text);
    const h = seen.headers;
    const problems = [];
    if (h['x-remote-user'] !== 'alice') problems.push(`x-remote-user=${h['x-remote-user']}`);
    if (h['x-remote-groups'] !== 'staff,desktop-users') problems.push(`x-remote-groups=${h['x-remote-groups']}`);
    if (h['x-remote-email'] !== 'alice@example.com') problems.push(`x-remote-email=${h['x-remote-email']}`);
    const upstreamCookies = (h.cookie ?? '').split(';').map((c) => c.trim().split('=')[0]).filter(Boolean);
    const leaked = upstreamCookies.filter((n) => state.cookieNames.has(n));
    if (leaked.length) problems.push(`session cookie(s) forwarded upstream: ${leaked.join(', ')} (cookie: ${h.cookie})`);
    if (h.authorization) problems.push(`authorization header forwarded upstream: ${h.authorization.slice(0, 20)}…`);
    assert(problems.length === 0, `upstream saw ${JSON.stringify(h)}: ${problems.join('; ')}`);
  });

  await check('spoofed X-Remote-* headers from the client are replaced', async () => {
    assert(state.sessionCookies, 'no session from an earlier step');
    const res = await browser.navigate(`${proxyOrigin}/console/page?spoof=1`, {
      headers: { 'x-remote-user': 'mallory', 'x-remote-groups': 'admins', 'x-remote-email': 'mallory@example.com' },
    });
    assert(res.status === 200, `expected 200, got ${describe(res)}`);
    const h = JSON.parse(res.text).headers;
    assert(h['x-remote-user'] === 'alice' && h['x-remote-groups'] === 'staff,desktop-users'
      && h['x-remote-email'] === 'alice@example.com',
    `upstream saw x-remote-user=${h['x-remote-user']} x-remote-groups=${h['x-remote-groups']} x-remote-email=${h['x-remote-email']}`);
  });

  await check('GET /oauth2/session describes alice', async () => {
    assert(state.sessionCookies, 'no session from an earlier step');
    const res = await browser.request(`${proxyOrigin}/oauth2/session`, { headers: { accept: 'application/json' } });
    assert(res.status === 200, `expected 200, got ${describe(res)}`);
    let body;
    try { body = JSON.parse(res.text); } catch { throw new Error(`not JSON: ${describe(res)}`); }
    const user = body.user?.name ?? body.user?.id ?? body.user ?? body.username ?? body.preferred_username;
    const groups = body.groups ?? body.user?.groups;
    assert(user === 'alice', `user is ${JSON.stringify(user)} in ${res.text}`);
    assert(Array.isArray(groups) && groups.join(',') === 'staff,desktop-users', `groups are ${JSON.stringify(groups)} in ${res.text}`);
    const leaked = [];
    JSON.stringify(body, (key, value) => {
      if (/^(access|refresh|id)_?token$/i.test(key)) leaked.push(key);
      return value;
    });
    assert(leaked.length === 0, `the session document exposes ${leaked.join(', ')}: ${res.text}`);
    return res.text.length > 200 ? `${res.text.slice(0, 200)}…` : res.text;
  });

  await check('POST /oauth2/session/refresh renews the tokens with the refresh token', async () => {
    assert(state.sessionCookies, 'no session from an earlier step');
    const res = await browser.request(`${proxyOrigin}/oauth2/session/refresh`, {
      method: 'POST',
      headers: {
        accept: 'application/json', origin: proxyOrigin, 'sec-fetch-site': 'same-origin', 'sec-fetch-mode': 'cors',
      },
    });
    assert(res.status === 200, `expected 200, got ${describe(res)}`);
    let body;
    try { body = JSON.parse(res.text); } catch { body = undefined; }
    if (body?.tokens && 'refreshed_at' in body.tokens) {
      assert(body.tokens.refreshed_at, `the answer says nothing was refreshed: ${res.text}`);
    }
    const after = await browser.request(`${proxyOrigin}/console/page?after-refresh=1`, { headers: { accept: 'application/json' } });
    assert(after.status === 200, `page after refresh: expected 200, got ${describe(after)}`);
    const h = JSON.parse(after.text).headers;
    assert(h['x-remote-user'] === 'alice', `after refresh upstream saw x-remote-user=${h['x-remote-user']}`);
  });

  await check('API route without a session answers 401 with WWW-Authenticate: Bearer, never a redirect', async () => {
    const before = echo.seen.length;
    const res = await browser.request(`${proxyOrigin}/api/x`, { cookies: false, headers: { accept: 'text/html', 'sec-fetch-mode': 'navigate' } });
    assert(res.status === 401, `expected 401, got ${describe(res)}`);
    const wa = res.headers.get('www-authenticate') ?? '';
    assert(/^Bearer\b/i.test(wa), `WWW-Authenticate is "${wa}"`);
    assert(echo.seen.length === before, `the upstream was called: ${JSON.stringify(echo.seen.slice(before))}`);
    return `WWW-Authenticate: ${wa}`;
  });

  await check('a cross-site GET /oauth2/logout only shows a confirmation page, and the session lives', async () => {
    assert(state.sessionCookies, 'no session from an earlier step');
    const res = await browser.navigate(`${proxyOrigin}/oauth2/logout`, { crossSite: true });
    assert(res.status === 200, `expected the confirmation page, got ${describe(res)}`);
    assert(res.setCookies.length === 0, `the page set cookies: ${res.setCookies.map((c) => c.raw).join(' | ')}`);
    const csp = res.headers.get('content-security-policy') ?? '';
    assert(/frame-ancestors 'none'/.test(csp) && /default-src 'none'/.test(csp), `CSP: ${csp}`);
    const form = parseForms(res.text, res.requestUrl)
      .find((f) => f.method === 'POST' && new URL(f.action).pathname === '/oauth2/logout');
    assert(form, `no logout form on the page: ${res.text}`);
    const still = await browser.request(`${proxyOrigin}/console/page?after-confirmation-page=1`, { headers: { accept: 'application/json' } });
    assert(still.status === 200, `the session after the confirmation page: ${describe(still)}`);
    state.logoutForm = form;
  });

  await check('a cross-site POST /oauth2/logout is refused with 403, and the session lives', async () => {
    assert(state.logoutForm, 'no logout form from the previous step');
    const res = await browser.request(state.logoutForm.action, {
      method: 'POST',
      form: {},
      headers: { accept: 'application/json', origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    assert(res.status === 403, `expected 403, got ${describe(res)}`);
    const still = await browser.request(`${proxyOrigin}/console/page?after-cross-site-post=1`, { headers: { accept: 'application/json' } });
    assert(still.status === 200, `the session after a cross-site POST: ${describe(still)}`);
  });

  await check('the confirmation page\'s button sends the browser to the provider end_session endpoint', async () => {
    assert(state.logoutForm, 'no logout form from an earlier step');
    assert(state.endSessionEndpoint, 'the provider advertises no end_session_endpoint');
    const res = await browser.navigate(state.logoutForm.action, {
      method: 'POST', form: {}, headers: { origin: proxyOrigin },
    });
    assert(res.status === 302 || res.status === 303, `expected 303, got ${describe(res)}`);
    const loc = new URL(res.headers.get('location'), proxyOrigin);
    const endpoint = new URL(state.endSessionEndpoint);
    assert(loc.origin === endpoint.origin && loc.pathname === endpoint.pathname,
      `expected ${state.endSessionEndpoint}, got ${loc}`);
    assert(loc.searchParams.get('id_token_hint'), `no id_token_hint in ${loc}`);
    assert(loc.searchParams.get('post_logout_redirect_uri') === `${proxyOrigin}/oauth2/logout/callback`,
      `post_logout_redirect_uri=${loc.searchParams.get('post_logout_redirect_uri')}`);
    state.endSessionUrl = loc.toString();
    return `state ${loc.searchParams.get('state') ? 'present' : 'absent'}`;
  });

  await check('provider sign-out confirmation returns to /oauth2/logout/callback, which redirects to /', async () => {
    assert(state.endSessionUrl, 'no end_session URL from the previous step');
    const kinds = [];
    const { stopUrl } = await browser.journey(state.endSessionUrl, {
      stopAt: proxyHost,
      onPage: (p) => {
        const s = userAtProvider(p);
        if (s) kinds.push(s.kind);
        return s;
      },
    });
    const cb = new URL(stopUrl);
    assert(cb.pathname === '/oauth2/logout/callback', `provider redirected to ${stopUrl}`);
    assert(kinds.includes('logout'), `no sign-out confirmation at the provider (pages: ${kinds.join(',')})`);
    const res = await browser.navigate(stopUrl, { crossSite: true });
    assert(res.status === 302 || res.status === 303, `GET ${stopUrl}: expected 302, got ${describe(res)}`);
    const loc = new URL(res.headers.get('location'), proxyOrigin);
    assert(loc.origin === proxyOrigin && loc.pathname === '/', `expected redirect to /, got ${res.headers.get('location')}`);
  });

  await check('after logout the old session cookie no longer works', async () => {
    assert(state.sessionCookies, 'no session from an earlier step');
    const cookie = state.sessionCookies.map((c) => `${c.name}=${c.value}`).join('; ');
    const res = await browser.navigate(`${proxyOrigin}/console/page`, { cookies: false, headers: { cookie } });
    assert(res.status === 401 && loginHop(res), `with the old cookie: expected the login page, got ${describe(res)}`);
    const loc = new URL(loginHop(res), proxyOrigin);
    assert(loc.pathname === '/oauth2/login', `expected redirect to /oauth2/login, got ${res.headers.get('location')}`);
    const live = browser.jar.all(proxyHost).filter((c) => state.cookieNames.has(c.name));
    return live.length ? `note: the browser still holds ${live.map((c) => c.name).join(', ')}` : 'session cookie cleared in the browser too';
  });

  // Last: replaying a code makes the provider revoke the tokens issued for it
  // (RFC 6749 4.1.2), which would end the session the checks above use.
  await check('a replayed callback (same code, state and login cookie) does not log in again', async () => {
    assert(state.callbackUrl && state.loginCookies, 'no callback from an earlier step');
    const cookie = state.loginCookies.filter((c) => c.value).map((c) => `${c.name}=${c.value}`).join('; ');
    const res = await browser.navigate(state.callbackUrl, { cookies: false, crossSite: true, headers: cookie ? { cookie } : {} });
    const fresh = sessionCookieNames(res.setCookies)
      .filter((c) => (state.cookieNames ? state.cookieNames.has(c.name) : /session/i.test(c.name)));
    assert(fresh.length === 0, `the replay got a session: ${describe(res)}`);
    const loc = res.headers.get('location');
    assert(!(res.status >= 300 && res.status < 400 && loc && new URL(loc, proxyOrigin).pathname === '/console/page'),
      `the replay was sent on to the page: ${describe(res)}`);
    return `${res.status}${loc ? ` to ${loc}` : ''}`;
  });
}

// A full login through the provider for a new browser; resolves to the browser.
async function signIn({ proxyOrigin, proxyHost }, path) {
  const browser = new Browser();
  const { stopUrl } = await browser.journey(`${proxyOrigin}${path}`, {
    stopAt: proxyHost, onPage: userAtProvider,
  });
  let res = await browser.navigate(stopUrl, { crossSite: true }); // /oauth2/login -> provider
  if (new URL(stopUrl).pathname !== '/oauth2/callback') {
    const next = await browser.journey(res.headers.get('location'), { stopAt: proxyHost, onPage: userAtProvider });
    res = await browser.navigate(next.stopUrl, { crossSite: true });
  }
  assert(res.status === 302, `the callback answered ${describe(res)}`);
  const page = await browser.navigate(new URL(res.headers.get('location'), proxyOrigin).toString());
  assert(page.status === 200, `after login ${path} answered ${describe(page)}`);
  return browser;
}

// Opens a WebSocket through the proxy with the browser's cookies; resolves to the socket.
function openTunnel(browser, proxyOrigin, path) {
  return new Promise((resolve, reject) => {
    const url = new URL(path, proxyOrigin);
    const req = http.request(url, {
      headers: {
        connection: 'Upgrade',
        upgrade: 'websocket',
        'sec-websocket-version': '13',
        'sec-websocket-key': crypto.randomBytes(16).toString('base64'),
        origin: proxyOrigin,
        cookie: browser.jar.header(url.toString()) ?? '',
      },
    });
    req.on('upgrade', (res, socket) => resolve(socket));
    req.on('response', (res) => reject(new Error(`no upgrade: ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
}

// OpenID Connect Back-Channel Logout 1.0 for real: the provider ends the user's session (its
// own sign-out page, no relying party involved) and posts a logout token to Portcullis.
async function backchannelChecks(ctx) {
  const { proxyOrigin, idpIssuer } = ctx;
  const state = {};
  await check('back-channel: signed in, with an open tunnel', async () => {
    state.browser = await signIn(ctx, '/console/bc');
    state.socket = await openTunnel(state.browser, proxyOrigin, '/tunnel/x');
    state.closed = new Promise((resolve) => { state.socket.on('close', resolve); state.socket.on('end', resolve); });
    const res = await state.browser.request(`${proxyOrigin}/api/me`, { headers: { accept: 'application/json' } });
    assert(res.status === 200, `the session does not work: ${describe(res)}`);
  });
  await check('back-channel: signing out at the provider ends the Portcullis session and closes the tunnel', async () => {
    assert(state.browser, 'no session from the previous step');
    const discovery = await (await fetch(`${idpIssuer}/.well-known/openid-configuration`)).json();
    assert(discovery.backchannel_logout_supported === true, 'the provider does not advertise back-channel logout');
    const page = await state.browser.navigate(discovery.end_session_endpoint, { crossSite: true });
    const submission = userAtProvider(page);
    assert(submission?.kind === 'logout', `no sign-out form at the provider: ${describe(page)}`);
    const done = await state.browser.navigate(submission.action, { method: 'POST', form: submission.fields });
    assert(done.status < 500, `provider sign-out answered ${describe(done)}`);
    const started = Date.now();
    let status;
    while (Date.now() - started < 3000) {
      status = (await state.browser.request(`${proxyOrigin}/api/me`, { headers: { accept: 'application/json' } })).status;
      if (status === 401) break;
      await sleep(50);
    }
    assert(status === 401, `the session still works after the provider signed the user out (${status})`);
    const closed = await Promise.race([state.closed.then(() => true), sleep(2000).then(() => false)]);
    assert(closed, 'the tunnel is still open 2 s after the provider signed the user out');
    return `refused after ${Date.now() - started} ms`;
  });
  await check('back-channel: a replayed or forged logout token is refused with 400', async () => {
    const res = await send(`${proxyOrigin}/oauth2/logout/backchannel`, {
      method: 'POST',
      headers: new Headers({ 'content-type': 'application/x-www-form-urlencoded' }),
      body: 'logout_token=eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.',
    });
    assert(res.status === 400, `forged token: ${describe(res)}`);
  });
}

// ---------------------------------------------------------------------------
// --provider-only: a minimal relying party, to check the provider set-up
// ---------------------------------------------------------------------------

async function providerOnlyChecks({ idpIssuer, proxyOrigin, proxyHost }) {
  const browser = new Browser();
  const basic = `Basic ${Buffer.from(`${encodeURIComponent(CLIENT_ID)}:${encodeURIComponent(CLIENT_SECRET)}`).toString('base64')}`;
  const state = {};
  const b64url = (buf) => buf.toString('base64url');

  await check('discovery document', async () => {
    const res = await fetch(`${idpIssuer}/.well-known/openid-configuration`);
    assert(res.status === 200, `status ${res.status}`);
    const d = await res.json();
    state.d = d;
    assert(d.issuer === idpIssuer, `issuer ${d.issuer}`);
    for (const s of ['openid', 'profile', 'email', 'groups']) assert(d.scopes_supported.includes(s), `scope ${s} not supported`);
    assert(d.code_challenge_methods_supported.includes('S256'), 'no S256');
    assert(d.end_session_endpoint, 'no end_session_endpoint');
    assert(d.authorization_response_iss_parameter_supported, 'no iss parameter');
    return `authorization ${d.authorization_endpoint}, token ${d.token_endpoint}, end_session ${d.end_session_endpoint}`;
  });

  await check('PKCE is required', async () => {
    const u = new URL(state.d.authorization_endpoint);
    u.search = new URLSearchParams({
      client_id: CLIENT_ID, response_type: 'code', scope: 'openid', redirect_uri: `${proxyOrigin}/oauth2/callback`, state: 's', nonce: 'n',
    }).toString();
    const { stopUrl } = await browser.journey(u.toString(), { stopAt: proxyHost });
    const err = new URL(stopUrl).searchParams.get('error');
    assert(err === 'invalid_request', `without code_challenge: ${stopUrl}`);
  });

  await check('authorization code flow with login and consent', async () => {
    state.verifier = b64url(crypto.randomBytes(32));
    state.nonce = b64url(crypto.randomBytes(16));
    state.state = b64url(crypto.randomBytes(16));
    const u = new URL(state.d.authorization_endpoint);
    u.search = new URLSearchParams({
      client_id: CLIENT_ID,
      response_type: 'code',
      scope: 'openid profile email groups',
      redirect_uri: `${proxyOrigin}/oauth2/callback`,
      state: state.state,
      nonce: state.nonce,
      code_challenge: b64url(crypto.createHash('sha256').update(state.verifier).digest()),
      code_challenge_method: 'S256',
    }).toString();
    const kinds = [];
    const { stopUrl } = await browser.journey(u.toString(), {
      stopAt: proxyHost,
      onPage: (p) => { const s = userAtProvider(p); if (s) kinds.push(s.kind); return s; },
    });
    const cb = new URL(stopUrl);
    assert(cb.searchParams.get('code'), `no code: ${stopUrl}`);
    assert(cb.searchParams.get('state') === state.state, 'state mismatch');
    assert(cb.searchParams.get('iss') === idpIssuer, `iss ${cb.searchParams.get('iss')}`);
    state.code = cb.searchParams.get('code');
    return `pages: ${kinds.join(', ')}`;
  });

  await check('token endpoint issues id, access and refresh tokens', async () => {
    const res = await fetch(state.d.token_endpoint, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'authorization_code', code: state.code, redirect_uri: `${proxyOrigin}/oauth2/callback`, code_verifier: state.verifier,
      }),
    });
    const body = await res.json();
    assert(res.status === 200, `status ${res.status}: ${JSON.stringify(body)}`);
    assert(body.id_token && body.access_token, `missing tokens: ${Object.keys(body)}`);
    assert(body.refresh_token, `no refresh_token: ${Object.keys(body)}`);
    const claims = JSON.parse(Buffer.from(body.id_token.split('.')[1], 'base64url').toString());
    assert(claims.sub === 'alice-sub' && claims.nonce === state.nonce && claims.aud === CLIENT_ID, `id token ${JSON.stringify(claims)}`);
    state.tokens = body;
    return `id_token claims: ${Object.keys(claims).join(',')}; scope ${body.scope}`;
  });

  await check('userinfo has preferred_username, email and groups', async () => {
    const res = await fetch(state.d.userinfo_endpoint, { headers: { authorization: `Bearer ${state.tokens.access_token}` } });
    const body = await res.json();
    assert(res.status === 200, `status ${res.status}: ${JSON.stringify(body)}`);
    assert(body.sub === 'alice-sub' && body.preferred_username === 'alice' && body.email === 'alice@example.com'
      && JSON.stringify(body.groups) === '["staff","desktop-users"]', JSON.stringify(body));
    return JSON.stringify(body);
  });

  await check('refresh_token grant', async () => {
    const res = await fetch(state.d.token_endpoint, {
      method: 'POST',
      headers: { authorization: basic, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: state.tokens.refresh_token }),
    });
    const body = await res.json();
    assert(res.status === 200 && body.access_token, `status ${res.status}: ${JSON.stringify(body)}`);
    state.tokens = { ...state.tokens, ...body };
    return `rotated: ${body.refresh_token && body.refresh_token !== state.tokens.refresh_token ? 'yes' : 'no'}; new id_token: ${body.id_token ? 'yes' : 'no'}`;
  });

  await check('RP-initiated logout with confirmation returns to post_logout_redirect_uri', async () => {
    const u = new URL(state.d.end_session_endpoint);
    u.search = new URLSearchParams({
      id_token_hint: state.tokens.id_token,
      post_logout_redirect_uri: `${proxyOrigin}/oauth2/logout/callback`,
      state: 'bye',
    }).toString();
    const kinds = [];
    const { stopUrl } = await browser.journey(u.toString(), {
      stopAt: proxyHost,
      onPage: (p) => { const s = userAtProvider(p); if (s) kinds.push(s.kind); return s; },
    });
    const cb = new URL(stopUrl);
    assert(cb.pathname === '/oauth2/logout/callback' && cb.searchParams.get('state') === 'bye', stopUrl);
    assert(kinds.includes('logout'), `pages: ${kinds}`);
  });
}

// ---------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------

async function main() {
  const echo = await startEcho();
  const proxyPort = await freePort();
  const proxyOrigin = `http://${HOST}:${proxyPort}`;
  const proxyHost = `${HOST}:${proxyPort}`;
  const idp = await startProvider({
    proxyOrigin, users: USERS, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, listen, log,
  });
  console.log(`# oidc-provider ${idp.issuer}, echo upstream ${HOST}:${echo.port}, portcullis ${proxyOrigin}`);

  const ctx = {
    proxyOrigin, proxyHost, idpIssuer: idp.issuer, echo,
  };

  if (PROVIDER_ONLY) {
    await providerOnlyChecks(ctx);
    return;
  }

  tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-oidc-'));
  const logPath = path.join(tmpDir, 'portcullis.log');
  const env = portcullisEnv();
  let child;

  const started = await check('portcullis starts with the OIDC config', async () => {
    const bin = findBinary();
    const configPath = writeConfig(tmpDir, { proxyPort, idpIssuer: idp.issuer, upstreamPort: echo.port });
    const checked = spawnSync(bin, ['check', '--config', configPath], { env, encoding: 'utf8', timeout: 30000 });
    assert(checked.status === 0,
      `portcullis check --config ${configPath} exited ${checked.status}:\n${(checked.stdout + checked.stderr).trim()}`);
    child = startPortcullis(bin, configPath, env, logPath);
    await waitForPort(proxyPort, child);
    return path.relative(REPO, bin) || bin;
  });

  if (!started) skipReason = 'portcullis is not running';
  await portcullisChecks(ctx);
  await backchannelChecks(ctx);

  if (results.includes(false) && fs.existsSync(logPath)) {
    const lines = fs.readFileSync(logPath, 'utf8').trimEnd().split('\n');
    console.log(`# last lines of the portcullis log (${logPath}):`);
    for (const line of lines.slice(-40)) console.log(`#   ${line}`);
  }
}

// The closing line CI reads; returns the exit code.
function summary(extraFailures) {
  const passed = results.filter(Boolean).length;
  const failed = results.length - passed + extraFailures;
  console.log(`acceptance: ${passed} passed, ${failed} failed`);
  return failed === 0 && passed > 0 ? 0 : 1;
}

let exitCode = 1;
try {
  await main();
} catch (err) {
  results.push(false);
  console.log(`not ok - harness error: ${err?.message ?? err}`);
  if (err?.stack) for (const line of err.stack.split('\n').slice(1, 6)) console.log(`#   ${line.trim()}`);
} finally {
  await cleanup();
  exitCode = summary(0);
}
process.exit(exitCode);
