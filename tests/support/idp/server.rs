//! The HTTP/1.1 server: accept loop, routing to endpoints, request counting, and the
//! response builders the endpoints share.

use super::*;

pub(super) type Resp = Response<Full<Bytes>>;

pub(super) async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    // Connection tasks live in the set so that aborting this task (stop/drop)
    // also closes every open connection.
    let mut conns = tokio::task::JoinSet::new();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, _) = match accepted {
            Ok(a) => a,
            Err(_) => {
                // e.g. EMFILE; back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let shared = shared.clone();
        conns.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

pub(super) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    let query = req.uri().query().unwrap_or("").to_string();
    let headers = req.headers().clone();
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "request body unreadable or too large",
            )
        }
    };

    // Failure injection (still counted below by the endpoint counters).
    let injected = {
        let mut st = lock(&shared.state);
        count(&mut st, &path, &method, &body);
        match st.failures.get_mut(&path) {
            Some(f) if f.remaining > 0 => {
                f.remaining -= 1;
                Some(f.status)
            }
            _ => None,
        }
    };
    if let Some(status) = injected {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return json_error(status, "server_error", "injected failure");
    }

    let is_get = method == Method::GET || method == Method::HEAD;
    let is_post = method == Method::POST;
    // Parameters: query for GET, form body for POST.
    let raw_params = if is_post {
        String::from_utf8_lossy(&body).into_owned()
    } else {
        query
    };

    match path.as_str() {
        "/.well-known/openid-configuration" if is_get => discovery(&shared),
        "/jwks" if is_get => {
            let st = lock(&shared.state);
            json_response(StatusCode::OK, &jwks_doc(&st))
        }
        "/authorize" if is_get || is_post => authorize(&shared, &raw_params),
        "/token" if is_post => token(&shared, &headers, &raw_params),
        "/userinfo" if is_get || is_post => userinfo(&shared, &headers),
        "/end_session" if is_get || is_post => end_session(&shared, &raw_params),
        "/.well-known/openid-configuration"
        | "/jwks"
        | "/authorize"
        | "/token"
        | "/userinfo"
        | "/end_session" => {
            let mut r = json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request",
                "method not allowed",
            );
            r.headers_mut()
                .insert("allow", HeaderValue::from_static("GET, POST"));
            r
        }
        _ => json_error(StatusCode::NOT_FOUND, "not_found", "no such endpoint"),
    }
}

pub(super) fn count(st: &mut State, path: &str, method: &Method, body: &[u8]) {
    let c = &mut st.counters;
    match path {
        "/.well-known/openid-configuration" => c.discovery_requests += 1,
        "/jwks" => c.jwks_requests += 1,
        "/authorize" => c.authorize_requests += 1,
        "/userinfo" => c.userinfo_requests += 1,
        "/end_session" => c.end_session_requests += 1,
        "/token" if method == Method::POST => {
            let grant = form_urlencoded::parse(body)
                .find(|(k, _)| k == "grant_type")
                .map(|(_, v)| v.into_owned());
            match grant.as_deref() {
                Some("refresh_token") => c.refresh_requests += 1,
                _ => c.token_requests += 1,
            }
        }
        _ => {}
    }
}

/// Parses `a=b&c=d`; a repeated parameter is an error (RFC 6749 §3.1).
pub(super) fn parse_params(raw: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
        if out.insert(k.to_string(), v.into_owned()).is_some() {
            return Err(format!("parameter {k} repeated"));
        }
    }
    Ok(out)
}

pub(super) fn no_store(mut r: Resp) -> Resp {
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

pub(super) fn json_response(status: StatusCode, body: &Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(super) fn json_error(status: StatusCode, error: &str, description: &str) -> Resp {
    no_store(json_response(
        status,
        &json!({ "error": error, "error_description": description }),
    ))
}

pub(super) fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) fn html_page(status: StatusCode, title: &str, message: &str) -> Resp {
    let body = format!(
        "<!doctype html><html><head><title>{t}</title></head><body><h1>{t}</h1><p>{m}</p></body></html>",
        t = html_escape(title),
        m = html_escape(message)
    );
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    no_store(r)
}

pub(super) fn redirect(base: &str, params: &[(&str, &str)]) -> Resp {
    let mut ser = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        ser.append_pair(k, v);
    }
    let qs = ser.finish();
    let location = if qs.is_empty() {
        base.to_string()
    } else if base.contains('?') {
        format!("{base}&{qs}")
    } else {
        format!("{base}?{qs}")
    };
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            r.headers_mut().insert(LOCATION, v);
            no_store(r)
        }
        Err(_) => html_page(
            StatusCode::BAD_REQUEST,
            "Bad redirect",
            "redirect target is not a valid header value",
        ),
    }
}
