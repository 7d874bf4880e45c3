//! A development OpenID provider for `portcullis demo`, NOT for production: a login page that
//! lists the demo users instead of asking for a password. It binds loopback only and exists
//! only behind the `demo` subcommand; no config key can start it.
//!
//! It speaks the authorization-code flow as certified providers do, so the proxy runs its
//! production code path against it: discovery, JWKS, `/authorize` (PKCE S256 required, exact
//! `redirect_uri`), `/token` (authorization_code and rotating refresh_token grants,
//! `client_secret_basic` or `_post`), `/userinfo`, `/end_session`. Tokens are real RS256 JWTs
//! from a key made at start.

use super::http::{form, html, json, query, redirect, text, Request, Response};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Short, so that a demo session shows a refresh within minutes.
const ACCESS_TOKEN_SECS: u64 = 120;
const CODE_TTL: Duration = Duration::from_secs(60);

pub struct DemoUser {
    pub name: &'static str,
    pub full_name: &'static str,
    pub groups: &'static [&'static str],
}

pub const USERS: &[DemoUser] = &[
    DemoUser {
        name: "alice",
        full_name: "Alice Admin",
        groups: &["admins", "staff"],
    },
    DemoUser {
        name: "bob",
        full_name: "Bob Builder",
        groups: &["staff"],
    },
    DemoUser {
        name: "eve",
        full_name: "Eve Example",
        groups: &["guests"],
    },
];

/// The one registered client.
pub struct Client {
    pub id: String,
    pub secret: String,
    /// Exact-match lists, as OpenID Connect requires.
    pub redirect_uris: Vec<String>,
    pub post_logout_redirect_uris: Vec<String>,
}

struct Code {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    user: &'static DemoUser,
    sid: String,
    issued: Instant,
}

struct Refresh {
    user: &'static DemoUser,
    sid: String,
}

pub struct Idp {
    pub issuer: String,
    client: Client,
    key: EncodingKey,
    kid: String,
    jwk: Value,
    decoding: jsonwebtoken::DecodingKey,
    codes: Mutex<HashMap<String, Code>>,
    refresh_tokens: Mutex<HashMap<String, Refresh>>,
}

impl Idp {
    /// Makes a fresh RS256 key; `issuer` is the URL browsers and the proxy reach it at.
    pub fn new(issuer: String, client: Client) -> Result<Idp, String> {
        let private = rsa::RsaPrivateKey::new(&mut rsa::rand_core::OsRng, 2048)
            .map_err(|e| format!("demo provider key: {e}"))?;
        let der = private
            .to_pkcs1_der()
            .map_err(|e| format!("demo provider key: {e}"))?;
        let key = EncodingKey::from_rsa_der(der.as_bytes());
        let kid = random_token(8);
        let (n, e) = (
            URL_SAFE_NO_PAD.encode(private.n().to_bytes_be()),
            URL_SAFE_NO_PAD.encode(private.e().to_bytes_be()),
        );
        let decoding = jsonwebtoken::DecodingKey::from_rsa_components(&n, &e)
            .map_err(|e| format!("demo provider key: {e}"))?;
        let jwk = json!({ "kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": n, "e": e });
        Ok(Idp {
            issuer,
            client,
            key,
            kid,
            jwk,
            decoding,
            codes: Mutex::new(HashMap::new()),
            refresh_tokens: Mutex::new(HashMap::new()),
        })
    }

    pub fn answer(&self, req: &Request) -> Response {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/.well-known/openid-configuration") => json(200, &self.discovery()),
            ("GET", "/jwks") => json(200, &json!({ "keys": [self.jwk] })),
            ("GET", "/authorize") => self.authorize_page(&query(req)),
            ("POST", "/authorize") => self.authorize_submit(&form(req)),
            ("POST", "/token") => self.token(req),
            ("GET", "/userinfo") => self.userinfo(req),
            ("GET", "/end_session") => self.end_session(&query(req)),
            ("GET", "/") => html(200, &page("Portcullis demo provider", "<p>A development OpenID provider for <code>portcullis demo</code>. Not for production.</p>")),
            _ => text(404, "not found"),
        }
    }

    fn discovery(&self) -> Value {
        let at = |p: &str| format!("{}{p}", self.issuer);
        json!({
            "issuer": self.issuer,
            "authorization_endpoint": at("/authorize"),
            "token_endpoint": at("/token"),
            "userinfo_endpoint": at("/userinfo"),
            "jwks_uri": at("/jwks"),
            "end_session_endpoint": at("/end_session"),
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email", "groups"],
            "claims_supported": ["sub", "preferred_username", "name", "email", "groups"],
            "authorization_response_iss_parameter_supported": true,
        })
    }

    /// Checks an authorization request; the error page never redirects to an unchecked URI.
    fn check_authorize(&self, p: &HashMap<String, String>) -> Result<(), String> {
        let get = |k: &str| p.get(k).map(String::as_str).unwrap_or("");
        if get("client_id") != self.client.id {
            return Err("unknown client_id".into());
        }
        if !self
            .client
            .redirect_uris
            .iter()
            .any(|u| u == get("redirect_uri"))
        {
            return Err("redirect_uri is not registered for this client".into());
        }
        if get("response_type") != "code" {
            return Err("only response_type=code is supported".into());
        }
        if !get("scope").split(' ').any(|s| s == "openid") {
            return Err("scope must include openid".into());
        }
        if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
            return Err("PKCE with S256 is required".into());
        }
        Ok(())
    }

    fn authorize_page(&self, p: &HashMap<String, String>) -> Response {
        if let Err(why) = self.check_authorize(p) {
            return html(
                400,
                &page("Invalid request", &format!("<p>{}</p>", escape(&why))),
            );
        }
        let hidden: String = [
            "client_id",
            "redirect_uri",
            "response_type",
            "scope",
            "state",
            "nonce",
            "code_challenge",
            "code_challenge_method",
        ]
        .iter()
        .filter_map(|k| p.get(*k).map(|v| (k, v)))
        .map(|(k, v)| {
            format!(
                "<input type=\"hidden\" name=\"{k}\" value=\"{}\">",
                escape(v)
            )
        })
        .collect();
        let buttons: String = USERS
            .iter()
            .map(|u| {
                format!(
                    "<button type=\"submit\" name=\"user\" value=\"{n}\"><b>{n}</b><span>{full} · {groups}</span></button>",
                    n = u.name,
                    full = u.full_name,
                    groups = u.groups.join(", ")
                )
            })
            .collect();
        html(
            200,
            &page(
                "Sign in (demo provider)",
                &format!(
                    "<p class=\"warn\">Development provider of <code>portcullis demo</code>: no passwords, not for production.</p>\
                     <p>Pick a user:</p><form method=\"post\" action=\"/authorize\">{hidden}{buttons}</form>"
                ),
            ),
        )
    }

    fn authorize_submit(&self, p: &HashMap<String, String>) -> Response {
        if let Err(why) = self.check_authorize(p) {
            return html(
                400,
                &page("Invalid request", &format!("<p>{}</p>", escape(&why))),
            );
        }
        let Some(user) = USERS
            .iter()
            .find(|u| Some(u.name) == p.get("user").map(String::as_str))
        else {
            return html(400, &page("Invalid request", "<p>unknown user</p>"));
        };
        let code = random_token(32);
        let Some(redirect_uri) = p.get("redirect_uri").cloned() else {
            return html(400, &page("Invalid request", "<p>no redirect_uri</p>"));
        };
        let mut codes = self.codes.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|_, c| c.issued.elapsed() < CODE_TTL);
        codes.insert(
            code.clone(),
            Code {
                client_id: self.client.id.clone(),
                redirect_uri: redirect_uri.clone(),
                challenge: p.get("code_challenge").cloned().unwrap_or_default(),
                nonce: p.get("nonce").cloned(),
                user,
                sid: random_token(16),
                issued: Instant::now(),
            },
        );
        let Ok(mut target) = url::Url::parse(&redirect_uri) else {
            return html(
                400,
                &page("Invalid request", "<p>redirect_uri is not a URL</p>"),
            );
        };
        {
            let mut q = target.query_pairs_mut();
            q.append_pair("code", &code);
            if let Some(state) = p.get("state") {
                q.append_pair("state", state);
            }
            q.append_pair("iss", &self.issuer);
        }
        redirect(302, target.as_str())
    }

    /// `client_secret_basic` or `client_secret_post`, not both.
    fn client_authenticated(&self, req: &Request, p: &HashMap<String, String>) -> bool {
        let basic = req.header("authorization").and_then(|v| {
            let encoded = v.strip_prefix("Basic ")?;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .ok()?;
            let text = String::from_utf8(decoded).ok()?;
            let (id, secret) = text.split_once(':')?;
            let unescape = |s: &str| {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
            };
            Some((unescape(id)?, unescape(secret)?))
        });
        let posted = p
            .get("client_secret")
            .map(|s| (p.get("client_id").cloned().unwrap_or_default(), s.clone()));
        let (id, secret) = match (basic, posted) {
            (Some(b), None) | (None, Some(b)) => b,
            _ => return false,
        };
        id == self.client.id && secret == self.client.secret
    }

    fn token(&self, req: &Request) -> Response {
        let p = form(req);
        let error = |code: &str| json(400, &json!({ "error": code }));
        if !self.client_authenticated(req, &p) {
            return json(401, &json!({ "error": "invalid_client" }));
        }
        match p.get("grant_type").map(String::as_str) {
            Some("authorization_code") => {
                let code = p.get("code").and_then(|c| {
                    self.codes
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(c)
                });
                let Some(code) = code else {
                    return error("invalid_grant");
                };
                let verifier = p.get("code_verifier").map(String::as_str).unwrap_or("");
                let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
                if code.issued.elapsed() >= CODE_TTL
                    || code.client_id != self.client.id
                    || p.get("redirect_uri") != Some(&code.redirect_uri)
                    || challenge != code.challenge
                {
                    return error("invalid_grant");
                }
                self.issue(code.user, &code.sid, code.nonce.as_deref())
            }
            Some("refresh_token") => {
                let old = p.get("refresh_token").and_then(|t| {
                    self.refresh_tokens
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .remove(t)
                });
                match old {
                    Some(r) => self.issue(r.user, &r.sid, None),
                    None => error("invalid_grant"),
                }
            }
            _ => error("unsupported_grant_type"),
        }
    }

    fn issue(&self, user: &'static DemoUser, sid: &str, nonce: Option<&str>) -> Response {
        let now = crate::clock::now_secs();
        let sub = format!("demo-{}", user.name);
        let profile = json!({
            "preferred_username": user.name, "name": user.full_name,
            "email": format!("{}@demo.portcullis.test", user.name), "groups": user.groups,
        });
        let mut id_claims = json!({
            "iss": self.issuer, "sub": sub, "aud": self.client.id, "iat": now, "exp": now + 3600,
            "sid": sid, "auth_time": now,
        });
        merge(&mut id_claims, &profile);
        if let Some(n) = nonce {
            id_claims["nonce"] = json!(n);
        }
        let mut access_claims = json!({
            "iss": self.issuer, "sub": sub, "aud": self.client.id, "client_id": self.client.id,
            "iat": now, "exp": now + ACCESS_TOKEN_SECS, "scope": "openid profile email groups",
            "jti": random_token(16),
        });
        merge(&mut access_claims, &profile);
        let (Some(id_token), Some(access_token)) = (
            self.sign(&id_claims, "JWT"),
            self.sign(&access_claims, "at+jwt"),
        ) else {
            return json(500, &json!({ "error": "server_error" }));
        };
        let refresh = random_token(32);
        self.refresh_tokens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                refresh.clone(),
                Refresh {
                    user,
                    sid: sid.to_string(),
                },
            );
        json(
            200,
            &json!({
                "access_token": access_token, "token_type": "Bearer", "expires_in": ACCESS_TOKEN_SECS,
                "id_token": id_token, "refresh_token": refresh, "scope": "openid profile email groups",
            }),
        )
    }

    fn sign(&self, claims: &Value, typ: &str) -> Option<String> {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some(typ.to_string());
        jsonwebtoken::encode(&header, claims, &self.key).ok()
    }

    fn userinfo(&self, req: &Request) -> Response {
        let token = req
            .header("authorization")
            .and_then(|v| v.strip_prefix("Bearer "));
        let Some(token) = token else {
            return json(401, &json!({ "error": "invalid_token" }));
        };
        let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
        validation.set_audience(&[&self.client.id]);
        validation.set_issuer(&[&self.issuer]);
        match jsonwebtoken::decode::<Value>(token, &self.decoding, &validation) {
            Ok(data) => {
                let c = data.claims;
                json(
                    200,
                    &json!({
                        "sub": c["sub"], "preferred_username": c["preferred_username"], "name": c["name"],
                        "email": c["email"], "groups": c["groups"],
                    }),
                )
            }
            Err(_) => json(401, &json!({ "error": "invalid_token" })),
        }
    }

    /// RP-initiated logout: back to a registered `post_logout_redirect_uri` only.
    fn end_session(&self, p: &HashMap<String, String>) -> Response {
        match p.get("post_logout_redirect_uri") {
            Some(uri) if self.client.post_logout_redirect_uris.contains(uri) => {
                let mut target = match url::Url::parse(uri) {
                    Ok(u) => u,
                    Err(_) => return html(400, &page("Invalid request", "")),
                };
                if let Some(state) = p.get("state") {
                    target.query_pairs_mut().append_pair("state", state);
                }
                redirect(302, target.as_str())
            }
            Some(_) => html(
                400,
                &page(
                    "Invalid request",
                    "<p>post_logout_redirect_uri is not registered</p>",
                ),
            ),
            None => html(
                200,
                &page(
                    "Signed out",
                    "<p>You are signed out of the demo provider.</p>",
                ),
            ),
        }
    }
}

fn merge(into: &mut Value, from: &Value) {
    if let (Some(into), Some(from)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in from {
            into.insert(k.clone(), v.clone());
        }
    }
}

pub fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title><style>\
         body{{font:16px/1.5 system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;color:#1d2330}}\
         h1{{font-size:1.4rem}} .warn{{background:#fff4d6;border:1px solid #e8c36a;padding:.5rem .75rem;border-radius:6px}}\
         button{{display:block;width:100%;text-align:left;margin:.5rem 0;padding:.75rem 1rem;border:1px solid #c9cfdb;\
         border-radius:8px;background:#f7f8fb;font:inherit;cursor:pointer}} button:hover{{background:#eef1f7}}\
         button span{{display:block;color:#5b6475;font-size:.9rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    )
}

#[cfg(test)]
mod tests;
