// Over 400 lines: each test is one devlog story, from files on disk to what lands on Discord.

//! Devlogs: files under `devlogs/` posted to the stand-in Discord while
//! `acp run` runs, once per content version, split within Discord's
//! limits, through the bot or a channel webhook.

use std::fs;

use crate::discord::{Bot, OPERATOR, command, original_edit, spawn};
use crate::outbox::{LIMIT, as_agent, swarm, token_in_dotenv};
use crate::standin::{Post, StandIn};
use crate::support::{Root, stderr, stdout, wait_until};

const DEVLOG_CHANNEL: &str = "500000000000000077";

/// A root whose devlogs go to [`DEVLOG_CHANNEL`], settling fast.
pub(crate) fn devlog_root(agents: u32) -> Root {
    let root = Root::new(agents);
    root.fast();
    token_in_dotenv(&root);
    swarm(&root);
    root.edit_config(
        "devlog_channel = 0",
        &format!("devlog_channel = {DEVLOG_CHANNEL}"),
    )
    .edit_config("devlog_settle_ms = 1000", "devlog_settle_ms = 50");
    root
}

/// How many times the service log says it started watching `devlogs/`.
pub(crate) fn watch_starts(root: &Root) -> usize {
    fs::read_to_string(root.path().join("service.log"))
        .unwrap_or_default()
        .matches("watching devlogs")
        .count()
}

/// Starts `acp run` and waits until it watches `devlogs/`.
pub(crate) fn run_watching(root: &Root, standin: &StandIn) -> Bot {
    let before = watch_starts(root);
    let bot = spawn(root, standin, "standin-token", "run");
    wait_until(LIMIT, || watch_starts(root) > before);
    bot
}

/// Writes a devlog file (parents made).
pub(crate) fn write(root: &Root, rel: &str, text: &str) {
    let path = root.path().join("devlogs").join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

/// Posts in the devlog channel.
pub(crate) fn devlog_posts(standin: &StandIn) -> Vec<Post> {
    standin.posts_in(DEVLOG_CHANNEL)
}

/// Waits until a post in the devlog channel contains `text`; returns the
/// channel's posts.
pub(crate) fn wait_post(standin: &StandIn, text: &str) -> Vec<Post> {
    standin.wait_posts(LIMIT, |posts| {
        posts
            .iter()
            .any(|p| p.channel == DEVLOG_CHANNEL && p.content.contains(text))
    });
    devlog_posts(standin)
}

#[test]
fn each_devlog_version_is_posted_once_through_edits_renames_restarts_and_rescans() {
    let standin = StandIn::start();
    let root = devlog_root(2);
    // There before acp run ever watched: recorded, not posted.
    write(&root, "Agent-1/old.md", "# Old\n\nFrom last week.");
    write(&root, "Agent-2/asked.md", "Posted from the phone.");
    let bot = run_watching(&root, &standin);

    write(&root, "Agent-1/day1.md", "# Day 1\n\nShipped the parser.");
    let posts = wait_post(&standin, "Shipped the parser.");
    assert_eq!(posts.len(), 1, "{posts:#?}");
    assert_eq!(
        posts[0].content,
        "**Agent-1** 📝 devlog `Agent-1/day1.md`\n\n# Day 1\n\nShipped the parser."
    );

    // An edit is an update, posted as a reply to the version before.
    write(
        &root,
        "Agent-1/day1.md",
        "# Day 1\n\nShipped the parser.\n\nAnd its tests.",
    );
    let posts = wait_post(&standin, "And its tests.");
    assert_eq!(posts.len(), 2, "{posts:#?}");
    assert!(posts[1].content.contains("(updated)"), "{posts:#?}");
    assert_eq!(posts[1].reference, Some(posts[0].id.to_string()));

    // A rename, a touch and a duplicate write of the same content post
    // nothing. The next new devlog (attributed by front matter) proves the
    // folder was scanned after them.
    let dir = root.path().join("devlogs/Agent-1");
    fs::rename(dir.join("day1.md"), dir.join("day1-final.md")).unwrap();
    let same = fs::read_to_string(dir.join("day1-final.md")).unwrap();
    fs::write(dir.join("day1-final.md"), &same).unwrap();
    // Front matter may not claim an agent outside its folder (any agent
    // can write there): refused. In the agent's own folder it is posted.
    write(
        &root,
        "notes.md",
        "---\nagent: Agent-2\n---\nSomeone claims to be Agent-2.",
    );
    write(
        &root,
        "Agent-2/notes.md",
        "---\nagent: Agent-2\n---\nAgent-2 took the API.",
    );
    let posts = wait_post(&standin, "Agent-2 took the API.");
    assert_eq!(posts.len(), 3, "{posts:#?}");
    assert!(!posts.iter().any(|p| p.content.contains("Someone claims")));
    assert!(
        posts[2]
            .content
            .starts_with("**Agent-2** 📝 devlog `Agent-2/notes.md`"),
        "{posts:#?}"
    );

    // A delete posts nothing; neither does a restart, which rescans all.
    fs::remove_file(dir.join("day1-final.md")).unwrap();
    drop(bot);
    let _bot = run_watching(&root, &standin);
    write(&root, "Agent-2/after.md", "After the restart.");
    let posts = wait_post(&standin, "After the restart.");
    assert_eq!(posts.len(), 4, "{posts:#?}");

    // On demand: the old devlog, once; again, nothing new.
    let out = root.run(&["devlog", "post", "Agent-1/old.md", "--wait"]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("posted in Discord channel"),
        "{}",
        stdout(&out)
    );
    let posts = wait_post(&standin, "From last week.");
    assert_eq!(posts.len(), 5, "{posts:#?}");
    let out = root.run(&["devlog", "post", "Agent-1/old.md"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("posted before"), "{}", stdout(&out));
    assert_eq!(devlog_posts(&standin).len(), 5);

    // The list says what went where.
    let out = root.run(&["devlog", "list"]);
    let list = stdout(&out);
    assert!(
        list.contains("devlogs/Agent-1/old.md")
            && list.contains(&format!("posted in channel {DEVLOG_CHANNEL}")),
        "{list}"
    );

    // Paths outside devlogs/ are refused, and nothing is posted.
    for bad in ["../config/acp.toml", "/etc/passwd", "Agent-1/missing.md"] {
        let out = as_agent(&root, "Agent-1", &["devlog", "post", bad]);
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("devlog"), "{bad}: {}", stderr(&out));
    }
    assert_eq!(devlog_posts(&standin).len(), 5);

    // From Discord: /devlog post (of a file there before watching began,
    // so only the command posts it), and the reply says where it went.
    let id = 400_000_000_000_000_301;
    let from = standin.requests().len();
    let reply = command(
        &standin,
        id,
        "devlog",
        &serde_json::json!([{"name": "post", "type": 1, "options": [{"name": "file", "type": 3, "value": "Agent-2/asked.md"}]}]),
        &[OPERATOR],
    );
    assert!(
        reply["data"]["content"]
            .as_str()
            .unwrap()
            .contains("accepted"),
        "{reply}"
    );
    let edit = original_edit(&standin, from, id, LIMIT);
    let posts = wait_post(&standin, "Posted from the phone.");
    let text = edit.body["content"].as_str().unwrap();
    assert!(
        text.contains(&format!(
            "✅ Discord: posted in Discord channel {DEVLOG_CHANNEL}"
        )) && text.contains(&posts.last().unwrap().id.to_string()),
        "{text}"
    );
    // The scans do not post it again: the next new file proves a scan ran
    // after it.
    write(&root, "Agent-2/later.md", "Later.");
    let posts = wait_post(&standin, "Later.");
    assert_eq!(
        posts
            .iter()
            .filter(|p| p.content.contains("Posted from the phone."))
            .count(),
        1
    );
    standin.assert_no_violations();
}

/// The header the bot puts before a devlog's text.
fn header(rel: &str) -> String {
    format!("**Agent-1** 📝 devlog `{rel}`\n\n")
}

/// Every code fence opened in a part is closed in it.
fn balanced(part: &str) -> bool {
    part.lines()
        .filter(|l| l.trim_start().starts_with("```"))
        .count()
        % 2
        == 0
}

/// Checks the splitting of long devlogs, through the bot or the webhook.
fn long_devlogs_split(webhook: bool) {
    let standin = StandIn::start();
    let root = devlog_root(1);
    if webhook {
        let url = format!(
            "{}/api/webhooks/800000000000000009/hook-token",
            standin.base
        );
        let env = fs::read_to_string(root.path().join(".env")).unwrap();
        fs::write(
            root.path().join(".env"),
            format!("{env}DISCORD_DEVLOG_WEBHOOK={url}\n"),
        )
        .unwrap();
    }
    let _bot = run_watching(&root, &standin);
    // Through the webhook the agent's name is the author, not a prefix.
    let head = |rel: &str| {
        if webhook {
            format!("📝 devlog `{rel}`\n\n")
        } else {
            header(rel)
        }
    };
    let channel = if webhook {
        crate::standin::CHANNEL_ID
    } else {
        DEVLOG_CHANNEL
    };

    // Exactly 2,000 characters: one message. One more: two.
    let fill = 2000 - head("Agent-1/a.md").chars().count();
    write(&root, "Agent-1/a.md", &"é".repeat(fill));
    write(&root, "Agent-1/b.md", &"é".repeat(fill + 1));
    let posts = standin.wait_posts(LIMIT, |p| {
        p.iter().filter(|p| p.channel == channel).count() >= 3
    });
    let a: Vec<&Post> = posts
        .iter()
        .filter(|p| p.content.contains("a.md"))
        .collect();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].content.chars().count(), 2000);
    assert_eq!(posts.len(), 3, "{posts:#?}");

    // A code block longer than one message is closed and reopened.
    let code: Vec<String> = (0..150)
        .map(|i| format!("let step_{i} = run({i});"))
        .collect();
    let text = format!(
        "Refactor notes.\n\n```rust\n{}\n```\n\nAll tests pass.",
        code.join("\n")
    );
    write(&root, "Agent-1/code.md", &text);
    let posts = standin.wait_posts(LIMIT, |p| {
        p.iter().any(|p| p.content.contains("All tests pass."))
    });
    let parts: Vec<&Post> = posts[3..].iter().collect();
    assert!(parts.len() >= 2, "{parts:#?}");
    for part in &parts {
        assert!(part.content.chars().count() <= 2000);
        assert!(balanced(&part.content), "{}", part.content);
    }
    assert!(
        parts[1].content.starts_with("```rust\n"),
        "{}",
        parts[1].content
    );
    let lines: Vec<&str> = parts
        .iter()
        .flat_map(|p| p.content.lines())
        .filter(|l| l.starts_with("let step_"))
        .collect();
    assert_eq!(lines, code.iter().map(String::as_str).collect::<Vec<_>>());

    // Past four messages it goes as a file.
    let huge = "A paragraph of progress notes. ".repeat(400);
    write(&root, "Agent-1/huge.md", &huge);
    let posts = standin.wait_posts(LIMIT, |p| p.iter().any(|p| !p.files.is_empty()));
    let file_post = posts.iter().find(|p| !p.files.is_empty()).unwrap();
    assert!(
        file_post.content.contains("attached as a file"),
        "{file_post:#?}"
    );
    assert_eq!(file_post.files.len(), 1);
    assert_eq!(file_post.files[0].0, "huge.md");
    assert_eq!(file_post.files[0].1, huge.trim_end().len());
    if webhook {
        assert!(
            posts
                .iter()
                .all(|p| p.username.as_deref() == Some("Agent-1")),
            "{posts:#?}"
        );
    } else {
        assert!(posts.iter().all(|p| p.username.is_none()));
    }
    standin.assert_no_violations();
}

#[test]
fn long_devlogs_split_at_discords_limits_through_the_bot() {
    long_devlogs_split(false);
}

#[test]
fn long_devlogs_split_at_discords_limits_through_a_webhook() {
    long_devlogs_split(true);
}
