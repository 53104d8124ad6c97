//! Files an agent can write, read by acp: devlogs and `--file`. An agent
//! running as another user that can write `devlogs/` tries to make acp post
//! the root's `.env`, wedge it on a FIFO, exhaust it with a huge file, or
//! post as another agent. Each is refused, said, and nothing else is lost.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;

use crate::devlogs::{devlog_posts, devlog_root, run_watching, wait_post, write};
use crate::outbox::LIMIT;
use crate::standin::StandIn;
use crate::support::{Root, stderr, stdout, wait_until};

/// What of the root's `.env` would show that it leaked.
const SECRET: &str = "standin-token";

fn no_secret_posted(standin: &StandIn) {
    for post in standin.posts() {
        assert!(
            !post.content.contains(SECRET) && !post.content.contains("DISCORD_TOKEN"),
            "the secret was posted: {post:#?}"
        );
    }
}

/// A regular devlog file whose time is an hour ago (settled at once).
fn settled(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    let old = SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(old)
        .unwrap();
}

fn mkfifo(path: &Path) {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
}

/// `acp ARGS`, which must end by itself within the deadline (a FIFO must
/// not wedge it).
fn run_bounded(root: &Root, args: &[&str]) -> std::process::Output {
    let mut child = root
        .acp()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > LIMIT {
            child.kill().unwrap();
            panic!("acp {args:?} hung");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn refused(out: &std::process::Output, says: &str) {
    assert_eq!(out.status.code(), Some(2), "{}{}", stdout(out), stderr(out));
    assert!(stderr(out).contains(says), "{}", stderr(out));
}

fn log(root: &Root) -> String {
    fs::read_to_string(root.path().join("service.log")).unwrap_or_default()
}

#[test]
fn a_devlog_swapped_for_a_link_to_the_secrets_is_never_posted() {
    let standin = StandIn::start();
    let root = devlog_root(2);
    let dir = root.path().join("devlogs/Agent-1");
    fs::create_dir_all(&dir).unwrap();
    let _bot = run_watching(&root, &standin);
    let env = root.path().join(".env");
    assert!(fs::read_to_string(&env).unwrap().contains(SECRET));

    // The race, for a bounded time: the devlog is a settled regular file
    // when listed, and a link to `.env` a moment later, again and again.
    // Each regular version is new content, so scans keep coming.
    let target = dir.join("race.md");
    let started = Instant::now();
    let mut round = 0;
    while started.elapsed() < Duration::from_secs(4) || devlog_posts(&standin).len() < 3 {
        assert!(started.elapsed() < LIMIT, "no scan ran during the race");
        round += 1;
        let regular = dir.join(format!(".r{round}"));
        settled(&regular, &format!("harmless version {round}"));
        fs::rename(&regular, &target).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let link = dir.join(format!(".l{round}"));
        symlink(&env, &link).unwrap();
        fs::rename(&link, &target).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    // Settle on the link, and prove a scan ran after the race ended.
    write(&root, "Agent-2/after.md", "after the race");
    wait_post(&standin, "after the race");
    no_secret_posted(&standin);
    assert!(
        devlog_posts(&standin)
            .iter()
            .any(|p| p.content.contains("harmless version")),
        "the race never let a scan read the regular file"
    );

    // Asked directly, every door refuses the link, a FIFO and /dev/zero,
    // quickly and saying what it found.
    mkfifo(&dir.join("pipe.md"));
    symlink("/dev/zero", dir.join("zero.md")).unwrap();
    refused(
        &run_bounded(&root, &["devlog", "post", "Agent-1/race.md"]),
        "symbolic link",
    );
    refused(
        &run_bounded(&root, &["devlog", "post", "Agent-1/pipe.md"]),
        "a FIFO, not a regular file",
    );
    refused(
        &run_bounded(&root, &["devlog", "post", "Agent-1/zero.md"]),
        "symbolic link",
    );
    // A folder in the path that is a link leads out too.
    symlink(root.path(), root.path().join("devlogs/Agent-2/up")).unwrap();
    refused(
        &run_bounded(&root, &["devlog", "post", "Agent-2/up/README.md"]),
        "symbolic link",
    );
    no_secret_posted(&standin);
    standin.assert_no_violations();
}

#[test]
fn a_huge_devlog_is_refused_once_and_not_read_again() {
    let standin = StandIn::start();
    let root = devlog_root(2);
    let dir = root.path().join("devlogs/Agent-1");
    fs::create_dir_all(&dir).unwrap();
    let _bot = run_watching(&root, &standin);
    // 1 GiB, sparse: acp must not read it into memory, on any scan.
    let big = dir.join("big.md");
    fs::File::create(&big).unwrap().set_len(1 << 30).unwrap();
    wait_until(LIMIT, || log(&root).contains("over the 1048576-byte limit"));
    for n in 0..3 {
        let text = format!("later devlog {n}");
        write(&root, &format!("Agent-2/later{n}.md"), &text);
        wait_post(&standin, &text);
    }
    assert_eq!(
        log(&root)
            .matches("devlogs/Agent-1/big.md: is 1073741824 bytes")
            .count(),
        1,
        "said once: {}",
        log(&root)
    );
    // Changed, it is looked at (and said) again.
    fs::File::options()
        .write(true)
        .open(&big)
        .unwrap()
        .set_len((1 << 30) + 1)
        .unwrap();
    wait_until(LIMIT, || log(&root).contains("is 1073741825 bytes"));
    assert!(
        !devlog_posts(&standin)
            .iter()
            .any(|p| p.content.contains("big.md"))
    );
}

#[test]
fn an_agent_cannot_post_as_another_agent_or_from_a_linked_devlogs_folder() {
    let standin = StandIn::start();
    let root = devlog_root(2);
    let _bot = run_watching(&root, &standin);
    // Front matter claiming another agent, in a folder and outside one.
    write(
        &root,
        "Agent-1/claim.md",
        "---\nagent: Agent-2\n---\nAgent-2 approves the release.",
    );
    write(
        &root,
        "loose.md",
        "---\nagent: Agent-2\n---\nAlso Agent-2, honest.",
    );
    write(&root, "Agent-1/own.md", "Agent-1's own words.");
    wait_post(&standin, "Agent-1's own words.");
    wait_until(LIMIT, || {
        log(&root).matches("front matter says").count() >= 2
    });
    let posts = devlog_posts(&standin);
    assert!(
        !posts
            .iter()
            .any(|p| p.content.contains("approves") || p.content.contains("honest")),
        "{posts:#?}"
    );
    assert!(
        log(&root).contains("move it to devlogs/Agent-2/"),
        "{}",
        log(&root)
    );
    refused(
        &run_bounded(&root, &["devlog", "post", "Agent-1/claim.md"]),
        "a devlog is posted as the agent whose folder it is in",
    );

    // Through MCP, Agent-1 posts its own devlog, not Agent-2's.
    write(&root, "Agent-2/theirs.md", "Agent-2's plan.");
    let out = crate::mcp::client(
        &root,
        "Agent-1",
        &json!([
            ["post_devlog", {"path": "Agent-2/theirs.md"}],
            ["post_devlog", {"path": "Agent-1/own.md"}],
        ]),
    );
    let results = out["results"].as_array().unwrap();
    assert_eq!(results[0]["isError"], true, "{out}");
    assert!(
        crate::mcp::text(&results[0]).contains("is not Agent-1's devlog"),
        "{out}"
    );
    assert_ne!(results[1]["isError"], true, "{out}");

    // devlogs/ itself a link out of the root: nothing is posted from it.
    let outside = tempfile::tempdir().unwrap();
    fs::create_dir_all(outside.path().join("Agent-1")).unwrap();
    fs::write(outside.path().join("Agent-1/x.md"), "from outside the root").unwrap();
    let devlogs = root.path().join("devlogs");
    fs::rename(&devlogs, root.path().join("devlogs.old")).unwrap();
    symlink(outside.path(), &devlogs).unwrap();
    refused(
        &run_bounded(&root, &["devlog", "post", "Agent-1/x.md"]),
        "symbolic link",
    );
    wait_until(LIMIT, || log(&root).contains("devlogs are not posted"));
    let doctor = root.run(&["doctor"]);
    assert!(
        stdout(&doctor).contains("devlogs") && stdout(&doctor).contains("symbolic link"),
        "{}",
        stdout(&doctor)
    );
    assert!(
        !devlog_posts(&standin)
            .iter()
            .any(|p| p.content.contains("from outside the root"))
    );
    standin.assert_no_violations();
}

#[test]
fn file_staging_reads_what_it_opened_within_the_limit() {
    let root = Root::new(1);
    crate::outbox::token_in_dotenv(&root);
    crate::outbox::swarm(&root);
    root.edit_config(
        "max_attachment_bytes = 10485760",
        "max_attachment_bytes = 100",
    );
    // /proc files say they are empty; the environment is far over 100 bytes.
    let out = run_bounded(
        &root,
        &[
            "send",
            "--to",
            "discord",
            "--file",
            "/proc/self/environ",
            "look",
        ],
    );
    refused(&out, "over Discord's upload limit of 100 bytes");
    let fifo = root.path().join("pipe.log");
    mkfifo(&fifo);
    let out = run_bounded(
        &root,
        &[
            "send",
            "--to",
            "discord",
            "--file",
            fifo.to_str().unwrap(),
            "look",
        ],
    );
    refused(&out, "a FIFO, not a regular file");
    // Nothing stored, nothing staged.
    let status = crate::support::status(&root);
    assert_eq!(crate::support::count(&status, "queued"), 0, "{status}");
    let outbox = root.path().join("data/outbox");
    assert!(
        !outbox.exists() || fs::read_dir(&outbox).unwrap().count() == 0,
        "staged files left behind"
    );
    // A small regular file goes.
    let small = root.path().join("small.log");
    fs::write(&small, "fits").unwrap();
    let out = run_bounded(
        &root,
        &[
            "send",
            "--to",
            "discord",
            "--file",
            small.to_str().unwrap(),
            "look",
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn a_workspace_linked_elsewhere_gets_nothing_and_the_doctor_says_so() {
    let root = Root::new(2);
    root.fast();
    let elsewhere = tempfile::tempdir().unwrap();
    let workspace = root.path().join("agent_workspaces/Agent-2");
    fs::remove_dir_all(&workspace).unwrap();
    symlink(elsewhere.path(), &workspace).unwrap();
    let out = root.run(&["send", "--to", "Agent-2", "--wait", "for Agent-2 only"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let said = format!("{}{}", stdout(&out), stderr(&out));
    assert!(said.contains("is a symbolic link"), "{said}");
    assert_eq!(
        fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "written through the link"
    );
    let doctor = stdout(&root.run(&["doctor"]));
    assert!(
        doctor.contains("FAIL  inboxes") && doctor.contains("Agent-2"),
        "{doctor}"
    );

    // The inbox swapped for a link while messages arrive, for a bounded
    // time: nothing ever lands outside, and every message is accounted for.
    fs::remove_file(&workspace).unwrap();
    let inbox = root.inbox("Agent-1");
    let real = root.path().join("agent_workspaces/Agent-1/inbox.real");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ids: Vec<String> = std::thread::scope(|s| {
        s.spawn(|| {
            let mut n = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let link = root.path().join(format!("agent_workspaces/Agent-1/.l{n}"));
                symlink(elsewhere.path(), &link).unwrap();
                if inbox.is_dir() && !inbox.is_symlink() {
                    let _ = fs::rename(&inbox, &real);
                }
                let _ = fs::rename(&link, &inbox);
                std::thread::sleep(Duration::from_millis(1));
                if inbox.is_symlink() {
                    let _ = fs::remove_file(&inbox);
                }
                if real.is_dir() {
                    let _ = fs::rename(&real, &inbox);
                }
            }
        });
        let ids = (0..20)
            .map(|n| {
                let out = root.run(&["send", "--to", "Agent-1", "--wait", &format!("race {n}")]);
                stdout(&out).lines().next().unwrap_or_default().to_owned()
            })
            .collect();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        ids
    });
    assert_eq!(
        fs::read_dir(elsewhere.path()).unwrap().count(),
        0,
        "written through the link"
    );
    let status = crate::support::status(&root);
    let accounted =
        crate::support::count(&status, "delivered") + crate::support::count(&status, "failed");
    assert_eq!(accounted, 21, "{status}");
    assert_eq!(ids.len(), 20);
}
