//! Inbox delivery: one markdown file per message in
//! `agent_workspaces/<id>/inbox/`, written atomically and at most once per
//! message id.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::model::Agent;
use crate::model::UnifiedMessage;

use super::DeliveryMethod;
use crate::model::{DeliveryError, MethodName};

/// Prefix of the temporary files a write goes through (hidden from `ls`).
const TEMP_PREFIX: &str = ".acp-tmp-";

/// Writes messages into the agent's inbox directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct InboxMethod;

/// The file name of a message: its UTC time then its id, so `ls` sorts by
/// time and no two messages share a name. The same message always gets the
/// same name, which is what makes redelivery idempotent.
#[must_use]
pub fn file_name(message: &UnifiedMessage) -> String {
    let time = jiff::Timestamp::from_millisecond(message.created_at)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
        .strftime("%Y%m%dT%H%M%S%.3fZ");
    format!("{time}_{}.md", message.id)
}

/// The file's full text: a front-matter header, the body, and how to ack.
#[must_use]
pub fn render(message: &UnifiedMessage) -> String {
    let created = jiff::Timestamp::from_millisecond(message.created_at)
        .map_or_else(|_| message.created_at.to_string(), |t| format!("{t:.3}"));
    let reply_to = message
        .reply_to
        .map_or_else(|| "-".to_owned(), |id| id.to_string());
    let tags = if message.tags.is_empty() {
        "-".to_owned()
    } else {
        message.tags.join(", ")
    };
    format!(
        "---\nid: {id}\nfrom: {from}\nto: {to}\nkind: {kind}\npriority: {priority}\ncreated_at: {created}\nreply_to: {reply_to}\ntags: {tags}\n---\n\n{body}\n\n---\nWhen you have acted on this message, run: acp inbox ack {id}\n",
        id = message.id,
        from = message.from,
        to = message.to,
        kind = message.kind,
        priority = message.priority,
        body = message.body.trim_end_matches('\n'),
    )
}

/// Writes `contents` to `dir/name` atomically (temp file, fsync, rename
/// without replacing, fsync of the directory). Returns `Ok(false)` if the
/// file was already there: a crash after the rename and before the store
/// recorded it, or a concurrent delivery of the same message.
///
/// # Errors
/// Any I/O error on the way; the target is then either absent or complete.
pub fn write_once(dir: &Path, name: &str, contents: &[u8]) -> io::Result<bool> {
    let target = dir.join(name);
    if target.exists() {
        return Ok(false);
    }
    fs::create_dir_all(dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(TEMP_PREFIX).suffix(".part");
    // Readable by the agent even when it runs as another user (a container,
    // say); the inbox directory's own permissions decide who can list it.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut temp = builder.tempfile_in(dir)?;
    temp.write_all(contents)?;
    temp.as_file().sync_all()?;
    match temp.persist_noclobber(&target) {
        Ok(_) => {}
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => return Ok(false),
        Err(e) => return Err(e.error),
    }
    File::open(dir)?.sync_all()?;
    Ok(true)
}

/// Removes temporary files older than `min_age` left in an inbox by a
/// process that died mid-write. Returns how many were removed.
#[must_use]
pub fn sweep_temp_files(dir: &Path, min_age: Duration) -> usize {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    let now = SystemTime::now();
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name.to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() >= min_age);
        if old && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The path a message has (or will have) in an agent's inbox.
#[must_use]
pub fn path_for(agent: &Agent, message: &UnifiedMessage) -> PathBuf {
    agent.inbox_dir().join(file_name(message))
}

impl DeliveryMethod for InboxMethod {
    fn name(&self) -> MethodName {
        MethodName::Inbox
    }

    fn deliver(&self, agent: &Agent, message: &UnifiedMessage) -> Result<String, DeliveryError> {
        let dir = agent.inbox_dir();
        let name = file_name(message);
        match write_once(&dir, &name, render(message).as_bytes()) {
            Ok(_) => Ok(dir.join(name).display().to_string()),
            Err(e) => Err(DeliveryError::transient(format!(
                "cannot write to inbox {}: {e} (check that the directory exists, is writable and the disk has room)",
                dir.display()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Draft, Kind, Priority, Recipient};

    fn agent(dir: &Path) -> Agent {
        Agent {
            id: "Agent-2".parse().unwrap(),
            name: "Agent-2".into(),
            role: String::new(),
            workspace: dir.join("ws"),
            delivery: vec![MethodName::Inbox],
            gui: crate::model::gui::GuiSettings::default(),
        }
    }

    fn message(body: &str) -> UnifiedMessage {
        Draft {
            from: "Agent-1".into(),
            to: Recipient::Agent("Agent-2".parse().unwrap()),
            kind: Kind::AgentToAgent,
            priority: Priority::Critical,
            body: body.into(),
            tags: vec![],
            reply_to: None,
        }
        .build(1 << 16)
        .unwrap()
    }

    #[test]
    fn writes_header_and_body_once() {
        let tmp = tempfile::tempdir().unwrap();
        let agent = agent(tmp.path());
        let msg = message("line one\nline two é 🚀");
        let detail = InboxMethod.deliver(&agent, &msg).unwrap();
        let text = fs::read_to_string(&detail).unwrap();
        assert!(text.starts_with(&format!("---\nid: {}\nfrom: Agent-1\nto: Agent-2\nkind: agent_to_agent\npriority: critical\n", msg.id)), "{text}");
        assert!(text.contains("\n\nline one\nline two é 🚀\n\n"), "{text}");
        // A second delivery of the same id (after a crash, say) adds nothing.
        InboxMethod.deliver(&agent, &msg).unwrap();
        let files: Vec<_> = fs::read_dir(agent.inbox_dir()).unwrap().collect();
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn names_sort_by_time() {
        let a = message("a");
        let b = message("b");
        assert!(file_name(&a) < file_name(&b));
        assert!(file_name(&a).ends_with(&format!("_{}.md", a.id)));
    }

    #[test]
    fn a_file_present_after_a_crash_is_not_rewritten() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(dir.join("x.md"), "first").unwrap();
        assert!(!write_once(dir, "x.md", b"second").unwrap());
        assert_eq!(fs::read_to_string(dir.join("x.md")).unwrap(), "first");
    }

    #[test]
    fn stale_temp_files_are_swept() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join(".acp-tmp-abc.part"), "half").unwrap();
        fs::write(tmp.path().join("keep.md"), "whole").unwrap();
        assert_eq!(sweep_temp_files(tmp.path(), Duration::ZERO), 1);
        assert!(tmp.path().join("keep.md").exists());
    }
}
