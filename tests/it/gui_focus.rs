//! Keyboard-and-mouse delivery waits for the keyboard focus, on the X
//! server's word, before it types; and a paste puts the user's clipboard
//! back as it found it. Real Xvfb, real Tk windows, the real `acp` binary.

use std::time::Duration;

use crate::desktop::{ChatBox, ClipboardOwner, Xvfb, clipboard_text, write_coordinates};
use crate::gui::{gui_root, send};
use crate::support::{Root, stderr, stdout, wait_until};

/// Milliseconds from the message's creation to the end of its gui attempt,
/// from `acp inbox read --json`.
fn until_gui_attempt_ended(root: &Root, id: &str) -> i64 {
    let read: serde_json::Value =
        serde_json::from_slice(&root.run(&["inbox", "read", id, "--json"]).stdout).unwrap();
    let tried = &read["deliveries"][0]["tried"][0];
    assert_eq!(tried["method"], "gui", "{read}");
    let ms = |t: &serde_json::Value| {
        t.as_str()
            .unwrap_or_else(|| panic!("no time in {read}"))
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond()
    };
    ms(&tried["finished_at"]) - ms(&read["message"]["created_at"])
}

#[test]
fn a_window_that_takes_the_focus_late_is_typed_into_once_it_has_it() {
    let x11 = Xvfb::start();
    let root = gui_root(1);
    root.agent_config("Agent-1", "window_title = \"^Agent-1 chat$\"")
        .edit_config("settle_ms = 500", "settle_ms = 10000");
    // Another window holds the keyboard; Agent-1's takes it 400 ms after
    // the click. Keys sent before then would land in the other window.
    let other = ChatBox::open_with(
        &x11.display,
        root.path(),
        ("Other chat", 2100, 100),
        &["--hold-focus"],
    );
    let late = ChatBox::open_with(
        &x11.display,
        root.path(),
        ("Agent-1 chat", 100, 100),
        &["--focus-after-click", "400"],
    );
    write_coordinates(root.path(), &[("Agent-1", late.center(), None)]);
    assert_eq!(late.focus_count(), 0, "the window starts without the focus");

    let body = "Deploy the staging build now.";
    let out = send(&root, &x11, &["--to", "Agent-1", body]);
    assert!(
        stdout(&out).contains("Agent-1: delivered by gui (typed into \"Agent-1 chat\""),
        "{}",
        stdout(&out)
    );
    assert_eq!(late.wait_for_submits(1), [body]);
    assert_eq!(late.draft(), "");
    assert!(late.focus_count() >= 1);
    assert!(
        other.submits().is_empty() && other.draft().is_empty(),
        "nothing reached the window that held the focus: {:?}",
        other.draft()
    );
    // It waited for the focus, and no longer: the deadline is 10 s.
    let id = stdout(&out).lines().next().unwrap().to_owned();
    let took = until_gui_attempt_ended(&root, &id);
    assert!((400..10_000).contains(&took), "the delivery took {took} ms");
}

#[test]
fn a_window_that_never_takes_the_focus_gets_nothing_and_the_inbox_gets_the_message() {
    let x11 = Xvfb::start();
    let root = gui_root(1);
    root.agent_config(
        "Agent-1",
        "window_title = \"^Agent-1 chat$\"\ninput = \"paste\"",
    )
    .edit_config("settle_ms = 500", "settle_ms = 300");
    let other = ChatBox::open_with(
        &x11.display,
        root.path(),
        ("Other chat", 2100, 100),
        &["--hold-focus"],
    );
    let deaf = ChatBox::open_with(
        &x11.display,
        root.path(),
        ("Agent-1 chat", 100, 100),
        &["--focus-after-click", "never"],
    );
    write_coordinates(root.path(), &[("Agent-1", deaf.center(), None)]);

    let out = root
        .acp()
        .env("DISPLAY", &x11.display)
        .args([
            "send",
            "--wait",
            "--to",
            "Agent-1",
            "Plan:\n1. migrate\n2. ship",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Agent-1: delivered by inbox after gui failed: ")
            && text.contains(
                "the window \"Agent-1 chat\" did not take the keyboard focus within 300ms of the \
                 click (another window kept it): nothing typed"
            ),
        "{text}"
    );
    let id = text.lines().next().unwrap().to_owned();
    assert_eq!(root.inbox_ids("Agent-1").get(&id), Some(&1));
    let read: serde_json::Value =
        serde_json::from_slice(&root.run(&["inbox", "read", &id, "--json"]).stdout).unwrap();
    assert_eq!(read["deliveries"][0]["method"], "inbox");
    // Neither window got a key. (No event marks the absence of keys: the
    // drafts are read after `send` returned, when every key it sent has
    // been handled or never was.)
    for window in [&other, &deaf] {
        assert!(
            window.submits().is_empty() && window.draft().is_empty(),
            "{:?}",
            window.draft()
        );
    }
    assert_eq!(deaf.focus_count(), 0);
}

#[test]
fn a_paste_puts_the_clipboard_back_as_it_was_full_or_empty() {
    let x11 = Xvfb::start();
    let root = gui_root(1);
    root.agent_config("Agent-1", "input = \"paste\"");
    let chat = ChatBox::open(&x11, root.path(), "Agent-1 chat", 100, 100);
    write_coordinates(root.path(), &[("Agent-1", chat.center(), None)]);
    // `acp run` delivers: its clipboard outlives each delivery, as on a
    // desktop where acp runs all day.
    let _service = root.service_with_env(&[("DISPLAY", std::ffi::OsStr::new(&x11.display))]);
    let deliver = |body: &str| {
        let out = root
            .acp()
            .args(["send", "--wait", "--to", "Agent-1", body])
            .output()
            .unwrap();
        assert!(
            stdout(&out).contains("Agent-1: delivered by gui (pasted into"),
            "{}\n{}",
            stdout(&out),
            stderr(&out)
        );
    };

    // An empty clipboard is empty again after the paste: the user's next
    // Ctrl+V does not paste an agent's message.
    assert_eq!(clipboard_text(&x11.display), None);
    deliver("first message\nsecond line");
    assert_eq!(chat.wait_for_submits(1), ["first message\nsecond line"]);
    wait_until(Duration::from_secs(10), || {
        clipboard_text(&x11.display).is_none()
    });

    // What the user copied is there again after the paste.
    let _editor = ClipboardOwner::hold(&x11.display, "the user's own copy");
    assert_eq!(
        clipboard_text(&x11.display).as_deref(),
        Some("the user's own copy")
    );
    deliver("third message");
    assert_eq!(
        chat.wait_for_submits(2),
        ["first message\nsecond line", "third message"]
    );
    wait_until(Duration::from_secs(10), || {
        clipboard_text(&x11.display).as_deref() == Some("the user's own copy")
    });
}
