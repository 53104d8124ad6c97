//! Which configuration a running `acp run` uses, as it tells everyone
//! else: it writes `data/service/config.json` each time it loads its
//! configuration or refuses a new one, and `acp status`, `acp doctor`,
//! the page and the commands that edit the config read it back.
//!
//! The files are named by one digest (SHA-256 over `config/acp.toml`,
//! `config/coordinates.json` and `.env`), so a command that has just
//! saved the config can tell whether the service runs what it wrote.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{App, ServiceLock};

/// The files a reload reads, relative to the root.
pub const WATCHED: [&str; 3] = ["config/acp.toml", "config/coordinates.json", ".env"];

/// What the running service says of its configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ConfigState {
    /// The service's process.
    pub pid: u32,
    /// The digest of the files it runs on.
    pub running: String,
    /// The started agents its registry holds (`acp spawn`), as the store
    /// named them.
    #[serde(default)]
    pub agents: String,
    /// When it loaded them.
    #[serde(with = "crate::model::time::ms")]
    pub loaded_at: i64,
    /// How many times it reloaded since it started.
    pub reloads: u64,
    /// The newest files it would not run, if they are still on disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<RefusedConfig>,
    /// Changes it runs without until it is restarted ("[http] bind:
    /// 127.0.0.1:7420 → 0.0.0.0:7420").
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<String>,
}

/// A configuration the service refused, and why.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefusedConfig {
    pub digest: String,
    #[serde(with = "crate::model::time::ms")]
    pub at: i64,
    pub error: String,
}

/// Whether the running service took the configuration now on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pickup {
    /// No `acp run` for this root: it reads the files when it starts.
    NotRunning,
    /// The service runs these files (perhaps with changes that need a
    /// restart).
    Loaded { restart_needed: Vec<String> },
    /// The service refused these files and runs the ones before.
    Refused { error: String },
    /// The service has not said anything of these files yet.
    NotYet,
}

impl ConfigState {
    /// A service starting on the files under `root` as they are now.
    #[must_use]
    pub fn starting(root: &Path, agents: &str) -> Self {
        Self {
            pid: std::process::id(),
            running: config_digest(root),
            agents: agents.to_owned(),
            loaded_at: crate::store::now_ms(),
            reloads: 0,
            refused: None,
            restart_needed: Vec::new(),
        }
    }

    /// The service now runs the files of `digest`, without
    /// `restart_needed`.
    pub fn loaded(&mut self, digest: String, agents: &str, restart_needed: Vec<String>) {
        self.running = digest;
        agents.clone_into(&mut self.agents);
        self.loaded_at = crate::store::now_ms();
        self.reloads += 1;
        self.refused = None;
        self.restart_needed = restart_needed;
    }

    /// The service would not run the files of `digest`, for `error`.
    pub fn refuse(&mut self, digest: String, error: &str) {
        self.refused = Some(RefusedConfig {
            digest,
            at: crate::store::now_ms(),
            error: error.to_owned(),
        });
    }

    /// What it says of the files of `digest` with the started agents
    /// `agents`.
    #[must_use]
    pub fn pickup(&self, digest: &str, agents: &str) -> Pickup {
        if self.running == digest && self.agents == agents {
            return Pickup::Loaded {
                restart_needed: self.restart_needed.clone(),
            };
        }
        match &self.refused {
            Some(r) if r.digest == digest => Pickup::Refused {
                error: r.error.clone(),
            },
            _ => Pickup::NotYet,
        }
    }
}

/// The digest of the configuration files under `root` as they are now
/// (a missing file counts as empty, and differs from an empty one).
#[must_use]
pub fn config_digest(root: &Path) -> String {
    let mut hash = Sha256::new();
    for name in WATCHED {
        match std::fs::read(root.join(name)) {
            Ok(bytes) => {
                hash.update([1]);
                hash.update((bytes.len() as u64).to_le_bytes());
                hash.update(&bytes);
            }
            Err(_) => hash.update([0]),
        }
    }
    hash.finalize()
        .iter()
        .take(16)
        .fold(String::with_capacity(32), |mut hex, b| {
            use std::fmt::Write;
            let _ = write!(hex, "{b:02x}");
            hex
        })
}

/// Watches the configuration files under `root` (`config/` and the root
/// itself, not their subfolders): a wake for each change to one of them.
///
/// # Errors
/// The watcher cannot start or a folder cannot be watched.
pub fn watch_config(
    root: &Path,
) -> Result<(crate::watch::Watch, crate::watch::Wakes), notify::Error> {
    let files: Vec<PathBuf> = WATCHED.iter().map(|name| root.join(name)).collect();
    let dirs = [(root.join("config"), false), (root.to_path_buf(), false)];
    crate::watch::changes(&dirs, move |p| files.iter().any(|f| f == p))
}

fn state_path(root: &Path) -> PathBuf {
    root.join("data").join("service").join("config.json")
}

/// Writes the state for others to read (whole, by a rename).
///
/// # Errors
/// I/O errors.
pub(crate) fn write_state(root: &Path, state: &ConfigState) -> std::io::Result<()> {
    let path = state_path(root);
    let dir = path.parent().unwrap_or(root);
    std::fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    serde_json::to_writer_pretty(&mut temp, state).map_err(std::io::Error::other)?;
    temp.persist(&path).map_err(|e| e.error)?;
    Ok(())
}

/// The state the running service wrote, when one runs for `root`.
#[must_use]
pub fn read_state(root: &Path) -> Option<ConfigState> {
    if !ServiceLock::is_held(root) {
        return None;
    }
    let text = std::fs::read(state_path(root)).ok()?;
    serde_json::from_slice(&text).ok()
}

/// How often [`App::await_pickup`] looks again.
const PICKUP_POLL: Duration = Duration::from_millis(50);

impl App {
    /// What the running `acp run` says of its configuration, if one runs.
    #[must_use]
    pub fn config_state(&self) -> Option<ConfigState> {
        read_state(&self.config.root)
    }

    /// The started agents this core's registry holds, as the store named
    /// them when it opened.
    #[must_use]
    pub(crate) fn held_agents(&self) -> &str {
        &self.started_agents
    }

    /// The started agents as the store names them now (empty when it
    /// cannot be read: a reload then follows the files alone).
    pub(crate) async fn stored_agents(&self) -> String {
        let store = std::sync::Arc::clone(&self.store);
        super::blocking(move || store.spawned_fingerprint())
            .await
            .unwrap_or_default()
    }

    /// Says which configuration this process runs (`acp run` only).
    pub(crate) fn record_config_state(&self, state: &ConfigState) {
        if let Err(e) = write_state(&self.config.root, state) {
            tracing::warn!(error = %e, "cannot write data/service/config.json: acp status cannot tell which config acp run uses");
        }
    }

    /// Whether the agents' points this core read are unusable while the
    /// file is there (a reload refuses them).
    #[must_use]
    pub(crate) fn points_problem(&self) -> Option<String> {
        let problem = self.points.problem()?;
        self.config
            .coords_path()
            .exists()
            .then(|| problem.to_owned())
    }

    /// Waits up to `limit` for the running service to take or refuse the
    /// configuration files as they are now (after a command saved them).
    pub async fn await_pickup(&self, limit: Duration) -> Pickup {
        let root = self.config.root.clone();
        let digest = config_digest(&root);
        let agents = self.stored_agents().await;
        let deadline = Instant::now() + limit;
        loop {
            if !ServiceLock::is_held(&root) {
                return Pickup::NotRunning;
            }
            let said = read_state(&root).map_or(Pickup::NotYet, |s| s.pickup(&digest, &agents));
            if said != Pickup::NotYet || Instant::now() >= deadline {
                return said;
            }
            tokio::time::sleep(PICKUP_POLL).await;
        }
    }
}

impl Pickup {
    /// One line for a person who just saved the config.
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::NotRunning => {
                "no acp run is running for this root: it reads the new config when it starts"
                    .to_owned()
            }
            Self::Loaded { restart_needed } if restart_needed.is_empty() => {
                "the running acp run picked up the new config".to_owned()
            }
            Self::Loaded { restart_needed } => format!(
                "the running acp run picked up the new config, except what needs a restart: {}",
                restart_needed.join("; ")
            ),
            Self::Refused { error } => format!(
                "the running acp run refused the new config and keeps the one before: {error}"
            ),
            Self::NotYet => "the running acp run has not picked up the new config yet: check \
                             `acp status`, or send it SIGHUP (systemctl --user reload, or kill \
                             -HUP its pid)"
                .to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_follows_each_file_and_tells_missing_from_empty() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("config")).unwrap();
        let none = config_digest(root);
        std::fs::write(root.join(".env"), "").unwrap();
        let empty_env = config_digest(root);
        assert_ne!(none, empty_env);
        std::fs::write(root.join("config/acp.toml"), "captain = \"Agent-1\"\n").unwrap();
        let with_toml = config_digest(root);
        assert_ne!(with_toml, empty_env);
        assert_eq!(with_toml, config_digest(root), "same files, same digest");
        // Moving bytes from one file to the next is a different config.
        std::fs::write(root.join("config/acp.toml"), "captain = ").unwrap();
        std::fs::write(root.join("config/coordinates.json"), "\"Agent-1\"\n").unwrap();
        assert_ne!(with_toml, config_digest(root));
    }

    #[test]
    fn a_state_says_loaded_refused_or_not_yet_for_a_digest() {
        let state = ConfigState {
            pid: 1,
            running: "aa".into(),
            agents: String::new(),
            loaded_at: 0,
            reloads: 0,
            refused: Some(RefusedConfig {
                digest: "bb".into(),
                at: 1,
                error: "bad".into(),
            }),
            restart_needed: vec![],
        };
        assert_eq!(
            state.pickup("aa", ""),
            Pickup::Loaded {
                restart_needed: vec![]
            }
        );
        assert_eq!(
            state.pickup("bb", ""),
            Pickup::Refused {
                error: "bad".into()
            }
        );
        assert_eq!(state.pickup("cc", ""), Pickup::NotYet);
    }
}
