// Over 400 lines: the manifest's format, its checks and its state arithmetic; a third of it is
// tests.

//! The manifest: one JSON document per backup, its commit marker.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The format name of the manifests this acp writes (and of the
/// repository marker).
pub(crate) const FORMAT: &str = "acp-backup/2";

/// The first format (no chunks, no packs), still read.
pub(crate) const FORMAT_1: &str = "acp-backup/1";

/// Longest path accepted in a manifest (bytes).
const MAX_PATH: usize = 4096;

/// What a backup holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// Everything.
    Full,
    /// Changes since the last backup of any kind.
    Incremental,
    /// Changes since the last full backup.
    Differential,
}

impl Kind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Incremental => "incremental",
            Self::Differential => "differential",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "full" => Ok(Self::Full),
            "incremental" | "incr" => Ok(Self::Incremental),
            "differential" | "diff" => Ok(Self::Differential),
            other => Err(format!(
                "unknown backup kind {other:?}: use full, incremental or differential"
            )),
        }
    }
}

/// One path's content and metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Node {
    /// A regular file. `blake3` is the hash of its whole content. A small
    /// file's content is the blob named by it; a large file's is its
    /// `chunks`, one blob each, in order (format 2).
    File {
        size: u64,
        mode: u32,
        mtime_ns: i64,
        blake3: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chunks: Option<Vec<String>>,
    },
    /// A directory.
    Dir { mode: u32 },
    /// A symbolic link, stored as its target text (never followed).
    Symlink { target: String },
}

/// A path (relative, `/`-separated) and what is there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub path: String,
    #[serde(flatten)]
    pub node: Node,
}

/// Counts for people.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Files in the state this backup restores.
    pub total_files: u64,
    /// Their bytes.
    pub total_bytes: u64,
    /// Files read and stored by this backup (new or changed).
    pub changed_files: u64,
    /// Their bytes.
    pub changed_bytes: u64,
    /// Blobs (small files' contents and chunks of large ones) this backup
    /// added to the repository.
    pub new_objects: u64,
    /// Compressed bytes it added (the blobs, without the manifest).
    pub stored_bytes: u64,
    /// Paths deleted since the parent.
    pub deleted: u64,
    /// How long it took.
    pub duration_ms: u64,
}

/// What people see of a backup (without its file list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub id: String,
    pub kind: Kind,
    pub parent: Option<String>,
    pub created_at: String,
    pub stats: Stats,
}

impl Summary {
    /// The capture time.
    ///
    /// # Errors
    /// A message if the time is not RFC 3339.
    pub fn time(&self) -> Result<jiff::Timestamp, String> {
        parse_time(&self.created_at)
    }
}

impl From<&Manifest> for Summary {
    fn from(m: &Manifest) -> Self {
        Self {
            id: m.id.clone(),
            kind: m.kind,
            parent: m.parent.clone(),
            created_at: m.created_at.clone(),
            stats: m.stats.clone(),
        }
    }
}

/// A backup's manifest. Written last, atomically: a backup without one does
/// not exist.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub format: String,
    /// A ULID: sorts by time.
    pub id: String,
    pub kind: Kind,
    /// The backup this one records changes against (none for full).
    pub parent: Option<String>,
    /// When the state was captured (RFC 3339, UTC).
    pub created_at: String,
    pub acp_version: String,
    /// The root-relative paths this backup covers (directories and the
    /// store file); an in-place restore replaces exactly these.
    pub sources: Vec<String>,
    /// New or changed paths (everything, for a full backup).
    pub entries: Vec<Entry>,
    /// Paths present in the parent's state and gone now.
    pub deleted: Vec<String>,
    pub stats: Stats,
}

impl Manifest {
    /// The capture time.
    ///
    /// # Errors
    /// A message if the manifest's time is not RFC 3339.
    pub fn time(&self) -> Result<jiff::Timestamp, String> {
        parse_time(&self.created_at)
    }

    /// Checks what a crafted manifest could abuse: the format, every path,
    /// every hash, and that the kind and parent agree.
    ///
    /// # Errors
    /// What is wrong, in words.
    pub fn check(&self) -> Result<(), String> {
        check_header(
            &self.format,
            &self.id,
            &self.created_at,
            self.kind,
            self.parent.as_ref(),
        )?;
        for path in self.sources.iter().chain(&self.deleted) {
            check_path(path)?;
        }
        for e in &self.entries {
            check_path(&e.path)?;
            match &e.node {
                Node::File { blake3, .. } if !is_hash(blake3) => {
                    return Err(format!("{}: {blake3:?} is not a BLAKE3 hash", e.path));
                }
                Node::File {
                    chunks: Some(chunks),
                    ..
                } => {
                    if self.format == FORMAT_1 || chunks.is_empty() {
                        return Err(format!(
                            "{}: a chunk list in format {}",
                            e.path, self.format
                        ));
                    }
                    if let Some(bad) = chunks.iter().find(|c| !is_hash(c)) {
                        return Err(format!("{}: chunk {bad:?} is not a BLAKE3 hash", e.path));
                    }
                }
                Node::Symlink { target } if target.is_empty() || target.contains('\0') => {
                    return Err(format!("{}: bad symlink target", e.path));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks a manifest's header: the format, the id, the time, and that the
/// kind and parent agree.
///
/// # Errors
/// What is wrong, in words.
pub(crate) fn check_header(
    format: &str,
    id: &str,
    created_at: &str,
    kind: Kind,
    parent: Option<&String>,
) -> Result<(), String> {
    if format != FORMAT && format != FORMAT_1 {
        return Err(format!(
            "format {format:?} is neither {FORMAT} nor {FORMAT_1}: written by another program or \
             a newer acp"
        ));
    }
    if id.parse::<ulid::Ulid>().is_err() {
        return Err(format!("id {id:?} is not a backup id"));
    }
    parse_time(created_at)?;
    match (kind, parent) {
        (Kind::Full, Some(_)) => Err("a full backup with a parent".into()),
        (Kind::Incremental | Kind::Differential, None) => {
            Err(format!("a {kind} backup without a parent"))
        }
        _ => Ok(()),
    }
}

/// A manifest's capture time.
fn parse_time(created_at: &str) -> Result<jiff::Timestamp, String> {
    created_at
        .parse()
        .map_err(|e| format!("created_at {created_at:?}: {e}"))
}

/// Whether `s` is a lowercase hex BLAKE3 hash.
#[must_use]
pub(crate) fn is_hash(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A backup path must be relative, `/`-separated plain components: never
/// absolute, never `..` or `.`, never empty, no NUL.
///
/// # Errors
/// Why the path is refused.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.len() > MAX_PATH {
        return Err(format!("path {path:?} is empty or too long"));
    }
    if path.starts_with('/') || path.contains('\0') || path.contains('\\') {
        return Err(format!(
            "path {path:?} is absolute or has a NUL or backslash"
        ));
    }
    if path
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(format!("path {path:?} has an empty, `.` or `..` component"));
    }
    Ok(())
}

/// The state a backup restores: every path and what is there.
pub type State = BTreeMap<String, Node>;

/// Applies a backup's changes to the state of its parent.
pub(crate) fn apply(state: &mut State, manifest: &Manifest) {
    for gone in &manifest.deleted {
        let prefix = format!("{gone}/");
        state.remove(gone);
        let under: Vec<String> = state
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in under {
            state.remove(&k);
        }
    }
    for e in &manifest.entries {
        state.insert(e.path.clone(), e.node.clone());
    }
}

/// Checks a whole state before anything is written from it: every path's
/// parent must be a directory in the state, so no file is ever written
/// through a symlink.
///
/// # Errors
/// The first path that would escape.
pub(crate) fn check_state(state: &State) -> Result<(), String> {
    for path in state.keys() {
        check_path(path)?;
        if let Some((parent, _)) = path.rsplit_once('/') {
            match state.get(parent) {
                Some(Node::Dir { .. }) => {}
                Some(_) => {
                    return Err(format!(
                        "{path} lies under {parent}, which is not a directory (a symlink escape)"
                    ));
                }
                None => {
                    return Err(format!(
                        "{path} lies under {parent}, which is not in the backup"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// The changes from `base` to `current`: new or changed entries, and the
/// deleted paths (only the topmost of a deleted subtree).
#[must_use]
pub fn diff(base: &State, current: &State) -> (Vec<Entry>, Vec<String>) {
    let entries = current
        .iter()
        .filter(|(path, node)| base.get(*path) != Some(*node))
        .map(|(path, node)| Entry {
            path: path.clone(),
            node: node.clone(),
        })
        .collect();
    // Only the topmost path of a deleted subtree ("d-2" sorts between "d"
    // and "d/x", so look at every ancestor, not the previous path).
    let gone: std::collections::HashSet<&str> = base
        .keys()
        .filter(|p| !current.contains_key(*p))
        .map(String::as_str)
        .collect();
    let deleted = gone
        .iter()
        .filter(|path| {
            !path
                .match_indices('/')
                .any(|(i, _)| gone.contains(&path[..i]))
        })
        .map(|p| (*p).to_owned())
        .collect::<std::collections::BTreeSet<String>>()
        .into_iter()
        .collect();
    (entries, deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(hash: char) -> Node {
        Node::File {
            size: 1,
            mode: 0o644,
            mtime_ns: 0,
            blake3: hash.to_string().repeat(64),
            chunks: None,
        }
    }

    #[test]
    fn paths_that_could_escape_are_refused() {
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "./a",
            "a/.",
            "a\0b",
            "a\\..\\b",
        ] {
            assert!(check_path(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["a", "a/b", "ünïcödé/файл", ".hidden", "a/..b"] {
            check_path(good).unwrap();
        }
    }

    #[test]
    fn a_file_under_a_symlink_is_refused() {
        let mut state = State::new();
        state.insert(
            "link".into(),
            Node::Symlink {
                target: "/etc".into(),
            },
        );
        state.insert("link/passwd".into(), file('a'));
        assert!(check_state(&state).unwrap_err().contains("symlink escape"));
        state.remove("link");
        assert!(
            check_state(&state)
                .unwrap_err()
                .contains("not in the backup")
        );
    }

    #[test]
    fn diff_then_apply_gives_the_current_state() {
        let mut base = State::new();
        base.insert("d".into(), Node::Dir { mode: 0o755 });
        base.insert("d/x".into(), file('a'));
        base.insert("d/y".into(), file('b'));
        base.insert("d-2".into(), file('c'));
        base.insert("keep".into(), file('d'));
        let mut current = State::new();
        current.insert("keep".into(), file('e'));
        current.insert("new".into(), file('f'));
        let (entries, deleted) = diff(&base, &current);
        assert_eq!(deleted, ["d", "d-2"]);
        assert_eq!(entries.len(), 2);
        let manifest = Manifest {
            format: FORMAT.into(),
            id: ulid::Ulid::generate().to_string(),
            kind: Kind::Incremental,
            parent: Some("x".into()),
            created_at: "2026-01-01T00:00:00Z".into(),
            acp_version: String::new(),
            sources: vec![],
            entries,
            deleted,
            stats: Stats::default(),
        };
        let mut state = base;
        apply(&mut state, &manifest);
        assert_eq!(state, current);
    }
}
