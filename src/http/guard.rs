//! What every request meets before its route: the `Host` check (a page
//! in a browser reaching a loopback server through DNS rebinding carries
//! its own name), a deadline on the body, and the security headers on
//! every answer.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;

use super::Http;
use super::problem::Problem;

/// The status page's own style and script are served beside it, so the
/// policy can forbid every inline script and style.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The headers every answer carries.
const SECURITY_HEADERS: [(&str, &str); 5] = [
    ("content-security-policy", CSP),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cross-origin-resource-policy", "same-origin"),
];

/// Which `Host` values this server answers to: IP addresses it can be
/// reached at (a rebinding page cannot make a browser send one: it sends
/// its own name), `localhost` when it listens on loopback, and the names
/// in `http.hosts`.
#[derive(Debug, Clone)]
pub(crate) struct Hosts {
    bind: SocketAddr,
    names: Vec<String>,
}

/// `host[:port]` or `[v6][:port]`, lower case, without a trailing dot.
fn split_host(host: &str) -> Option<(String, Option<u16>)> {
    let host = host.trim().to_ascii_lowercase();
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let (name, after) = rest.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        (name.to_owned(), port)
    } else {
        match host.rsplit_once(':') {
            Some((name, p)) => (name.to_owned(), Some(p.parse().ok()?)),
            None => (host.clone(), None),
        }
    };
    let name = name.strip_suffix('.').unwrap_or(&name).to_owned();
    (!name.is_empty()).then_some((name, port))
}

impl Hosts {
    pub(crate) fn new(bind: SocketAddr, names: &[String]) -> Self {
        Self {
            bind,
            names: names.to_vec(),
        }
    }

    /// Whether a request carrying `Host: host` is for this server.
    pub(crate) fn allows(&self, host: &str) -> bool {
        let Some((name, port)) = split_host(host) else {
            return false;
        };
        let bind = self.bind.ip();
        let local = bind.is_loopback() || bind.is_unspecified();
        if let Ok(ip) = name.parse::<IpAddr>() {
            return ip == bind || bind.is_unspecified() || (local && ip.is_loopback());
        }
        if name == "localhost" {
            return local;
        }
        self.names.iter().any(|entry| match entry.rsplit_once(':') {
            Some((n, p)) => *n == name && port.is_some_and(|port| p == port.to_string()),
            None => *entry == name,
        })
    }
}

/// Refuses (421) a request whose `Host` (or absolute URI) names another
/// server, saying what to configure; the refusal is audited.
pub(crate) async fn check_host(State(http): State<Http>, request: Request, next: Next) -> Response {
    let host = request.headers().get(header::HOST).map(HeaderValue::to_str);
    let authority = request.uri().authority().map(|a| a.as_str().to_owned());
    let ok = match (&host, &authority) {
        (Some(Ok(h)), None) => http.hosts.allows(h),
        (Some(Ok(h)), Some(a)) => http.hosts.allows(h) && http.hosts.allows(a),
        (None, Some(a)) => http.hosts.allows(a),
        _ => false,
    };
    if ok {
        return next.run(request).await;
    }
    let named = match (host, authority) {
        (Some(Ok(h)), _) => super::refusals::cut(h, 80),
        (_, Some(a)) => super::refusals::cut(&a, 80),
        _ => String::new(),
    };
    let why = if named.is_empty() {
        "the request has no Host header: send one".to_owned()
    } else {
        format!(
            "Host {named:?} is not a name this server answers to: if you reach acp by that \
             name (a reverse proxy, a tunnel), add it to http.hosts in config/acp.toml (or \
             ACP_HTTP_HOSTS) and restart acp run"
        )
    };
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    http.refusals
        .record(
            peer,
            "http:unauthenticated",
            "http.host",
            request.uri().path(),
            &why,
        )
        .await;
    Problem::new(StatusCode::MISDIRECTED_REQUEST, why).into_response()
}

/// Adds the security headers to every answer (those a route set itself
/// are kept).
pub(crate) async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in SECURITY_HEADERS {
        if !headers.contains_key(name) {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
    }
    response
}

/// The body did not arrive within `http.body_timeout_secs`.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?} (http.body_timeout_secs): send it in one go")]
pub(crate) struct BodyTimedOut(pub(crate) Duration);

/// Gives a request's body a deadline: a client that sends it slowly gets
/// an error from whoever reads it (the API answers 408) instead of holding
/// the connection.
pub(crate) async fn body_deadline(
    State(http): State<Http>,
    request: Request,
    next: Next,
) -> Response {
    if matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    ) {
        return next.run(request).await;
    }
    let limit = http.app.config().http.body_timeout;
    let deadline = tokio::time::Instant::now() + limit;
    let (parts, body) = request.into_parts();
    let chunks = body.into_data_stream();
    let timed = futures_util::stream::unfold(Some(chunks), move |state| async move {
        let mut chunks = state?;
        match tokio::time::timeout_at(deadline, chunks.next()).await {
            Ok(Some(Ok(bytes))) => Some((Ok(bytes), Some(chunks))),
            Ok(Some(Err(e))) => Some((Err(axum::BoxError::from(e)), None)),
            Ok(None) => None,
            Err(_) => Some((Err(BodyTimedOut(limit).into()), None)),
        }
    });
    next.run(Request::from_parts(parts, Body::from_stream(timed)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(bind: &str, names: &[&str]) -> Hosts {
        Hosts::new(
            bind.parse().unwrap(),
            &names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn a_loopback_server_answers_its_addresses_and_localhost_only() {
        let h = hosts("127.0.0.1:7420", &[]);
        for ok in [
            "127.0.0.1:7420",
            "localhost:7420",
            "LOCALHOST",
            "[::1]:7420",
            "localhost.",
        ] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7420",
            "127.0.0.1.nip.io:7420",
            "10.0.0.5:7420",
            "",
            "[::1",
            "localhost:x",
        ] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn configured_names_pass_with_their_port_if_they_give_one() {
        let h = hosts("10.0.0.5:7420", &["acp.example.com", "ci.example.com:8443"]);
        assert!(h.allows("10.0.0.5:7420"));
        assert!(!h.allows("127.0.0.1:7420"), "not on loopback");
        assert!(!h.allows("localhost:7420"));
        assert!(h.allows("ACP.example.com:443"));
        assert!(h.allows("ci.example.com:8443"));
        assert!(!h.allows("ci.example.com:9999"));
        let any = hosts("0.0.0.0:7420", &[]);
        assert!(any.allows("192.168.1.9:8080") && any.allows("localhost:8080"));
        assert!(!any.allows("evil.example"));
    }
}
