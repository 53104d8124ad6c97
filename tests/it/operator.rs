// Over 400 lines: the person at the keyboard's stories (their inbox through the command line, the
// API and the page, across a restart, the senders an agent cannot take) and `acp watch`.

//! The person at the keyboard has an inbox: what they send from a shell
//! (or with an API token) is signed `person:NAME`, an agent's `acp reply`
//! lands in that person's inbox through the dispatcher like any delivery,
//! and they read and acknowledge it from the command line, the API and
//! the status page. `acp watch` follows all of it live from another
//! process, through the store's activity feed.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::outbox::{as_agent, read, sent_id, wait_state};
use crate::support::{Root, count, status, stderr, stdout, wait_until};
use crate::web::{Spec, answer, serve_env};

const LIMIT: Duration = Duration::from_secs(30);

/// `acp ARGS` run by the person `name` (`ACP_OPERATOR`).
fn as_person(root: &Root, name: &str, args: &[&str]) -> Output {
    root.acp()
        .env("ACP_OPERATOR", name)
        .args(args)
        .output()
        .unwrap()
}

/// The files in a person's inbox folder.
fn person_files(root: &Root, name: &str) -> Vec<String> {
    let dir = root.path().join("data/people").join(name).join("inbox");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .filter(|n| !n.starts_with('.'))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn a_person_reads_and_acknowledges_an_agents_answer_from_the_command_line() {
    let root = Root::new(2);
    // alice asks Agent-1 (no `acp run`: the command delivers it itself).
    let asked = sent_id(&as_person(
        &root,
        "alice",
        &["send", "--to", "Agent-1", "is the build green?"],
    ));
    let message = read(&root, &asked)["message"].clone();
    assert_eq!(message["from"], "person:alice");
    assert_eq!(message["kind"], "human");
    let file = &root.inbox_files("Agent-1")[0];
    let text = std::fs::read_to_string(root.inbox("Agent-1").join(file)).unwrap();
    assert!(text.contains("\nfrom: person:alice\n"), "{text}");

    // Agent-1 answers; it lands in alice's inbox, delivered by the person
    // method with its attempt recorded.
    let body = "green <b>and</b> deployed & tagged";
    let answer = sent_id(&as_agent(&root, "Agent-1", &["reply", &asked, body]));
    let read_answer = read(&root, &answer);
    assert_eq!(
        read_answer["message"]["to"],
        json!({"type": "person", "person": "alice"})
    );
    assert_eq!(read_answer["message"]["reply_to"], asked.as_str());
    let delivery = &read_answer["deliveries"][0];
    assert_eq!(delivery["agent"], "person:alice");
    assert_eq!(delivery["state"], "delivered");
    assert_eq!(delivery["method"], "person");
    assert_eq!(delivery["tried"][0]["outcome"], "ok");
    let files = person_files(&root, "alice");
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].ends_with(&format!("_{answer}.md")));
    let text = std::fs::read_to_string(root.path().join("data/people/alice/inbox").join(&files[0]))
        .unwrap();
    assert!(
        text.contains(body) && text.contains("\nfrom: Agent-1\n"),
        "{text}"
    );

    // alice's inbox lists it, unread; bob's does not.
    let out = as_person(&root, "alice", &["inbox", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listing = stdout(&out);
    assert!(listing.starts_with("person:alice: 1 unread\n"), "{listing}");
    let line = listing.lines().find(|l| l.contains(&answer)).unwrap();
    assert!(
        line.contains("unread") && line.contains("from Agent-1"),
        "{line}"
    );
    let out = as_person(&root, "bob", &["inbox", "list"]);
    assert!(
        stdout(&out).starts_with("person:bob: 0 unread"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains(&answer));
    // So does `--person`, by name or as person:NAME, in JSON.
    for who in ["alice", "person:alice"] {
        let out = as_person(&root, "bob", &["--json", "inbox", "list", "--person", who]);
        let entries: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(entries[0]["message"]["id"], answer.as_str(), "{entries}");
        assert_eq!(entries[0]["message"]["body"], body);
    }
    let out = as_person(&root, "alice", &["inbox", "read", &answer]);
    assert!(
        stdout(&out).contains("person:alice: delivered by person"),
        "{}",
        stdout(&out)
    );

    // An agent neither reads nor acknowledges a person's inbox.
    let out = as_agent(&root, "Agent-2", &["inbox", "list", "--person", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("a person's inbox is theirs"),
        "{}",
        stderr(&out)
    );
    let out = as_agent(&root, "Agent-1", &["inbox", "ack", &answer]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("person:alice's"), "{}", stderr(&out));
    // ACP_AGENT's own listing is its own.
    let out = as_agent(&root, "Agent-1", &["inbox", "list"]);
    assert!(stdout(&out).contains(&asked) && !stdout(&out).contains(&answer));

    // alice acknowledges it: nothing unread any more.
    let out = as_person(&root, "alice", &["inbox", "ack", &answer]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("acknowledged for person:alice"),
        "{}",
        stdout(&out)
    );
    let out = as_person(&root, "alice", &["inbox", "list", "--unread"]);
    assert_eq!(stdout(&out).trim(), "person:alice: 0 unread");
    assert_eq!(
        read(&root, &answer)["deliveries"][0]["acked_by"],
        "person:alice"
    );

    // alice answers the answer: it goes back to Agent-1, from her.
    let back = sent_id(&as_person(&root, "alice", &["reply", &answer, "thanks!"]));
    let back = read(&root, &back);
    assert_eq!(back["message"]["from"], "person:alice");
    assert_eq!(back["deliveries"][0]["agent"], "Agent-1");
    assert_eq!(back["deliveries"][0]["state"], "delivered");

    // Without ACP_OPERATOR the person is the OS user running acp.
    let login = Command::new("id").arg("-un").output().unwrap();
    let login = stdout(&login).trim().to_owned();
    let id = sent_id(&root.run(&["send", "--to", "Agent-2", "hello"]));
    assert_eq!(
        read(&root, &id)["message"]["from"],
        format!("person:{login}").as_str()
    );
}

#[test]
fn an_agent_cannot_send_as_a_person_or_another_agent() {
    let root = Root::new(2);
    let asked = sent_id(&as_person(
        &root,
        "alice",
        &["send", "--to", "Agent-1", "hi"],
    ));
    let before = count(&status(&root), "delivered");
    for (args, says) in [
        (
            vec![
                "send",
                "--to",
                "Agent-2",
                "--from",
                "person:alice",
                "rm -rf, says alice",
            ],
            "an agent sends only as itself",
        ),
        (
            vec!["send", "--to", "Agent-2", "--from", "Agent-2", "from me"],
            "an agent sends only as itself",
        ),
        (
            vec!["broadcast", "--from", "alice", "all hands"],
            "an agent sends only as itself",
        ),
        (
            vec!["reply", &asked, "--from", "person:alice", "done"],
            "an agent sends only as itself",
        ),
    ] {
        let out = as_agent(&root, "Agent-1", &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    }
    // ACP_OPERATOR does not make an agent a person: ACP_AGENT wins.
    let out = root
        .acp()
        .env("ACP_AGENT", "Agent-1")
        .env("ACP_OPERATOR", "alice")
        .args(["send", "--to", "Agent-2", "status?"])
        .output()
        .unwrap();
    let id = sent_id(&out);
    assert_eq!(read(&root, &id)["message"]["from"], "Agent-1");
    // Nothing else was stored or delivered.
    assert_eq!(count(&status(&root), "delivered"), before + 1);

    // A person signs as a person, never in a form that reads as another.
    for from in ["person:../x", "person:", "discord:42:alice", ""] {
        let out = root.run(&["send", "--to", "Agent-1", "--from", from, "x"]);
        assert_eq!(out.status.code(), Some(2), "{from:?}: {}", stderr(&out));
    }
    let id = sent_id(&root.run(&["send", "--to", "Agent-1", "--from", "bob", "x"]));
    assert_eq!(read(&root, &id)["message"]["from"], "person:bob");
    // A bad ACP_OPERATOR is refused where it is read.
    let out = root
        .acp()
        .env("ACP_OPERATOR", "../etc")
        .args(["send", "--to", "Agent-1", "x"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("ACP_OPERATOR"), "{}", stderr(&out));
}

const ALICE: &str = "alice-secret-0123456789abcdef";
const BOB: &str = "bob-secret-0123456789abcdef";
const ADMIN: &str = "admin-secret-0123456789abcdef";
const A1: &str = "a1-secret-0123456789abcdef";

#[test]
fn a_persons_inbox_over_the_api_and_on_the_page_with_bodies_escaped() {
    let root = Root::new(2);
    root.fast();
    let web = serve_env(
        &root,
        &format!(
            "ACP_API_TOKENS=alice:read+send={ALICE},bob:read+send={BOB},api:admin={ADMIN},\
             a1:read+send@Agent-1={A1}\n"
        ),
    );
    let spec = Spec::of(&web);
    let call = |token: &str, method: reqwest::Method, path: &str, body: Option<&Value>| {
        web.call_as(token, method, path, body)
    };
    let get = |token: &str, path: &str| call(token, reqwest::Method::GET, path, None);
    let post = |token: &str, path: &str, body: &Value| {
        call(token, reqwest::Method::POST, path, Some(body))
    };

    // alice's token sends as person:alice.
    let (code, sent) = post(
        ALICE,
        "/api/v1/messages",
        &json!({"to": "Agent-1", "body": "is the build green?"}),
    );
    assert_eq!(code, 201, "{sent}");
    assert_eq!(sent["message"]["from"], "person:alice");
    let asked = sent["id"].as_str().unwrap().to_owned();
    wait_state(&root, &asked, "delivered");
    // Neither an agent's token nor another person's takes her name.
    for token in [A1, BOB] {
        let (code, problem) = post(
            token,
            "/api/v1/messages",
            &json!({"to": "Agent-2", "body": "x", "from": "person:alice"}),
        );
        assert_eq!(code, 403, "{problem}");
    }

    // Agent-1 answers from its shell; `acp run` delivers it to her inbox.
    let hostile = "<script>alert('x')</script> green & <b>done</b>";
    let answer = sent_id(&as_agent(&root, "Agent-1", &["reply", &asked, hostile]));
    wait_state(&root, &answer, "delivered");

    let (code, inbox) = get(ALICE, "/api/v1/inbox");
    assert_eq!(code, 200, "{inbox}");
    spec.check("get", "/inbox", 200, &inbox);
    assert_eq!(inbox["person"], "alice");
    assert_eq!(inbox["unread"], 1);
    assert_eq!(inbox["messages"][0]["message"]["id"], answer.as_str());
    assert_eq!(inbox["messages"][0]["message"]["body"], hostile);
    assert_eq!(inbox["messages"][0]["message"]["from"], "Agent-1");
    spec.check("get", "/messages/{id}", 200, &read(&root, &answer));
    // bob's is empty; hers needs admin; an agent's token has no person.
    let (code, theirs) = get(BOB, "/api/v1/inbox");
    assert_eq!(
        (code, theirs["unread"].clone()),
        (200, json!(0)),
        "{theirs}"
    );
    assert_eq!(theirs["messages"], json!([]));
    let (code, problem) = get(BOB, "/api/v1/people/alice/inbox");
    assert_eq!(code, 403, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("admin"),
        "{problem}"
    );
    let (code, hers) = get(ADMIN, "/api/v1/people/alice/inbox");
    assert_eq!(code, 200, "{hers}");
    spec.check("get", "/people/{name}/inbox", 200, &hers);
    assert_eq!(hers["messages"][0]["message"]["id"], answer.as_str());
    let (code, own) = get(ALICE, "/api/v1/people/person:alice/inbox");
    assert_eq!((code, own["unread"].clone()), (200, json!(1)), "{own}");
    let (code, problem) = get(A1, "/api/v1/inbox");
    assert_eq!(code, 403, "{problem}");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("bound to Agent-1")
    );
    // Nobody but alice (or an admin) acknowledges it for her.
    let (code, problem) = post(BOB, &format!("/api/v1/messages/{answer}/ack"), &json!({}));
    assert_eq!(code, 403, "{problem}");
    let (code, problem) = post(A1, &format!("/api/v1/messages/{answer}/ack"), &json!({}));
    assert_eq!(code, 403, "{problem}");

    // The page shows her inbox, newest first, the body as text.
    let page = |web: &crate::web::Web| web.client.get(web.url("/")).send().unwrap().text().unwrap();
    let html = page(&web);
    assert!(html.contains("person:alice"), "{html}");
    assert!(html.contains("1 unread"), "{html}");
    assert!(
        html.contains(
            "&lt;script&gt;alert('x')&lt;/script&gt; green &amp; &lt;b&gt;done&lt;/b&gt;"
        ),
        "{html}"
    );
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(html.contains(&answer));
    // On a phone: a card per message, nothing sticking out, even with an
    // answer that is one 3000-character word.
    let word = "W".repeat(3000);
    let long = sent_id(&as_agent(&root, "Agent-1", &["reply", &asked, &word]));
    wait_state(&root, &long, "delivered");
    let mut phone = crate::browser::Browser::phone(390, 844, &[]);
    phone.open(&web.url("/"));
    let fit = phone.eval(crate::web::OVERFLOW);
    assert!(
        fit["scrollWidth"].as_u64().unwrap() <= 390 && fit["wide"] == json!([]),
        "{fit:#}"
    );
    let cards = phone.eval(
        "[...document.querySelectorAll('table.inbox tbody tr')].map(r => \
         [getComputedStyle(r).display, r.innerText])",
    );
    assert_eq!(cards.as_array().unwrap().len(), 2, "{cards}");
    assert_eq!(cards[0][0], "block", "{cards}");
    // Newest first; the script did not run, the text is shown as text.
    assert!(cards[0][1].as_str().unwrap().contains(&long), "{cards}");
    assert!(cards[1][1].as_str().unwrap().contains(hostile), "{cards}");

    // alice reads it: acknowledged as by her, nothing unread.
    let (code, receipt) = post(ALICE, &format!("/api/v1/inbox/{answer}/ack"), &json!({}));
    assert_eq!(code, 200, "{receipt}");
    spec.check("post", "/inbox/{id}/ack", 200, &receipt);
    assert_eq!(receipt["recipient"], "person:alice");
    assert_eq!(receipt["ack"]["result"], "acked");
    let (_, again) = post(ALICE, &format!("/api/v1/inbox/{answer}/ack"), &json!({}));
    assert_eq!(again["ack"]["result"], "already_acked", "{again}");
    let (code, unread) = get(ALICE, "/api/v1/inbox?unread=true");
    assert_eq!(code, 200);
    assert_eq!(unread["unread"], 1, "{unread}");
    assert_eq!(unread["messages"].as_array().unwrap().len(), 1, "{unread}");
    assert_eq!(unread["messages"][0]["message"]["id"], long.as_str());
    assert_eq!(
        read(&root, &answer)["deliveries"][0]["acked_by"],
        "person:alice"
    );
    // The other one from her shell: the same inbox, nothing unread.
    let out = as_person(&root, "alice", &["inbox", "ack", &long]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, unread) = get(ALICE, "/api/v1/inbox?unread=true");
    assert_eq!(
        (unread["unread"].clone(), unread["messages"].clone()),
        (json!(0), json!([]))
    );
    assert!(page(&web).contains("0 unread"));
    // A message that is not in her inbox is not hers to acknowledge.
    let (code, problem) = post(ALICE, &format!("/api/v1/inbox/{asked}/ack"), &json!({}));
    assert_eq!(code, 404, "{problem}");
    let (code, _) = answer_of(&web, ALICE, "/api/v1/inbox?limit=x");
    assert_eq!(code, 400);
}

/// A GET's status and body.
fn answer_of(web: &crate::web::Web, token: &str, path: &str) -> (u16, Value) {
    answer(
        web.client
            .get(web.url(path))
            .bearer_auth(token)
            .send()
            .unwrap(),
    )
}

#[test]
fn an_answer_to_a_person_queued_before_an_acp_run_restart_is_delivered_after() {
    let root = Root::new(1);
    root.fast();
    // alice's inbox folder cannot be made yet: a file holds its name.
    let people = root.path().join("data/people");
    std::fs::create_dir_all(&people).unwrap();
    std::fs::write(people.join("alice"), "in the way").unwrap();
    let service = root.service();
    let asked = sent_id(&as_person(
        &root,
        "alice",
        &["send", "--to", "Agent-1", "ready?"],
    ));
    wait_state(&root, &asked, "delivered");
    let answer = sent_id(&as_agent(&root, "Agent-1", &["reply", &asked, "ready."]));
    // Tried, refused by the disk, waiting to be tried again.
    let mut last = Value::Null;
    wait_until(LIMIT, || {
        last = read(&root, &answer)["deliveries"][0].clone();
        last["state"] == "queued" && last["attempts"].as_u64() >= Some(1)
    });
    let why = last["detail"].as_str().unwrap();
    assert!(
        why.contains("cannot write to inbox") && why.contains("data/people/alice"),
        "{last}"
    );
    let (code, log) = service.terminate();
    assert!(code.success(), "{log}");
    // Nothing delivers while acp run is down: it is still queued.
    let stopped = read(&root, &answer)["deliveries"][0].clone();
    assert_eq!(stopped["state"], "queued", "{stopped}");
    let attempts = stopped["attempts"].as_u64().unwrap();

    std::fs::remove_file(people.join("alice")).unwrap();
    let _service = root.service();
    let delivered = wait_state(&root, &answer, "delivered");
    assert_eq!(delivered["method"], "person");
    assert_eq!(
        delivered["attempts"].as_u64().unwrap(),
        attempts + 1,
        "{delivered}"
    );
    let outcomes: Vec<&str> = delivered["tried"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.last(), Some(&"ok"), "{delivered}");
    assert!(
        outcomes[..outcomes.len() - 1]
            .iter()
            .all(|o| *o == "transient")
    );
    assert_eq!(person_files(&root, "alice").len(), 1);
    let out = as_person(&root, "alice", &["inbox", "list"]);
    assert!(
        stdout(&out).starts_with("person:alice: 1 unread"),
        "{}",
        stdout(&out)
    );
}

/// `acp watch` running in the background, its output lines gathered.
struct Watch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Watch {
    fn start(root: &Root, args: &[&str]) -> Self {
        let mut child = root
            .acp()
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        // Ready once it says so (it has taken its place in the feed).
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut first = String::new();
        err.read_line(&mut first).unwrap();
        assert!(first.starts_with("watching "), "{first}");
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Self { child, lines }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits until some line holds every one of `parts`; returns it.
    fn wait_for(&self, parts: &[&str]) -> String {
        let mut found = String::new();
        wait_until(LIMIT, || {
            self.lines()
                .into_iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
                .map(|l| found = l)
                .is_some()
        });
        found
    }

    /// SIGINT, then its exit code.
    fn interrupt(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-INT", &pid])
                .status()
                .unwrap()
                .success()
        );
        let mut code = None;
        wait_until(LIMIT, || {
            code = self.child.try_wait().unwrap().map(|s| s.code());
            code.is_some()
        });
        code.flatten()
    }
}

#[test]
fn acp_watch_follows_the_swarm_from_another_process_once_per_event() {
    let root = Root::new(3);
    root.fast();
    let _service = root.service();
    // Something before the watch starts: not shown without --since.
    let early = sent_id(&as_person(
        &root,
        "alice",
        &["send", "--to", "Agent-1", "early"],
    ));
    wait_state(&root, &early, "delivered");
    let watch = Watch::start(&root, &["--json", "watch"]);

    // Traffic from several shells at once, across many polls.
    let senders: Vec<_> = (0..4)
        .map(|t| {
            let path = root.path().to_owned();
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| {
                        let out = Command::new(env!("CARGO_BIN_EXE_acp"))
                            .args(["--root"])
                            .arg(&path)
                            .args([
                                "send",
                                "--to",
                                if i % 2 == 0 { "Agent-1" } else { "Agent-2" },
                            ])
                            .arg(format!("job {t}.{i}"))
                            .env("ACP_OPERATOR", "alice")
                            .env_remove("ACP_AGENT")
                            .stdin(Stdio::null())
                            .output()
                            .unwrap();
                        sent_id(&out)
                    })
                    .collect::<Vec<String>>()
            })
        })
        .collect();
    let sent: Vec<String> = senders
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    // An answer to alice, and a delivery that fails (no tmux pane).
    let reply = sent_id(&as_agent(&root, "Agent-1", &["reply", &sent[0], "on it"]));
    let failing = sent_id(&as_person(
        &root,
        "alice",
        &["send", "--to", "Agent-3", "--via", "tmux", "never"],
    ));
    wait_state(&root, &failing, "failed");
    wait_state(&root, &reply, "delivered");
    // An agent asks for a permission; a person allows it.
    let waiting = crate::approvals::hook(
        &root,
        "Agent-2",
        &crate::approvals::claude_request("cargo publish", "s-w"),
    );
    let raised = watch.wait_for(&["\"prompt_raised\"", "Bash: cargo publish"]);
    let prompt: Value = serde_json::from_str(&raised).unwrap();
    let prompt = prompt["prompt_id"].as_str().unwrap().to_owned();
    let out = root.run(&["approve", &prompt]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(crate::approvals::hook_answer(waiting).is_some());
    // A last message: everything before it is printed before it.
    let last = sent_id(&as_person(
        &root,
        "alice",
        &["send", "--to", "Agent-3", "last"],
    ));
    watch.wait_for(&["\"delivered\"", &last]);

    let lines = watch.lines();
    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events.iter().all(Value::is_object));
    // In feed order, each once.
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let times = |event: &str, id: &str| {
        events
            .iter()
            .filter(|e| e["event"] == event && e["message_id"] == id)
            .count()
    };
    for id in sent.iter().chain([&reply, &last]) {
        assert_eq!(times("sent", id), 1, "sent {id}\n{lines:#?}");
        assert_eq!(times("delivered", id), 1, "delivered {id}\n{lines:#?}");
    }
    assert_eq!(times("sent", &failing), 1);
    assert_eq!(times("failed", &failing), 1);
    assert_eq!(times("delivered", &failing), 0);
    assert_eq!(times("sent", &early) + times("delivered", &early), 0);
    let messages = events
        .iter()
        .filter(|e| e["message_id"].is_string())
        .count();
    assert_eq!(messages, 2 * (sent.len() + 2) + 2, "{lines:#?}");
    let answered = events
        .iter()
        .find(|e| e["event"] == "sent" && e["message_id"] == reply.as_str())
        .unwrap();
    assert_eq!(answered["reply_to"], sent[0].as_str());
    assert_eq!(answered["to"], "person:alice");
    assert!(events.iter().any(|e| e["event"] == "delivered"
        && e["message_id"] == reply.as_str()
        && e["method"] == "person"));
    let failed = events.iter().find(|e| e["event"] == "failed").unwrap();
    assert!(
        failed["error"].as_str().unwrap().contains("tmux"),
        "{failed}"
    );
    // The attention events: the prompt, its decision, the states.
    let of = |event: &str| events.iter().filter(|e| e["event"] == event).count();
    assert_eq!(of("prompt_raised"), 1);
    let decided = events
        .iter()
        .find(|e| e["event"] == "prompt_decided")
        .unwrap();
    assert_eq!(
        (decided["prompt_id"].as_str(), decided["decision"].as_str()),
        (Some(prompt.as_str()), Some("allow"))
    );
    assert!(events.iter().any(|e| e["event"] == "agent_state"
        && e["agent"] == "Agent-2"
        && e["state"] == "needs_approval"));
    assert_eq!(watch.interrupt(), Some(0));

    // --since replays, as lines a person reads; a closed pipe ends it.
    let mut replaying = root
        .acp()
        .args(["watch", "--since", "1h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(replaying.stdout.take().unwrap());
    let mut shown = String::new();
    // The failure came last of these.
    while !shown.contains(&format!("FAILED    {failing}")) {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "{shown}");
        shown.push_str(&line);
    }
    assert!(
        shown.contains(&format!("sent      {early} person:alice → Agent-1")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("reply     {reply} Agent-1 → person:alice")),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("FAILED    {failing} → Agent-3 after 1 attempt(s)")),
        "{shown}"
    );
    assert!(shown.contains(&format!("answers {}", sent[0])), "{shown}");
    // The reader goes away: it ends, quietly, with 0, though nothing
    // more happens.
    drop(out);
    let mut code = None;
    wait_until(LIMIT, || {
        code = replaying.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    assert_eq!(code.flatten(), Some(0));

    // Following from now, nothing to print, and the reader goes: it ends
    // all the same (it does not wait for a line to fail on).
    let mut child = root
        .acp()
        .arg("watch")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = String::new();
    BufReader::new(child.stderr.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("watching "), "{ready}");
    drop(child.stdout.take());
    let mut code = None;
    wait_until(LIMIT, || {
        code = child.try_wait().unwrap().map(|s| s.code());
        code.is_some()
    });
    assert_eq!(code.flatten(), Some(0));
}
