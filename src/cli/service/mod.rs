//! `acp service install | status | uninstall`: `acp run` on this root as a
//! systemd service. The unit's text comes from [`acp::service::unit`]; this
//! writes it, asks `systemctl` to load, enable, start, stop or disable it,
//! and where no service manager answers (a container, CI) says exactly
//! what to run where one does.

mod systemd;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow};
use serde::Serialize;
use serde_json::json;

use acp::app::ServiceLock;
use acp::service::unit::{self, Scope, UnitSpec};

use super::{Cli, ScopeArgs, ServiceCommand, UsageError, success_if};
use systemd::Unit;

/// Runs `acp service ...`.
pub(crate) fn run(cli: &Cli, cmd: &ServiceCommand) -> Result<ExitCode> {
    match cmd {
        ServiceCommand::Install { scope, print } => install(cli, *scope, *print),
        ServiceCommand::Status { scope } => status(cli, *scope),
        ServiceCommand::Uninstall { scope } => uninstall(cli, *scope),
    }
}

/// What `install` or `uninstall` did and what is left to the person:
/// printed as text, or as one JSON object with `--json`.
#[derive(Debug, Serialize)]
struct Report {
    unit: String,
    scope: &'static str,
    file: PathBuf,
    /// What was done, in order.
    done: Vec<String>,
    /// What the person should know.
    notes: Vec<String>,
    /// Why `systemctl` could not be used here, when it could not.
    systemd_error: Option<String>,
    /// Then: the commands to run where systemd runs.
    to_run: Vec<String>,
}

impl Report {
    fn new(unit: &Unit) -> Self {
        Self {
            unit: unit.name.clone(),
            scope: unit.scope_name(),
            file: unit.path(),
            done: Vec::new(),
            notes: Vec::new(),
            systemd_error: None,
            to_run: Vec::new(),
        }
    }

    fn print(&self, json_out: bool) -> Result<()> {
        if json_out {
            outln!("{}", serde_json::to_string_pretty(self)?);
            return Ok(());
        }
        for line in &self.done {
            outln!("{line}");
        }
        for note in &self.notes {
            outln!("note: {note}");
        }
        if let Some(why) = &self.systemd_error {
            outln!("systemctl could not be used here ({why}). Where systemd runs, run:");
            for command in &self.to_run {
                outln!("  {command}");
            }
        }
        Ok(())
    }
}

/// The root, as the unit names it: absolute, links resolved.
fn canonical_root(cli: &Cli) -> Result<PathBuf> {
    let root = super::root_of(cli)?;
    root.canonicalize()
        .with_context(|| format!("cannot resolve the acp root {}", root.display()))
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
        Scope::System => Some(systemd::owner(&root)?),
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
    let unit = Unit::new(&root, scope)?;
    let mut report = Report::new(&unit);
    let changed = unit.write(&text)?;
    report.done.push(if changed {
        format!("wrote {}", unit.path().display())
    } else {
        format!("{} is up to date", unit.path().display())
    });
    notes(&mut report, &root, &exe, &unit, display.is_some());
    match unit.systemctl(&["daemon-reload"]) {
        Ok(()) => start(&mut report, &unit, &root, changed)?,
        Err(why) => {
            report.systemd_error = Some(why);
            report.to_run = vec![
                format!("{} daemon-reload", unit.ctl()),
                unit.ctl_line("enable --now"),
            ];
        }
    }
    if scope == Scope::User {
        let user = systemd::login_name();
        match systemd::lingers(&user) {
            Some(true) => {}
            Some(false) => report.notes.push(format!(
                "user services stop when you log out and start at your next login; to keep \
                 acp running without a session: loginctl enable-linger {user}"
            )),
            None => report.notes.push(format!(
                "if user services stop when you log out here, `loginctl enable-linger {user}` \
                 keeps acp running without a session"
            )),
        }
    }
    report.print(cli.json)?;
    Ok(ExitCode::SUCCESS)
}

/// Enables the unit and starts it, unless another `acp run` holds the
/// root.
fn start(report: &mut Report, unit: &Unit, root: &Path, changed: bool) -> Result<()> {
    let active = unit.ask("is-active").is_ok_and(|s| s == "active");
    let failed = |verb: &str, why: String| {
        anyhow!(
            "`{}` failed: {why}. See `{}` and `{}`",
            unit.ctl_line(verb),
            unit.ctl_line("status"),
            unit.journal()
        )
    };
    match ServiceLock::holder(root) {
        Some(pid) if !active => {
            unit.systemctl(&["enable", &unit.name])
                .map_err(|why| failed("enable", why))?;
            report.done.push(format!("enabled {}", unit.name));
            report.notes.push(format!(
                "not started: acp run already runs on this root (pid {pid}). Stop it, then: {}",
                unit.ctl_line("start")
            ));
        }
        _ => {
            unit.systemctl(&["enable", "--now", &unit.name])
                .map_err(|why| failed("enable --now", why))?;
            report
                .done
                .push(format!("enabled and started {}", unit.name));
            if active && changed {
                report.notes.push(format!(
                    "it was running: `{}` puts the new unit to work",
                    unit.ctl_line("restart")
                ));
            }
            report.notes.push(format!(
                "`acp service status` says how it is; `{} -f` shows its log",
                unit.journal()
            ));
        }
    }
    Ok(())
}

/// What the person should know about the unit just written.
fn notes(report: &mut Report, root: &Path, exe: &Path, unit: &Unit, display: bool) {
    let in_build_tree = exe.components().any(|c| c.as_os_str() == "target")
        && exe
            .parent()
            .and_then(Path::file_name)
            .is_some_and(|d| d == "debug" || d == "release");
    if in_build_tree {
        report.notes.push(format!(
            "the unit runs {}, a build in a source tree: `make install` and run `acp service \
             install` again from the installed acp, or the service breaks at the next build or \
             clean",
            exe.display()
        ));
    }
    if !display {
        report.notes.push(
            "DISPLAY is not set here, so the service delivers to inboxes and tmux only: run this \
             from the desktop session to deliver into windows too"
                .into(),
        );
    }
    let mut unseen: Vec<String> = std::env::vars_os()
        .filter_map(|(key, _)| key.into_string().ok())
        .filter(|k| (k.starts_with("ACP_") || k.starts_with("DISCORD_")) && k != "ACP_ROOT")
        .collect();
    unseen.sort();
    if !unseen.is_empty() {
        report.notes.push(format!(
            "the service does not get this shell's {}: settings belong in {} (ACP_LOG and \
             ACP_LOG_FORMAT: `{}`, then under [Service] Environment=ACP_LOG=debug)",
            unseen.join(", "),
            root.join(".env").display(),
            unit.ctl_line("edit")
        ));
    }
}

/// `acp service status`: exit 0 when `acp run` runs on this root.
fn status(cli: &Cli, scope: ScopeArgs) -> Result<ExitCode> {
    let root = canonical_root(cli)?;
    let unit = Unit::locate(&root, scope)?;
    let path = unit.path();
    let installed = path.is_file();
    let (enabled, active) = (unit.ask("is-enabled"), unit.ask("is-active"));
    let pid = ServiceLock::holder(&root);
    if cli.json {
        let value = json!({
            "unit": unit.name,
            "scope": unit.scope_name(),
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
            "systemd: cannot say ({why}). Where systemd runs: {}",
            unit.ctl_line("status")
        ),
    }
    match &pid {
        Some(pid) => outln!("acp run: running on this root (pid {pid})"),
        None if installed => outln!(
            "acp run: not running on this root: `{}` (or `{}` says why it stopped)",
            unit.ctl_line("start"),
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
    let unit = Unit::locate(&root, scope)?;
    let mut report = Report::new(&unit);
    let path = unit.path();
    if !path.exists() {
        report
            .done
            .push(format!("no unit at {}: nothing to remove", path.display()));
        report.print(cli.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let stopped = unit.systemctl(&["disable", "--now", &unit.name]);
    if stopped.is_ok() {
        report
            .done
            .push(format!("stopped and disabled {}", unit.name));
    }
    fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
    report.done.push(format!("removed {}", path.display()));
    // Enabled by hand where systemctl was not at hand here: the link would
    // point at nothing now.
    let link = unit.wants_link();
    if link.symlink_metadata().is_ok_and(|m| m.is_symlink()) {
        fs::remove_file(&link).with_context(|| format!("cannot remove {}", link.display()))?;
        report.done.push(format!("removed {}", link.display()));
    }
    match stopped {
        Ok(()) => {
            if let Err(why) = unit.systemctl(&["daemon-reload"]) {
                report.notes.push(format!(
                    "`{} daemon-reload` failed ({why}): run it to forget the unit",
                    unit.ctl()
                ));
            }
        }
        Err(why) => {
            report.systemd_error = Some(why);
            report.to_run = vec![
                unit.ctl_line("stop"),
                format!("{} daemon-reload", unit.ctl()),
            ];
        }
    }
    if let Some(pid) = ServiceLock::holder(&root) {
        report.notes.push(format!(
            "acp run still runs on this root (pid {pid}): stop it with `kill {pid}` (SIGTERM)"
        ));
    }
    report.print(cli.json)?;
    Ok(ExitCode::SUCCESS)
}
