//! The systemd side of `acp service`: where a manager's unit files are,
//! the unit of a root, and `systemctl` and `loginctl` as child processes
//! whose failures (not installed, no manager to talk to) are reported, not
//! raised.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result};

use acp::service::unit::{self, Scope};

use super::super::{ScopeArgs, UsageError};

/// The unit of one root under one manager.
pub(super) struct Unit {
    pub scope: Scope,
    pub name: String,
    pub dir: PathBuf,
}

impl Unit {
    /// The unit of `root` (absolute, links resolved) under `scope`.
    pub fn new(root: &Path, scope: Scope) -> Result<Self> {
        Ok(Self {
            scope,
            name: unit::unit_name(root),
            dir: unit_dir(scope)?,
        })
    }

    /// The unit of `root` under the manager asked for, else the one whose
    /// file is there (the user's first), else the user's.
    pub fn locate(root: &Path, scope: ScopeArgs) -> Result<Self> {
        if scope.system {
            return Self::new(root, Scope::System);
        }
        let user = Self::new(root, Scope::User)?;
        if scope.user || user.path().exists() {
            return Ok(user);
        }
        let system = Self::new(root, Scope::System)?;
        Ok(if system.path().exists() { system } else { user })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// The link `systemctl enable` makes.
    pub fn wants_link(&self) -> PathBuf {
        self.dir
            .join(format!("{}.wants", self.scope.wanted_by()))
            .join(&self.name)
    }

    pub fn scope_name(&self) -> &'static str {
        match self.scope {
            Scope::User => "user",
            Scope::System => "system",
        }
    }

    /// How a person calls `systemctl` for it.
    pub fn ctl(&self) -> &'static str {
        match self.scope {
            Scope::User => "systemctl --user",
            Scope::System => "systemctl",
        }
    }

    /// `systemctl [--user] VERB NAME`, as a person would type it.
    pub fn ctl_line(&self, verb: &str) -> String {
        format!("{} {verb} {}", self.ctl(), self.name)
    }

    /// The command that shows its log.
    pub fn journal(&self) -> String {
        match self.scope {
            Scope::User => format!("journalctl --user -u {}", self.name),
            Scope::System => format!("journalctl -u {}", self.name),
        }
    }

    /// Runs `systemctl [--user] ARGS`; why not, when it cannot.
    fn command(&self, args: &[&str]) -> Result<Output, String> {
        Command::new("systemctl")
            .args(self.scope.flag())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::NotFound {
                    "systemctl is not installed".to_owned()
                } else {
                    format!("cannot run systemctl: {e}")
                }
            })
    }

    /// `systemctl [--user] ARGS`, or why it failed (no systemctl, no
    /// manager to talk to, or its own error).
    pub fn systemctl(&self, args: &[&str]) -> Result<(), String> {
        let out = self.command(args)?;
        if out.status.success() {
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(if stderr.is_empty() {
            format!("systemctl: {}", out.status)
        } else {
            stderr
        })
    }

    /// `systemctl is-enabled` or `is-active` of the unit: the answer
    /// (printed on standard output, whatever the exit status), or why
    /// there is none.
    pub fn ask(&self, verb: &str) -> Result<String, String> {
        let out = self.command(&[verb, &self.name])?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if stdout.is_empty() {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        } else {
            Ok(stdout)
        }
    }

    /// Writes the unit (whole, by a rename), readable by all as unit files
    /// are. Whether it changed.
    pub fn write(&self, text: &str) -> Result<bool> {
        let path = self.path();
        if fs::read_to_string(&path).is_ok_and(|old| old == text) {
            return Ok(false);
        }
        let write = || -> std::io::Result<()> {
            use std::os::unix::fs::PermissionsExt as _;
            fs::create_dir_all(&self.dir)?;
            let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
            tmp.write_all(text.as_bytes())?;
            tmp.as_file()
                .set_permissions(fs::Permissions::from_mode(0o644))?;
            tmp.persist(&path)?;
            Ok(())
        };
        write().with_context(|| {
            let hint = if self.scope == Scope::System {
                " (system units need root: sudo acp service install --system)"
            } else {
                ""
            };
            format!("cannot write the unit {}{hint}", path.display())
        })?;
        Ok(true)
    }
}

/// Where the unit files of a manager go: the user's
/// (`$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`) or
/// the system's.
fn unit_dir(scope: Scope) -> Result<PathBuf> {
    if scope == Scope::System {
        return Ok(PathBuf::from("/etc/systemd/system"));
    }
    let absolute = |key| {
        std::env::var_os(key)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let config = absolute("XDG_CONFIG_HOME")
        .or_else(|| absolute("HOME").map(|home| home.join(".config")))
        .ok_or_else(|| {
            UsageError(
                "HOME is not set, so the user's unit directory is unknown: set HOME, or print \
                 the unit with `acp service install --print` and install it yourself"
                    .into(),
            )
        })?;
    Ok(config.join("systemd").join("user"))
}

/// The name of the account this process runs as.
pub(super) fn login_name() -> String {
    let uid = uzers::get_current_uid();
    uzers::get_user_by_uid(uid).map_or_else(
        || uid.to_string(),
        |u| u.name().to_string_lossy().into_owned(),
    )
}

/// Whether `user`'s services outlive their sessions (`loginctl`'s
/// Linger); `None` when logind cannot say.
pub(super) fn lingers(user: &str) -> Option<bool> {
    let out = Command::new("loginctl")
        .args(["show-user", user, "--property=Linger", "--value"])
        .stdin(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())?;
    match String::from_utf8_lossy(&out.stdout).trim() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// The account that owns the root: a system unit runs acp as it.
pub(super) fn owner(root: &Path) -> Result<String> {
    use std::os::unix::fs::MetadataExt as _;
    let uid = fs::metadata(root)
        .with_context(|| format!("cannot read {}", root.display()))?
        .uid();
    uzers::get_user_by_uid(uid)
        .map(|u| u.name().to_string_lossy().into_owned())
        .ok_or_else(|| {
            UsageError(format!(
                "{} belongs to uid {uid}, which has no account name for User=: give the root to \
                 the account that should run acp (chown -R)",
                root.display()
            ))
            .into()
        })
}
