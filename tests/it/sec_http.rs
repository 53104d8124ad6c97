// Over 400 lines: one attack per finding of the HTTP review (issue 20), each
// against a real acp run over a real socket.

//! The HTTP door under attack by a stranger on the network or a page in a
//! browser: refusals audited in bounded form, slow clients and a full
//! file table, hostile `Host` headers, unknown names in paths, and tokens
//! used beyond their scopes. Loopback only; every loop is bounded.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{Root, stdout, wait_until};
use crate::web::{
    LIMIT, Spec, TOKEN, address, answer, parse_metrics, sample, scrape_openmetrics, serve,
    serve_env, stored,
};

/// `127.0.0.1:PORT` of a server's `http://127.0.0.1:PORT`.
fn addr(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

/// Takes the scheduled backups out (they open files of their own, which
/// would blur counts of the server's).
fn no_backups(root: &Root) -> &Root {
    root.edit_config("full_every_hours = 24", "full_every_hours = 0")
        .edit_config(
            "incremental_every_minutes = 60",
            "incremental_every_minutes = 0",
        )
}

/// One raw HTTP/1.1 exchange (the request must say `Connection: close`):
/// the status, the headers (names in lower case) and the body.
fn raw(addr: &str, request: &str) -> (u16, BTreeMap<String, String>, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut bytes = Vec::new();
    stream.read_to_end(&mut bytes).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

fn get(
    addr: &str,
    path: &str,
    host: &str,
    token: Option<&str>,
) -> (u16, BTreeMap<String, String>, String) {
    let auth = token.map_or_else(String::new, |t| format!("Authorization: Bearer {t}\r\n"));
    raw(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"),
    )
}

/// The audit rows of `action`: (target, detail).
fn audit_rows(root: &Root, action: &str) -> Vec<(String, String)> {
    let db = rusqlite::Connection::open_with_flags(
        root.path().join("data/acp.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db
        .prepare(
            "SELECT COALESCE(target, ''), COALESCE(detail, '') FROM audit_log WHERE action = ?1",
        )
        .unwrap();
    stmt.query_map([action], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// How many refusals rows stand for: each detail starts with its count.
fn counted(rows: &[(String, String)]) -> u64 {
    rows.iter()
        .map(|(_, detail)| {
            detail
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or_else(|| panic!("a refusal row without its count: {detail}"))
        })
        .sum()
}

#[test]
fn refused_requests_with_huge_paths_are_audited_in_few_short_rows_that_count_them() {
    let root = Root::new(1);
    root.edit_config("refusal_audit_secs = 60", "refusal_audit_secs = 1");
    let web = serve(&root, "");
    let long = "x".repeat(60_000);
    let started = Instant::now();
    for i in 0..200 {
        let (code, problem) = answer(
            web.client
                .get(web.url(&format!("/api/v1/agents/{long}{i}/inbox")))
                .send()
                .unwrap(),
        );
        assert_eq!(code, 401, "{problem}");
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Authorization"),
            "{problem}"
        );
    }
    let took = started.elapsed();
    // Every refusal is counted once the interval it fell in has ended.
    let mut rows = Vec::new();
    wait_until(LIMIT, || {
        rows = audit_rows(&root, "http.auth");
        counted(&rows) == 200
    });
    // A row when a source is first refused in an interval, and one that
    // counts the rest when it ends: a handful, not two hundred.
    let intervals = took.as_secs() + 2;
    assert!(
        (rows.len() as u64) <= 2 * intervals && rows.len() < 40,
        "{} rows for 200 refusals in {took:?}: {rows:?}",
        rows.len()
    );
    let bytes: usize = rows.iter().map(|(t, d)| t.len() + d.len()).sum();
    for (target, detail) in &rows {
        assert!(
            target.len() <= 200,
            "a path kept whole: {} bytes",
            target.len()
        );
        assert!(
            target.contains('…') && target.ends_with(" bytes)"),
            "{target}"
        );
        assert!(
            detail.contains("127.0.0.1") && detail.contains("no Authorization header"),
            "{detail}"
        );
    }
    assert!(
        bytes < 20_000,
        "{bytes} bytes of audit for 200 refusals (12 MB before)"
    );
}

/// How a slow client's attempt ended.
#[derive(Debug, PartialEq, Eq)]
enum Slow {
    /// The server closed the connection after this many bytes of the head.
    Cut(usize),
    /// The whole head went out: the server waited for it.
    Completed,
}

/// Sends `head` a byte at a time, one per 100 ms (the attack's pace),
/// watching for the server to close the connection.
fn slow_client(addr: &str, head: &[u8]) -> Slow {
    let Ok(mut stream) = TcpStream::connect(addr) else {
        return Slow::Cut(0);
    };
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut byte = [0u8; 1];
    for (i, b) in head.iter().enumerate() {
        if stream.write_all(&[*b]).is_err() {
            return Slow::Cut(i);
        }
        match stream.read(&mut byte) {
            Ok(0) => return Slow::Cut(i + 1),
            Ok(_) => return Slow::Completed,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return Slow::Cut(i + 1),
        }
    }
    Slow::Completed
}

/// The open files of a process.
fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[test]
fn slow_clients_are_cut_off_and_the_connection_cap_holds_while_healthz_answers() {
    const CAP: usize = 8;
    const SLOW: usize = 40;
    let root = Root::new(1);
    no_backups(&root)
        .edit_config("header_timeout_secs = 10", "header_timeout_secs = 1")
        .edit_config(
            "max_connections = 1024",
            &format!("max_connections = {CAP}"),
        );
    let web = serve(&root, "");
    let pid = web.service.child.id();
    wait_until(LIMIT, || {
        web.client
            .get(web.url("/readyz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    let baseline = open_files(pid);
    let target = addr(&web.base);
    // A head that takes 26 s at the attack's pace: longer than a client
    // could wait in the queue, so a cut comes from the header timeout.
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: {target}\r\nX-Pad: {}\r\n\r\n",
        "a".repeat(200)
    )
    .into_bytes();
    let clients: Vec<_> = (0..SLOW)
        .map(|_| {
            let (target, head) = (target.clone(), head.clone());
            std::thread::spawn(move || slow_client(&target, &head))
        })
        .collect();
    // /healthz, asked while they trickle: it waits its turn, then answers.
    let health = {
        let url = web.url("/healthz");
        std::thread::spawn(move || {
            reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap()
                .get(url)
                .send()
                .map(|r| r.status().as_u16())
        })
    };
    let mut most = baseline;
    wait_until(Duration::from_secs(120), || {
        most = most.max(open_files(pid));
        clients.iter().all(std::thread::JoinHandle::is_finished) && health.is_finished()
    });
    let outcomes: Vec<Slow> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(
        outcomes
            .iter()
            .all(|o| matches!(o, Slow::Cut(n) if *n < head.len())),
        "a slow client kept its connection to the end: {outcomes:?}"
    );
    assert_eq!(health.join().unwrap().unwrap(), 200);
    // The server held at most CAP connections (and a few files of its
    // own), not one per slow client.
    assert!(
        most <= baseline + CAP + 4,
        "{most} open files at most, {baseline} before {SLOW} slow clients (cap {CAP})"
    );
    assert_eq!(
        web.client.get(web.url("/healthz")).send().unwrap().status(),
        200
    );
}

#[test]
fn a_connection_that_moves_no_byte_is_closed_at_the_idle_timeout() {
    let root = Root::new(1);
    root.edit_config("header_timeout_secs = 10", "header_timeout_secs = 600")
        .edit_config("idle_timeout_secs = 60", "idle_timeout_secs = 1");
    let web = serve(&root, "");
    // Half a head, then silence: the header timeout is far off, the idle
    // one is not.
    let mut stream = TcpStream::connect(addr(&web.base)).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHo").unwrap();
    let mut byte = [0u8; 1];
    let closed = match stream.read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    };
    assert!(
        closed,
        "the server kept a silent connection open for {LIMIT:?}"
    );
}

/// `acp run` for `root` under an open-file limit of `files`, logging to
/// `service.log`; killed on drop.
struct Limited(std::process::Child);

impl Drop for Limited {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn run_with_file_limit(root: &Root, files: u32) -> Limited {
    let log = std::fs::File::create(root.path().join("service.log")).unwrap();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", &format!("ulimit -n {files} && exec \"$0\" \"$@\"")])
        .arg(env!("CARGO_BIN_EXE_acp"))
        .arg("--root")
        .arg(root.path())
        .arg("run");
    for (key, _) in std::env::vars() {
        if key.starts_with("ACP_") || key.starts_with("DISCORD_") {
            cmd.env_remove(key);
        }
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Limited(child)
}

/// The one delivery of a root: (state, attempts, detail).
fn delivery(root: &Root) -> Option<(String, u32, String)> {
    let db = rusqlite::Connection::open_with_flags(
        root.path().join("data/acp.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .ok()?;
    db.query_row(
        "SELECT state, attempts, COALESCE(detail, '') FROM deliveries",
        [],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .ok()
}

#[test]
fn a_delivery_short_of_open_files_is_retried_not_failed_and_arrives_once_they_free_up() {
    let root = Root::new(1);
    no_backups(root.fast())
        .edit_config("max_attempts = 5", "max_attempts = 2")
        .edit_config("max_connections = 1024", "max_connections = 4096")
        .edit_config("header_timeout_secs = 10", "header_timeout_secs = 600")
        .edit_config("idle_timeout_secs = 60", "idle_timeout_secs = 600");
    std::fs::write(
        root.path().join(".env"),
        format!("ACP_API_TOKENS=api:admin={TOKEN}\n"),
    )
    .unwrap();
    let _service = run_with_file_limit(&root, 64);
    let base = address(&root);
    let client = reqwest::blocking::Client::new();
    wait_until(LIMIT, || {
        client
            .get(format!("{base}/readyz"))
            .send()
            .is_ok_and(|r| r.status() == 200)
    });
    // Idle connections take the server's open files until it cannot
    // accept another (it says so in its log).
    let log = root.path().join("service.log");
    let target = addr(&base);
    let mut held = Vec::new();
    wait_until(LIMIT, || {
        assert!(held.len() < 2000, "the server never ran out of files");
        held.push(TcpStream::connect(&target).unwrap());
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("cannot accept an HTTP connection")
    });
    // A message sent now (by the command line) cannot be written into
    // the inbox: it waits, attempt after attempt, past max_attempts.
    let out = root.run(&["send", "--to", "Agent-1", "sent while files ran out"]);
    assert!(out.status.success(), "{}", crate::support::stderr(&out));
    let mut seen = None;
    wait_until(LIMIT, || {
        seen = delivery(&root);
        seen.as_ref().is_some_and(|(state, attempts, detail)| {
            assert_ne!(state, "failed", "failed for good: {detail}");
            *attempts >= 4 && detail.contains("Too many open files")
        })
    });
    // Files free up: it is delivered, once.
    drop(held);
    wait_until(LIMIT, || {
        delivery(&root).is_some_and(|(state, _, _)| state == "delivered")
    });
    let files = root.inbox_files("Agent-1");
    assert_eq!(files.len(), 1, "{files:?} after {seen:?}");
    let text = std::fs::read_to_string(root.inbox("Agent-1").join(&files[0])).unwrap();
    assert!(text.contains("sent while files ran out"), "{text}");
}

#[test]
fn a_page_naming_another_host_is_refused_and_every_answer_carries_security_headers() {
    let root = Root::new(1);
    let web = serve(&root, "");
    let target = addr(&web.base);
    let port = target.rsplit_once(':').unwrap().1.to_owned();
    let spec = Spec::of(&web);
    // DNS rebinding: a page at evil.example whose name now points here.
    for path in ["/", "/metrics", "/api/v1/status"] {
        let (code, headers, body) =
            get(&target, path, &format!("evil.example:{port}"), Some(TOKEN));
        assert_eq!(code, 421, "{path}: {body}");
        assert!(body.contains("http.hosts"), "{body}");
        assert_eq!(headers["x-frame-options"], "DENY");
        if path == "/api/v1/status" {
            spec.check("get", "/status", 421, &serde_json::from_str(&body).unwrap());
        }
    }
    // The addresses it listens on are answered, with the headers.
    for host in [
        target.clone(),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let (code, headers, body) = get(&target, "/", &host, None);
        assert_eq!(code, 200, "{host}: {body}");
        let csp = &headers["content-security-policy"];
        assert!(
            csp.contains("default-src 'none'")
                && csp.contains("script-src 'self'")
                && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        assert_eq!(headers["x-frame-options"], "DENY");
        assert_eq!(headers["x-content-type-options"], "nosniff");
        // Nothing inline for the policy to allow.
        assert!(
            body.contains("<script src=\"/status.js\">") && !body.contains("<style"),
            "{body}"
        );
    }
    // Every other answer too: metrics, health, assets, refusals, 404s.
    for (path, token, want) in [
        ("/metrics", None, 200),
        ("/healthz", None, 200),
        ("/status.js", None, 200),
        ("/status.css", None, 200),
        ("/api/v1/status", None, 401),
        ("/api/v1/status", Some(TOKEN), 200),
        ("/api/v1/nothing", Some(TOKEN), 404),
        ("/nothing", None, 404),
    ] {
        let (code, headers, _) = get(&target, path, &target, token);
        assert_eq!(code, want, "{path}");
        for name in [
            "content-security-policy",
            "x-frame-options",
            "x-content-type-options",
        ] {
            assert!(
                headers.contains_key(name),
                "{path} lacks {name}: {headers:?}"
            );
        }
    }
    // The refusals are in the audit log.
    wait_until(LIMIT, || !audit_rows(&root, "http.host").is_empty());
    let rows = audit_rows(&root, "http.host");
    assert!(rows[0].1.contains("evil.example"), "{rows:?}");
}

#[test]
fn a_configured_name_passes_the_host_check() {
    let root = Root::new(1);
    root.edit_config("hosts = []", "hosts = [\"acp.example.com\"]");
    let web = serve(&root, "");
    let target = addr(&web.base);
    let (code, _, body) = get(&target, "/healthz", "acp.example.com", None);
    assert_eq!(code, 200, "{body}");
    let (code, _, _) = get(&target, "/healthz", "acp.example.com.evil.example", None);
    assert_eq!(code, 421);
}

#[test]
fn many_unknown_agent_names_in_paths_leave_one_metric_series() {
    let root = Root::new(2);
    let web = serve(&root, "");
    for i in 0..100 {
        let name = if i % 2 == 0 {
            format!("zz{i}q")
        } else {
            format!("Agent-{}", 1000 + i)
        };
        let (code, problem) = web.get(&format!("/api/v1/agents/{name}/inbox"));
        assert_eq!(code, 404, "{problem}");
    }
    let (code, _) = web.get("/api/v1/agents/Agent-1/inbox");
    assert_eq!(code, 200);
    let text = web
        .client
        .get(web.url("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let inbox = "GET /api/v1/agents/{agent}/inbox";
    let mut rows = Vec::new();
    wait_until(LIMIT, || {
        rows = parse_metrics(&scrape_openmetrics(&web.client, &web.base));
        sample(
            &rows,
            "acp_commands_total",
            &[("door", "http"), ("command", inbox), ("outcome", "error")],
        ) == Some(100.0)
    });
    let commands: std::collections::BTreeSet<String> = rows
        .iter()
        .filter(|(name, labels, _)| name == "acp_commands_total" && labels["door"] == "http")
        .map(|(_, labels, _)| labels["command"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        commands,
        [inbox.to_owned()].into_iter().collect(),
        "one series per route, whatever the names asked for"
    );
    assert!(
        !text.contains("zz0q") && !text.contains("Agent-1001"),
        "{text}"
    );
}

const READER: &str = "reader-secret-0123456789";
const SENDER: &str = "sender-secret-0123456789";
const AGENT1: &str = "agent1-secret-0123456789";
const PLAIN: &str = "plain-secret-0123456789";

#[test]
fn tokens_are_held_to_their_scopes_and_agents_and_refusals_say_how_to_grant() {
    let root = Root::new(2);
    root.fast();
    let web = serve_env(
        &root,
        &format!(
            "ACP_API_TOKEN={PLAIN}\nACP_API_TOKENS=ops:admin={TOKEN},reader:read={READER},\
             sender:send={SENDER},a1:read+send@Agent-1={AGENT1}\n"
        ),
    );
    let spec = Spec::of(&web);
    let post = |token: &str, path: &str, body: &Value| {
        web.call_as(token, reqwest::Method::POST, path, Some(body))
    };
    let read = |token: &str, path: &str| web.call_as(token, reqwest::Method::GET, path, None);
    let to2 = json!({"to": "Agent-2", "body": "for agent 2"});

    // A read token reads, and is refused a send: 403, saying what to write.
    let (code, _) = read(READER, "/api/v1/status");
    assert_eq!(code, 200);
    let (code, problem) = post(READER, "/api/v1/messages", &to2);
    assert_eq!(code, 403, "{problem}");
    spec.check("post", "/messages", 403, &problem);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("needs the send scope") && detail.contains("reader:read+send=SECRET"),
        "{detail}"
    );
    // ACP_API_TOKEN has no scopes written: it may only read.
    let (code, problem) = post(PLAIN, "/api/v1/messages", &to2);
    assert_eq!(code, 403, "{problem}");
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("no scopes written")
            && detail.contains("from ACP_API_TOKEN into ACP_API_TOKENS"),
        "{detail}"
    );
    assert_eq!(read(PLAIN, "/api/v1/agents").0, 200);
    assert_eq!(stored(&root), 0, "a refused send stored something");

    // A send token sends as itself; another name, roles and the audit log
    // need admin.
    let (code, sent) = post(SENDER, "/api/v1/messages", &to2);
    assert_eq!(code, 201, "{sent}");
    assert_eq!(sent["message"]["from"], "person:sender");
    let for2 = sent["id"].as_str().unwrap().to_owned();
    for from in ["Agent-1", "discord:123456"] {
        let (code, problem) = post(
            SENDER,
            "/api/v1/messages",
            &json!({"to": "Agent-2", "body": "x", "from": from}),
        );
        assert_eq!(code, 403, "{from}: {problem}");
        assert!(
            problem["detail"].as_str().unwrap().contains("admin scope"),
            "{problem}"
        );
    }
    let (code, problem) = web.call_as(
        SENDER,
        reqwest::Method::PUT,
        "/api/v1/roles/Agent-1",
        Some(&json!({"role": "boss"})),
    );
    assert_eq!(code, 403, "{problem}");
    spec.check("put", "/roles/{agent}", 403, &problem);
    assert_eq!(read(SENDER, "/api/v1/audit").0, 403);

    // A token bound to Agent-1 sends as Agent-1 only.
    let (code, own) = post(
        AGENT1,
        "/api/v1/messages",
        &json!({"to": "Agent-2", "body": "from a1"}),
    );
    assert_eq!(code, 201, "{own}");
    assert_eq!(own["message"]["from"], "Agent-1");
    let (code, problem) = post(
        AGENT1,
        "/api/v1/messages",
        &json!({"to": "Agent-1", "body": "x", "from": "Agent-2"}),
    );
    assert_eq!(code, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("bound to Agent-1"),
        "{problem}"
    );
    let (code, problem) = post(
        AGENT1,
        "/api/v1/broadcast",
        &json!({"body": "x", "from": "discord:123456"}),
    );
    assert_eq!(code, 403, "{problem}");
    // It reads its own messages and inbox, not Agent-2's.
    let (_, to1) = post(
        TOKEN,
        "/api/v1/messages",
        &json!({"to": "Agent-1", "body": "for a1"}),
    );
    let for1 = to1["id"].as_str().unwrap().to_owned();
    assert_eq!(read(AGENT1, &format!("/api/v1/messages/{for1}")).0, 200);
    assert_eq!(
        read(
            AGENT1,
            &format!("/api/v1/messages/{}", own["id"].as_str().unwrap())
        )
        .0,
        200
    );
    let (code, problem) = read(AGENT1, &format!("/api/v1/messages/{for2}"));
    assert_eq!(code, 403, "{problem}");
    spec.check("get", "/messages/{id}", 403, &problem);
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("not Agent-1's"),
        "{problem}"
    );
    assert_eq!(read(AGENT1, "/api/v1/agents/agent-1/inbox").0, 200);
    let (code, problem) = read(AGENT1, "/api/v1/agents/Agent-2/inbox");
    assert_eq!(code, 403, "{problem}");
    // It acknowledges its own, not Agent-2's (which stays unacknowledged).
    wait_until(LIMIT, || {
        [&for1, &for2].iter().all(|id| {
            read(TOKEN, &format!("/api/v1/messages/{id}")).1["deliveries"][0]["state"]
                == "delivered"
        })
    });
    let (code, problem) = post(AGENT1, &format!("/api/v1/messages/{for2}/ack"), &json!({}));
    assert_eq!(code, 403, "{problem}");
    spec.check("post", "/messages/{id}/ack", 403, &problem);
    let (code, problem) = post(
        AGENT1,
        &format!("/api/v1/messages/{for2}/ack"),
        &json!({"agent": "Agent-2", "by": "someone"}),
    );
    assert_eq!(code, 403, "{problem}");
    assert!(
        read(TOKEN, &format!("/api/v1/messages/{for2}")).1["deliveries"][0]["acked_by"].is_null()
    );
    let (code, acked) = post(AGENT1, &format!("/api/v1/messages/{for1}/ack"), &json!({}));
    assert_eq!(code, 200, "{acked}");
    assert_eq!(acked["agent"], "Agent-1");

    // An admin does everything, sending as anyone included.
    let (code, as2) = post(
        TOKEN,
        "/api/v1/messages",
        &json!({"to": "Agent-1", "body": "as agent 2", "from": "Agent-2"}),
    );
    assert_eq!(code, 201, "{as2}");
    // Nothing lost: each accepted message is stored and delivered, and
    // no refused one is.
    assert_eq!(stored(&root), 4);
    wait_until(LIMIT, || {
        crate::support::count(&crate::support::status(&root), "delivered") == 4
    });
    // Each refusal is audited under the token that was refused.
    let (code, audit) = read(TOKEN, "/api/v1/audit?limit=200");
    assert_eq!(code, 200);
    let refused_by = |actor: &str| {
        audit.as_array().unwrap().iter().any(|r| {
            r["actor"] == actor && r["action"] == "http.scope" && r["outcome"] == "refused"
        })
    };
    for actor in ["http:reader", "http:api", "http:sender", "http:a1"] {
        assert!(refused_by(actor), "{actor}: {audit:#}");
    }

    // acp doctor says what each token may do.
    let doctor = stdout(&root.run(&["doctor"]));
    for says in [
        "api may read (no scopes written: read only)",
        "reader may read;",
        "a1 may read+send@Agent-1",
        "ops may admin",
    ] {
        assert!(doctor.contains(says), "{says:?} not in:\n{doctor}");
    }
}

#[test]
fn a_body_sent_too_slowly_is_answered_408_and_stores_nothing() {
    let root = Root::new(1);
    root.edit_config("body_timeout_secs = 30", "body_timeout_secs = 1");
    let web = serve(&root, "");
    let target = addr(&web.base);
    let body = br#"{"to": "Agent-1", "body": "slowly"}"#;
    let mut stream = TcpStream::connect(&target).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    write!(
        stream,
        "POST /api/v1/messages HTTP/1.1\r\nHost: {target}\r\nAuthorization: Bearer {TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    // The first byte of the body, then nothing: the deadline answers.
    stream.write_all(&body[..1]).unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("http.body_timeout_secs"), "{answer}");
    assert_eq!(stored(&root), 0);
}
