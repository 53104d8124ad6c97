// Over 400 lines: the Discord stand-in: REST, the gateway and the OpenAPI checks together.

//! A stand-in Discord on 127.0.0.1 for the bot tests: the REST API under
//! `/api/v10` and the gateway websocket. Every request the bot makes is
//! recorded and checked against Discord's published OpenAPI description
//! (`../shared/discord-api-spec/openapi.json`): the method and path must
//! exist, and a JSON body must validate against the request schema.
//! Tests inject gateway events (interactions, reconnects) and wait for the
//! bot's requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

// By path: the benches include this file by path too, where `mod` alone
// would look beside it.
#[path = "standin/guild.rs"]
pub mod guild;

use guild::Guild;

pub const APP_ID: &str = "300000000000000001";
pub const BOT_ID: &str = "100000000000000001";
pub const GUILD_ID: &str = "200000000000000001";
pub const CHANNEL_ID: &str = "500000000000000001";

/// One request the bot made.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// When the stand-in received it.
    pub at: Instant,
    pub method: String,
    /// The path under `/api/v10`.
    pub path: String,
    pub body: Value,
}

/// What a test can make the gateway do.
#[derive(Debug)]
pub enum GatewayCmd {
    Dispatch(&'static str, Value),
    Reconnect,
    /// Op 9; `true` lets the bot resume.
    InvalidSession(bool),
    Drop,
}

#[derive(Default)]
struct Shared {
    requests: Vec<Recorded>,
    violations: Vec<String>,
    identifies: usize,
    resumes: usize,
    /// Sessions that reached READY or RESUMED, ever.
    live: usize,
    /// The session commands go to, once it is live: (its number in `live`,
    /// its queue).
    gateway: Option<(usize, mpsc::UnboundedSender<GatewayCmd>)>,
    next_message: u64,
    /// Messages in channels (threads included), in the order posted.
    posts: Vec<Post>,
    /// (channel, nonce) → the message a nonce made (`enforce_nonce`).
    nonces: HashMap<(String, String), u64>,
    /// Threads made: (parent channel, thread id, name).
    threads: Vec<(String, String, String)>,
    /// While set, posts to channels answer 429.
    rate_limited: bool,
    /// While set, a post to a channel is taken (the message exists) but
    /// not answered until the flag is cleared.
    hold_posts: bool,
    rate_limited_answers: usize,
    /// Files the CDN serves (attachments), by name, and the names fetched.
    files: HashMap<String, Vec<u8>>,
    downloads: Vec<String>,
    /// The server, its roles and channels, as the bot may read them.
    guild: Guild,
}

/// A message posted in a channel.
#[derive(Debug, Clone)]
pub struct Post {
    pub id: u64,
    pub channel: String,
    pub content: String,
    /// The message it replies to, if any.
    pub reference: Option<String>,
    /// The author name a webhook post shows.
    pub username: Option<String>,
    /// Attached files: (name, size in bytes).
    pub files: Vec<(String, usize)>,
    /// Its message components (buttons) as last posted or edited.
    pub components: Value,
}

/// A request body: JSON, or multipart (its JSON and its files).
fn parse_body(content_type: &str, bytes: &[u8]) -> (Value, Vec<(String, usize)>) {
    match content_type.split_once("boundary=") {
        Some((kind, boundary)) if kind.starts_with("multipart/form-data") => {
            multipart(bytes, boundary.trim_matches('"'))
        }
        _ if bytes.is_empty() => (Value::Null, Vec::new()),
        _ => (
            serde_json::from_slice(bytes).unwrap_or(Value::Null),
            Vec::new(),
        ),
    }
}

/// A `multipart/form-data` body: its `payload_json` part, and each file
/// part's name and size.
fn multipart(bytes: &[u8], boundary: &str) -> (Value, Vec<(String, usize)>) {
    let text = String::from_utf8_lossy(bytes);
    let mut payload = Value::Null;
    let mut files = Vec::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, content)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let content = content.strip_suffix("\r\n").unwrap_or(content);
        if head.contains("name=\"payload_json\"") {
            payload = serde_json::from_str(content).unwrap_or(Value::Null);
        } else if let Some(name) = head
            .split("filename=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
        {
            files.push((name.to_owned(), content.len()));
        }
    }
    (payload, files)
}

#[derive(Clone)]
struct AppState {
    shared: Arc<Mutex<Shared>>,
    addr: SocketAddr,
}

/// The running stand-in; stops with the test.
pub struct StandIn {
    pub base: String,
    shared: Arc<Mutex<Shared>>,
    _runtime: tokio::runtime::Runtime,
}

struct Route {
    pattern: regex::Regex,
    template: String,
}

/// The compiled request-body schema of one operation, if it has one.
type BodyCheck = Option<Arc<jsonschema::Validator>>;

struct Spec {
    doc: Value,
    routes: Vec<Route>,
    validators: Mutex<HashMap<(String, String), BodyCheck>>,
}

/// Where Discord's OpenAPI description is: `ACP_DISCORD_SPEC`, else
/// `../shared/discord-api-spec/openapi.json` beside the checkout (as CI lays
/// it out), else beside the checkout this one was cloned from (a scratch
/// clone such as `git clone . /tmp/acp-ci`).
fn spec_path() -> PathBuf {
    const REL: &str = "../shared/discord-api-spec/openapi.json";
    if let Some(path) = std::env::var_os("ACP_DISCORD_SPEC") {
        return PathBuf::from(path);
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let beside = here.join(REL);
    if beside.exists() {
        return beside;
    }
    let origin = std::process::Command::new("git")
        .args(["config", "--get", "remote.origin.url"])
        .current_dir(here)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    origin
        .map(|url| Path::new(url.trim_start_matches("file://")).join(REL))
        .filter(|p| p.exists())
        .unwrap_or(beside)
}

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = spec_path();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!(
                "cannot read Discord's OpenAPI description at {}: {e} (set ACP_DISCORD_SPEC to its path)",
                path.display()
            )
        });
        let doc: Value = serde_json::from_str(&text).unwrap();
        let mut routes: Vec<Route> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(|template| {
                let mut re = String::from("^");
                for part in template.split('/').filter(|p| !p.is_empty()) {
                    re.push('/');
                    if part.starts_with('{') {
                        re.push_str("[^/]+");
                    } else {
                        re.push_str(&regex::escape(part));
                    }
                }
                re.push('$');
                Route {
                    pattern: regex::Regex::new(&re).unwrap(),
                    template: template.clone(),
                }
            })
            .collect();
        // Literal segments first: `/messages/@original` before `/messages/{id}`.
        routes.sort_by_key(|r| r.template.matches('{').count());
        Spec {
            doc,
            routes,
            validators: Mutex::new(HashMap::new()),
        }
    })
}

/// Checks one request against the OpenAPI description; returns what is wrong.
fn check(method: &str, path: &str, body: &Value) -> Option<String> {
    let spec = spec();
    let Some(route) = spec.routes.iter().find(|r| r.pattern.is_match(path)) else {
        return Some(format!("{method} {path}: no such path in Discord's API"));
    };
    let operation = &spec.doc["paths"][&route.template][method.to_lowercase()];
    if operation.is_null() {
        return Some(format!(
            "{method} {path}: {} has no {method}",
            route.template
        ));
    }
    let key = (method.to_owned(), route.template.clone());
    let validator = spec
        .validators
        .lock()
        .unwrap()
        .entry(key)
        .or_insert_with(|| {
            let schema = operation["requestBody"]["content"]["application/json"]["schema"].clone();
            if schema.is_null() {
                return None;
            }
            let mut root = json!({ "allOf": [schema] });
            root["components"] = spec.doc["components"].clone();
            Some(Arc::new(
                jsonschema::validator_for(&root).expect("the spec's schema compiles"),
            ))
        })
        .clone();
    match (validator, body) {
        (Some(v), body) if !body.is_null() => {
            let errors: Vec<String> = v
                .iter_errors(body)
                .take(3)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            (!errors.is_empty()).then(|| {
                format!(
                    "{method} {path}: body does not match {}: {}",
                    route.template,
                    errors.join("; ")
                )
            })
        }
        _ => None,
    }
}

/// Checks an answer the stand-in gives against the response Discord's
/// OpenAPI description promises for it; returns what is wrong.
fn check_answer(method: &str, path: &str, status: u16, body: &Value) -> Option<String> {
    let spec = spec();
    let route = spec.routes.iter().find(|r| r.pattern.is_match(path))?;
    let schema = spec.doc["paths"][&route.template][method.to_lowercase()]["responses"]
        [status.to_string()]["content"]["application/json"]["schema"]
        .clone();
    if schema.is_null() {
        return None;
    }
    let mut root = json!({ "allOf": [schema] });
    root["components"] = spec.doc["components"].clone();
    let validator = jsonschema::validator_for(&root).expect("the spec's schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(body)
        .take(3)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| {
        format!(
            "the stand-in's answer to {method} {path} is not what Discord answers: {}",
            errors.join("; ")
        )
    })
}

fn message_json(id: u64, channel: &str, content: &Value) -> Value {
    json!({
        "id": id.to_string(), "channel_id": channel,
        "author": {"id": BOT_ID, "username": "acp", "bot": true},
        "content": content.as_str().unwrap_or(""), "timestamp": "2026-01-01T00:00:00.000000+00:00",
        "edited_timestamp": null, "tts": false, "mention_everyone": false, "mentions": [],
        "mention_roles": [], "attachments": [], "embeds": [], "pinned": false, "type": 20, "flags": 0,
        "application_id": APP_ID, "webhook_id": APP_ID
    })
}

async fn rest(State(state): State<AppState>, request: Request) -> Response {
    // When the request arrived, before the stand-in's own schema check.
    let arrived = Instant::now();
    let method = request.method().clone();
    let full = request.uri().path().to_owned();
    let query = request.uri().query().unwrap_or("").to_owned();
    let content_type = request
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let refused = refused_token(request.headers());
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let (body, files) = parse_body(&content_type, &bytes);
    let Some(path) = full.strip_prefix("/api/v10") else {
        state
            .shared
            .lock()
            .unwrap()
            .violations
            .push(format!("{method} {full}: not under /api/v10"));
        return StatusCode::NOT_FOUND.into_response();
    };
    let path = path.to_owned();
    {
        let mut shared = state.shared.lock().unwrap();
        if let Some(problem) = check(method.as_str(), &path, &body) {
            shared.violations.push(problem);
        }
        shared.requests.push(Recorded {
            at: arrived,
            method: method.to_string(),
            path: path.clone(),
            body: body.clone(),
        });
    }
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if let Some(answer) = read_guild(&state, &method, &path, &segments, refused) {
        return answer;
    }
    if let (&Method::POST, ["channels", channel, "messages"]) = (&method, segments.as_slice()) {
        return post_message(&state, (*channel).to_owned(), &body, files).await;
    }
    // A channel webhook (not the application's interaction webhook): it
    // posts into its channel, or the thread named in the query.
    if let (&Method::POST, ["webhooks", id, _]) = (&method, segments.as_slice())
        && *id != APP_ID
    {
        let channel = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("thread_id="))
            .unwrap_or(CHANNEL_ID)
            .to_owned();
        return post_message(&state, channel, &body, files).await;
    }
    let mut shared = state.shared.lock().unwrap();
    match (method, segments.as_slice()) {
        (Method::GET, ["gateway"]) => {
            axum::Json(json!({ "url": format!("ws://{}/gw", state.addr) })).into_response()
        }
        (
            Method::PUT,
            ["applications", _, "guilds", _, "commands"] | ["applications", _, "commands"],
        ) => axum::Json(json!([])).into_response(),
        (Method::POST, ["interactions", _, _, "callback"]) => {
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, ["channels", channel, "threads"]) => {
            shared.next_message += 1;
            let id = (700_000_000_000_000_000 + shared.next_message).to_string();
            let name = body["name"].as_str().unwrap_or("").to_owned();
            shared
                .threads
                .push(((*channel).to_owned(), id.clone(), name.clone()));
            axum::Json(thread_json(&id, channel, &name)).into_response()
        }
        (Method::PATCH, ["channels", channel, "messages", id]) => {
            edit_message(&mut shared, channel, id, &body)
        }
        (Method::GET | Method::PATCH, ["webhooks", _, _, "messages", "@original"]) => {
            axum::Json(message_json(ORIGINAL_ID, CHANNEL_ID, &body["content"])).into_response()
        }
        (Method::POST, ["webhooks", _, _]) | (Method::PATCH, ["webhooks", _, _, "messages", _]) => {
            shared.next_message += 1;
            let id = 900_000_000_000_000_000 + shared.next_message;
            axum::Json(message_json(id, CHANNEL_ID, &body["content"])).into_response()
        }
        _ => {
            let method = shared
                .requests
                .last()
                .map(|r| r.method.clone())
                .unwrap_or_default();
            shared.violations.push(format!(
                "{method} {path}: the stand-in does not serve this (unexpected request)"
            ));
            StatusCode::NOT_FOUND.into_response()
        }
    }
}

/// Whether the request carries a bot token Discord does not know.
fn refused_token(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.contains("rejected"))
}

/// A refused token's 401 (Discord refuses it on every route that takes
/// one: the gateway's URL and interaction and webhook tokens need none),
/// or the answer about the server, its roles and channels, checked against
/// what Discord promises to answer; `None` for any other request.
fn read_guild(
    state: &AppState,
    method: &Method,
    path: &str,
    segments: &[&str],
    refused: bool,
) -> Option<Response> {
    if refused && !matches!(segments, ["gateway" | "interactions" | "webhooks", ..]) {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"message": "401: Unauthorized", "code": 0})),
            )
                .into_response(),
        );
    }
    let (status, body) = state
        .shared
        .lock()
        .unwrap()
        .guild
        .answer(method, segments)?;
    if status.is_success()
        && let Some(problem) = check_answer(method.as_str(), path, status.as_u16(), &body)
    {
        state.shared.lock().unwrap().violations.push(problem);
    }
    Some((status, axum::Json(body)).into_response())
}

/// `PATCH /channels/{channel}/messages/{id}`: the post's content and
/// components as edited.
fn edit_message(shared: &mut Shared, channel: &str, id: &str, body: &Value) -> Response {
    let Some(post) = shared
        .posts
        .iter_mut()
        .find(|p| p.id.to_string() == id && p.channel == channel)
    else {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(json!({"message": "Unknown Message", "code": 10008})),
        )
            .into_response();
    };
    if let Some(content) = body["content"].as_str() {
        content.clone_into(&mut post.content);
    }
    if let Some(components) = body.get("components") {
        post.components = components.clone();
    }
    let content = Value::from(post.content.clone());
    axum::Json(message_json(post.id, channel, &content)).into_response()
}

/// A thread channel as Discord returns it.
fn thread_json(id: &str, parent: &str, name: &str) -> Value {
    json!({
        "id": id, "type": 11, "guild_id": GUILD_ID, "parent_id": parent, "name": name,
        "owner_id": BOT_ID, "position": 0, "permission_overwrites": [], "nsfw": false,
        "rate_limit_per_user": 0, "flags": 0, "member_count": 1, "message_count": 0,
        "total_message_sent": 0,
        "thread_metadata": {"archived": false, "auto_archive_duration": 10080,
            "archive_timestamp": "2026-01-01T00:00:00.000000+00:00", "locked": false}
    })
}

/// The id the stand-in gives every command's original reply.
pub const ORIGINAL_ID: u64 = 910_000_000_000_000_001;

/// `POST /channels/{id}/messages`, with Discord's `enforce_nonce`: a nonce
/// seen before in the channel answers the message it made, and posts
/// nothing new.
async fn post_message(
    state: &AppState,
    channel: String,
    body: &Value,
    files: Vec<(String, usize)>,
) -> Response {
    let id = {
        let mut s = state.shared.lock().unwrap();
        if s.rate_limited {
            s.rate_limited_answers += 1;
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "0.05")],
                axum::Json(json!({
                    "message": "You are being rate limited.", "retry_after": 0.05, "global": false
                })),
            )
                .into_response();
        }
        let nonce = body["nonce"].as_str().map(str::to_owned);
        let seen = nonce
            .as_ref()
            .filter(|_| body["enforce_nonce"] == true)
            .and_then(|n| s.nonces.get(&(channel.clone(), n.clone())).copied());
        if let Some(id) = seen {
            id
        } else {
            s.next_message += 1;
            let id = 920_000_000_000_000_000 + s.next_message;
            if let Some(n) = nonce {
                s.nonces.insert((channel.clone(), n), id);
            }
            s.posts.push(Post {
                id,
                channel: channel.clone(),
                content: body["content"].as_str().unwrap_or("").to_owned(),
                reference: body["message_reference"]["message_id"]
                    .as_str()
                    .map(str::to_owned),
                username: body["username"].as_str().map(str::to_owned),
                files,
                components: body.get("components").cloned().unwrap_or(Value::Null),
            });
            id
        }
    };
    // Held: the message exists, the answer waits (a post in flight).
    while state.shared.lock().unwrap().hold_posts {
        // Polling interval while a test holds the answer.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    axum::Json(message_json(id, &channel, &body["content"])).into_response()
}

/// The CDN: attachments' files.
async fn cdn(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
) -> Response {
    let mut s = state.shared.lock().unwrap();
    s.downloads.push(name.clone());
    match s.files.get(&name) {
        Some(bytes) => bytes.clone().into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn gateway(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| session(socket, state))
}

/// One gateway connection; it stops taking commands when it ends.
async fn session(socket: WebSocket, state: AppState) {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::clone(&state.shared);
    let number = serve_session(socket, state, tx, rx).await;
    let mut s = shared.lock().unwrap();
    if number.is_some() && s.gateway.as_ref().map(|g| g.0) == number {
        s.gateway = None;
    }
}

/// Marks a session live (it answered READY or RESUMED): commands go to it.
fn go_live(state: &AppState, tx: &mpsc::UnboundedSender<GatewayCmd>) -> usize {
    let mut s = state.shared.lock().unwrap();
    s.live += 1;
    s.gateway = Some((s.live, tx.clone()));
    s.live
}

/// Serves a connection; returns the number it had when last live.
async fn serve_session(
    mut socket: WebSocket,
    state: AppState,
    tx: mpsc::UnboundedSender<GatewayCmd>,
    mut rx: mpsc::UnboundedReceiver<GatewayCmd>,
) -> Option<usize> {
    let mut number = None;
    let mut seq = 0u64;
    let frame = |v: Value| Message::Text(v.to_string().into());
    if socket
        .send(frame(json!({"op": 10, "d": {"heartbeat_interval": 41250}})))
        .await
        .is_err()
    {
        return number;
    }
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let Some(Ok(Message::Text(text))) = incoming else { return number };
                let Ok(payload) = serde_json::from_str::<Value>(&text) else { continue };
                let reply = match payload["op"].as_u64() {
                    // Discord closes the connection on a token it rejects.
                    Some(2) if payload["d"]["token"].as_str().is_some_and(|t| t.contains("rejected")) => {
                        let _ = socket
                            .send(Message::Close(Some(axum::extract::ws::CloseFrame {
                                code: 4004,
                                reason: "Authentication failed.".into(),
                            })))
                            .await;
                        return number;
                    }
                    Some(2) => {
                        state.shared.lock().unwrap().identifies += 1;
                        seq += 1;
                        Some(json!({"op": 0, "s": seq, "t": "READY", "d": {
                            "v": 10,
                            "user": {"id": BOT_ID, "username": "acp", "discriminator": "0", "bot": true},
                            "guilds": [{"id": GUILD_ID, "unavailable": true}],
                            "session_id": "standin-session",
                            "resume_gateway_url": format!("ws://{}/gw", state.addr),
                            "shard": [0, 1],
                            "application": {"id": APP_ID, "flags": 0}
                        }}))
                    }
                    Some(1) => Some(json!({"op": 11})),
                    Some(6) => {
                        state.shared.lock().unwrap().resumes += 1;
                        seq += 1;
                        Some(json!({"op": 0, "s": seq, "t": "RESUMED", "d": {}}))
                    }
                    _ => None,
                };
                let live = reply.as_ref().is_some_and(|r| r["t"] == "READY" || r["t"] == "RESUMED");
                if let Some(reply) = reply && socket.send(frame(reply)).await.is_err() {
                    return number;
                }
                if live {
                    number = Some(go_live(&state, &tx));
                }
            }
            cmd = rx.recv() => {
                let out = match cmd {
                    Some(GatewayCmd::Dispatch(t, d)) => { seq += 1; json!({"op": 0, "s": seq, "t": t, "d": d}) }
                    Some(GatewayCmd::Reconnect) => json!({"op": 7, "d": null}),
                    Some(GatewayCmd::InvalidSession(resumable)) => json!({"op": 9, "d": resumable}),
                    Some(GatewayCmd::Drop) | None => return number,
                };
                if socket.send(frame(out)).await.is_err() {
                    return number;
                }
            }
        }
    }
}

impl StandIn {
    /// Starts the stand-in on a free loopback port.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts the stand-in on this loopback port (0: any free one).
    pub fn start_on(port: u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let state = AppState {
            shared: Arc::clone(&shared),
            addr,
        };
        let app = Router::new()
            .route("/gw", axum::routing::get(gateway))
            .route("/files/{name}", axum::routing::get(cdn))
            .fallback(rest)
            .with_state(state);
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        spec();
        Self {
            base: format!("http://{addr}"),
            shared,
            _runtime: runtime,
        }
    }

    /// The messages posted in `channel` (a channel or thread id).
    pub fn posts_in(&self, channel: &str) -> Vec<Post> {
        let s = self.shared.lock().unwrap();
        s.posts
            .iter()
            .filter(|p| p.channel == channel)
            .cloned()
            .collect()
    }

    /// Serves `bytes` as an attachment's file; returns its URL.
    pub fn serve_file(&self, name: &str, bytes: &[u8]) -> String {
        self.shared
            .lock()
            .unwrap()
            .files
            .insert(name.to_owned(), bytes.to_vec());
        format!("{}/files/{name}", self.base)
    }

    /// The attachment files fetched, by name.
    pub fn downloads(&self) -> Vec<String> {
        self.shared.lock().unwrap().downloads.clone()
    }

    /// Every message posted in channels, in order.
    pub fn posts(&self) -> Vec<Post> {
        self.shared.lock().unwrap().posts.clone()
    }

    /// Threads made so far: (parent channel, thread id, name).
    pub fn threads(&self) -> Vec<(String, String, String)> {
        self.shared.lock().unwrap().threads.clone()
    }

    /// Changes the server the bot reads (its roles, channels, whether the
    /// bot is in it).
    pub fn with_guild(&self, f: impl FnOnce(&mut Guild)) {
        f(&mut self.shared.lock().unwrap().guild);
    }

    /// While on, posts to channels answer 429 (rate limited).
    pub fn set_rate_limited(&self, on: bool) {
        self.shared.lock().unwrap().rate_limited = on;
    }

    /// How many posts were answered 429.
    pub fn rate_limited_answers(&self) -> usize {
        self.shared.lock().unwrap().rate_limited_answers
    }

    /// While on, posts to channels are taken but not answered.
    pub fn set_hold_posts(&self, on: bool) {
        self.shared.lock().unwrap().hold_posts = on;
    }

    /// Waits until `f` holds for the posts, and returns them.
    pub fn wait_posts(&self, limit: Duration, f: impl Fn(&[Post]) -> bool) -> Vec<Post> {
        let start = Instant::now();
        loop {
            let posts = self.posts();
            if f(&posts) {
                return posts;
            }
            assert!(
                start.elapsed() < limit,
                "the posts did not come within {limit:?}: {posts:#?}\nviolations: {:#?}",
                self.violations()
            );
            // Polling interval while waiting for posts.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().unwrap().requests.clone()
    }

    /// Requests Discord would have rejected.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().unwrap().violations.clone()
    }

    /// Every request so far was one Discord would accept.
    pub fn assert_no_violations(&self) {
        let violations = self.violations();
        assert!(
            violations.is_empty(),
            "requests Discord would reject: {violations:#?}"
        );
    }

    /// (identifies, resumes) seen on the gateway.
    pub fn sessions(&self) -> (usize, usize) {
        let s = self.shared.lock().unwrap();
        (s.identifies, s.resumes)
    }

    /// Waits until a session newer than the `before`-th is live (`before`
    /// as [`StandIn::gateway`] returned it).
    pub fn wait_live_after(&self, before: usize, limit: Duration) {
        let start = Instant::now();
        while self
            .shared
            .lock()
            .unwrap()
            .gateway
            .as_ref()
            .is_none_or(|g| g.0 <= before)
        {
            assert!(
                start.elapsed() < limit,
                "the bot was not back on the gateway within {limit:?}"
            );
            // Polling interval while waiting for the session.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Sends a command to the live gateway session, waiting for the bot to
    /// be connected (after a drop or a reconnect) if it is not yet. Returns
    /// that session's number.
    pub fn gateway(&self, mut cmd: GatewayCmd) -> usize {
        let start = Instant::now();
        loop {
            {
                let mut s = self.shared.lock().unwrap();
                if let Some((number, tx)) = &s.gateway {
                    let number = *number;
                    // After these the session ends or starts over: later
                    // commands wait for the next live one.
                    let ends = !matches!(cmd, GatewayCmd::Dispatch(..));
                    match tx.send(cmd) {
                        Ok(()) => {
                            if ends {
                                s.gateway = None;
                            }
                            return number;
                        }
                        // The session ended a moment ago.
                        Err(mpsc::error::SendError(back)) => {
                            cmd = back;
                            s.gateway = None;
                        }
                    }
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "no live gateway session within 60 s"
            );
            // Polling interval while waiting for the session, not a guess.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for a request matching `f`, after `from` earlier ones.
    pub fn wait_for(
        &self,
        from: usize,
        limit: Duration,
        f: impl Fn(&Recorded) -> bool,
    ) -> Recorded {
        let start = Instant::now();
        loop {
            if let Some(r) = self.requests().into_iter().skip(from).find(|r| f(r)) {
                return r;
            }
            assert!(
                start.elapsed() < limit,
                "no matching request within {limit:?}; got {:#?}\nviolations: {:#?}",
                self.requests(),
                self.violations()
            );
            // Polling interval while waiting for the request.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// An `INTERACTION_CREATE` payload for a slash command in the guild, invoked
/// by a member holding `roles`. Each interaction comes from its own member
/// (user id 600…0 + the interaction's last digits), so per-user cooldowns do
/// not carry over between test steps.
pub fn interaction(id: u64, name: &str, options: &Value, roles: &[&str]) -> Value {
    interaction_in(id, name, options, roles, CHANNEL_ID)
}

/// `payload` carrying an attachment: option `file` and its resolved
/// object, as Discord sends them.
pub fn with_attachment(
    mut payload: Value,
    id: &str,
    filename: &str,
    size: usize,
    url: &str,
) -> Value {
    let options = payload["data"]["options"].as_array_mut().unwrap();
    options.push(json!({"name": "file", "type": 11, "value": id}));
    payload["data"]["resolved"] = json!({"attachments": {id: {
        "id": id, "filename": filename, "size": size, "url": url, "proxy_url": url,
        "content_type": "application/octet-stream"
    }}});
    payload
}

/// A button press (`MESSAGE_COMPONENT`, type 3) on the stand-in's post
/// `post` in `channel`, by a member with `roles`; `user` tells people
/// apart.
pub fn button_press(
    id: u64,
    custom_id: &str,
    post: u64,
    channel: &str,
    roles: &[&str],
    user: u64,
) -> Value {
    let mut payload = interaction_in(id, "", &json!([]), roles, channel);
    payload["type"] = json!(3);
    payload["data"] = json!({"custom_id": custom_id, "component_type": 2});
    payload["member"]["user"]["id"] = json!(user.to_string());
    payload["message"] = message_json(post, channel, &json!(""));
    payload
}

/// [`interaction`] typed in `channel` (a thread, say).
pub fn interaction_in(
    id: u64,
    name: &str,
    options: &Value,
    roles: &[&str],
    channel: &str,
) -> Value {
    let user = 600_000_000_000_000_000 + id % 1_000_000;
    json!({
        "id": id.to_string(),
        "application_id": APP_ID,
        "type": 2,
        "token": format!("token-{id}"),
        "version": 1,
        "guild_id": GUILD_ID,
        "channel_id": channel,
        "member": {
            "user": {"id": user.to_string(), "username": "alice", "discriminator": "0", "global_name": "Alice", "avatar": null},
            "roles": roles,
            "joined_at": "2026-01-01T00:00:00.000000+00:00",
            "deaf": false, "mute": false, "flags": 0, "pending": false,
            "permissions": "2147483647"
        },
        "data": {"id": "800000000000000001", "name": name, "type": 1, "options": options},
        "locale": "en-US",
        "guild_locale": "en-US",
        "app_permissions": "2147483647",
        "entitlements": [],
        "authorizing_integration_owners": {"0": GUILD_ID},
        "context": 0,
        "attachment_size_limit": 10_485_760
    })
}
