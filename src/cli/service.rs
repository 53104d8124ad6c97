//! `acp service install | status | uninstall`: `acp run` on this root as a
//! systemd service. The unit's text comes from [`acp::service::unit`]; this
//! writes it, asks `systemctl` to load, enable, start, stop or disable it,
//! and where no service manager answers (a container, CI) says exactly
//! what to run where one does.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, anyhow};
use serde_json::json;

use acp::app::ServiceLock;
use acp::service::unit::{self, Scope, UnitSpec};

use super::{Cli, ScopeArgs, ServiceCommand, UsageError, success_if};

/// Runs `acp service ...`.
pub(crate) fn run(cli: &Cli, cmd: &ServiceCommand) -> Result<ExitCode> {
    match cmd {
        ServiceCommand::Install { scope, print } => install(cli, *scope, *print),
        ServiceCommand::Status { scope } => status(cli, *scope),
        ServiceCommand::Uninstall { scope } => uninstall(cli, *scope),
    }
}

/// The unit of one root under one manager.
struct Unit {
    scope: Scope,
    name: String,
    dir: PathBuf,
}

impl Unit {
    fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    /// How a person calls `systemctl` for it.
    fn ctl(&self) -> &'static str {
        match self.scope {
            Scope::User => "systemctl --user",
            Scope::System => "systemctl",
        }
    }

    fn journal(&self) -> String {
        match self.scope {
            Scope::User => format!("journalctl --user -u {}", self.name),
            Scope::System => format!("journalctl -u {}", self.name),
        }
    }

    /// Runs `systemctl [--user] ARGS`; why not, when it cannot.
    fn command(&self, args: &[&str]) -> Result<std::process::Output, String> {
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
    fn systemctl(&self, args: &[&str]) -> Result<(), String> {
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
    fn ask(&self, verb: &str) -> Result<String, String> {
        let out = self.command(&[verb, &self.name])?;
        let stdout = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        if stdout.is_empty() {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        } else {
            Ok(stdout)
        }
    }
}

/// Where the unit files of a manager go: the user's
/// (`$XDG_CONFIG_HOME/systemd/user`, else `~/.config/systemd/user`) or
/// the system's.
fn unit_dir(scope: Scope) -> Result<PathBuf> {
    if scope == Scope::System {
        return Ok(PathBuf::from("/etc/systemd/system"));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .map(|home| home.join(".config"))
        })
        .ok_or_else(|| {
            UsageError(
                "HOME is not set, so the user's unit directory is unknown: set HOME, or print \
                 the unit with `acp service install --print` and install it yourself"
                    .into(),
            )
        })?;
    Ok(config.join("systemd").join("user"))
}

/// The root, as the unit names it: absolute, links resolved.
fn canonical_root(cli: &Cli) -> Result<PathBuf> {
    let root = super::root_of(cli)?;
    root.canonicalize()
        .with_context(|| format!("cannot resolve the acp root {}", root.display()))
}

/// The unit for this root: under the manager asked for, else the one
/// whose file is there (the user's first), else the user's.
fn locate(root: &Path, scope: ScopeArgs) -> Result<Unit> {
    let name = unit::unit_name(root);
    let pick = |scope| -> Result<Unit> {
        Ok(Unit {
            scope,
            name: name.clone(),
            dir: unit_dir(scope)?,
        })
    };
    if scope.system {
        return pick(Scope::System);
    }
    if scope.user {
        return pick(Scope::User);
    }
    let user = pick(Scope::User)?;
    if user.path().exists() {
        return Ok(user);
    }
    let system = pick(Scope::System)?;
    Ok(if system.path().exists() { system } else { user })
}

/// `acp service install`.
fn install(cli: &Cli, scope: ScopeArgs, print: bool) -> Result<ExitCode> {
    // A root without a config, or with a broken one, would only fail at
    // every start.
    let config = super::load_config(cli)?;
    let root = config
        .root
        .canonicalize()
        .with_context(|| format!("cannot resolve the acp root {}", config.root.display()))?;
    let scope = if scope.system {
        Scope::System
    } else {
        Scope::User
    };
    let exe = std::env::current_exe().context("cannot tell where the running acp binary is")?;
    if !exe.is_file() {
        return Err(UsageError(format!(
            "the running acp binary {} is gone (replaced or deleted since it started): run the \
             acp that is installed now",
            exe.display()
        ))
        .into());
    }
    let env = |key| std::env::var(key).ok().filter(|v| !v.is_empty());
    let (display, xauthority) = (env("DISPLAY"), env("XAUTHORITY"));
    let user = match scope {
        Scope::System => Some(owner(&root)?),
        Scope::User => None,
    };
    let text = unit::render(&UnitSpec {
        scope,
        exe: &exe,
        root: &root,
        display: display.as_deref(),
        xauthority: xauthority.as_deref(),
        user: user.as_deref(),
        stop_timeout: unit::stop_timeout(config.gui.lock_timeout),
    })
    .map_err(|e| UsageError(e.to_string()))?;
    if print {
        out!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let unit = Unit {
        scope,
        name: unit::unit_name(&root),
        dir: unit_dir(scope)?,
    };
    let changed = write_unit(&unit, &text)?;
    if changed {
        outln!("wrote {}", unit.path().display());
    } else {
        outln!("{} is up to date", unit.path().display());
    }
    notes(&root, &exe, &unit, display.is_some())?;
    if let Err(why) = unit.systemctl(&["daemon-reload"]) {
        outln!(
            "systemd is not reachable here ({why}); the unit is written. Where systemd runs, \
             start it with:"
        );
        outln!("  {} daemon-reload", unit.ctl());
        outln!("  {} enable --now {}", unit.ctl(), unit.name);
        if scope == Scope::User {
            outln!(
                "and, to keep it running when you log out: loginctl enable-linger {}",
                login_name()
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    start(&unit, &root, changed)?;
    if scope == Scope::User {
        linger()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Enables the unit and starts it, unless another `acp run` holds the
/// root.
fn start(unit: &Unit, root: &Path, changed: bool) -> Result<()> {
    let active = unit.ask("is-active").is_ok_and(|s| s == "active");
    let failed = |verb: &str, why: String| {
        anyhow!(
            "`{} {verb} {}` failed: {why}. See `{} status {}` and `{}`",
            unit.ctl(),
            unit.name,
            unit.ctl(),
            unit.name,
            unit.journal()
        )
    };
    match ServiceLock::holder(root) {
        Some(pid) if !active => {
            unit.systemctl(&["enable", &unit.name])
                .map_err(|why| failed("enable", why))?;
            outln!(
                "enabled {}, not started: acp run already runs on this root (pid {pid}). Stop \
                 it, then: {} start {}",
                unit.name,
                unit.ctl(),
                unit.name
            );
        }
        _ => {
            unit.systemctl(&["enable", "--now", &unit.name])
                .map_err(|why| failed("enable --now", why))?;
            if active && changed {
                outln!(
                    "{} was running: `{} restart {}` puts the new unit to work",
                    unit.name,
                    unit.ctl(),
                    unit.name
                );
            } else {
                outln!(
                    "enabled and started {}: `acp service status` says how it is, `{} -f` \
                     shows its log",
                    unit.name,
                    unit.journal()
                );
            }
        }
    }
    Ok(())
}

/// What the person should know about the unit just written.
fn notes(root: &Path, exe: &Path, unit: &Unit, display: bool) -> Result<()> {
    if exe
        .components()
        .any(|c| c.as_os_str() == "target" || c.as_os_str() == ".cargo-target")
        && exe
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "debug" || d == "release")
    {
        outln!(
            "note: the unit runs {}, a build in a source tree: `make install` and run `acp \
             service install` again from the installed acp, or the service breaks at the next \
             build or clean",
            exe.display()
        );
    }
    if !display {
        outln!(
            "note: DISPLAY is not set here, so the service delivers to inboxes and tmux only: \
             run this from the desktop session to deliver into windows too"
        );
    }
    let mut unseen: Vec<String> = std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|k| (k.starts_with("ACP_") || k.starts_with("DISCORD_")) && k != "ACP_ROOT")
        .collect();
    unseen.sort();
    if !unseen.is_empty() {
        outln!(
            "note: the service does not get this shell's {}: settings belong in {} (ACP_LOG \
             and ACP_LOG_FORMAT: `{} edit {}`, then under [Service] Environment=ACP_LOG=debug)",
            unseen.join(", "),
            root.join(".env").display(),
            unit.ctl(),
            unit.name
        );
    }
    Ok(())
}

/// Says when user services stop at logout (no lingering).
fn linger() -> Result<()> {
    let user = login_name();
    let linger = Command::new("loginctl")
        .args(["show-user", &user, "--property=Linger", "--value"])
        .stdin(Stdio::null())
        .output();
    match linger {
        Ok(out) if out.status.success() && String::from_utf8_lossy(&out.stdout).trim() == "yes" => {
        }
        Ok(out) if out.status.success() => outln!(
            "note: user services stop when you log out and start at your next login. To keep \
             acp running without a session: loginctl enable-linger {user}"
        ),
        _ => outln!(
            "note: if user services stop when you log out here, `loginctl enable-linger {user}` \
             keeps acp running without a session"
        ),
    }
    Ok(())
}

/// The name of the account this process runs as.
fn login_name() -> String {
    let uid = uzers::get_current_uid();
    uzers::get_user_by_uid(uid).map_or_else(
        || uid.to_string(),
        |u| u.name().to_string_lossy().into_owned(),
    )
}

/// The account that owns the root: a system unit runs acp as it.
fn owner(root: &Path) -> Result<String> {
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

/// Writes the unit (whole, by a rename), readable by all as unit files
/// are. Whether it changed.
fn write_unit(unit: &Unit, text: &str) -> Result<bool> {
    let path = unit.path();
    if fs::read_to_string(&path).is_ok_and(|old| old == text) {
        return Ok(false);
    }
    let write = || -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        fs::create_dir_all(&unit.dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(&unit.dir)?;
        tmp.write_all(text.as_bytes())?;
        tmp.as_file()
            .set_permissions(fs::Permissions::from_mode(0o644))?;
        tmp.persist(&path)?;
        Ok(())
    };
    write().with_context(|| {
        let hint = if unit.scope == Scope::System {
            " (system units need root: sudo acp service install --system)"
        } else {
            ""
        };
        format!("cannot write the unit {}{hint}", path.display())
    })?;
    Ok(true)
}

/// `acp service status`: exit 0 when `acp run` runs on this root.
fn status(cli: &Cli, scope: ScopeArgs) -> Result<ExitCode> {
    let root = canonical_root(cli)?;
    let unit = locate(&root, scope)?;
    let path = unit.path();
    let installed = path.is_file();
    let (enabled, active) = (unit.ask("is-enabled"), unit.ask("is-active"));
    let pid = ServiceLock::holder(&root);
    if cli.json {
        let value = json!({
            "unit": unit.name,
            "scope": if unit.scope == Scope::User { "user" } else { "system" },
            "file": path,
            "installed": installed,
            "enabled": enabled.as_ref().ok(),
            "active": active.as_ref().ok(),
            "systemd_error": enabled.as_ref().err().or(active.as_ref().err()),
            "running": pid.is_some(),
            "pid": pid,
        });
        outln!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(success_if(pid.is_some()));
    }
    let manager = match unit.scope {
        Scope::User => "the user's manager",
        Scope::System => "the system manager",
    };
    outln!("unit:    {} ({manager})", unit.name);
    if installed {
        outln!("file:    {}", path.display());
    } else {
        outln!(
            "file:    {} is not there: `acp service install` writes it",
            path.display()
        );
    }
    match (&enabled, &active) {
        (Ok(enabled), Ok(active)) => outln!("systemd: {enabled}, {active}"),
        (Err(why), _) | (_, Err(why)) => outln!(
            "systemd: cannot say ({why}). Where systemd runs: {} status {}",
            unit.ctl(),
            unit.name
        ),
    }
    match &pid {
        Some(pid) => outln!("acp run: running on this root (pid {pid})"),
        None if installed => outln!(
            "acp run: not running on this root: `{} start {}` (or `{}` says why it stopped)",
            unit.ctl(),
            unit.name,
            unit.journal()
        ),
        None => outln!(
            "acp run: not running on this root: `acp service install`, or run `acp run` yourself"
        ),
    }
    Ok(success_if(pid.is_some()))
}

/// `acp service uninstall`: stops and disables the service, removes its
/// unit.
fn uninstall(cli: &Cli, scope: ScopeArgs) -> Result<ExitCode> {
    let root = canonical_root(cli)?;
    let unit = locate(&root, scope)?;
    let path = unit.path();
    if !path.exists() {
        outln!("no unit at {}: nothing to remove", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    let stopped = unit.systemctl(&["disable", "--now", &unit.name]);
    if stopped.is_ok() {
        outln!("stopped and disabled {}", unit.name);
    }
    fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    outln!("removed {}", path.display());
    // Without systemctl, `enable` may have been done by hand: its link
    // would point at nothing now.
    let wants = unit
        .dir
        .join(format!("{}.wants", unit.scope.wanted_by()))
        .join(&unit.name);
    if wants.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        fs::remove_file(&wants).with_context(|| format!("cannot remove {}", wants.display()))?;
        outln!("removed {}", wants.display());
    }
    match stopped {
        Ok(()) => {
            if let Err(why) = unit.systemctl(&["daemon-reload"]) {
                outln!(
                    "`{} daemon-reload` failed ({why}): run it to forget the unit",
                    unit.ctl()
                );
            }
        }
        Err(why) => outln!(
            "systemd could not be asked to stop it ({why}). Where systemd runs this unit: {} \
             stop {} && {} daemon-reload",
            unit.ctl(),
            unit.name,
            unit.ctl()
        ),
    }
    if let Some(pid) = ServiceLock::holder(&root) {
        outln!("acp run still runs on this root (pid {pid}): stop it with `kill {pid}` (SIGTERM)");
    }
    Ok(ExitCode::SUCCESS)
}
