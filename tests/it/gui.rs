//! Keyboard-and-mouse delivery into real windows under Xvfb, through the real
//! `acp` binary and enigo.

use std::process::Stdio;

use crate::desktop::{ChatBox, Xvfb, write_coordinates};
use crate::support::{Root, stderr, stdout};

/// A root whose agents deliver by gui first, then inbox.
pub(crate) fn gui_root(agents: u32) -> Root {
    let root = Root::new(agents);
    root.fast()
        .edit_config("order = [\"inbox\"]", "order = [\"gui\", \"inbox\"]");
    root
}

pub(crate) fn send(root: &Root, x11: &Xvfb, args: &[&str]) -> std::process::Output {
    let out = root
        .acp()
        .env("DISPLAY", &x11.display)
        .arg("send")
        .args(args)
        .arg("--wait")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

fn ten_kilobytes() -> String {
    // 125 lines of 80 bytes: 10,000 bytes with the newlines between them.
    (0..125)
        .map(|i| {
            format!(
                "{i:03} {:<76}",
                "the quick brown fox jumps over the lazy dog; 0123456789 = ABC & xyz!"
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn every_body_arrives_whole_in_its_own_window_typed_and_pasted() {
    let x11 = Xvfb::start();
    let root = gui_root(3);
    root.agent_config(
        "Agent-1",
        "window_title = \"^Agent-1 chat$\"\ninput = \"type\"",
    )
    .agent_config(
        "Agent-2",
        "window_title = \"^Agent-2 chat$\"\ninput = \"paste\"",
    );
    let a1 = ChatBox::open(&x11, root.path(), "Agent-1 chat", 100, 100);
    let a2 = ChatBox::open(&x11, root.path(), "Agent-2 chat", 2100, 600);
    let a3 = ChatBox::open(&x11, root.path(), "Agent-3 chat", 900, 700);
    write_coordinates(
        root.path(),
        &[
            ("Agent-1", a1.center(), None),
            ("Agent-2", a2.center(), None),
            ("Agent-3", a3.center(), None),
        ],
    );

    let bodies = [
        "Deploy the staging build now.".to_owned(),
        "Plan:\n1. migrate the users table\n2. run the tests\n\n3. ship it".to_owned(),
        ten_kilobytes(),
        "Résumé naïve café — 漢字かな 🚀✨ ü ß «quotes» €".to_owned(),
    ];
    assert!(bodies[2].len() >= 9_999, "{}", bodies[2].len());
    for body in &bodies {
        let typed = send(&root, &x11, &["--to", "Agent-1", body]);
        assert!(
            stdout(&typed).contains("Agent-1: delivered by gui (typed into \"Agent-1 chat\""),
            "{}",
            stdout(&typed)
        );
        let pasted = send(&root, &x11, &["--to", "Agent-2", body]);
        assert!(
            stdout(&pasted).contains("Agent-2: delivered by gui (pasted into \"Agent-2 chat\""),
            "{}",
            stdout(&pasted)
        );
    }
    // Each window got each body whole, submitted once, in order; nothing
    // stayed unsubmitted and nothing reached the third window.
    assert_eq!(a1.wait_for_submits(bodies.len()), bodies);
    assert_eq!(a2.wait_for_submits(bodies.len()), bodies);
    assert_eq!((a1.draft(), a2.draft()), (String::new(), String::new()));
    assert!(a3.submits().is_empty() && a3.draft().is_empty());
    // Delivered by gui means no inbox copy.
    assert!(root.inbox_files("Agent-1").is_empty() && root.inbox_files("Agent-2").is_empty());
}

#[test]
fn two_processes_typing_at_once_never_interleave() {
    let x11 = Xvfb::start();
    let root = gui_root(2);
    root.agent_config("Agent-1", "input = \"type\"")
        .agent_config("Agent-2", "input = \"type\"");
    let a1 = ChatBox::open(&x11, root.path(), "Agent-1 chat", 200, 200);
    let a2 = ChatBox::open(&x11, root.path(), "Agent-2 chat", 2400, 300);
    write_coordinates(
        root.path(),
        &[
            ("Agent-1", a1.center(), None),
            ("Agent-2", a2.center(), None),
        ],
    );
    // Mostly keys on the keyboard map, and a few characters that need a
    // keycode remapped (the part where two processes could clash).
    let body1 = format!("{}é{}", "alpha-".repeat(30), "alpha-".repeat(30));
    let body2 = format!("{}ü{}", "OMEGA+".repeat(30), "OMEGA+".repeat(30));
    for round in 0..3 {
        let spawn = |agent: &str, body: &str| {
            root.acp()
                .env("DISPLAY", &x11.display)
                .args(["send", "--wait", "--to", agent, &format!("{round}:{body}")])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        };
        let (p1, p2) = (spawn("Agent-1", &body1), spawn("Agent-2", &body2));
        for p in [p1, p2] {
            let out = p.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(
                stdout(&out).contains("delivered by gui"),
                "{}",
                stdout(&out)
            );
        }
    }
    let expect = |body: &str| (0..3).map(|r| format!("{r}:{body}")).collect::<Vec<_>>();
    assert_eq!(a1.wait_for_submits(3), expect(&body1));
    assert_eq!(a2.wait_for_submits(3), expect(&body2));
    assert_eq!((a1.draft(), a2.draft()), (String::new(), String::new()));
}

#[test]
fn wrong_window_no_window_no_display_and_a_dead_server_fall_back_to_the_inbox() {
    let mut x11 = Xvfb::start();
    let root = gui_root(3);
    root.agent_config("Agent-1", "window_title = \"^Agent-1 chat$\"");
    let a2 = ChatBox::open(&x11, root.path(), "Agent-2 chat", 2100, 100);
    // Agent-1's point is over Agent-2's window; Agent-3's over bare desktop.
    write_coordinates(
        root.path(),
        &[
            ("Agent-1", a2.center(), None),
            ("Agent-2", a2.center(), None),
            ("Agent-3", (1500, 900), None),
        ],
    );
    // (validate flags the clash, which is what a user would see first)
    assert_eq!(root.run(&["coords", "validate"]).status.code(), Some(1));

    let check = |args: &[&str], agent: &str, reason: &str, display: Option<&str>| {
        let mut cmd = root.acp();
        cmd.args(["send", "--wait", "--to", agent]).args(args);
        match display {
            Some(d) => cmd.env("DISPLAY", d),
            None => cmd.env_remove("DISPLAY"),
        };
        let out = cmd.output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!("{agent}: delivered by inbox after gui failed: "))
                && text.contains(reason),
            "{text}"
        );
        let id = text.lines().next().unwrap().to_owned();
        assert_eq!(root.inbox_ids(agent).get(&id), Some(&1), "{agent} inbox");
        let read: serde_json::Value =
            serde_json::from_slice(&root.run(&["inbox", "read", &id, "--json"]).stdout).unwrap();
        assert_eq!(read["deliveries"][0]["method"], "inbox");
        assert_eq!(read["deliveries"][0]["tried"][0]["method"], "gui");
    };
    check(
        &["not for Agent-2"],
        "Agent-1",
        "whose title does not match Agent-1's window_title \"^Agent-1 chat$\"",
        Some(&x11.display),
    );
    check(
        &["into the void"],
        "Agent-3",
        "no application window at (1500, 900)",
        Some(&x11.display),
    );
    check(
        &["headless"],
        "Agent-2",
        "no display: DISPLAY is not set",
        None,
    );
    assert!(
        a2.submits().is_empty() && a2.draft().is_empty(),
        "no keystrokes reached the wrong window"
    );
    // Another process holding the keyboard longer than the lock timeout.
    root.edit_config("lock_timeout_ms = 10000", "lock_timeout_ms = 300");
    let held = std::fs::File::create(root.path().join("data/gui.lock")).unwrap();
    held.lock().unwrap();
    check(
        &["while busy"],
        "Agent-2",
        "another acp process kept the keyboard and mouse for 300ms",
        Some(&x11.display),
    );
    drop(held);
    let display = x11.display.clone();
    x11.kill();
    check(
        &["after the crash"],
        "Agent-2",
        &format!("cannot connect to X display {display}"),
        Some(&display),
    );
}

#[test]
fn onboarding_presses_its_keys_first_and_doorbell_types_only_a_notice() {
    let x11 = Xvfb::start();
    let root = gui_root(2);
    root.agent_config("Agent-1", "onboarding_keys = [\"ctrl+n\"]")
        .agent_config("Agent-2", "doorbell = true");
    let chat = ChatBox::open(&x11, root.path(), "Agent-1 chat", 100, 100);
    let onboarding = ChatBox::open(&x11, root.path(), "Agent-1 onboarding", 100, 500);
    let a2 = ChatBox::open(&x11, root.path(), "Agent-2 chat", 2500, 400);
    write_coordinates(
        root.path(),
        &[
            ("Agent-1", chat.center(), Some(onboarding.center())),
            ("Agent-2", a2.center(), None),
        ],
    );

    send(
        &root,
        &x11,
        &[
            "--to",
            "Agent-1",
            "--kind",
            "onboarding",
            "Welcome! You are Agent-1, the captain.",
        ],
    );
    assert_eq!(
        onboarding.wait_for_submits(1),
        ["Welcome! You are Agent-1, the captain."]
    );
    assert_eq!(
        chat.keys(),
        ["ctrl+n"],
        "the onboarding key went to the chat window first"
    );
    assert!(chat.submits().is_empty());

    let body = "Long brief:\n- step one\n- step two\n".repeat(20);
    let out = send(&root, &x11, &["--to", "Agent-2", &body]);
    let id = stdout(&out).lines().next().unwrap().to_owned();
    assert!(
        stdout(&out).contains("Agent-2: delivered by gui (doorbell notice "),
        "{}",
        stdout(&out)
    );
    let files = root.inbox_files("Agent-2");
    assert_eq!(files.len(), 1);
    let file = root.inbox("Agent-2").join(&files[0]);
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains(body.trim_end())
    );
    let notices = a2.wait_for_submits(1);
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(!notices[0].contains('\n'), "one line: {:?}", notices[0]);
    assert!(
        notices[0].contains(&file.display().to_string())
            && notices[0].contains(&format!("acp inbox ack {id}")),
        "{:?}",
        notices[0]
    );
}

#[test]
fn coords_test_and_capture_read_the_live_screen() {
    let x11 = Xvfb::start();
    let root = gui_root(2);
    root.agent_config("Agent-1", "window_title = \"^Agent-1 chat$\"");
    let a1 = ChatBox::open(&x11, root.path(), "Agent-1 chat", 300, 300);
    write_coordinates(
        root.path(),
        &[
            ("Agent-1", a1.center(), None),
            ("Agent-2", (3000, 900), None),
        ],
    );
    let acp = |args: &[&str]| {
        root.acp()
            .env("DISPLAY", &x11.display)
            .args(args)
            .output()
            .unwrap()
    };

    // `test` moves the mouse there and reports the window, typing nothing.
    let out = acp(&["coords", "test", "Agent-1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("window \"Agent-1 chat\""),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("the window guard accepts it"),
        "{}",
        stdout(&out)
    );
    let out = acp(&["coords", "test", "Agent-2", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["would_type"], false);
    assert!(
        report["reason"]
            .as_str()
            .unwrap()
            .contains("no application window"),
        "{report}"
    );

    // The mouse is still where `test Agent-2` left it: capture saves it.
    let out = acp(&["coords", "capture", "Agent-2", "--countdown", "0", "--save"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Agent-2 chat input: (3000, 900)"),
        "{}",
        stdout(&out)
    );
    assert!(
        acp(&["coords", "test", "Agent-1", "--no-move"])
            .status
            .success()
    );
    let (x, y) = a1.center();
    let mv = acp(&["coords", "test", "Agent-1"]);
    assert!(mv.status.success());
    let out = acp(&[
        "coords",
        "capture",
        "Agent-2",
        "--countdown",
        "0",
        "--save",
        "--onboarding",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let saved: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.path().join("config/coordinates.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        saved["Agent-2"]["chat_input_coordinates"],
        serde_json::json!([3000, 900])
    );
    assert_eq!(
        saved["Agent-2"]["onboarding_coordinates"],
        serde_json::json!([x, y])
    );
    assert_eq!(
        saved["monitors"].as_array().unwrap().len(),
        2,
        "the rest of the file is kept"
    );

    // validate now sees the clash (Agent-2's onboarding point is Agent-1's
    // chat input) and checks the live screen.
    let out = acp(&["coords", "validate"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("the same point"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("checked against the live screen"),
        "{}",
        stdout(&out)
    );
    assert!(
        a1.submits().is_empty() && a1.draft().is_empty(),
        "coords commands never type"
    );
}
