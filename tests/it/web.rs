// Over 400 lines: the HTTP door's stories: the API, metrics, the status page in a browser,
// webhooks and a load test, each against a real acp run.

//! The HTTP door of `acp run`, driven over a real socket: the API checked
//! against its own OpenAPI description, `/metrics` read by Prometheus's
//! Python client, the status page rendered by headless Chromium, signed
//! webhooks, and a bounded load test.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use hmac::{KeyInit as _, Mac as _};
use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::support::{Root, Service, count, status, wait_until};

/// The main token: `api`, with every scope.
pub(crate) const TOKEN: &str = "test-token-0123456789abcdef";
pub(crate) const CI_TOKEN: &str = "ci-token-0123456789abcdef";
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// A running `acp run` with its HTTP address.
pub(crate) struct Web {
    pub(crate) service: Service,
    pub(crate) base: String,
    pub(crate) client: Client,
}

/// `acp run` on `root` with API tokens in `.env` (`api`, an admin, and
/// `ci`, which may send); waits for the log line naming the status page's
/// address.
pub(crate) fn serve(root: &Root, extra_env: &str) -> Web {
    serve_env(
        root,
        &format!("ACP_API_TOKENS=api:admin={TOKEN},ci:send={CI_TOKEN}\n{extra_env}"),
    )
}

/// `acp run` on `root` with exactly this `.env`.
pub(crate) fn serve_env(root: &Root, env: &str) -> Web {
    std::fs::write(root.path().join(".env"), env).unwrap();
    let service = root.service();
    Web {
        base: address(root),
        service,
        client: Client::builder().timeout(LIMIT).build().unwrap(),
    }
}

/// The HTTP address `acp run` logs (`http://127.0.0.1:PORT`).
pub(crate) fn address(root: &Root) -> String {
    let log = root.path().join("service.log");
    let mut base = String::new();
    wait_until(LIMIT, || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(at) = text.find("(/metrics) at http://") {
            let rest = &text[at + "(/metrics) at ".len()..];
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            rest[..end].trim_end_matches('/').clone_into(&mut base);
        }
        !base.is_empty()
    });
    base
}

impl Web {
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request with the main token.
    fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
        self.call_as(TOKEN, method, path, body)
    }

    /// A request with `token`.
    pub(crate) fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(b) = body {
            request = request.json(b);
        }
        answer(request.send().unwrap())
    }

    pub(crate) fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None)
    }

    pub(crate) fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body))
    }
}

pub(crate) fn answer(response: reqwest::blocking::Response) -> (u16, Value) {
    let code = response.status().as_u16();
    let text = response.text().unwrap();
    (
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Validates `value` against a schema of the API's OpenAPI description.
pub(crate) struct Spec(pub(crate) Value);

impl Spec {
    /// The description as `acp run` serves it.
    pub(crate) fn of(web: &Web) -> Self {
        let (code, doc) = answer(
            web.client
                .get(web.url("/api/v1/openapi.json"))
                .send()
                .unwrap(),
        );
        assert_eq!(code, 200);
        Self(doc)
    }

    /// The response schema for `method path` with `code`, resolved.
    pub(crate) fn check(&self, method: &str, path: &str, code: u16, value: &Value) {
        let op = &self.0["paths"][path][method];
        assert!(!op.is_null(), "{method} {path} is not in the description");
        let mut response = op["responses"][code.to_string()].clone();
        assert!(
            !response.is_null(),
            "{method} {path} {code} is not described"
        );
        if let Some(r) = response["$ref"].as_str() {
            response = self.0.pointer(&r[1..]).unwrap().clone();
        }
        let content = &response["content"];
        let schema = content["application/json"]["schema"]
            .as_object()
            .or_else(|| content["application/problem+json"]["schema"].as_object())
            .unwrap()
            .clone();
        let mut root = self.0.clone();
        root["$ref"] = Value::Null;
        let mut doc = json!({ "components": self.0["components"] });
        for (k, v) in schema {
            doc[k] = v;
        }
        let validator = jsonschema::validator_for(&doc).unwrap();
        let errors: Vec<String> = validator
            .iter_errors(value)
            .map(|e| e.to_string())
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {code} does not match its description: {errors:?}\n{value}"
        );
    }
}

/// Messages in the store, from `acp status`.
pub(crate) fn stored(root: &Root) -> u64 {
    let s = status(root);
    ["queued", "delivering", "delivered", "failed"]
        .iter()
        .map(|state| count(&s, state))
        .sum()
}

#[test]
fn the_api_answers_like_the_command_line_and_audits_by_token() {
    let root = Root::new(2);
    root.fast()
        .edit_config("max_body_bytes = 1048576", "max_body_bytes = 65536");
    let web = serve(&root, "");
    let spec = {
        // The description needs no token.
        let (code, doc) = answer(
            web.client
                .get(web.url("/api/v1/openapi.json"))
                .send()
                .unwrap(),
        );
        assert_eq!(code, 200);
        Spec(doc)
    };
    assert_eq!(
        web.client
            .get(web.url("/healthz"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "ok\n"
    );
    // Ready: the store takes writes and the dispatcher goes round; no
    // Discord is configured, so none is waited for.
    let mut ready = Value::Null;
    wait_until(LIMIT, || {
        let (code, body) = answer(web.client.get(web.url("/readyz")).send().unwrap());
        ready = body;
        code == 200
    });
    assert_eq!(
        ready,
        json!({"ready": true, "store": "writable", "dispatcher": "alive", "discord": "not configured"})
    );

    // No token, or a wrong one: 401, audited, nothing stored.
    let hello = json!({"to": "Agent-1", "body": "hello over http"});
    let (code, problem) = answer(
        web.client
            .post(web.url("/api/v1/messages"))
            .json(&hello)
            .send()
            .unwrap(),
    );
    assert_eq!(code, 401, "{problem}");
    spec.check("post", "/messages", 401, &problem);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("Authorization"),
        "{problem}"
    );
    let (code, _) = answer(
        web.client
            .post(web.url("/api/v1/messages"))
            .bearer_auth("test-token-0123456789abcdeX")
            .json(&hello)
            .send()
            .unwrap(),
    );
    assert_eq!(code, 401);
    assert_eq!(stored(&root), 0);

    // A message sent over HTTP is stored and delivered like any other.
    let (code, accepted) = web.post("/api/v1/messages", &hello);
    assert_eq!(code, 201, "{accepted}");
    spec.check("post", "/messages", 201, &accepted);
    let id = accepted["id"].as_str().unwrap().to_owned();
    let mut read = Value::Null;
    wait_until(LIMIT, || {
        read = web.get(&format!("/api/v1/messages/{id}")).1;
        read["deliveries"][0]["state"] == "delivered"
    });
    spec.check("get", "/messages/{id}", 200, &read);
    // The token's holder is a person: answers go to their inbox.
    assert_eq!(read["message"]["from"], "person:api");
    assert!(root.inbox_ids("Agent-1").contains_key(&id));

    // Bad input: the CLI's texts, the right codes, nothing stored.
    let before = stored(&root);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"to": "Agent-9", "body": "x"}),
            404,
            "unknown agent Agent-9",
        ),
        (
            json!({"to": "Agent-1", "body": "x", "priority": "asap"}),
            400,
            "unknown priority",
        ),
        (json!({"to": "Agent-1", "body": "  "}), 400, "body is empty"),
        (
            json!({"to": "Agent-1", "body": "a\u{0}b"}),
            400,
            "control character",
        ),
        (
            json!({"to": "Agent-1", "body": "x".repeat(20_000)}),
            413,
            "over the limit of 16384 bytes",
        ),
        (
            json!({"to": "Agent-1", "body": "x", "colour": "red"}),
            400,
            "unknown field",
        ),
        (
            json!({"to": 3, "body": "x"}),
            400,
            "not what this endpoint takes",
        ),
    ];
    for (body, want, says) in cases {
        let (code, problem) = web.post("/api/v1/messages", &body);
        assert_eq!(code, want, "{body}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains(says),
            "{says}: {problem}"
        );
        spec.check("post", "/messages", want, &problem);
    }
    // Not JSON at all, and past http.max_body_bytes.
    let (code, problem) = answer(
        web.client
            .post(web.url("/api/v1/messages"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .unwrap(),
    );
    assert_eq!(code, 400, "{problem}");
    let (code, problem) = answer(
        web.client
            .post(web.url("/api/v1/messages"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(format!(
                "{{\"to\":\"Agent-1\",\"body\":\"{}\"}}",
                "y".repeat(70_000)
            ))
            .send()
            .unwrap(),
    );
    assert_eq!(code, 413, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("http.max_body_bytes"),
        "{problem}"
    );
    assert_eq!(stored(&root), before);

    // The rest of the API.
    let (code, b) = web.post(
        "/api/v1/broadcast",
        &json!({"body": "all hands", "priority": "urgent"}),
    );
    assert_eq!(code, 201, "{b}");
    spec.check("post", "/broadcast", 201, &b);
    let (code, s) = web.get("/api/v1/status");
    assert_eq!(code, 200);
    spec.check("get", "/status", 200, &s);
    let (code, agents) = web.get("/api/v1/agents");
    assert_eq!(code, 200);
    spec.check("get", "/agents", 200, &agents);
    assert_eq!(agents.as_array().unwrap().len(), 2);
    let (code, inbox) = web.get("/api/v1/agents/Agent-1/inbox?limit=5");
    assert_eq!(code, 200, "{inbox}");
    spec.check("get", "/agents/{agent}/inbox", 200, &inbox);
    let (code, problem) = web.get("/api/v1/agents/Agent-1/inbox?limit=many");
    assert_eq!(code, 400, "{problem}");
    let (code, acked) = web.post(&format!("/api/v1/messages/{id}/ack"), &json!({}));
    assert_eq!(code, 200, "{acked}");
    spec.check("post", "/messages/{id}/ack", 200, &acked);
    let (code, role) = web.call(
        reqwest::Method::PUT,
        "/api/v1/roles/Agent-2",
        Some(&json!({"role": "Database specialist"})),
    );
    assert_eq!(code, 200, "{role}");
    spec.check("put", "/roles/{agent}", 200, &role);
    let (code, captain) = web.call(
        reqwest::Method::PUT,
        "/api/v1/captain",
        Some(&json!({"agent": "Agent-2"})),
    );
    assert_eq!(code, 200, "{captain}");
    let (code, roles) = web.get("/api/v1/roles");
    assert_eq!(code, 200);
    spec.check("get", "/roles", 200, &roles);
    assert!(roles.to_string().contains("Database specialist"));
    let (code, missing) = web.get("/api/v1/messages/01JDQ3Z5X8J6Y4F2K9M0N1P2Q3");
    assert_eq!(code, 404, "{missing}");
    let (code, problem) = web.get("/api/v1/nothing-here");
    assert_eq!(code, 404, "{problem}");

    // The audit names the token for each change and records refusals.
    let (code, ci) = answer(
        web.client
            .post(web.url("/api/v1/messages"))
            .bearer_auth(CI_TOKEN)
            .json(&json!({"to": "Agent-2", "body": "from CI"}))
            .send()
            .unwrap(),
    );
    assert_eq!(code, 201, "{ci}");
    let (code, audit) = web.get("/api/v1/audit?limit=100");
    assert_eq!(code, 200);
    spec.check("get", "/audit", 200, &audit);
    let rows = audit.as_array().unwrap();
    let has = |actor: &str, action: &str, outcome: &str| {
        rows.iter()
            .any(|r| r["actor"] == actor && r["action"] == action && r["outcome"] == outcome)
    };
    assert!(has("http:api", "api.send", "ok"), "{audit:#}");
    assert!(has("http:ci", "api.send", "ok"), "{audit:#}");
    assert!(
        has("http:unauthenticated", "http.auth", "refused"),
        "{audit:#}"
    );
    assert!(has("http:api", "role.set", "ok") || rows.iter().any(|r| r["actor"] == "http:api" && r["action"].as_str().unwrap().contains("role")), "{audit:#}");
}

/// What Prometheus asks `/metrics` for (its default scrape protocols).
pub(crate) const OPENMETRICS: &str = "application/openmetrics-text;version=1.0.0,\
    application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// `/metrics` at `base` as Prometheus scrapes it: in OpenMetrics.
pub(crate) fn scrape_openmetrics(client: &Client, base: &str) -> String {
    let response = client
        .get(format!("{base}/metrics"))
        .header("accept", OPENMETRICS)
        .send()
        .unwrap();
    assert_eq!(
        response.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    response.text().unwrap()
}

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian's prometheus package; scripts/test.sh installs it)");
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The samples of `/metrics` as Prometheus's Python client parses them
/// (OpenMetrics): `name{labels} value` lines.
pub(crate) fn parse_metrics(text: &str) -> Vec<(String, Value, f64)> {
    let script = "import json,sys\n\
        from prometheus_client.openmetrics.parser import text_string_to_metric_families\n\
        out=[]\n\
        for fam in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in fam.samples:\n\
        \x20       out.append([s.name, s.labels, s.value])\n\
        print(json.dumps(out))\n";
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "prometheus_client refused /metrics: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<(String, Value, f64)> = serde_json::from_slice(&out.stdout).unwrap();
    rows
}

pub(crate) fn sample(
    rows: &[(String, Value, f64)],
    name: &str,
    labels: &[(&str, &str)],
) -> Option<f64> {
    rows.iter()
        .find(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l[*k] == *v))
        .map(|r| r.2)
}

#[test]
fn metrics_parse_with_prometheus_client_and_follow_the_traffic() {
    let root = Root::new(2);
    root.fast();
    let web = serve(&root, "");
    let scrape = || scrape_openmetrics(&web.client, &web.base);
    let before = parse_metrics(&scrape());
    for name in [
        "acp_queue_depth",
        "acp_backup_age_seconds",
        "acp_backup_size_bytes",
        "acp_backup_duration_seconds",
        "acp_devlog_posts_total",
        "acp_prompts_total",
        "acp_prompt_answer_seconds_count",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "acp_uptime_seconds",
    ] {
        assert!(
            before.iter().any(|(n, _, _)| n == name),
            "{name} missing: {before:?}"
        );
    }
    assert!(sample(&before, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
    // Prompts' outcomes start at zero, each of them.
    for outcome in [
        "raised",
        "allow",
        "allow_session",
        "deny",
        "at_terminal",
        "expired",
    ] {
        assert_eq!(
            sample(&before, "acp_prompts_total", &[("outcome", outcome)]),
            Some(0.0),
            "{outcome}"
        );
    }
    // acp run takes its first scheduled backup at start: seen by the
    // metrics through its event.
    let mut backed = Vec::new();
    wait_until(LIMIT, || {
        backed = parse_metrics(&scrape());
        sample(&backed, "acp_backups_total", &[("outcome", "ok")]) == Some(1.0)
    });
    assert!(sample(&backed, "acp_backup_age_seconds", &[]).unwrap() >= 0.0);
    assert!(sample(&backed, "acp_backup_size_bytes", &[]).unwrap() > 0.0);

    // Traffic: three urgent messages, delivered; a refused API call.
    for i in 0..3 {
        let (code, _) = web.post(
            "/api/v1/messages",
            &json!({"to": "Agent-1", "body": format!("m{i}"), "priority": "urgent"}),
        );
        assert_eq!(code, 201);
    }
    let (code, _) = web.post("/api/v1/messages", &json!({"to": "Agent-1", "body": ""}));
    assert_eq!(code, 400);
    let mut after = Vec::new();
    wait_until(LIMIT, || {
        after = parse_metrics(&scrape());
        // One event moves both; a scrape may fall between the two.
        sample(
            &after,
            "acp_deliveries_total",
            &[("method", "inbox"), ("outcome", "delivered")],
        ) == Some(3.0)
            && sample(
                &after,
                "acp_delivery_latency_seconds_count",
                &[("method", "inbox")],
            ) == Some(3.0)
    });
    assert_eq!(
        sample(
            &after,
            "acp_messages_accepted_total",
            &[("kind", "human"), ("priority", "urgent")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &after,
            "acp_delivery_latency_seconds_count",
            &[("method", "inbox")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &after,
            "acp_commands_total",
            &[
                ("door", "http"),
                ("command", "POST /api/v1/messages"),
                ("outcome", "ok")
            ]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &after,
            "acp_commands_total",
            &[
                ("door", "http"),
                ("command", "POST /api/v1/messages"),
                ("outcome", "error")
            ]
        ),
        Some(1.0)
    );
    // The queue depth follows the store within its refresh.
    wait_until(LIMIT, || {
        sample(
            &parse_metrics(&scrape()),
            "acp_queue_depth",
            &[("state", "delivered")],
        ) == Some(3.0)
    });

    // A scraper that does not ask for OpenMetrics (curl, promtool, an
    // older Prometheus) gets the Prometheus text format, which promtool
    // passes; it refuses the OpenMetrics one, so the check can fail.
    let plain = web.client.get(web.url("/metrics")).send().unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    assert_eq!(plain.headers()["vary"], "accept");
    let plain = plain.text().unwrap();
    promtool(&plain).unwrap_or_else(|e| panic!("promtool refused /metrics: {e}\n{plain}"));
    assert!(!plain.contains("# EOF"), "{plain}");
    assert!(
        plain.contains("# TYPE acp_deliveries_total counter\n")
            && plain.contains("acp_deliveries_total{method=\"inbox\",outcome=\"delivered\"} 3\n"),
        "{plain}"
    );
    assert!(
        promtool(&scrape()).is_err(),
        "promtool takes OpenMetrics now: the check above proves less than it says"
    );
}

/// `chromium --headless ARGS URL`'s standard output. Each run has a
/// profile of its own (a shared one hands the page to another instance).
fn chromium(args: &[&str], url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        // Cargo's library path (build scripts' outputs) is not Chromium's.
        .env_remove("LD_LIBRARY_PATH")
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8(out.stdout).unwrap();
    assert!(
        args.iter().any(|a| a.starts_with("--screenshot")) || dom.contains("</html>"),
        "chromium gave no page ({:?}, {} bytes out): {}",
        out.status,
        dom.len(),
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// A daily schedule due `after` from now, read in UTC, with a text from
/// untrusted hands; its id.
fn daily_schedule(root: &Root, after: jiff::SignedDuration, to: &str, text: &str) -> i64 {
    let due = jiff::Timestamp::now() + after;
    let cron = due.strftime("%S %M %H * * *").to_string();
    let out = root.run(&[
        "--json", "schedule", "add", "--cron", &cron, "--to", to, text,
    ]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap()["id"]
        .as_i64()
        .unwrap()
}

#[test]
fn the_status_page_renders_in_chromium_with_and_without_javascript() {
    let root = Root::new(2);
    root.fast()
        .edit_config("# time_zone = \"Europe/Berlin\"", "time_zone = \"UTC\"");
    // A daily schedule due while acp run is down: recorded missed when it
    // starts (past its 2 s grace), next due tomorrow.
    let standup = "<b>stand-up</b> & go";
    // (Due 1 to 2 s after it is stored: a cron names whole seconds.)
    daily_schedule(
        &root,
        jiff::SignedDuration::from_secs(2),
        "Agent-1",
        standup,
    );
    let added = jiff::Timestamp::now();
    wait_until(LIMIT, || {
        jiff::Timestamp::now() >= added + jiff::SignedDuration::from_secs(5)
    });
    let web = serve(&root, "");
    // Real traffic: deliveries, and one that fails (no desktop for gui).
    let (_, ok) = web.post(
        "/api/v1/messages",
        &json!({"to": "Agent-1", "body": "ship it"}),
    );
    let ok = ok["id"].as_str().unwrap().to_owned();
    let (_, bad) = web.post(
        "/api/v1/messages",
        &json!({"to": "Agent-2", "body": "type it", "via": "gui"}),
    );
    let bad = bad["id"].as_str().unwrap().to_owned();
    wait_until(LIMIT, || {
        web.get(&format!("/api/v1/messages/{bad}")).1["deliveries"][0]["state"] == "failed"
            && web.get(&format!("/api/v1/messages/{ok}")).1["deliveries"][0]["state"] == "delivered"
    });

    let url = web.url("/");
    // acp run takes its first scheduled backup at start: the page shows it.
    wait_until(LIMIT, || {
        let page = web.client.get(&url).send().unwrap().text().unwrap();
        page.contains("within the RPO")
    });
    let schedule = web.get("/api/v1/schedules").1[0].clone();
    assert_eq!(schedule["counts"]["missed"], 1, "{schedule}");
    let next = jiff::Timestamp::from_millisecond(schedule["next_at"].as_i64().unwrap())
        .unwrap()
        .strftime("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    let last = jiff::Timestamp::from_millisecond(schedule["last"]["due_at"].as_i64().unwrap())
        .unwrap()
        .strftime("%Y-%m-%d %H:%M:%S UTC")
        .to_string();
    // The page as served, and as Chromium builds it.
    let served = web.client.get(&url).send().unwrap().text().unwrap();
    for dom in [served, chromium(&["--dump-dom"], &url)] {
        assert!(dom.contains("<h1>acp status</h1>"), "{dom}");
        assert!(dom.contains("Discord: not configured"), "{dom}");
        assert!(
            dom.contains("last backup") && dom.contains("within the RPO"),
            "{dom}"
        );
        let agents = &dom[dom.find("id=\"agents\"").unwrap()..];
        assert!(
            agents.contains("<b>Agent-1</b>") && agents.contains("<b>Agent-2</b>"),
            "{agents}"
        );
        assert!(agents.contains("delivered by inbox"), "{agents}");
        let recent = &dom[dom.find("id=\"recent\"").unwrap()..];
        assert!(recent.contains(&ok) && recent.contains(&bad), "{recent}");
        let failures = &dom[dom.find("id=\"failures\"").unwrap()..];
        assert!(
            failures.contains(&bad) && failures.contains("gui"),
            "{failures}"
        );
        assert!(dom.contains("1 deliveries in the last hour"), "{dom}");
        assert!(dom.contains("<rect "), "the chart has a bar: {dom}");
        // The schedule: its text shown, not drawn; the missed firing
        // marked; the next due time.
        let at = dom.find("id=\"schedules\"").unwrap();
        let schedules = &dom[at..at + dom[at..].find("</table>").unwrap()];
        assert!(
            schedules.contains("&lt;b&gt;stand-up&lt;/b&gt; &amp; go")
                && !schedules.contains("<b>stand-up"),
            "{schedules}"
        );
        assert!(
            schedules.contains(&format!("title=\"{next}\"")),
            "next {next}: {schedules}"
        );
        assert!(
            schedules.contains("<span class=\"pill bad\">missed</span>")
                && schedules.contains(&format!("title=\"{last}\"")),
            "last {last}: {schedules}"
        );
        assert!(
            schedules.contains("<span class=\"pill bad\">1 missed</span>"),
            "{schedules}"
        );
        assert!(schedules.contains(">UTC<"), "the zone: {schedules}");
    }
    // Without JavaScript (w3m runs none), the page reads the same.
    let out = Command::new("w3m")
        .args(["-dump", "-cols", "160", &url])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    for want in [
        "acp status",
        "Discord: not configured",
        "Waiting for a person (0)",
        "Nobody is waiting.",
        "within the RPO",
        "Agent-1",
        "Agent-2",
        "delivered by inbox",
        ok.as_str(),
        bad.as_str(),
        "Failures (1)",
        "1 deliveries in the last hour",
        // The chart's labels, read as words: its title, counts, times.
        "Deliveries per minute, last hour: 0 1 ",
        "time (UTC)",
        // The start of each message, under its id.
        "ship it",
        "Schedules (1)",
        standup,
        "1 missed",
    ] {
        assert!(
            text.contains(want),
            "{want:?} not in the page without JavaScript:\n{text}"
        );
    }

    // With JavaScript on, the page refreshes itself in place.
    let dom = chromium(&["--virtual-time-budget=12000", "--dump-dom"], &url);
    assert!(dom.contains("data-refreshed="), "no refresh ran: {dom}");

    // A phone-sized screenshot, kept as a test artifact.
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    let shot = dir.join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=412,1400",
        ],
        &url,
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "{} bytes",
        png.len()
    );
}

/// `X-Hub-Signature-256` for `body` under `secret`.
fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    let hex = mac
        .finalize()
        .into_bytes()
        .iter()
        .fold(String::new(), |mut out, b| {
            use std::fmt::Write as _;
            let _ = write!(out, "{b:02x}");
            out
        });
    format!("sha256={hex}")
}

#[test]
fn a_signed_github_event_is_delivered_once_and_a_bad_signature_stores_nothing() {
    let root = Root::new(3);
    root.fast().edit_config(
        "# [[http.hooks]]\n# name = \"github\"\n# repository = \"you/project\"\n# branch = \"main\"\n# agent = \"Agent-3\"\n# template = \"CI {conclusion} on {branch}: {title} {url}\"",
        "[[http.hooks]]\nname = \"github\"\nrepository = \"you/project\"\nbranch = \"main\"\nagent = \"Agent-3\"\ntemplate = \"CI {conclusion} on PR #{number}: {title} {url}\"",
    );
    let web = serve(&root, "ACP_HOOK_SECRET_GITHUB=s3cret-hook\n");
    let body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/github-workflow-run-failure.json"
    ))
    .unwrap();
    let send = |sig: &str, delivery: &str| {
        answer(
            web.client
                .post(web.url("/hooks/github"))
                .header("content-type", "application/json")
                .header("x-github-event", "workflow_run")
                .header("x-github-delivery", delivery)
                .header("x-hub-signature-256", sig)
                .body(body.clone())
                .send()
                .unwrap(),
        )
    };
    let good = signature("s3cret-hook", &body);
    let (code, first) = send(&good, "7c3a6e10-5d1f-11ef-8a1b-0123456789ab");
    assert_eq!(code, 201, "{first}");
    assert_eq!(first["result"], "sent");
    // GitHub redelivers: handled once.
    let (code, again) = send(&good, "7c3a6e10-5d1f-11ef-8a1b-0123456789ab");
    assert_eq!(code, 200, "{again}");
    assert_eq!(again["result"], "duplicate");
    assert_eq!(again["message_id"], first["message_id"]);
    let id = first["message_id"].as_str().unwrap().to_owned();
    wait_until(LIMIT, || root.inbox_ids("Agent-3").contains_key(&id));
    assert_eq!(root.inbox_ids("Agent-3").len(), 1);
    let file = root.inbox_files("Agent-3").remove(0);
    let text = std::fs::read_to_string(root.inbox("Agent-3").join(file)).unwrap();
    assert!(
        text.contains(
            "CI failure on PR #12: Add the retry queue https://github.com/you/project/actions/runs/9012345678"
        ),
        "{text}"
    );
    assert!(text.contains("from: hook:github"), "{text}");

    // A bad signature, or none: 401, nothing stored.
    let before = stored(&root);
    let wrong = signature("not-the-secret", &body);
    let (code, problem) = send(&wrong, "8d4b7f21-5d1f-11ef-8a1b-0123456789ab");
    assert_eq!(code, 401, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nothing was stored"),
        "{problem}"
    );
    let (code, _) = send("", "9e5c8032-5d1f-11ef-8a1b-0123456789ab");
    assert_eq!(code, 401);
    assert_eq!(stored(&root), before);
    // An unknown hook says how to add it.
    let (code, problem) = answer(
        web.client
            .post(web.url("/hooks/gitlab"))
            .body("{}")
            .send()
            .unwrap(),
    );
    assert_eq!(code, 404, "{problem}");
}

#[test]
fn a_thousand_concurrent_sends_lose_nothing_and_health_answers_throughout() {
    let root = Root::new(4);
    root.fast();
    let web = serve(&root, "");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let base = web.base.clone();
    let (ids, health) = runtime.block_on(async move {
        let client = reqwest::Client::new();
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        // /healthz, asked over and over while the burst runs.
        let health = {
            let (client, base, done) = (client.clone(), base.clone(), done.clone());
            tokio::spawn(async move {
                let mut answers = 0u32;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let started = Instant::now();
                    let r = client.get(format!("{base}/healthz")).timeout(Duration::from_secs(5)).send().await;
                    assert!(r.is_ok_and(|r| r.status() == 200), "healthz failed during the burst");
                    assert!(started.elapsed() < Duration::from_secs(5));
                    answers += 1;
                }
                answers
            })
        };
        let sends: Vec<_> = (0..1000)
            .map(|i| {
                let (client, base) = (client.clone(), base.clone());
                tokio::spawn(async move {
                    let r = client
                        .post(format!("{base}/api/v1/messages"))
                        .bearer_auth(TOKEN)
                        .json(&json!({"to": format!("Agent-{}", i % 4 + 1), "body": format!("burst {i}")}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 201);
                    r.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_owned()
                })
            })
            .collect();
        let mut ids = Vec::new();
        for s in sends {
            ids.push(s.await.unwrap());
        }
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        (ids, health.await.unwrap())
    });
    assert!(health > 0);
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), 1000, "duplicated ids");
    // Every one delivered, once, to its agent.
    wait_until(Duration::from_secs(120), || {
        count(&status(&root), "delivered") == 1000
    });
    let mut files = 0;
    for agent in 1..=4 {
        let inbox = root.inbox_ids(&format!("Agent-{agent}"));
        assert!(
            inbox.values().all(|n| *n == 1),
            "a duplicate in Agent-{agent}"
        );
        files += inbox.len();
    }
    assert_eq!(files, 1000);
}

#[test]
fn binding_beyond_loopback_without_a_token_refuses_to_start() {
    let root = Root::new(1);
    root.edit_config("bind = \"127.0.0.1:0\"", "bind = \"0.0.0.0:0\"");
    let out = root.run(&["run"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        crate::support::stderr(&out)
    );
    let err = crate::support::stderr(&out);
    assert!(
        err.contains("ACP_API_TOKEN") && err.contains("0.0.0.0"),
        "{err}"
    );

    // With a token it starts, and then the page and the metrics need it.
    let web = serve(&root, "");
    let local = web.base.replace("0.0.0.0", "127.0.0.1");
    for path in ["/", "/metrics"] {
        let bare = web.client.get(format!("{local}{path}")).send().unwrap();
        assert_eq!(bare.status(), 401, "{path}");
        let with = web
            .client
            .get(format!("{local}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        assert_eq!(with.status(), 200, "{path}");
    }
    let health = web.client.get(format!("{local}/healthz")).send().unwrap();
    assert_eq!(health.status(), 200);
}

/// Every element of the page that sticks out of a `width`-pixel screen
/// (the document itself, or anything inside a box that scrolls sideways).
pub(crate) const OVERFLOW: &str = "(() => {
    const width = window.innerWidth;
    const wide = [...document.querySelectorAll('body *')].flatMap(e => {
        const r = e.getBoundingClientRect();
        return r.width > 0 && (r.right > width + 1 || r.left < -1)
            ? [`${e.tagName.toLowerCase()}${e.id ? '#' + e.id : ''} ${Math.round(r.left)}..${Math.round(r.right)}: ${e.textContent.slice(0, 40)}`]
            : [];
    });
    return {width, scrollWidth: document.documentElement.scrollWidth, wide: wide.slice(0, 12)};
})()";

/// The name of an agent that is one long word.
const LONG_NAME: &str = "TheReleaseEngineeringAndQualityAssuranceCoordinatorOfTheSwarm";

#[test]
fn the_status_page_fits_a_390px_phone_without_sideways_scrolling() {
    let root = Root::new(3);
    // The longest id acp takes, with a display name of one long word.
    let long_id = "Agent-3_with_the_longest_id_okay";
    assert_eq!(long_id.len(), 32);
    root.fast().edit_config(
        "id = \"Agent-3\"\nname = \"Agent-3\"\nrole = \"General engineer\"",
        &format!(
            "id = \"{long_id}\"\nname = \"{LONG_NAME}\"\nrole = \"Reviews every change before it ships, and keeps the release notes\""
        ),
    );
    // A schedule to it, a long word for a text (due on New Year's Day).
    let out = root.run(&[
        "schedule",
        "add",
        "--cron",
        "0 0 1 1 *",
        "--to",
        long_id,
        &"S".repeat(2000),
    ]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let web = serve(&root, "");
    // Bodies from untrusted hands: markup, and 10 kB without a space.
    let word = "W".repeat(10_000);
    let mut ids = Vec::new();
    for (to, body, via) in [
        ("Agent-1", "ship it\nand then\ttell me", None),
        (
            "Agent-2",
            "<script>alert('owned')</script> & <b>bold</b>",
            None,
        ),
        (long_id, word.as_str(), None),
        ("Agent-2", "type it", Some("gui")),
    ] {
        let mut send = json!({"to": to, "body": body});
        if let Some(via) = via {
            send["via"] = json!(via);
        }
        let (code, accepted) = web.post("/api/v1/messages", &send);
        assert_eq!(code, 201, "{accepted}");
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    wait_until(LIMIT, || {
        ids.iter().all(|id| {
            let state =
                web.get(&format!("/api/v1/messages/{id}")).1["deliveries"][0]["state"].clone();
            state == "delivered" || state == "failed"
        })
    });

    let url = web.url("/");
    let mut phone = crate::browser::Browser::phone(390, 844, &[]);
    phone.open(&url);
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, whole) in [("status-phone.png", false), ("status-phone-full.png", true)] {
        let png = phone.screenshot(whole);
        assert!(
            png.starts_with(b"\x89PNG") && png.len() > 10_000,
            "{name}: {} bytes",
            png.len()
        );
        std::fs::write(dir.join(name), png).unwrap();
    }
    let fit = phone.eval(OVERFLOW);
    assert_eq!(fit["width"], 390, "{fit}");
    assert!(
        fit["scrollWidth"].as_u64().unwrap() <= 390 && fit["wide"] == json!([]),
        "the page scrolls sideways on a 390 px screen (screenshots in {}): {fit:#}",
        dir.display()
    );
    // The agents are cards (each row a block of its own, its cells
    // named), the long name on its card; the chart is drawn with its axes.
    let cards = phone.eval(
        "[...document.querySelectorAll('#agents tbody tr')].map(r => [getComputedStyle(r).display, \
         r.innerText.replace(/\\s+/g, ' '), getComputedStyle(r.cells[2], '::before').content])",
    );
    assert_eq!(cards.as_array().unwrap().len(), 3, "{cards}");
    assert_eq!(cards[2][0], "block", "{cards}");
    assert!(
        cards[2][1]
            .as_str()
            .unwrap()
            .starts_with(&format!("{long_id} {LONG_NAME}"))
            && cards[2][1]
                .as_str()
                .unwrap()
                .contains("Reviews every change"),
        "{cards}"
    );
    assert_eq!(cards[2][2], "\"role: \"", "{cards}");
    let schedule = phone.eval(
        "[...document.querySelectorAll('#schedules tbody tr')].map(r => [getComputedStyle(r).display, r.innerText.replace(/\\s+/g, ' ')])",
    );
    assert_eq!(schedule[0][0], "block", "{schedule}");
    assert!(
        schedule[0][1]
            .as_str()
            .unwrap()
            .contains(&format!("{}… {long_id}", "S".repeat(80))),
        "{schedule}"
    );
    let chart = phone.eval("document.querySelector('#rate svg').textContent");
    for want in ["Deliveries per minute, last hour", "time ("] {
        assert!(chart.as_str().unwrap().contains(want), "{chart}");
    }
    // The same in the dark.
    phone.call(
        "Emulation.setEmulatedMedia",
        &json!({"features": [{"name": "prefers-color-scheme", "value": "dark"}]}),
    );
    assert_eq!(
        phone.eval("matchMedia('(prefers-color-scheme: dark)').matches"),
        true
    );
    std::fs::write(dir.join("status-phone-dark.png"), phone.screenshot(true)).unwrap();
    let fit = phone.eval(OVERFLOW);
    assert!(fit["wide"] == json!([]), "in the dark: {fit:#}");

    // Each delivery shows the start of its message, as text: markup from
    // a sender is shown, never run or drawn; a long word is cut.
    let served = web.client.get(&url).send().unwrap().text().unwrap();
    let recent = &served[served.find("id=\"recent\"").unwrap()..];
    assert!(
        recent
            .contains("&lt;script&gt;alert('owned')&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;")
            && !served.contains("<script>alert")
            && !served.contains("<b>bold"),
        "{recent}"
    );
    assert!(recent.contains(&format!("{}…", "W".repeat(80))), "{recent}");
    assert!(
        !served.contains(&"W".repeat(81)),
        "more than the start of the long body"
    );
    assert!(recent.contains("ship it and then tell me"), "{recent}");
    let shown = phone.eval(
        "[...document.querySelectorAll('#recent .body')].map(b => [b.textContent, b.children.length])",
    );
    assert!(
        shown
            .as_array()
            .unwrap()
            .contains(&json!(["<script>alert('owned')</script> & <b>bold</b>", 0])),
        "{shown}"
    );
}

#[test]
fn the_status_page_shows_times_in_the_viewers_zone_with_utc_on_hover() {
    let root = Root::new(1);
    root.fast();
    let web = serve(&root, "");
    let (code, sent) = web.post(
        "/api/v1/messages",
        &json!({"to": "Agent-1", "body": "what time is it?"}),
    );
    assert_eq!(code, 201, "{sent}");
    let id = sent["id"].as_str().unwrap().to_owned();
    wait_until(LIMIT, || {
        web.get(&format!("/api/v1/messages/{id}")).1["deliveries"][0]["state"] == "delivered"
    });
    let url = web.url("/");

    // As served, and without JavaScript: UTC, said so.
    let served = web.client.get(&url).send().unwrap().text().unwrap();
    assert!(
        served.contains("Times are in <span id=\"zone\">UTC</span>."),
        "{served}"
    );
    let text = String::from_utf8(
        Command::new("w3m")
            .args(["-dump", "-cols", "160", &url])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert!(text.contains("Times are in UTC."), "{text}");

    // In India (+05:30, no summer time), each time reads 5 h 30 min later
    // than UTC, which its title keeps.
    let mut browser = crate::browser::Browser::phone(390, 844, &[("TZ", "Asia/Kolkata")]);
    browser.open(&url);
    let times = browser.eval(
        "[...document.querySelectorAll('#recent time')].map(t => [t.dateTime, t.textContent, t.title])",
    );
    let [time] = times.as_array().unwrap().as_slice() else {
        panic!("one delivery's time: {times}");
    };
    let utc: jiff::Timestamp = time[0].as_str().unwrap().parse().unwrap();
    let india = utc + jiff::SignedDuration::from_mins(330);
    assert_eq!(
        time[1],
        india.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        "{times}"
    );
    assert_eq!(
        time[2],
        utc.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        "{times}"
    );
    assert!(
        served.contains(&format!(">{}</time>", time[2].as_str().unwrap())),
        "{served}"
    );
    assert_eq!(
        browser.eval("document.getElementById('zone').textContent"),
        "your time zone (UTC+05:30); hover over one for UTC"
    );
    // The chart's times too: quarter hours of India's clock.
    let labels = browser.eval(
        "[...document.querySelectorAll('#rate text[data-datetime]')].map(t => [t.dataset.datetime, t.textContent])",
    );
    let labels = labels.as_array().unwrap();
    assert!(!labels.is_empty());
    for label in labels {
        let at: jiff::Timestamp = label[0].as_str().unwrap().parse().unwrap();
        let local = (at + jiff::SignedDuration::from_mins(330))
            .strftime("%H:%M")
            .to_string();
        assert_eq!(label[1], local, "{labels:?}");
    }
    assert_eq!(
        browser.eval("document.querySelector('#rate .zone').textContent"),
        "UTC+05:30"
    );
    // A refresh keeps them local.
    browser.eval("document.querySelector('main').dataset.old = 'yes'");
    wait_until(LIMIT, || {
        browser.eval("!document.querySelector('main').dataset.old") == true
    });
    assert_eq!(
        browser.eval("document.querySelector('#recent time').textContent"),
        time[1]
    );
}
