//! The HTTP front door `acp run` serves: a status page at `/`, the core's
//! operations as JSON under `/api/v1/`, Prometheus metrics at `/metrics`,
//! `/healthz` and `/readyz`, and signed webhooks under `/hooks/`.
//!
//! Thin like the other doors: each handler parses, checks, calls one
//! method of [`App`] and renders. It listens on 127.0.0.1 by default;
//! binding beyond loopback requires an API token, or acp refuses to start.

mod api;
mod hooks;
mod metrics;
mod page;
mod problem;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use subtle::ConstantTimeEq as _;
use tokio_util::sync::CancellationToken;

use crate::app::{ApiToken, App, AppError, Refused};
use crate::model::AuditOutcome;

pub(crate) use metrics::Metrics;
use problem::Problem;

/// What every handler reaches.
#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) app: Arc<App>,
    pub(crate) metrics: Arc<Metrics>,
}

/// The server, bound and ready to run.
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Http,
}

/// Binds the configured address.
///
/// # Errors
/// [`AppError::Refused`] for an address beyond loopback without a token,
/// or when the address cannot be bound (in use, say).
pub async fn bind(app: Arc<App>) -> Result<Server, AppError> {
    let config = &app.config().http;
    if !config.bind.ip().is_loopback() && config.tokens.is_empty() {
        return Err(Refused(format!(
            "http.bind is {}, beyond this machine, and no API token is set: anyone who can \
             reach it could send messages. Set ACP_API_TOKEN in .env (a long random string), or \
             bind 127.0.0.1",
            config.bind
        ))
        .into());
    }
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| {
            Refused(format!(
                "cannot listen on {} ({e}): another program uses it? Set http.bind in \
                 config/acp.toml to another port, or http.enabled = false",
                config.bind
            ))
        })?;
    let metrics = Arc::new(Metrics::new(&app).await);
    Ok(Server {
        listener,
        state: Http { app, metrics },
    })
}

impl Server {
    /// Where it listens.
    ///
    /// # Errors
    /// I/O errors reading the socket's address.
    pub fn addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `cancel`; the metrics follow the event bus meanwhile.
    pub async fn run(self, cancel: CancellationToken) {
        let state = self.state.clone();
        let follow = state
            .metrics
            .clone()
            .follow(state.app.clone(), cancel.clone());
        let app = router(state);
        let serve = axum::serve(
            self.listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(cancel.clone().cancelled_owned());
        let (served, ()) = tokio::join!(serve, follow);
        if let Err(e) = served {
            tracing::error!(error = %e, "the HTTP server stopped");
        }
    }
}

fn router(state: Http) -> Router {
    let max = state.app.config().http.max_body_bytes;
    let api = Router::new()
        .route("/messages", post(api::send))
        .route("/messages/{id}", get(api::message))
        .route("/messages/{id}/ack", post(api::ack))
        .route("/broadcast", post(api::broadcast))
        .route("/status", get(api::status))
        .route("/agents", get(api::agents))
        .route("/agents/{agent}/inbox", get(api::inbox))
        .route("/roles", get(api::agents))
        .route("/roles/{agent}", put(api::set_role))
        .route("/captain", put(api::set_captain))
        .route("/audit", get(api::audit))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .route("/openapi.json", get(api::openapi))
        .fallback(api::not_found);
    // Beyond loopback, the page and the metrics need the token too (a
    // scraper sends it as a bearer token).
    let mut views = Router::new()
        .route("/", get(page::index))
        .route("/metrics", get(metrics::scrape));
    if !state.app.config().http.bind.ip().is_loopback() {
        views = views.route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ));
    }
    Router::new()
        .merge(views)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/hooks/{name}", post(hooks::receive))
        .nest("/api/v1", api)
        .layer(axum::extract::DefaultBodyLimit::max(max))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Ready: the store takes writes, the dispatcher is alive, and Discord is
/// connected when configured. Each check is named in the answer.
async fn readyz(State(http): State<Http>) -> Response {
    let app = &http.app;
    let store = app.store_writable().await;
    let dispatcher = app.dispatcher_alive();
    let link = app.discord_link();
    let discord_ok = matches!(
        link,
        crate::app::DiscordLink::Off | crate::app::DiscordLink::Connected
    );
    let ok = store.is_ok() && dispatcher && discord_ok;
    let body = serde_json::json!({
        "ready": ok,
        "store": store.as_ref().map_or_else(ToString::to_string, |()| "writable".to_owned()),
        "dispatcher": if dispatcher { "alive" } else { "not running" },
        "discord": link.as_str(),
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, axum::Json(body)).into_response()
}

/// The API token a request carries, if it is one of the configured ones.
fn token_of<'a>(headers: &HeaderMap, tokens: &'a [ApiToken]) -> Result<&'a ApiToken, &'static str> {
    let Some(value) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return Err("no Authorization header");
    };
    let Some(given) = value.strip_prefix("Bearer ") else {
        return Err("the Authorization header is not `Bearer TOKEN`");
    };
    // Every token is compared, in constant time, so the answer's timing
    // does not tell which one nearly matched.
    let mut found = None;
    for token in tokens {
        if bool::from(
            token
                .secret
                .expose()
                .as_bytes()
                .ct_eq(given.trim().as_bytes()),
        ) {
            found = Some(token);
        }
    }
    found.ok_or("the token is not one of this root's API tokens")
}

/// The name of the token that authorized a request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) String);

/// Lets a request through with a valid bearer token; answers 401 (and
/// audits the refusal) otherwise.
async fn authorize(State(http): State<Http>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let tokens = &http.app.config().http.tokens;
    // The full path: inside /api/v1 the router sees it without the prefix.
    let path = request
        .extensions()
        .get::<axum::extract::OriginalUri>()
        .map_or_else(|| request.uri().path(), |u| u.0.path())
        .to_owned();
    match token_of(request.headers(), tokens) {
        Ok(token) => {
            request.extensions_mut().insert(Caller(token.name.clone()));
            let name = format!("{} {}", request.method(), route_name(&path));
            let response = next.run(request).await;
            http.app.record_command(
                "http",
                &name,
                response.status().is_success(),
                started.elapsed(),
            );
            response
        }
        Err(why) => {
            let peer = request
                .extensions()
                .get::<axum::extract::ConnectInfo<SocketAddr>>()
                .map(|c| c.0.to_string())
                .unwrap_or_default();
            let detail = format!("{why} (from {peer})");
            if let Err(e) = http
                .app
                .audit(
                    "http:unauthenticated",
                    "http.auth",
                    Some(&path),
                    AuditOutcome::Refused,
                    Some(&detail),
                )
                .await
            {
                tracing::warn!(error = %e, "cannot audit a refused API call");
            }
            let hint = if tokens.is_empty() {
                "no API token is set for this root: set ACP_API_TOKEN in .env and restart acp run"
            } else {
                "send `Authorization: Bearer TOKEN` with one of the tokens in ACP_API_TOKEN / \
                 ACP_API_TOKENS"
            };
            Problem::new(StatusCode::UNAUTHORIZED, format!("{why}: {hint}")).into_response()
        }
    }
}

/// A path with its ids replaced, for metrics labels: `/messages/{id}`.
fn route_name(path: &str) -> String {
    path.split('/')
        .map(|part| {
            if part.parse::<crate::model::MessageId>().is_ok()
                || part.parse::<crate::model::AgentId>().is_ok() && part.contains('-')
            {
                "{id}"
            } else {
                part
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
