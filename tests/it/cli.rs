// Over 400 lines: each test is one command-line story.

//! The `acp` binary as a user runs it.

use std::fs;
use std::io::Write;
use std::process::Stdio;
use std::time::Duration;

use crate::support::{Root, count, status, stderr, stdout, wait_until};

#[test]
fn init_twice_changes_nothing_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("swarm");
    let acp = || std::process::Command::new(env!("CARGO_BIN_EXE_acp"));
    let first = acp()
        .args(["init", "--agents", "3", "--root"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(stdout(&first).contains("created config/acp.toml"));
    for agent in ["Agent-1", "Agent-2", "Agent-3"] {
        assert!(
            root.join("agent_workspaces")
                .join(agent)
                .join("inbox")
                .is_dir()
        );
    }
    for dir in ["data", "devlogs", "backups"] {
        assert!(root.join(dir).is_dir(), "{dir}");
    }
    let config = fs::read_to_string(root.join("config/acp.toml")).unwrap();
    let second = acp()
        .args(["--root"])
        .arg(&root)
        .args(["init", "--agents", "5"])
        .output()
        .unwrap();
    assert!(second.status.success());
    assert!(
        stdout(&second).contains("nothing changed"),
        "{}",
        stdout(&second)
    );
    assert_eq!(
        fs::read_to_string(root.join("config/acp.toml")).unwrap(),
        config
    );
}

#[test]
fn a_sent_message_lands_in_the_agents_inbox_and_can_be_acked() {
    let root = Root::new(3);
    let body = "Please migrate the users table.\n\n- keep ids\n- é, 漢字, 🚀\ttabbed";
    let out = root.run(&[
        "send",
        "--to",
        "Agent-2",
        "--from",
        "Agent-1",
        "--priority",
        "urgent",
        "--tag",
        "db",
        body,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).lines().next().unwrap().to_owned();
    assert_eq!(id.len(), 26, "{id}");

    let files = root.inbox_files("Agent-2");
    assert_eq!(files.len(), 1);
    assert!(files[0].ends_with(&format!("_{id}.md")), "{files:?}");
    let text = fs::read_to_string(root.inbox("Agent-2").join(&files[0])).unwrap();
    for line in [
        format!("id: {id}"),
        "from: Agent-1".into(),
        "to: Agent-2".into(),
        "kind: agent_to_agent".into(),
        "priority: urgent".into(),
        "tags: db".into(),
        "reply_to: -".into(),
    ] {
        assert!(
            text.contains(&format!("\n{line}\n")),
            "missing {line:?} in\n{text}"
        );
    }
    assert!(text.contains(body), "{text}");
    assert!(root.inbox_files("Agent-1").is_empty() && root.inbox_files("Agent-3").is_empty());

    let unread = root.run(&["inbox", "list", "--agent", "Agent-2", "--unread"]);
    assert!(stdout(&unread).contains(&id), "{}", stdout(&unread));
    let read = root.run(&["inbox", "read", &id]);
    assert!(
        stdout(&read).contains("Agent-2: delivered by inbox"),
        "{}",
        stdout(&read)
    );
    // Reading does not acknowledge.
    assert!(stdout(&root.run(&["inbox", "list", "--agent", "Agent-2", "--unread"])).contains(&id));

    let ack = root.run(&["inbox", "ack", &id]);
    assert!(ack.status.success(), "{}", stderr(&ack));
    assert!(
        stdout(&ack).contains("acknowledged for Agent-2"),
        "{}",
        stdout(&ack)
    );
    let unread = root.run(&["inbox", "list", "--agent", "Agent-2", "--unread", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&unread.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 0);
    let again = root.run(&["inbox", "ack", &id, "--by", "someone"]);
    assert!(
        stdout(&again).contains("already acknowledged for Agent-2 by Agent-2"),
        "{}",
        stdout(&again)
    );
    let read = root.run(&["inbox", "read", &id, "--json"]);
    let read: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(read["deliveries"][0]["acked_by"], "Agent-2");

    // A reply must name an existing message; this one does.
    let reply = root.run(&[
        "send",
        "--to",
        "Agent-1",
        "--from",
        "Agent-2",
        "--reply-to",
        &id,
        "done",
    ]);
    assert!(reply.status.success(), "{}", stderr(&reply));
    let reply_file = &root.inbox_files("Agent-1")[0];
    assert!(
        fs::read_to_string(root.inbox("Agent-1").join(reply_file))
            .unwrap()
            .contains(&format!("reply_to: {id}"))
    );
}

#[test]
fn broadcast_reaches_every_agent_once() {
    let root = Root::new(4);
    let out = root.run(&["broadcast", "--wait", "stand-up in 5 minutes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).lines().next().unwrap().to_owned();
    for agent in ["Agent-1", "Agent-2", "Agent-3", "Agent-4"] {
        let ids = root.inbox_ids(agent);
        assert_eq!(ids.get(&id), Some(&1), "{agent}: {ids:?}");
        assert_eq!(ids.len(), 1);
        assert!(
            stdout(&out).contains(&format!("{agent}: delivered by inbox")),
            "{}",
            stdout(&out)
        );
    }
    let s = status(&root);
    assert_eq!(count(&s, "delivered"), 4);
    let read = root.run(&["inbox", "read", &id, "--json"]);
    let read: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(read["message"]["kind"], "broadcast");
    // A broadcast is acked per agent.
    let ack = root.run(&["inbox", "ack", &id]);
    assert_eq!(ack.status.code(), Some(2));
    assert!(stderr(&ack).contains("--agent"), "{}", stderr(&ack));
    assert!(
        root.run(&["inbox", "ack", &id, "--agent", "Agent-3"])
            .status
            .success()
    );
}

#[test]
fn hostile_input_is_refused_clearly_and_nothing_is_stored() {
    let root = Root::new(2);
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["send", "--to", "../Agent-1", "hi"],
            "not a valid agent id",
        ),
        (
            vec!["send", "--to", "Agent-1/../../etc", "hi"],
            "not a valid agent id",
        ),
        (vec!["send", "--to", "", "hi"], "not a valid agent id"),
        (
            vec!["send", "--to", "Agent-9", "hi"],
            "unknown agent Agent-9: known agents are Agent-1, Agent-2",
        ),
        (vec!["send", "--to", "Agent-1", "   "], "body is empty"),
        (
            vec!["send", "--to", "Agent-1", "bell\u{7}"],
            "control character U+0007",
        ),
        (
            vec!["send", "--to", "Agent-1", "carriage\rreturn"],
            "control character U+000D",
        ),
        (
            vec!["send", "--to", "Agent-1", "--priority", "asap", "hi"],
            "[possible values: normal, urgent, critical]",
        ),
        (
            vec!["send", "--to", "Agent-1", "--via", "fax", "hi"],
            "[possible values: auto, gui, tmux, inbox]",
        ),
        (
            vec!["send", "--to", "Agent-1", "--reply-to", "not-an-id", "hi"],
            "not a message id",
        ),
        (
            vec![
                "send",
                "--to",
                "Agent-1",
                "--reply-to",
                "01JDQ3Z5X8J6Y4F2K9M0N1P2Q3",
                "hi",
            ],
            "no message with id",
        ),
        (
            vec!["send", "--to", "Agent-1", "--from", "", "hi"],
            "sender",
        ),
        (
            vec!["send", "--to", "Agent-1", "--tag", "no spaces", "hi"],
            "tag",
        ),
        (
            vec!["inbox", "list", "--agent", "../../etc"],
            "not a valid agent id",
        ),
        (vec!["inbox", "ack", "../../x"], "not a message id"),
        (vec!["roles", "set", "Agent-1", ""], "role is 1 to 200"),
    ];
    for (args, expected) in cases {
        let out = root.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: expected {expected:?} in {}",
            stderr(&out)
        );
    }
    // Oversize and binary bodies through stdin.
    let send_stdin = |bytes: &[u8]| {
        let mut child = root
            .acp()
            .args(["send", "--to", "Agent-1", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        child.wait_with_output().unwrap()
    };
    let big = send_stdin(&vec![b'x'; 16 * 1024 + 1]);
    assert_eq!(big.status.code(), Some(2));
    assert!(
        stderr(&big).contains("16385 bytes, over the limit of 16384"),
        "{}",
        stderr(&big)
    );
    let binary = send_stdin(&[0x7f, 0x45, 0x4c, 0x46, 0xff, 0xfe, 0x00]);
    assert_eq!(binary.status.code(), Some(2));
    assert!(stderr(&binary).contains("not UTF-8"), "{}", stderr(&binary));
    let exact = send_stdin(&vec![b'y'; 16 * 1024]);
    assert!(exact.status.success(), "{}", stderr(&exact));

    let s = status(&root);
    assert_eq!(
        count(&s, "delivered"),
        1,
        "only the message at the limit went through"
    );
    assert_eq!(root.inbox_files("Agent-1").len(), 1);
    assert!(root.inbox_files("Agent-2").is_empty());
    assert!(!root.path().join("etc").exists());
}

#[test]
fn malformed_config_is_an_error_naming_file_key_and_reason() {
    let cases = [
        ("[delivery]\nmax_atempts = 3\n", "max_atempts"),
        ("[delivery]\nmax_attempts = -1\n", "delivery.max_attempts"),
        (
            "[delivery]\norder = [\"carrier-pigeon\"]\n",
            "delivery.order",
        ),
        ("[[agents]]\nid = \"../../etc\"\n", "agents[0].id"),
        ("[limits]\nmax_body_bytes = \"big\"\n", "max_body_bytes"),
        ("this is not toml", "config/acp.toml"),
    ];
    for (text, key) in cases {
        let root = Root::new(1);
        fs::write(root.path().join("config/acp.toml"), text).unwrap();
        let out = root.run(&["status"]);
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = stderr(&out);
        assert!(
            err.contains("config/acp.toml") && err.contains(key),
            "{text}: {err}"
        );
    }
    let root = Root::new(1);
    let out = root
        .acp()
        .env("ACP_MAX_ATTEMPTS", "lots")
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("environment: key `ACP_MAX_ATTEMPTS`"),
        "{}",
        stderr(&out)
    );

    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acp"))
        .arg("--root")
        .arg(empty.path())
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("acp init"), "{}", stderr(&out));
}

#[test]
fn environment_and_dotenv_override_the_config_file() {
    let root = Root::new(1);
    fs::write(
        root.path().join(".env"),
        "# limits for this machine\nACP_MAX_BODY_BYTES=10\n",
    )
    .unwrap();
    let out = root.run(&["send", "--to", "Agent-1", "eleven char"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("over the limit of 10 bytes"),
        "{}",
        stderr(&out)
    );
    // The process environment wins over .env.
    let out = root
        .acp()
        .env("ACP_MAX_BODY_BYTES", "100")
        .args(["send", "--to", "Agent-1", "eleven char"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // ACP_AGENT is the default sender.
    let out = root
        .acp()
        .env("ACP_AGENT", "Agent-1")
        .env("ACP_MAX_BODY_BYTES", "100")
        .args(["send", "--to", "Agent-1", "--json", "note"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let read = root.run(&["inbox", "read", v["id"].as_str().unwrap(), "--json"]);
    let read: serde_json::Value = serde_json::from_slice(&read.stdout).unwrap();
    assert_eq!(read["message"]["from"], "Agent-1");
    assert_eq!(read["message"]["kind"], "agent_to_agent");
}

#[test]
fn an_unwritable_inbox_is_retried_then_failed_with_the_reason_and_others_still_get_theirs() {
    let root = Root::new(2);
    root.fast()
        .edit_config("max_attempts = 5", "max_attempts = 3");
    // A file where the inbox directory should be: not writable, even as root.
    let inbox = root.inbox("Agent-2");
    fs::remove_dir(&inbox).unwrap();
    fs::write(&inbox, "in the way").unwrap();

    let out = root.run(&["broadcast", "--wait", "--timeout", "20", "deploy freeze"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("Agent-1: delivered by inbox"), "{text}");
    assert!(
        text.contains("Agent-2: failed after 3 attempt(s): inbox failed: cannot write to inbox"),
        "{text}"
    );
    assert_eq!(root.inbox_files("Agent-1").len(), 1);
    assert_eq!(fs::read_to_string(&inbox).unwrap(), "in the way");

    let s = status(&root);
    assert_eq!(s["failed_total"], 1);
    let failure = &s["recent_failures"][0];
    assert_eq!(failure["agent"], "Agent-2");
    assert_eq!(failure["attempts"], 3);
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("cannot write to inbox"),
        "{failure}"
    );
    let human = stdout(&root.run(&["status"]));
    assert!(human.contains("failed deliveries (1 in all"), "{human}");
}

#[test]
fn the_service_delivers_queued_messages_and_stops_cleanly() {
    let root = Root::new(2);
    root.fast();
    let service = root.service();
    let again = root.run(&["run"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        stderr(&again).contains("already running"),
        "{}",
        stderr(&again)
    );

    let out = root.run(&["send", "--to", "Agent-1", "picked up by the service"]);
    assert!(out.status.success());
    assert!(
        stderr(&out).contains("queued for the running `acp run` service"),
        "{}",
        stderr(&out)
    );
    let id = stdout(&out).trim().to_owned();
    wait_until(Duration::from_secs(10), || {
        root.inbox_ids("Agent-1").contains_key(&id)
    });

    let out = root.run(&["send", "--to", "Agent-2", "--wait", "and waited for"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Agent-2: delivered by inbox"),
        "{}",
        stdout(&out)
    );

    let (status, log) = service.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("stopped cleanly"), "{log}");
    assert!(log.contains("no DISCORD_TOKEN configured"), "{log}");
}

#[test]
fn two_processes_sending_at_once_lose_and_duplicate_nothing() {
    let root = Root::new(2);
    let ids = std::thread::scope(|s| {
        let senders: Vec<_> = ["Agent-1", "Agent-2"]
            .into_iter()
            .map(|agent| {
                let root = &root;
                s.spawn(move || {
                    (0..20)
                        .map(|i| {
                            let out = root.run(&[
                                "send",
                                "--to",
                                agent,
                                &format!("message {i} for {agent}"),
                            ]);
                            assert!(out.status.success(), "{}", stderr(&out));
                            (agent, stdout(&out).lines().next().unwrap().to_owned())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        senders
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<_>>()
    });
    assert_eq!(ids.len(), 40);
    for (agent, id) in &ids {
        assert_eq!(root.inbox_ids(agent).get(id), Some(&1), "{agent} {id}");
    }
    assert_eq!(
        root.inbox_files("Agent-1").len() + root.inbox_files("Agent-2").len(),
        40
    );
    assert_eq!(count(&status(&root), "delivered"), 40);
}

#[test]
fn roles_and_the_captain_persist_and_are_audited() {
    let root = Root::new(3);
    let out = root.run(&["roles", "set", "Agent-3", "Database specialist"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(root.run(&["roles", "captain", "Agent-2"]).status.success());
    let list = stdout(&root.run(&["roles", "list"]));
    assert!(list.contains("Agent-3       Database specialist"), "{list}");
    assert!(
        list.contains("Agent-2       General engineer  [captain]"),
        "{list}"
    );
    let agents: serde_json::Value =
        serde_json::from_slice(&root.run(&["agents", "--json"]).stdout).unwrap();
    assert_eq!(agents[2]["role"], "Database specialist");
    assert_eq!(agents[2]["role_source"], "store");
    assert_eq!(agents[0]["captain"], false);
    assert_eq!(agents[1]["captain"], true);
    assert!(root.run(&["roles", "clear", "Agent-3"]).status.success());
    let list = stdout(&root.run(&["roles", "list"]));
    assert!(list.contains("Agent-3       General engineer"), "{list}");
    let audit: serde_json::Value =
        serde_json::from_slice(&root.run(&["audit", "--json"]).stdout).unwrap();
    let actions: Vec<&str> = audit
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["roles.clear", "roles.captain", "roles.set"]);
    assert_eq!(audit[2]["target"], "Agent-3");
    assert_eq!(audit[2]["detail"], "Database specialist");
}

#[test]
fn coordinates_are_validated_against_monitors_and_each_other() {
    let root = Root::new(4);
    let out = root.run(&["coords", "validate"]);
    assert!(out.status.success(), "{}", stdout(&out));
    let path = root.path().join("config/coordinates.json");
    fs::write(
        &path,
        r#"{"monitors": [{"name": "left", "x": -1920, "y": 0, "width": 1920, "height": 1080},
                         {"name": "right", "x": 0, "y": 0, "width": 2560, "height": 1440}],
            "Agent-1": {"chat_input_coordinates": [-1269, 481], "onboarding_coordinates": [-1265, 171]},
            "Agent-2": {"chat_input_coordinates": [-1265, 485]},
            "Agent-3": {"chat_input_coordinates": [2600, 100]}}"#,
    )
    .unwrap();
    let out = root.run(&["coords", "validate", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let messages: Vec<String> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| format!("{} {}", f["agent"], f["message"]))
        .collect();
    let has = |s: &str| messages.iter().any(|m| m.contains(s));
    assert!(
        has("Agent-3\" \"chat input (2600, 100) is outside every monitor"),
        "{messages:#?}"
    );
    assert!(has("nearly the same point"), "{messages:#?}");
    assert!(has("Agent-4\" \"has no coordinates"), "{messages:#?}");
    fs::write(
        &path,
        "{\"Agent-1\": {\"chat_input_coordinates\": \"left\"}}",
    )
    .unwrap();
    let out = root.run(&["coords", "validate"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("coordinates.json") && stderr(&out).contains("Agent-1"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn completions_load_in_a_real_bash_and_the_manual_names_every_command() {
    let root = Root::new(1);
    let out = root.run(&["completions", "bash"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("acp.bash");
    fs::write(&script, &out.stdout).unwrap();
    // An interactive bash sources it as bash-completion would, then asks
    // it what `acp se<TAB>` and `acp backup <TAB>` complete to.
    let complete = |line: &str| {
        let words: Vec<&str> = line.split(' ').collect();
        let probe = format!(
            "source {}; complete -p acp >/dev/null || exit 3; COMP_WORDS=({}); COMP_CWORD={}; \
             COMP_LINE='{line}'; COMP_POINT={}; _acp acp '{}' '{}'; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display(),
            words
                .iter()
                .map(|w| format!("'{w}'"))
                .collect::<Vec<_>>()
                .join(" "),
            words.len() - 1,
            line.len(),
            words[words.len() - 1],
            words[words.len() - 2],
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "--noprofile", "-i", "-c", &probe])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let got = complete("acp se");
    assert!(got.lines().any(|l| l == "send"), "{got}");
    let got = complete("acp backup ");
    assert!(got.lines().any(|l| l == "restore"), "{got}");
    // The manual page, from the same definitions as --help.
    let man = stdout(&root.run(&["man"]));
    assert!(man.starts_with(".ie") || man.contains(".TH acp 1"), "{man}");
    for command in ["send", "hook", "approve", "backup", "completions"] {
        assert!(
            man.contains(&format!("acp\\-{command}")),
            "{command} missing"
        );
    }
}
