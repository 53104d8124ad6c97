//! What a security review of the CLI found, each reproduced with the
//! command a user or an attacker would run: secrets, planted and linked
//! inboxes, workspaces, acks, file modes, the audit trail, hostile input.

use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};

use serde_json::Value;

use crate::support::{Root, stderr, stdout, wait_until};

fn json(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}{}", stdout(out), stderr(out)))
}

/// Sends a message that cannot be delivered yet (a file stands where the
/// inbox goes), so it stays queued; returns its id and `created_at`.
fn queued_message(root: &Root, agent: &str, body: &str) -> (String, i64) {
    let inbox = root.inbox(agent);
    fs::remove_dir(&inbox).unwrap();
    fs::write(&inbox, "in the way").unwrap();
    let out = root.run(&["send", "--to", agent, body]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).lines().next().unwrap().to_owned();
    fs::remove_file(&inbox).unwrap();
    let read = json(&root.run(&["inbox", "read", &id, "--json"]));
    (id, read["message"]["created_at"].as_i64().unwrap())
}

/// The inbox file name acp uses for a message, as anyone can predict it.
fn predicted_name(id: &str, created_at: i64) -> String {
    let time = jiff::Timestamp::from_millisecond(created_at)
        .unwrap()
        .strftime("%Y%m%dT%H%M%S%.3fZ");
    format!("{time}_{id}.md")
}

#[test]
fn a_planted_inbox_file_is_kept_and_the_message_still_arrives() {
    let root = Root::new(2);
    root.fast();
    let (id, created_at) = queued_message(&root, "Agent-2", "the real message");
    let inbox = root.inbox("Agent-2");
    fs::create_dir_all(&inbox).unwrap();
    let planted = inbox.join(predicted_name(&id, created_at));
    fs::write(&planted, "not from acp").unwrap();

    let service = root.service();
    wait_until(std::time::Duration::from_secs(30), || {
        root.inbox_files("Agent-2").len() == 2
    });
    drop(service);
    assert_eq!(fs::read_to_string(&planted).unwrap(), "not from acp");
    let files = root.inbox_files("Agent-2");
    let real = files
        .iter()
        .map(|f| fs::read_to_string(inbox.join(f)).unwrap())
        .find(|t| t.contains("the real message"))
        .expect("the message is in the inbox");
    assert!(real.contains(&format!("id: {id}")), "{real}");
    let receipt = stdout(&root.run(&["inbox", "read", &id]));
    assert!(
        receipt.contains("was already there with other content: kept"),
        "{receipt}"
    );
}

#[test]
fn a_symlinked_inbox_is_refused_and_the_doctor_says_so() {
    let root = Root::new(2);
    let elsewhere = tempfile::tempdir().unwrap();
    let inbox = root.inbox("Agent-2");
    fs::remove_dir(&inbox).unwrap();
    symlink(elsewhere.path(), &inbox).unwrap();

    let out = root.run(&["send", "--to", "Agent-2", "--wait", "through the link?"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("is a symbolic link"),
        "{}",
        stdout(&out)
    );
    assert_eq!(fs::read_dir(elsewhere.path()).unwrap().count(), 0);

    let doctor = root.run(&["doctor"]);
    assert_eq!(doctor.status.code(), Some(1));
    let text = stdout(&doctor);
    assert!(
        text.contains("FAIL  inboxes") && text.contains("symbolic links"),
        "{text}"
    );
}

#[test]
fn inboxes_and_their_messages_are_private_to_their_owner() {
    let root = Root::new(1);
    let inbox = root.inbox("Agent-1");
    fs::remove_dir(&inbox).unwrap();
    let out = root.run(&["send", "--to", "Agent-1", "for my eyes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = |p: &std::path::Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&inbox), 0o700);
    let file = inbox.join(&root.inbox_files("Agent-1")[0]);
    assert_eq!(mode(&file), 0o600);
}

#[test]
fn a_broken_env_line_is_named_without_its_secret() {
    let root = Root::new(1);
    fs::write(
        root.path().join(".env"),
        "# secrets\nDISCORD_TOKEN=MTIzNDU2.SECRETPART0123456789 oops\n",
    )
    .unwrap();
    for args in [&["status"][..], &["run"], &["backup", "list"], &["doctor"]] {
        let out = root.run(args);
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert_eq!(out.status.code(), Some(2), "{args:?}: {text}");
        assert!(
            !text.contains("SECRETPART"),
            "{args:?} printed the secret: {text}"
        );
        assert!(
            !text.contains("MTIz"),
            "{args:?} printed the secret: {text}"
        );
        assert!(
            text.contains(".env: line 2 (DISCORD_TOKEN) is not KEY=VALUE"),
            "{args:?}: {text}"
        );
    }
    fs::write(
        root.path().join(".env"),
        "ACP_BACKUP_KEY=AGE-SECRET-KEY-1QQQQ 'half\n",
    )
    .unwrap();
    let out = root.run(&["status"]);
    assert!(!stderr(&out).contains("AGE-SECRET"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(ACP_BACKUP_KEY)"),
        "{}",
        stderr(&out)
    );
}
