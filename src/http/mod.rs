//! The HTTP front door `acp run` serves: a status page at `/`, the core's
//! operations as JSON under `/api/v1/`, Prometheus metrics at `/metrics`,
//! `/healthz` and `/readyz`, and signed webhooks under `/hooks/`.
//!
//! Thin like the other doors: each handler parses, checks, calls one
//! method of [`App`] and renders. It listens on 127.0.0.1 by default;
//! binding beyond loopback requires an API token, or acp refuses to start.
//!
//! What a stranger on the network or a page in a browser meets first:
//! - [`serve`]: the accept loop: a cap on connections, header and idle
//!   timeouts.
//! - [`guard`]: the `Host` check, the body's deadline, security headers.
//! - [`auth`]: bearer tokens and their scopes (read, send, admin; bound to
//!   an agent or not).
//! - [`refusals`]: refused requests, audited in bounded form.
//!
//! [`people`] holds people's inboxes: a token's holder is a person;
//! [`agents`] starts, stops and restarts agents in projects;
//! [`schedules`] adds, lists, pauses and removes stored schedules.

mod agents;
mod api;
mod auth;
mod chart;
mod guard;
mod hooks;
mod metrics;
mod page;
mod people;
mod problem;
mod refusals;
mod schedules;
mod serve;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{App, AppError, Refused};

pub(crate) use auth::Caller;
pub(crate) use metrics::Metrics;

/// What every handler reaches.
#[derive(Clone)]
pub(crate) struct Http {
    pub(crate) app: Arc<App>,
    pub(crate) metrics: Arc<Metrics>,
    tokens: Arc<auth::Tokens>,
    refusals: Arc<refusals::Refusals>,
    hosts: Arc<guard::Hosts>,
}

/// The server, bound and ready to run.
pub struct Server {
    listener: Listener,
    state: Http,
    /// Its socket is its own ([`bind`]): its run ends once its connections
    /// have, rather than leaving them to the socket's owner.
    own: bool,
}

/// Binds the configured address and serves this core on it.
///
/// # Errors
/// [`AppError::Refused`] for an address beyond loopback without a token,
/// or when the address cannot be bound (in use, say).
pub async fn bind(app: Arc<App>) -> Result<Server, AppError> {
    let listener = listen(&app.config().http).await?;
    let mut server = serve_on(app, listener).await?;
    server.own = true;
    Ok(server)
}

/// Binds the configured address, once for the life of `acp run`: its
/// reloads serve each new core on the same socket.
///
/// # Errors
/// [`AppError::Refused`] for an address beyond loopback without a token,
/// or when the address cannot be bound (in use, say).
pub async fn listen(config: &crate::app::HttpConfig) -> Result<Listener, AppError> {
    check_exposure(config.bind, config)?;
    let listener = tokio::net::TcpListener::bind(config.bind)
        .await
        .map_err(|e| {
            Refused(format!(
                "cannot listen on {} ({e}): another program uses it? Set http.bind in \
                 config/acp.toml to another port, or http.enabled = false",
                config.bind
            ))
        })?;
    Ok(Listener {
        socket: Arc::new(listener),
        connections: TaskTracker::new(),
    })
}

/// A bound socket, shared by the cores `acp run` serves in turn, and the
/// connections taken on it by any of them.
#[derive(Debug, Clone)]
pub struct Listener {
    socket: Arc<tokio::net::TcpListener>,
    connections: TaskTracker,
}

impl Listener {
    /// Waits for every connection taken on the socket to finish (each was
    /// told to finish its request when its core stopped serving): for
    /// when no core serves it any more.
    pub async fn finish(&self) {
        self.connections.close();
        self.connections.wait().await;
    }
}

/// An address beyond loopback needs a token.
fn check_exposure(bind: SocketAddr, config: &crate::app::HttpConfig) -> Result<(), AppError> {
    if !bind.ip().is_loopback() && config.tokens.is_empty() {
        return Err(Refused(format!(
            "http.bind is {bind}, beyond this machine, and no API token is set: anyone who can \
             reach it could read the swarm. Set ACP_API_TOKEN or ACP_API_TOKENS in .env (a \
             long random string; see .env.example for scopes), or bind 127.0.0.1"
        ))
        .into());
    }
    Ok(())
}

/// Serves `app` on a socket bound before (by [`listen`]).
///
/// # Errors
/// [`AppError::Refused`] when the socket is beyond loopback and the
/// configuration has no token, or a token is malformed.
pub async fn serve_on(app: Arc<App>, listener: Listener) -> Result<Server, AppError> {
    let config = &app.config().http;
    let bound = listener.socket.local_addr().unwrap_or(config.bind);
    check_exposure(bound, config)?;
    let tokens = Arc::new(auth::Tokens::new(&config.tokens, app.agents())?);
    let hosts = Arc::new(guard::Hosts::new(bound, &config.hosts));
    make_room_for_connections(config.max_connections);
    let metrics = Arc::new(Metrics::new(&app).await);
    let refusals = Arc::new(refusals::Refusals::new(Arc::clone(&app)));
    Ok(Server {
        listener,
        own: false,
        state: Http {
            app,
            metrics,
            tokens,
            refusals,
            hosts,
        },
    })
}

/// Open files a process needs besides its connections (the store, logs,
/// inbox writes, backups).
const FILES_BESIDES_CONNECTIONS: u64 = 128;

/// Makes room for `max_connections`: raises this process's soft limit on
/// open files to its hard limit (as Go programs do; the soft limit is
/// often 1024 while the hard one is far higher), and warns when the cap
/// still leaves too few files for the rest. Out of them, no connection is
/// accepted and deliveries wait (they are retried, not failed).
fn make_room_for_connections(max_connections: usize) {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if let Some(soft) = limit.current {
        // An unlimited hard limit is not one every kernel takes as the
        // soft one (macOS): fall back to smaller ones.
        let targets = [limit.maximum.unwrap_or(u64::MAX), 1 << 20, 65_536, 10_240];
        for target in targets {
            if target <= soft {
                break;
            }
            let raised = Rlimit {
                current: Some(target),
                maximum: limit.maximum,
            };
            if setrlimit(Resource::Nofile, raised).is_ok() {
                tracing::debug!(from = soft, to = target, "raised the open-file limit");
                break;
            }
        }
    }
    let wanted = u64::try_from(max_connections)
        .unwrap_or(u64::MAX)
        .saturating_add(FILES_BESIDES_CONNECTIONS);
    if let Some(limit) = getrlimit(Resource::Nofile).current
        && wanted > limit
    {
        tracing::warn!(
            max_connections,
            open_file_limit = limit,
            "http.max_connections leaves fewer than {FILES_BESIDES_CONNECTIONS} open files for \
             the rest of acp run: lower it in config/acp.toml, or raise the limit (ulimit -n, \
             LimitNOFILE= in a systemd unit)"
        );
    }
}

impl Server {
    /// Where it listens.
    ///
    /// # Errors
    /// I/O errors reading the socket's address.
    pub fn addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.socket.local_addr()
    }

    /// Serves until `cancel`; the metrics follow the event bus meanwhile,
    /// and counted refusals are written to the audit log as their
    /// intervals end.
    pub async fn run(self, cancel: CancellationToken) {
        let state = self.state.clone();
        let follow = state
            .metrics
            .clone()
            .follow(state.app.clone(), cancel.clone());
        let refusals = Arc::clone(&state.refusals).follow(cancel.clone());
        let config = &state.app.config().http;
        let limits = serve::Limits {
            header: config.header_timeout,
            idle: config.idle_timeout,
            max_connections: config.max_connections,
        };
        let app = router(state);
        let serve = serve::serve(
            Arc::clone(&self.listener.socket),
            self.listener.connections.clone(),
            app,
            limits,
            cancel.clone(),
        );
        tokio::join!(serve, follow, refusals);
        if self.own {
            self.listener.finish().await;
        }
    }
}

fn router(state: Http) -> Router {
    let max = state.app.config().http.max_body_bytes;
    let api = Router::new()
        .route("/messages", post(api::send))
        .route("/messages/{id}", get(api::message))
        .route("/messages/{id}/ack", post(api::ack))
        .route("/messages/{id}/retry", post(api::retry))
        .route("/broadcast", post(api::broadcast))
        .route("/status", get(api::status))
        .route("/agents", get(api::agents).post(agents::spawn))
        .route("/agents/{agent}", delete(agents::stop))
        .route("/agents/{agent}/restart", post(agents::restart))
        .route("/agents/{agent}/inbox", get(api::inbox))
        .route("/roles", get(api::agents))
        .route("/roles/{agent}", put(api::set_role))
        .route("/captain", put(api::set_captain))
        .route("/audit", get(api::audit))
        .route("/inbox", get(people::own_inbox))
        .route("/inbox/{id}/ack", post(people::ack))
        .route("/people/{name}/inbox", get(people::inbox))
        .route("/prompts", get(api::prompts))
        .route("/prompts/{id}/decision", post(api::decide))
        .route("/schedules", get(schedules::list).post(schedules::add))
        .route("/schedules/{id}", delete(schedules::remove))
        .route("/schedules/{id}/pause", post(schedules::pause))
        .route("/schedules/{id}/resume", post(schedules::resume))
        .route("/schedules/{id}/firings", get(schedules::firings))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::authorize,
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
            auth::authorize,
        ));
    }
    // Layers run bottom-up: headers on every answer, then the Host check,
    // then the body's deadline and size.
    Router::new()
        .merge(views)
        .route("/status.css", get(page::style))
        .route("/status.js", get(page::script))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/hooks/{name}", post(hooks::receive))
        .nest("/api/v1", api)
        .layer(axum::extract::DefaultBodyLimit::max(max))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::body_deadline,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check_host,
        ))
        .layer(axum::middleware::from_fn(guard::security_headers))
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
