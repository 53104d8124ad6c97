//! A terminal agent's dialog answered from Discord: a fake agent in a real
//! tmux pane draws a Claude-Code-like permission dialog and records the key
//! it gets; `acp run` reads the pane with the agent's profile, posts the
//! prompt with buttons to the stand-in Discord, and sends the dialog's own
//! key once a person decides, only while the same dialog is on screen.

use serde_json::Value;

use crate::approvals::{button, prompt_post};
use crate::discord::{Bot, OPERATOR, dispatch, start};
use crate::outbox::{LIMIT, swarm, token_in_dotenv};
use crate::standin::{CHANNEL_ID, StandIn, button_press};
use crate::support::{Root, stdout, wait_until};
use crate::tmux::Tmux;

/// A root whose Agent-1 runs in `tmux`'s pane with the claude profile,
/// probed every `probe_ms`, with the bot running.
fn pane_root(standin: &StandIn, tmux: &Tmux, probe_ms: u32) -> (Root, Bot) {
    let root = Root::new(2);
    root.fast();
    token_in_dotenv(&root);
    swarm(&root);
    root.edit_config(
        "pane_probe_ms = 500",
        &format!("pane_probe_ms = {probe_ms}"),
    );
    root.agent_config(
        "Agent-1",
        &tmux.agent_config("Agent-1", ", profile = \"claude\""),
    );
    let bot = start(&root, standin);
    (root, bot)
}

fn records(tmux: &Tmux) -> Vec<Value> {
    std::fs::read_to_string(tmux.record("Agent-1"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn show_dialog(tmux: &Tmux, command: &str) {
    std::fs::write(tmux.flag("Agent-1", "dialog"), command).unwrap();
    wait_until(LIMIT, || {
        tmux.screen("Agent-1").contains("Do you want to proceed?")
            && tmux.screen("Agent-1").contains(command)
    });
}

fn state(root: &Root) -> String {
    let v: Value = serde_json::from_str(&stdout(&root.run(&["--json", "prompts"]))).unwrap();
    v["agents"][0]["state"].as_str().unwrap().to_owned()
}

/// Waits for the edit of post `id` that says `says`.
fn edited(standin: &StandIn, id: u64, says: &str) {
    let path = format!("/channels/{CHANNEL_ID}/messages/{id}");
    standin.wait_for(0, LIMIT, |r| {
        r.method == "PATCH"
            && r.path == path
            && r.body["content"].as_str().unwrap_or("").contains(says)
    });
}

#[test]
fn a_dialog_in_the_pane_is_answered_with_its_key_and_messages_wait_for_it() {
    let tmux = Tmux::start(&["Agent-1"]);
    let standin = StandIn::start();
    let (root, _bot) = pane_root(&standin, &tmux, 100);

    // The dialog appears: posted with its buttons, the agent needs approval.
    show_dialog(&tmux, "rm -rf build");
    let post = prompt_post(&standin, "rm -rf build");
    wait_until(LIMIT, || state(&root) == "needs_approval");

    // A message meanwhile would answer the dialog: it waits, saying why.
    let out = root.run(&["send", "--to", "Agent-1", "1"]);
    let id = stdout(&out).lines().next().unwrap().to_owned();
    wait_until(LIMIT, || {
        stdout(&root.run(&["--json", "inbox", "read", &id])).contains("shows a permission dialog")
    });

    // Allow from Discord: the dialog gets its own key, "1", once.
    let reply = dispatch(
        &standin,
        4001,
        button_press(
            4001,
            &button(&post, "Allow"),
            post.id,
            CHANNEL_ID,
            &[OPERATOR],
            71,
        ),
    );
    assert_eq!(reply["type"], 7, "{reply}");
    wait_until(LIMIT, || {
        records(&tmux).iter().any(|r| r["dialog_key"] == "1")
    });
    edited(&standin, post.id, "key 1 (Yes) sent");
    // Then the waiting message is delivered, as a message, not an answer.
    wait_until(LIMIT, || records(&tmux).iter().any(|r| r["text"] == "1"));
    let got = records(&tmux);
    assert_eq!(
        got.iter().filter(|r| r.get("dialog_key").is_some()).count(),
        1,
        "{got:?}"
    );
    assert!(
        !got.iter().any(|r| r.get("typed_into_dialog").is_some()),
        "{got:?}"
    );

    // Allow for the session: key 2. Deny: key 3.
    show_dialog(&tmux, "npm test");
    let post = prompt_post(&standin, "npm test");
    dispatch(
        &standin,
        4002,
        button_press(
            4002,
            &button(&post, "Allow for this session"),
            post.id,
            CHANNEL_ID,
            &[OPERATOR],
            71,
        ),
    );
    wait_until(LIMIT, || {
        records(&tmux).iter().any(|r| r["dialog_key"] == "2")
    });
    show_dialog(&tmux, "git push --force");
    let post = prompt_post(&standin, "git push --force");
    let id = crate::approvals::prompt_id(&post);
    assert!(
        root.run(&["deny", &id, "--reason", "no force pushes"])
            .status
            .success()
    );
    wait_until(LIMIT, || {
        records(&tmux).iter().any(|r| r["dialog_key"] == "3")
    });
    edited(
        &standin,
        post.id,
        "key 3 (No, and tell Claude what to do differently (esc)) sent",
    );

    // Answered at the keyboard first: the post says so, no key is sent.
    show_dialog(&tmux, "cargo publish");
    let post = prompt_post(&standin, "cargo publish");
    assert!(
        tmux.cmd(&["send-keys", "-t", &Tmux::target("Agent-1"), "1"])
            .status()
            .unwrap()
            .success()
    );
    edited(&standin, post.id, "answered at the terminal");
    let keys = records(&tmux)
        .iter()
        .filter(|r| r.get("dialog_key").is_some())
        .count();
    assert_eq!(keys, 4, "one key per dialog, the last from the keyboard");

    // The agent program quits: exited, said once.
    assert!(
        tmux.cmd(&["send-keys", "-t", &Tmux::target("Agent-1"), "C-c"])
            .status()
            .unwrap()
            .success()
    );
    wait_until(LIMIT, || state(&root) == "exited");
    standin.wait_posts(LIMIT, |posts| {
        posts.iter().any(|p| p.content.contains("exited"))
    });
    standin.assert_no_violations();
}

#[test]
fn a_screen_that_changed_before_the_press_gets_no_key() {
    let tmux = Tmux::start(&["Agent-1"]);
    let standin = StandIn::start();
    // Dialog A is on screen before acp run starts: its first probe raises
    // it. The next probe is far away; only the decision wakes the watcher.
    show_dialog(&tmux, "make deploy-staging");
    let (_root, _bot) = pane_root(&standin, &tmux, 60_000);
    let post = prompt_post(&standin, "make deploy-staging");
    // The screen changes to another dialog; then someone presses Allow on
    // the first one.
    show_dialog(&tmux, "make deploy-production");
    let reply = dispatch(
        &standin,
        4101,
        button_press(
            4101,
            &button(&post, "Allow"),
            post.id,
            CHANNEL_ID,
            &[OPERATOR],
            72,
        ),
    );
    assert_eq!(reply["type"], 7, "{reply}");
    edited(
        &standin,
        post.id,
        "the screen changed before the answer: no key was sent",
    );
    assert!(
        !records(&tmux).iter().any(|r| r.get("dialog_key").is_some()),
        "a key reached the dialog it was not meant for"
    );
    assert!(tmux.screen("Agent-1").contains("make deploy-production"));
}

#[test]
fn a_window_agent_whose_window_closes_is_exited_and_back_is_unknown() {
    use crate::desktop::{ChatBox, Xvfb, write_coordinates};
    let x11 = Xvfb::start();
    let dir = tempfile::tempdir().unwrap();
    let root = Root::new(1);
    root.fast()
        .edit_config("order = [\"inbox\"]", "order = [\"gui\", \"inbox\"]")
        .edit_config("pane_probe_ms = 500", "pane_probe_ms = 100");
    let window = ChatBox::open(&x11, dir.path(), "Agent-1 chat", 100, 100);
    write_coordinates(root.path(), &[("Agent-1", window.center(), None)]);
    let log = std::fs::File::create(root.path().join("service.log")).unwrap();
    let mut run = root
        .acp()
        .env("DISPLAY", &x11.display)
        .arg("run")
        .stderr(log)
        .spawn()
        .unwrap();
    let evidence = |root: &Root| {
        let v: Value = serde_json::from_str(&stdout(&root.run(&["--json", "prompts"]))).unwrap();
        (
            v["agents"][0]["state"].as_str().unwrap().to_owned(),
            v["agents"][0]["detail"].as_str().unwrap_or("").to_owned(),
        )
    };
    // The window is there: acp does not pretend to know more.
    assert_eq!(evidence(&root).0, "unknown");
    drop(window);
    wait_until(LIMIT, || evidence(&root).0 == "exited");
    assert_eq!(evidence(&root).1, "no window at its point");
    let _again = ChatBox::open(&x11, dir.path(), "Agent-1 chat again", 100, 100);
    wait_until(LIMIT, || {
        evidence(&root) == ("unknown".into(), "window back: Agent-1 chat again".into())
    });
    let _ = run.kill();
    let _ = run.wait();
}
