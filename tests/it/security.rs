// Over 400 lines: one test per finding of the security review, each a short story.

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

/// Takes a full backup of the root, which must succeed.
fn full_backup(root: &Root) {
    let out = root.run(&["backup", "create", "--kind", "full"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The command failed with `code` and its error says `says`.
fn fails_saying(out: &std::process::Output, code: i32, says: &str) {
    assert_eq!(out.status.code(), Some(code), "{}", stderr(out));
    assert!(stderr(out).contains(says), "{}", stderr(out));
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
    let created: jiff::Timestamp = read["message"]["created_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (id, created.as_millisecond())
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
    // Done when the store says so (the file lands just before that).
    wait_until(std::time::Duration::from_secs(30), || {
        json(&root.run(&["inbox", "read", &id, "--json"]))["deliveries"][0]["state"] == "delivered"
    });
    drop(service);
    assert_eq!(root.inbox_files("Agent-2").len(), 2);
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

#[test]
fn a_workspace_outside_the_root_needs_an_explicit_opt_in() {
    let root = Root::new(2);
    root.agent_config("Agent-2", "workspace = \"/etc\"");
    let out = root.run(&["send", "--to", "Agent-2", "into /etc?"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("agents[1].workspace")
            && stderr(&out).contains("outside the root")
            && stderr(&out).contains("allow_outside_root = true"),
        "{}",
        stderr(&out)
    );
    assert!(!std::path::Path::new("/etc/inbox").exists());

    let elsewhere = tempfile::tempdir().unwrap();
    let root = Root::new(2);
    root.agent_config(
        "Agent-2",
        &format!(
            "workspace = \"{}\"\nallow_outside_root = true",
            elsewhere.path().display()
        ),
    );
    let out = root.run(&["send", "--to", "Agent-2", "--wait", "there, on purpose"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_dir(elsewhere.path().join("inbox"))
            .unwrap()
            .count(),
        1
    );

    let root = Root::new(2);
    root.agent_config("Agent-2", "workspace = \"agent_workspaces/Agent-1\"");
    let out = root.run(&["status"]);
    fails_saying(&out, 2, "workspace of its own");
}

/// `acp ARGS` run from `dir` without `--root`, as an agent would in its
/// workspace, with `ACP_AGENT` set to `agent`.
fn as_agent(dir: &std::path::Path, agent: &str, args: &[&str]) -> std::process::Output {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_acp"));
    for (key, _) in std::env::vars() {
        if key.starts_with("ACP_") || key.starts_with("DISCORD_") {
            cmd.env_remove(key);
        }
    }
    cmd.current_dir(dir)
        .env("ACP_AGENT", agent)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap()
}

#[test]
fn an_agent_acknowledges_only_its_own_messages() {
    let root = Root::new(2);
    let out = root.run(&["send", "--to", "Agent-1", "for Agent-1"]);
    let id = stdout(&out).lines().next().unwrap().to_owned();
    let workspace = root.path().join("agent_workspaces/Agent-2");

    let out = as_agent(&workspace, "Agent-2", &["inbox", "ack", &id]);
    fails_saying(&out, 2, "an agent acknowledges only its own messages");
    let read = json(&root.run(&["inbox", "read", &id, "--json"]));
    assert!(read["deliveries"][0]["acked_by"].is_null(), "{read}");

    // A person may, saying so; the audit log names who really did.
    let out = as_agent(
        &workspace,
        "Agent-2",
        &["inbox", "ack", &id, "--by", "alice"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let read = json(&root.run(&["inbox", "read", &id, "--json"]));
    assert_eq!(read["deliveries"][0]["acked_by"], "alice", "{read}");
    let audit = json(&root.run(&["audit", "--json", "--limit", "1"]));
    assert_eq!(audit[0]["action"], "inbox.ack", "{audit}");
    assert!(
        audit[0]["actor"].as_str().unwrap().starts_with("cli:"),
        "{audit}"
    );
    assert!(
        audit[0]["detail"].as_str().unwrap().contains("for Agent-1"),
        "{audit}"
    );
}

#[test]
fn a_broadcast_says_the_exact_ack_command_and_acp_agent_is_enough() {
    let root = Root::new(3);
    let out = root.run(&["broadcast", "everyone"]);
    let id = stdout(&out).lines().next().unwrap().to_owned();
    let file = root.inbox("Agent-2").join(&root.inbox_files("Agent-2")[0]);
    let text = fs::read_to_string(file).unwrap();
    let line = format!("run: acp inbox ack {id} --agent Agent-2\n");
    assert!(text.contains(&line), "{text}");

    // From its workspace, without --root: acp finds the root above.
    let workspace = root.path().join("agent_workspaces/Agent-2");
    let out = as_agent(&workspace, "Agent-2", &["inbox", "ack", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("acknowledged for Agent-2"),
        "{}",
        stdout(&out)
    );
    // The command the file names works as written, too.
    let out = as_agent(
        &root.path().join("agent_workspaces/Agent-3"),
        "Agent-3",
        &["inbox", "ack", &id, "--agent", "Agent-3"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let read = json(&root.run(&["inbox", "read", &id, "--json"]));
    let acked: Vec<&str> = read["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["acked_by"].as_str())
        .collect();
    assert_eq!(acked, ["Agent-2", "Agent-3"], "{read}");
}

#[test]
fn the_audit_log_names_the_os_user_not_the_claimed_one() {
    let root = Root::new(1);
    let me = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    let me = stdout(&me).trim().to_owned();
    let out = root
        .acp()
        .env("USER", "evil  spoof")
        .args(["roles", "set", "Agent-1", "tester"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let out = root
        .acp()
        .env("USER", &me)
        .args(["roles", "set", "Agent-1", "tester again"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let audit = json(&root.run(&["audit", "--json"]));
    assert_eq!(
        audit[1]["actor"],
        format!("cli:{me} (USER=\"evil  spoof\")"),
        "{audit}"
    );
    assert_eq!(audit[0]["actor"], format!("cli:{me}"), "{audit}");
}

#[test]
fn the_store_and_backups_are_private_and_the_doctor_warns_about_open_secrets() {
    let root = Root::new(1);
    let out = root.run(&["send", "--to", "Agent-1", "private"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = root.run(&["backup", "create", "--kind", "full"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut open = Vec::new();
    for dir in ["data", "backups"] {
        let mut stack = vec![root.path().join(dir)];
        while let Some(path) = stack.pop() {
            let meta = fs::symlink_metadata(&path).unwrap();
            if meta.permissions().mode() & 0o077 != 0 {
                open.push(format!(
                    "{:o} {}",
                    meta.permissions().mode() & 0o777,
                    path.display()
                ));
            }
            if meta.is_dir() {
                stack.extend(fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            }
        }
    }
    assert!(open.is_empty(), "readable by others: {open:#?}");

    fs::write(root.path().join(".env"), "DISCORD_TOKEN=abc\n").unwrap();
    fs::set_permissions(root.path().join(".env"), fs::Permissions::from_mode(0o644)).unwrap();
    let doctor = stdout(&root.run(&["doctor"]));
    assert!(
        doctor.contains("WARN  permissions") && doctor.contains(".env is 644"),
        "{doctor}"
    );
    assert!(!doctor.contains("abc"), "{doctor}");
}

#[test]
fn a_closed_pipe_ends_every_command_quietly() {
    let root = Root::new(2);
    full_backup(&root);
    for args in [
        &["--json", "backup", "list"][..],
        &["status"],
        &["agents", "--json"],
        &["doctor"],
    ] {
        // The reader is gone before acp writes a byte (`| head -0`).
        let mut child = root
            .acp()
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(stderr(&out).is_empty(), "{args:?}: {}", stderr(&out));
    }
}

/// `acp doctor` with extra environment: its exit code and what it printed.
fn doctor(root: &Root, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut cmd = root.acp();
    cmd.arg("doctor");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), stdout(&out))
}

#[test]
fn the_doctor_fails_what_would_break_backups() {
    let root = Root::new(1);
    let (code, text) = doctor(&root, &[]);
    assert!(text.contains("ok    inboxes"), "{text}");
    assert!(
        text.contains("WARN  backups") && text.contains("no backups yet"),
        "{text}"
    );
    assert_eq!(code, Some(0), "{text}");

    full_backup(&root);
    let key = json(&root.run(&["backup", "keygen", "--json"]))["ACP_BACKUP_KEY"]
        .as_str()
        .unwrap()
        .to_owned();
    for (env, says) in [
        (vec![("ACP_BACKUP_KEY", key.as_str())], "is not encrypted"),
        (
            vec![("ACP_BACKUP_KEY", "AGE-SECRET-KEY-1NOTAKEY")],
            "not a usable key",
        ),
    ] {
        let (code, text) = doctor(&root, &env);
        assert_eq!(code, Some(1), "{env:?}: {text}");
        assert!(
            text.contains("FAIL  backups") && text.contains(says),
            "{env:?}: {text}"
        );
    }
    let file = root.path().join("a-file");
    fs::write(&file, "").unwrap();
    let (code, text) = doctor(&root, &[("ACP_BACKUP_REPOSITORY", file.to_str().unwrap())]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("is not a directory"), "{text}");

    // The newest backup loses a file's data (the pack holding it).
    let packs = root.path().join("backups/packs");
    let shard = fs::read_dir(&packs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pack = fs::read_dir(&shard)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    fs::remove_file(pack).unwrap();
    let (code, text) = doctor(&root, &[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL  backups") && text.contains("is damaged"),
        "{text}"
    );
}

#[test]
fn the_doctor_fails_a_full_disk() {
    // A tiny file system of its own, filled to the last byte (root only:
    // CI and these machines run as root).
    if is_root() {
        let root = Root::new(1);
        let mount = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(mount.path())
            .status()
            .unwrap();
        assert!(status.success(), "cannot mount a tmpfs");
        let _unmount = Unmount(mount.path().to_owned());
        let mut filler = fs::File::create(mount.path().join("filler")).unwrap();
        let chunk = vec![0u8; 4096];
        while std::io::Write::write_all(&mut filler, &chunk).is_ok() {}
        drop(filler);
        let (code, text) = doctor(
            &root,
            &[(
                "ACP_BACKUP_REPOSITORY",
                mount.path().join("repo").to_str().unwrap(),
            )],
        );
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains("FAIL  disk (backups)"), "{text}");
    } else {
        eprintln!("not root: the full-disk check needs a tmpfs mount");
    }
}

fn is_root() -> bool {
    let id = std::process::Command::new("id").arg("-u").output().unwrap();
    stdout(&id).trim() == "0"
}

/// Unmounts on drop.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn keygen_over_plain_backups_says_how_to_go_on() {
    let root = Root::new(1);
    full_backup(&root);
    let out = root.run(&["backup", "keygen"]);
    assert!(out.status.success());
    let warning = stderr(&out);
    assert!(
        warning.contains("already holds plain (unencrypted) backups")
            && warning.contains("backup.repository"),
        "{warning}"
    );
    // The way it offers works: a new repository path with the key.
    let key = stdout(&out)
        .trim()
        .strip_prefix("ACP_BACKUP_KEY=")
        .unwrap()
        .to_owned();
    let encrypted = root.path().join("backups-encrypted");
    let out = root
        .acp()
        .env("ACP_BACKUP_KEY", &key)
        .env("ACP_BACKUP_REPOSITORY", &encrypted)
        .args(["backup", "create", "--kind", "full"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let fresh = Root::new(1);
    let out = fresh.run(&["backup", "keygen"]);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn a_store_deleted_under_the_service_stops_it_with_what_to_do() {
    let root = Root::new(1);
    root.fast();
    let out = root.run(&["send", "--to", "Agent-1", "before"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut service = root.service();
    let db = root.path().join("data/acp.db");
    fs::remove_file(&db).unwrap();

    // The next sender does not start an empty store over the log.
    let out = root.run(&["send", "--to", "Agent-1", "after"]);
    fails_saying(&out, 1, "acp backup restore latest --in-place");
    assert!(!db.exists(), "a new store was created");

    // The service notices, stops taking work, and says what to do.
    wait_until(std::time::Duration::from_secs(30), || {
        service.child.try_wait().unwrap().is_some()
    });
    let status = service.child.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let log = fs::read_to_string(root.path().join("service.log")).unwrap();
    assert!(log.contains("was deleted while acp was using it"), "{log}");
    assert!(
        log.contains("acp backup restore latest --in-place"),
        "{log}"
    );
    assert!(!log.contains("stopped cleanly"), "{log}");
}

/// A coordinates file with `n` agents, all at one point.
fn crowded_coordinates(n: usize) -> String {
    let entries: Vec<String> = (0..n)
        .map(|i| format!("\"A{i}\": {{\"chat_input_coordinates\": [100, 100]}}"))
        .collect();
    format!("{{{}}}", entries.join(", "))
}

#[test]
fn coordinate_checks_stay_bounded_whatever_the_file() {
    let root = Root::new(2);
    let coords = root.path().join("config/coordinates.json");
    let original = fs::read_to_string(&coords).unwrap();

    // 4,000 unknown agents on one point: a bounded report, and warnings
    // only (unknown agents are never typed into).
    fs::write(&coords, crowded_coordinates(4000)).unwrap();
    let out = root.run(&["coords", "validate"]);
    let text = stdout(&out);
    assert!(text.lines().count() < 100, "{} lines", text.lines().count());
    assert!(text.contains("more clashing pairs not listed"), "{text}");
    assert!(!text.lines().any(|l| l.starts_with("error")), "{text}");
    assert_eq!(out.status.code(), Some(0), "{text}");
    let doctor = stdout(&root.run(&["doctor"]));
    assert!(
        doctor.len() < 10_000,
        "doctor printed {} bytes",
        doctor.len()
    );

    // A file far larger than any swarm's: refused, saying why.
    let mut huge = crowded_coordinates(4000);
    huge.push_str(&" ".repeat(2 << 20));
    fs::write(&coords, huge).unwrap();
    let out = root.run(&["coords", "validate"]);
    fails_saying(&out, 2, "over the limit");

    // The same agent twice: refused, not silently the last one.
    let twice = original.replacen(
        "\"Agent-1\":",
        "\"Agent-1\": {\"chat_input_coordinates\": [1, 1]}, \"Agent-1\":",
        1,
    );
    fs::write(&coords, twice).unwrap();
    let out = root.run(&["coords", "validate"]);
    fails_saying(&out, 2, "key `Agent-1` appears more than once");
}

#[test]
fn small_wrong_answers_are_right_now() {
    let root = Root::new(1);
    root.edit_config("keep_last = 24", "keep_last = 1")
        .edit_config("keep_daily = 7", "keep_daily = 0")
        .edit_config("keep_weekly = 4", "keep_weekly = 0");
    let devlog = root.path().join("devlogs/a.md");
    // Most of the first backup's pack, so that pruning it frees the pack.
    fs::write(&devlog, crate::backup::noise(200_000, 3)).unwrap();
    let first = json(&root.run(&["backup", "create", "--kind", "full", "--json"]));
    fs::write(&devlog, "second").unwrap();
    full_backup(&root);

    // prune --dry-run counts what prune deletes.
    let dry = json(&root.run(&["backup", "prune", "--dry-run", "--json"]));
    let real = json(&root.run(&["backup", "prune", "--json"]));
    assert!(real["objects_removed"].as_u64().unwrap() >= 1, "{real}");
    assert_eq!(
        dry["objects_removed"], real["objects_removed"],
        "{dry} vs {real}"
    );
    assert_eq!(dry["removed"], real["removed"]);

    // A prefix too short to name a backup says so.
    let id = first["backup"]["id"].as_str().unwrap();
    let out = root.run(&["backup", "verify", &id[..5]]);
    fails_saying(&out, 2, "too short to name a backup");

    // A link to an empty directory is a fine target.
    let scratch = tempfile::tempdir().unwrap();
    fs::create_dir(scratch.path().join("empty")).unwrap();
    symlink(scratch.path().join("empty"), scratch.path().join("link")).unwrap();
    let link = scratch.path().join("link");
    let out = root.run(&[
        "backup",
        "restore",
        "latest",
        "--to",
        link.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        fs::read_to_string(scratch.path().join("empty/devlogs/a.md")).unwrap(),
        "second"
    );

    // A non-empty target: an empty directory is what to use, not
    // --in-place (which overwrites the live state).
    let out = root.run(&[
        "backup",
        "restore",
        "latest",
        "--to",
        link.to_str().unwrap(),
    ]);
    fails_saying(&out, 2, "new or empty directory");
    assert!(!stderr(&out).contains("--in-place"), "{}", stderr(&out));

    // An error says its cause once.
    let file = scratch.path().join("a-file");
    fs::write(&file, "").unwrap();
    let under = file.join("sub");
    let out = root.run(&[
        "backup",
        "restore",
        "latest",
        "--to",
        under.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out).matches("Not a directory").count(),
        1,
        "{}",
        stderr(&out)
    );

    // Windows line endings are line endings; a lone CR is refused.
    let mut send = root
        .acp()
        .args(["send", "--to", "Agent-1", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(send.stdin.as_mut().unwrap(), b"line one\r\nline two\r\n").unwrap();
    let out = send.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text =
        fs::read_to_string(root.inbox("Agent-1").join(&root.inbox_files("Agent-1")[0])).unwrap();
    assert!(
        text.contains("line one\nline two\n") && !text.contains('\r'),
        "{text:?}"
    );
    let out = root.run(&["send", "--to", "Agent-1", "a\rb"]);
    assert_eq!(out.status.code(), Some(2));

    // A failing send says so once, without log lines before it.
    let inbox = root.inbox("Agent-1");
    fs::remove_dir_all(&inbox).unwrap();
    fs::write(&inbox, "in the way").unwrap();
    let out = root.run(&["send", "--to", "Agent-1", "blocked"]);
    assert!(!stderr(&out).contains("WARN"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("queued for retry"),
        "{}",
        stderr(&out)
    );

    // No display is the machine's state, not a usage error.
    let out = root
        .acp()
        .env_remove("DISPLAY")
        .args(["coords", "capture", "Agent-1", "--countdown", "0"])
        .output()
        .unwrap();
    fails_saying(&out, 1, "no display");
}

#[test]
fn init_over_a_broken_config_says_what_is_wrong() {
    let root = Root::new(1);
    fs::write(root.path().join("config/acp.toml"), "this is = not [toml").unwrap();
    let out = root.run(&["init"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(!stdout(&out).contains("initialised"), "{}", stdout(&out));
    assert!(stderr(&out).contains("config/acp.toml"), "{}", stderr(&out));
}

/// Whether a JSON value is a time as acp writes them all.
fn is_time(v: &Value) -> bool {
    v.as_str()
        .is_some_and(|t| t.len() == 24 && t.ends_with('Z') && t.parse::<jiff::Timestamp>().is_ok())
}

#[test]
fn json_output_is_one_shape_scripts_can_trust() {
    let root = Root::new(2);
    // Errors are JSON too, on stdout, with the exit code.
    let out = root.run(&["--json", "send", "--to", "Nobody", "hi"]);
    assert_eq!(out.status.code(), Some(2));
    let err = json(&out);
    assert_eq!(err["code"], 2, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("unknown agent"),
        "{err}"
    );

    let out = root.run(&["send", "--to", "Agent-1", "hello"]);
    let id = stdout(&out).lines().next().unwrap().to_owned();
    assert!(
        root.run(&["roles", "set", "Agent-1", "tester"])
            .status
            .success()
    );
    assert!(root.run(&["inbox", "ack", &id]).status.success());
    full_backup(&root);

    // One time format everywhere.
    let read = json(&root.run(&["inbox", "read", &id, "--json"]));
    for t in [
        &read["message"]["created_at"],
        &read["deliveries"][0]["updated_at"],
        &read["deliveries"][0]["acked_at"],
        &read["deliveries"][0]["tried"][0]["finished_at"],
    ] {
        assert!(is_time(t), "{t} in {read}");
    }
    let agents = json(&root.run(&["agents", "--json"]));
    assert!(is_time(&agents[0]["last_delivery_at"]), "{agents}");
    let audit = json(&root.run(&["audit", "--json"]));
    assert!(is_time(&audit[0]["at"]), "{audit}");
    let backups = json(&root.run(&["backup", "list", "--json"]));
    assert!(is_time(&backups["backups"][0]["created_at"]), "{backups}");
    let status = json(&root.run(&["status", "--json"]));
    assert!(
        is_time(&status["agents"][0]["last_delivery_at"]),
        "{status}"
    );

    // One name per field, and no prose where a script wants values.
    assert_eq!(agents[0]["last_state"], "delivered", "{agents}");
    assert_eq!(agents[0]["last_method"], "inbox", "{agents}");
    assert!(agents[0].get("last_delivery").is_none(), "{agents}");
    assert!(status["agents"][0].get("last_at").is_none(), "{status}");
    let roles = json(&root.run(&["roles", "list", "--json"]));
    let text = roles.to_string();
    assert!(
        text.contains("\"role_source\"") && !text.contains("\"source\""),
        "{roles}"
    );
}
