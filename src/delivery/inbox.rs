//! Inbox delivery: one markdown file per message in
//! `agent_workspaces/<id>/inbox/`, written atomically and at most once per
//! message id.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::model::Agent;
use crate::model::UnifiedMessage;

use super::{DeliveryMethod, Target};
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

/// The file's full text for one agent: a front-matter header, the body, and
/// the exact command that agent runs to acknowledge it.
#[must_use]
pub(crate) fn render_for(message: &UnifiedMessage, agent: &Agent) -> String {
    let ack = match message.to {
        crate::model::Recipient::Agent(_)
        | crate::model::Recipient::Discord
        | crate::model::Recipient::Person(_) => {
            format!("acp inbox ack {}", message.id)
        }
        crate::model::Recipient::Broadcast => {
            format!("acp inbox ack {} --agent {}", message.id, agent.id)
        }
    };
    render(message).replace(
        &format!("run: acp inbox ack {}\n", message.id),
        &format!("run: {ack}\n"),
    )
}

/// The file's full text: a front-matter header, the body, and how to ack.
#[must_use]
pub(crate) fn render(message: &UnifiedMessage) -> String {
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
        "---\nid: {id}\nfrom: {from}\nto: {to}\nkind: {kind}\npriority: {priority}\ncreated_at: \
         {created}\nreply_to: {reply_to}\ntags: {tags}\n---\n\n{body}\n\n---\nWhen you have \
         acted on this message, run: acp inbox ack {id}\nTo answer it, run: acp reply {id} \
         \"your answer\"\n",
        id = message.id,
        from = message.from,
        to = message.to,
        kind = message.kind,
        priority = message.priority,
        body = message.body.trim_end_matches('\n'),
    )
}

/// What [`write_once`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Written {
    /// The file is new.
    New(PathBuf),
    /// The same content was already there: an earlier delivery of this
    /// message (a crash after the rename, or a concurrent delivery).
    Already(PathBuf),
    /// A file with other content held the name: it was left as it was,
    /// and the message went under the next free name.
    Beside { path: PathBuf, kept: PathBuf },
}

impl Written {
    /// Where the message is.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::New(p) | Self::Already(p) | Self::Beside { path: p, .. } => p,
        }
    }
}

/// How many names a message may try before giving up (`NAME.md`, then
/// `NAME.1.md` and on).
const MAX_NAMES: usize = 16;

/// The `n`th name for a message file (`n` = 0 is the name itself).
fn nth_name(name: &str, n: usize) -> String {
    if n == 0 {
        return name.to_owned();
    }
    match name.strip_suffix(".md") {
        Some(stem) => format!("{stem}.{n}.md"),
        None => format!("{name}.{n}"),
    }
}

/// Whether `path` already holds exactly `contents` (a regular file only:
/// a link, a directory or a pipe under the name is never read).
fn holds(path: &Path, meta: &fs::Metadata, contents: &[u8]) -> io::Result<bool> {
    if !meta.file_type().is_file() || meta.len() != contents.len() as u64 {
        return Ok(false);
    }
    // Opened without following a link, and never blocking on a FIFO: the
    // agent may have swapped the file since it was looked at.
    match crate::untrusted::read_unlinked(path, contents.len()) {
        Ok(bytes) => Ok(bytes == contents),
        Err(crate::untrusted::ReadError::Io(e)) => Err(e),
        Err(_) => Ok(false),
    }
}

/// Creates `dir` (and its parents) readable by its owner only.
fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `contents` to `dir/name` atomically (temp file, fsync, rename
/// without replacing, fsync of the directory), readable by its owner only.
/// A file already under the name counts as this message only if it holds
/// exactly `contents`; anything else is kept untouched and the message
/// goes under the next name.
///
/// # Errors
/// Any I/O error on the way (the target is then either absent or
/// complete), or every name taken by other files.
pub(crate) fn write_once(dir: &Path, name: &str, contents: &[u8]) -> io::Result<Written> {
    create_private_dir(dir)?;
    let mut planted: Option<PathBuf> = None;
    let mut n = 0;
    while n < MAX_NAMES {
        let target = dir.join(nth_name(name, n));
        match fs::symlink_metadata(&target) {
            Ok(meta) => {
                if holds(&target, &meta, contents)? {
                    return Ok(match planted {
                        None => Written::Already(target),
                        Some(kept) => Written::Beside { path: target, kept },
                    });
                }
                planted.get_or_insert(target);
                n += 1;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX).suffix(".part");
        // Messages are for the agent's eyes: owner only (0600).
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600));
        let mut temp = builder.tempfile_in(dir)?;
        temp.write_all(contents)?;
        temp.as_file().sync_all()?;
        match temp.persist_noclobber(&target) {
            Ok(_) => {}
            // Taken a moment ago: look at what is there now.
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e.error),
        }
        File::open(dir)?.sync_all()?;
        return Ok(match planted {
            None => Written::New(target),
            Some(kept) => Written::Beside { path: target, kept },
        });
    }
    Err(io::Error::other(format!(
        "{MAX_NAMES} files with other content already use this message's name ({name}): move \
         them out of the inbox"
    )))
}

/// Removes temporary files older than `min_age` left in an inbox by a
/// process that died mid-write. Returns how many were removed.
#[must_use]
pub(crate) fn sweep_temp_files(dir: &Path, min_age: Duration) -> usize {
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

impl DeliveryMethod for InboxMethod {
    fn name(&self) -> MethodName {
        MethodName::Inbox
    }

    fn deliver(&self, to: Target<'_>, message: &UnifiedMessage) -> Result<String, DeliveryError> {
        let agent = to.agent(self.name())?;
        Ok(match write_message(agent, message)? {
            Written::New(path) | Written::Already(path) => path.display().to_string(),
            Written::Beside { path, kept } => format!(
                "{} ({} was already there with other content: kept, untouched)",
                path.display(),
                kept.display()
            ),
        })
    }
}

/// A file name safe to write: letters, digits, `.`, `-` and `_` kept,
/// anything else `_`, no leading dot, at most 100 characters.
fn safe_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    while out.starts_with('.') {
        out.remove(0);
    }
    if out.is_empty() { "file".into() } else { out }
}

/// Saves a file a person sent with a message into the agent's
/// `inbox/files/`, under a new name (`ID_name`), atomically. Returns its
/// path.
///
/// # Errors
/// [`DeliveryError`]: a linked inbox, or I/O.
pub(crate) fn write_attachment(
    agent: &Agent,
    name: &str,
    bytes: &[u8],
) -> Result<PathBuf, DeliveryError> {
    let files = Confined::open(&agent.workspace, &["inbox", "files"])?;
    let dir = agent.inbox_dir().join("files");
    let name = format!(
        "{}_{}",
        crate::model::MessageId::generate(),
        safe_name(name)
    );
    write_once(&files.path(), &name, bytes)
        .map(|w| files.said(w).path().to_owned())
        .map_err(|e| {
            DeliveryError::transient(format!("cannot save {name} in {}: {e}", dir.display()))
                .or_exhausted(&e)
        })
}

/// A folder of an agent's workspace, opened one component at a time from
/// the workspace's parent without following a link (the workspace itself
/// included): an agent can write its workspace, so a check of the path
/// followed by a write to it would lose a race against a swap for a link.
/// The writes go through [`Confined::path`], which names the opened folder
/// itself on Linux (`/proc/self/fd/N`), whatever is swapped in meanwhile.
pub(crate) struct Confined {
    fd: std::os::fd::OwnedFd,
    /// The folder's path, as said to people.
    real: PathBuf,
}

impl Confined {
    /// Opens (creating each missing folder, owner only) `sub` below the
    /// workspace.
    ///
    /// # Errors
    /// Permanent for a link (or anything not a folder) on the way, naming
    /// it; transient for I/O.
    pub(crate) fn open(workspace: &Path, sub: &[&str]) -> Result<Self, DeliveryError> {
        Self::open_with(workspace, sub, true)
    }

    /// Opens `sub` below the workspace as [`Confined::open`] does, creating
    /// nothing.
    ///
    /// # Errors
    /// As [`Confined::open`]; a missing folder is an I/O error.
    pub(crate) fn open_existing(workspace: &Path, sub: &[&str]) -> Result<Self, DeliveryError> {
        Self::open_with(workspace, sub, false)
    }

    fn open_with(workspace: &Path, sub: &[&str], create: bool) -> Result<Self, DeliveryError> {
        use rustix::fs::{Mode, OFlags};
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let parent = workspace.parent().unwrap_or(Path::new("/"));
        let io_err = |at: &Path, e: io::Error| {
            DeliveryError::transient(format!(
                "cannot write to inbox {}: {e} (check that the directory exists, is writable and \
                 the disk has room)",
                at.display()
            ))
            .or_exhausted(&e)
        };
        if create {
            create_private_dir(parent).map_err(|e| io_err(parent, e))?;
        }
        let mut fd = rustix::fs::openat(
            rustix::fs::CWD,
            parent,
            flags & !OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| io_err(parent, e.into()))?;
        let mut real = parent.to_path_buf();
        let names = workspace
            .file_name()
            .into_iter()
            .chain(sub.iter().map(std::ffi::OsStr::new));
        for name in names {
            real.push(name);
            match rustix::fs::mkdirat(&fd, name, Mode::from_raw_mode(0o700)) {
                _ if !create => {}
                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(io_err(&real, e.into())),
            }
            fd = match rustix::fs::openat(&fd, name, flags, Mode::empty()) {
                Ok(fd) => fd,
                Err(rustix::io::Errno::LOOP) => return Err(refused_link(&real)),
                Err(rustix::io::Errno::NOTDIR)
                    if fs::symlink_metadata(&real).is_ok_and(|m| m.file_type().is_symlink()) =>
                {
                    return Err(refused_link(&real));
                }
                Err(e) => return Err(io_err(&real, e.into())),
            };
        }
        Ok(Self { fd, real })
    }

    /// The path the writes use: the opened folder itself.
    pub(crate) fn path(&self) -> PathBuf {
        let by_fd = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&self.fd)
        ));
        if cfg!(target_os = "linux") && by_fd.is_dir() {
            by_fd
        } else {
            self.real.clone()
        }
    }

    /// `written`'s path as said to people (in the real folder).
    pub(crate) fn said(&self, written: Written) -> Written {
        let real = |p: PathBuf| p.file_name().map_or(p.clone(), |n| self.real.join(n));
        match written {
            Written::New(p) => Written::New(real(p)),
            Written::Already(p) => Written::Already(real(p)),
            Written::Beside { path, kept } => Written::Beside {
                path: real(path),
                kept: real(kept),
            },
        }
    }
}

/// The message a file of acp's own is for, read from its name:
/// `<time>_<id>.md`, or `<time>_<id>.<n>.md` when it went beside another
/// file ([`file_name`], [`nth_name`]).
#[must_use]
pub(crate) fn message_of(name: &str) -> Option<crate::model::MessageId> {
    let (time, rest) = name.split_once('_')?;
    let stem = rest.strip_suffix(".md")?;
    let id = match stem.split_once('.') {
        Some((id, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => id,
        Some(_) => return None,
        None => stem,
    };
    let looks_like_time = time.len() == 20 && time.ends_with('Z') && time.as_bytes()[8] == b'T';
    looks_like_time.then(|| id.parse().ok()).flatten()
}

/// Removes from the inbox folder below `home` (an agent's workspace, a
/// person's folder) the message files of messages made before `before`
/// (ms) that `gone` says the store no longer holds. Each is checked
/// first: a regular file of its own whose header names its message, so
/// links, folders and files an agent put there stay. Returns how many went.
///
/// # Errors
/// The folder cannot be opened (a link is refused) or read, or `gone`
/// fails.
pub(crate) fn prune_files(
    home: &Path,
    before: i64,
    mut gone: impl FnMut(&[crate::model::MessageId]) -> io::Result<Vec<crate::model::MessageId>>,
) -> io::Result<usize> {
    if !home.join("inbox").is_dir() {
        return Ok(0);
    }
    let inbox =
        Confined::open_existing(home, &["inbox"]).map_err(|e| io::Error::other(e.to_string()))?;
    let before = u64::try_from(before).unwrap_or(0);
    let mut old: Vec<(crate::model::MessageId, std::ffi::OsString)> = Vec::new();
    for entry in rustix::fs::Dir::read_from(&inbox.fd)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(id) = message_of(&name)
            && id.timestamp_ms() < before
        {
            old.push((id, std::ffi::OsString::from(name)));
        }
    }
    let mut removed = 0;
    for batch in old.chunks(500) {
        let ids: Vec<_> = batch.iter().map(|(id, _)| *id).collect();
        let gone: std::collections::HashSet<_> = gone(&ids)?.into_iter().collect();
        for (id, name) in batch.iter().filter(|(id, _)| gone.contains(id)) {
            if is_message_file(&inbox.fd, name, *id) {
                match rustix::fs::unlinkat(
                    &inbox.fd,
                    name.as_os_str(),
                    rustix::fs::AtFlags::empty(),
                ) {
                    Ok(()) => removed += 1,
                    Err(rustix::io::Errno::NOENT) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
    }
    Ok(removed)
}

/// Whether `name` in `dir` is a message file acp wrote for `id`: opened
/// without following a link or blocking on a FIFO, a regular file with
/// one link, beginning with the header naming `id`.
fn is_message_file(
    dir: &std::os::fd::OwnedFd,
    name: &std::ffi::OsStr,
    id: crate::model::MessageId,
) -> bool {
    use rustix::fs::{FileType, Mode, OFlags};
    use std::io::Read;
    let flags =
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let Ok(fd) = rustix::fs::openat(dir, name, flags, Mode::empty()) else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(&fd) else {
        return false;
    };
    if FileType::from_raw_mode(stat.st_mode) != FileType::RegularFile || stat.st_nlink != 1 {
        return false;
    }
    let header = format!("---\nid: {id}\n");
    let mut head = vec![0; header.len()];
    File::from(fd).read_exact(&mut head).is_ok() && head == header.as_bytes()
}

/// The refusal of a link where a workspace folder goes.
fn refused_link(at: &Path) -> DeliveryError {
    let to = fs::read_link(at).map_or_else(|_| "?".into(), |t| t.display().to_string());
    DeliveryError::permanent(format!(
        "{} is a symbolic link (to {to}): acp does not write through links, since a backup would hold only the link \
         and the message could land outside the workspace; make it a real directory",
        at.display()
    ))
}

/// Writes a message into an agent's inbox, once. An inbox that is a
/// symbolic link is refused: acp does not write through links.
///
/// # Errors
/// [`DeliveryError`]: permanent for a linked inbox, transient for I/O.
pub(crate) fn write_message(
    agent: &Agent,
    message: &UnifiedMessage,
) -> Result<Written, DeliveryError> {
    let dir = agent.inbox_dir();
    let inbox = Confined::open(&agent.workspace, &["inbox"])?;
    let written = write_once(
        &inbox.path(),
        &file_name(message),
        render_for(message, agent).as_bytes(),
    )
    .map(|w| inbox.said(w))
    .map_err(|e| {
        DeliveryError::transient(format!(
            "cannot write to inbox {}: {e} (check that the directory exists, is writable and \
                 the disk has room)",
            dir.display()
        ))
        .or_exhausted(&e)
    })?;
    if let Written::Beside { path, kept } = &written {
        tracing::warn!(kept = %kept.display(), written = %path.display(), "a different file had this message's inbox name; it was kept");
    }
    Ok(written)
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
            tmux: None,
            node: None,
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
        let detail = InboxMethod.deliver(Target::Agent(&agent), &msg).unwrap();
        let text = fs::read_to_string(&detail).unwrap();
        assert!(text.starts_with(&format!("---\nid: {}\nfrom: Agent-1\nto: Agent-2\nkind: agent_to_agent\npriority: critical\n", msg.id)), "{text}");
        assert!(text.contains("\n\nline one\nline two é 🚀\n\n"), "{text}");
        // A second delivery of the same id (after a crash, say) adds nothing.
        InboxMethod.deliver(Target::Agent(&agent), &msg).unwrap();
        let files: Vec<_> = fs::read_dir(agent.inbox_dir()).unwrap().collect();
        assert_eq!(files.len(), 1);
    }

    #[test]
    fn a_message_file_name_gives_its_message_and_nothing_else_does() {
        let m = message("hi");
        let name = file_name(&m);
        assert_eq!(message_of(&name), Some(m.id));
        assert_eq!(message_of(&nth_name(&name, 2)), Some(m.id));
        let id = m.id.to_string();
        for other in [
            "notes.md".to_owned(),
            format!("{id}.md"),
            format!("20260101T000000.000Z_{id}.x.md"),
            format!("20260101T000000.000Z_{id}.md.bak"),
            format!("yesterday_{id}.md"),
            "20260101T000000.000Z_not-an-id.md".to_owned(),
        ] {
            assert_eq!(message_of(&other), None, "{other}");
        }
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
        fs::write(dir.join("x.md"), "the message").unwrap();
        assert_eq!(
            write_once(dir, "x.md", b"the message").unwrap(),
            Written::Already(dir.join("x.md"))
        );
        assert_eq!(fs::read_dir(dir).unwrap().count(), 1);
    }

    #[test]
    fn another_file_under_the_name_is_kept_and_the_message_goes_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::write(dir.join("x.md"), "planted").unwrap();
        let written = write_once(dir, "x.md", b"the message").unwrap();
        assert_eq!(
            written,
            Written::Beside {
                path: dir.join("x.1.md"),
                kept: dir.join("x.md")
            }
        );
        assert_eq!(fs::read_to_string(dir.join("x.md")).unwrap(), "planted");
        assert_eq!(
            fs::read_to_string(dir.join("x.1.md")).unwrap(),
            "the message"
        );
        // Delivered again (a retry after a crash): found beside, not copied.
        assert_eq!(write_once(dir, "x.md", b"the message").unwrap(), written);
        assert_eq!(fs::read_dir(dir).unwrap().count(), 2);
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
