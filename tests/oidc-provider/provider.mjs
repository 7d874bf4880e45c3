// The certified provider the acceptance and browser tests run against: oidc-provider (npm),
// configured as a production provider would be for Portcullis (code flow with PKCE required,
// refresh tokens, RP-initiated and back-channel logout), with sign-in and consent pages of
// its own (user names from `users`, any non-empty password).

import crypto from 'node:crypto';
import http from 'node:http';

import Provider from 'oidc-provider';

export function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > 1 << 20) {
        reject(new Error('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function escapeHtml(value) {
  return String(value)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

export function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`
    + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

export async function startProvider({
  proxyOrigin, users, clientId, clientSecret, listen, log = () => {}, host = '127.0.0.1',
}) {
  const USERS = users;
  const CLIENT_ID = clientId;
  const CLIENT_SECRET = clientSecret;
  const HOST = host;
  const server = http.createServer();
  const port = await listen(server);
  const issuer = `http://${HOST}:${port}`;

  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'acceptance-rs256', use: 'sig', alg: 'RS256' };

  const accountsById = new Map(Object.values(USERS).map((u) => [u.accountId, u]));

  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: CLIENT_SECRET,
      redirect_uris: [`${proxyOrigin}/oauth2/callback`],
      post_logout_redirect_uris: [`${proxyOrigin}/oauth2/logout/callback`],
      backchannel_logout_uri: `${proxyOrigin}/oauth2/logout/backchannel`,
      backchannel_logout_session_required: true,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    async findAccount(_ctx, id) {
      const user = accountsById.get(id);
      if (!user) return undefined;
      return {
        accountId: user.accountId,
        async claims() { return { ...user.claims }; },
      };
    },
    claims: {
      openid: ['sub'],
      profile: ['preferred_username', 'name'],
      email: ['email'],
      groups: ['groups'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
    pkce: { required: () => true },
    // Refresh tokens for every client allowed the grant, offline_access or not.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: 600,
      Interaction: 600,
      RefreshToken: 3600,
      Session: 3600,
    },
    jwks: { keys: [signingKey] },
    // The interaction pages are served below (devInteractions would use the
    // typed login name as the subject; here login "alice" is sub "alice-sub").
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    features: {
      devInteractions: { enabled: false },
      backchannelLogout: { enabled: true },
      rpInitiatedLogout: {
        enabled: true,
        async logoutSource(ctx, form) {
          ctx.type = 'html';
          ctx.body = page('Sign out?', `${form}`
            + '<button type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>'
            + '<button type="submit" form="op.logoutForm">No, stay signed in</button>');
        },
        async postLogoutSuccessSource(ctx) {
          ctx.type = 'html';
          ctx.body = page('Signed out', '<p>You are signed out.</p>');
        },
      },
    },
    // OpenID Connect Core 5.4: claims asked for with scope values come from the
    // userinfo endpoint when an access token is issued; oidc-provider's default
    // (conformIdTokenClaims: true) keeps them out of the ID token of the code
    // flow. ID_TOKEN_CLAIMS=1 puts them in the ID token too, as Keycloak does.
    conformIdTokenClaims: process.env.ID_TOKEN_CLAIMS !== '1',
    clientBasedCORS: () => false,
    // The provider refuses to call special-use addresses (SSRF protection); everything here is
    // on loopback, so its back-channel logout calls to Portcullis go out without that guard.
    fetch: (url, options) => {
      const { dispatcher, ...rest } = options;
      return globalThis.fetch(url, rest);
    },
    async renderError(ctx, out, error) {
      ctx.type = 'html';
      ctx.body = page('Provider error', `<pre>${escapeHtml(JSON.stringify(out))}</pre>`);
      log(`provider error: ${error?.stack ?? error}`);
    },
  });
  provider.on('server_error', (_ctx, err) => console.log(`# provider server_error: ${err.stack}`));
  provider.on('backchannel.error', (_ctx, err) => console.log(`# provider back-channel logout failed: ${err.message} ${err.cause?.message ?? ""} ${err.cause?.code ?? ""}`));

  const providerCallback = provider.callback();
  const interactionPath = /^\/interaction\/([A-Za-z0-9_-]+)$/;

  async function interaction(req, res) {
    const details = await provider.interactionDetails(req, res);
    const { uid, prompt, params, session } = details;
    const send = (status, html) => {
      res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    };
    const loginForm = (error) => page('Sign in', `${error ? `<p class="error">${escapeHtml(error)}</p>` : ''}`
      + `<form method="post" action="/interaction/${uid}">`
      + '<input type="hidden" name="prompt" value="login"/>'
      + '<input required type="text" name="login" placeholder="login"/>'
      + '<input required type="password" name="password" placeholder="password"/>'
      + '<button type="submit">Sign in</button></form>');
    const consentForm = () => page('Authorize', `<p>${escapeHtml(params.client_id)} asks for: `
      + `${escapeHtml((details.prompt.details.missingOIDCScope ?? []).join(' '))}</p>`
      + `<form method="post" action="/interaction/${uid}">`
      + '<input type="hidden" name="prompt" value="consent"/>'
      + '<button type="submit">Continue</button></form>');

    if (req.method === 'GET') {
      if (prompt.name === 'login') return send(200, loginForm());
      if (prompt.name === 'consent') return send(200, consentForm());
      return send(501, page('Not implemented', escapeHtml(prompt.name)));
    }
    if (req.method !== 'POST') return send(405, page('Method not allowed', ''));

    const body = new URLSearchParams(await readBody(req));
    if (body.get('prompt') === 'login' && prompt.name === 'login') {
      const user = USERS[body.get('login') ?? ''];
      if (!user || !body.get('password')) return send(200, loginForm('unknown user or empty password'));
      return provider.interactionFinished(req, res, { login: { accountId: user.accountId } },
        { mergeWithLastSubmission: false });
    }
    if (body.get('prompt') === 'consent' && prompt.name === 'consent') {
      const grant = details.grantId
        ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
      const missing = prompt.details;
      if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
      if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
      const grantId = await grant.save();
      return provider.interactionFinished(req, res, { consent: { grantId } },
        { mergeWithLastSubmission: true });
    }
    return send(400, page('Bad request', 'the form does not match the pending prompt'));
  }

  server.on('request', (req, res) => {
    const url = new URL(req.url, issuer);
    if (interactionPath.test(url.pathname)) {
      interaction(req, res).catch((err) => {
        log(`interaction error: ${err.stack}`);
        if (!res.headersSent) {
          res.writeHead(400, { 'content-type': 'text/html; charset=utf-8' });
          res.end(page('Interaction error', `<pre>${escapeHtml(err.message)}</pre>`));
        } else {
          res.end();
        }
      });
      return;
    }
    providerCallback(req, res);
  });

  return { provider, port, issuer };
}
