// Single sign-on in a real browser against the certified provider: an SSO server and two SSO
// proxies (a.example.test, b.example.test), each a Portcullis over TLS, sharing a real
// redis-server; Chromium resolves *.example.test to loopback. One login through A reaches B
// with no provider round trip; logout on B ends the session on A and closes A's tunnel.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { chromium } from 'playwright-core';

import { startProvider } from '../oidc-provider/provider.mjs';

const DOMAIN = 'example.test';

// A CA and one certificate for the three host names, made with the openssl CLI.
function certificates(dir) {
  const run = (...args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '1', '-subj', '/CN=Portcullis browser test CA');
  run('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', `/CN=${DOMAIN}`);
  fs.writeFileSync(path.join(dir, 'san.ext'), `subjectAltName=DNS:sso.${DOMAIN},DNS:a.${DOMAIN},DNS:b.${DOMAIN}\n`);
  run('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '1', '-extfile', 'san.ext');
  return { ca: path.join(dir, 'ca.pem'), cert: path.join(dir, 'leaf.pem'), key: path.join(dir, 'leaf.key') };
}

export async function ssoScenario(h) {
  const {
    step, shot, listen, freePort, waitForPort, spawnTracked, findBinary, cleanups, startUpstream, users,
  } = h;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'portcullis-sso-browser-'));
  cleanups.push(async () => fs.rmSync(dir, { recursive: true, force: true }));
  const ports = { sso: await freePort(), a: await freePort(), b: await freePort(), redis: await freePort() };
  const origin = (h2) => `https://${h2}.${DOMAIN}:${ports[h2]}`;
  let t;
  const ok = await step('sso: a server and two proxies over TLS, sharing redis-server, start', async () => {
    const tls = certificates(dir);
    spawnTracked('redis-server', ['--port', String(ports.redis), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { stdio: 'ignore' });
    await waitForPort(ports.redis);
    const upstreamPort = await startUpstream();
    const idp = await startProvider({
      proxyOrigin: origin('sso'), users, clientId: 'portcullis', clientSecret: 'sso-secret', listen,
    });
    const key = Buffer.from(Array.from({ length: 32 }, (_, i) => 255 - i)).toString('base64');
    const common = (h2) => `listen:
  - address: "127.0.0.1:${ports[h2]}"
    tls: { cert: "${tls.cert}", key: "${tls.key}" }
metrics: { enabled: false }
upstreams_file: upstreams.yaml
session:
  key: "${key}"
  store: redis
  redis: { url: "redis://127.0.0.1:${ports.redis}" }
`;
    const upstreams = `upstreams:\n  app: { backends: ["127.0.0.1:${upstreamPort}"] }\ndesktops:\n  alice: { backend: "127.0.0.1:${upstreamPort}", owner: alice }\n`;
    const configs = {
      sso: `${common('sso')}oidc:
  issuer: ${idp.issuer}
  client_id: portcullis
  client_secret: sso-secret
  public_url: ${origin('sso')}
  scopes: [openid, profile, email, groups]
sso: { mode: server, domain: ${DOMAIN} }
`,
    };
    for (const p of ['a', 'b']) {
      configs[p] = `${common(p)}oidc:
  issuer: ${idp.issuer}
  client_id: portcullis
  public_url: ${origin(p)}
  scopes: [openid, profile, email, groups]
sso: { mode: proxy, domain: ${DOMAIN}, server_url: "${origin('sso')}", server_address: "127.0.0.1:${ports.sso}" }
routes:
  - { prefix: /api/, upstream: app, auth: api }
  - { prefix: "/desktop/{id}/", desktops: true, auth: login, allow: owner, websocket: true }
  - { prefix: /console/, upstream: app, auth: login }
`;
    }
    for (const [name, config] of Object.entries(configs)) {
      const d = path.join(dir, name);
      fs.mkdirSync(d);
      fs.writeFileSync(path.join(d, 'portcullis.yaml'), config);
      fs.writeFileSync(path.join(d, 'upstreams.yaml'), upstreams);
      const log = fs.openSync(path.join(d, 'portcullis.log'), 'a');
      spawnTracked(findBinary(), ['run', '--config', path.join(d, 'portcullis.yaml')],
        { stdio: ['ignore', log, log], env: { ...process.env, SSL_CERT_FILE: tls.ca } });
    }
    await Promise.all(['sso', 'a', 'b'].map((n) => waitForPort(ports[n])));
    const browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', `--host-resolver-rules=MAP *.${DOMAIN} 127.0.0.1`],
    });
    cleanups.push(() => browser.close());
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    t = { idp, context, providerRequests: 0 };
    context.on('request', (r) => { if (r.url().startsWith(idp.issuer)) t.providerRequests += 1; });
  });
  if (!ok) return;

  const page = await t.context.newPage();
  const deepLink = `${origin('a')}/console/reports?id=7#frag`;
  await step('sso: a deep link on A goes through the server and the provider and lands back on it exactly', async () => {
    await page.goto(deepLink);
    await page.waitForSelector('input[name=login]', { timeout: 15000 });
    await page.fill('input[name=login]', 'alice');
    await page.fill('input[name=password]', 'any');
    await page.click('button[type=submit]');
    if (await page.locator('input[name=prompt][value=consent]').count()) await page.click('button[type=submit]');
    await page.waitForURL((u) => u.href.startsWith(origin('a')), { timeout: 15000 });
    await page.waitForLoadState('load');
    assert(page.url() === deepLink, `landed on ${page.url()}`);
    assert((await page.textContent('#who')).includes('alice'), 'A does not show alice');
    await shot(page, 'sso-a-after-login');
  });

  await step('sso: B serves alice at once, with no request to the provider', async () => {
    const before = t.providerRequests;
    const b = await t.context.newPage();
    await b.goto(`${origin('b')}/console/`);
    await b.waitForURL((u) => u.href.startsWith(`${origin('b')}/console/`), { timeout: 15000 });
    assert((await b.textContent('#who')).includes('alice'), 'B does not show alice');
    assert(t.providerRequests === before, `${t.providerRequests - before} requests went to the provider`);
    const cookies = (await t.context.cookies(origin('b'))).map((c) => c.name);
    assert(cookies.includes('__Host-portcullis_sso_binding') && cookies.includes('__Secure-portcullis_sso'), cookies.join(','));
    await shot(b, 'sso-b-no-login');
    t.b = b;
  });

  await step('sso: logout on B ends the session on A and closes the tunnel open on A', async () => {
    const desktop = await t.context.newPage();
    await desktop.goto(`${origin('a')}/desktop/alice/`);
    await desktop.waitForFunction(() => document.getElementById('state')?.textContent.startsWith('open'), null, { timeout: 10000 });
    await Promise.all([t.b.waitForNavigation(), t.b.click('form[action="/oauth2/logout"] button')]);
    const yes = t.b.locator('button[name=logout][value=yes]');
    if (await yes.count()) await yes.click();
    await desktop.waitForFunction(() => document.getElementById('state')?.textContent.startsWith('closed'), null, { timeout: 5000 });
    const status = await desktop.evaluate(async () => (await fetch('/api/x', { headers: { accept: 'application/json' } })).status);
    assert(status === 401, `A's API after logout on B: ${status}`);
    await shot(desktop, 'sso-a-tunnel-closed-after-logout-on-b');
  });
}

function assert(condition, message) {
  if (!condition) throw new Error(message);
}
