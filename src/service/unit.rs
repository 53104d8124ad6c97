//! The systemd unit that runs `acp run` on one root: its name and its text,
//! as pure functions (`acp service install` writes what [`render`] returns).
//!
//! Each value goes into the unit under the rules of its setting
//! (systemd.syntax, systemd.service, systemd.exec): `ExecStart=` words are
//! double-quoted with `\\` and `\"` escaped, `%` doubled (specifiers) and `$`
//! doubled (variable expansion); `Environment=` assignments are quoted the
//! same way but expand no variables; `WorkingDirectory=` takes the rest of
//! the line as it is, so only `%` can be escaped there. A value no setting
//! can carry (a control character such as a newline, a backslash or a
//! trailing space in the root, text that is not UTF-8) is refused with what
//! to do, never written in a form systemd would read differently.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

/// Which service manager runs the unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The user's own manager (`systemctl --user`), started with their
    /// session, so the service shares the display the agents' windows are
    /// on.
    User,
    /// The system manager, running the service as `User=`.
    System,
}

impl Scope {
    /// The target the unit is enabled under.
    #[must_use]
    pub fn wanted_by(self) -> &'static str {
        match self {
            Self::User => "default.target",
            Self::System => "multi-user.target",
        }
    }

    /// `systemctl`'s flag for this manager (`--user`, or none).
    #[must_use]
    pub fn flag(self) -> Option<&'static str> {
        match self {
            Self::User => Some("--user"),
            Self::System => None,
        }
    }
}

/// What the unit says.
#[derive(Debug, Clone)]
pub struct UnitSpec<'a> {
    pub scope: Scope,
    /// The `acp` binary, absolute.
    pub exe: &'a Path,
    /// The acp root, absolute.
    pub root: &'a Path,
    /// `DISPLAY` for keyboard-and-mouse delivery, when there is one.
    pub display: Option<&'a str>,
    /// `XAUTHORITY`, where the display's cookie is when it is not in
    /// `~/.Xauthority`.
    pub xauthority: Option<&'a str>,
    /// The account a system unit runs as (`User=`; root without one);
    /// ignored for a user unit.
    pub user: Option<&'a str>,
    /// How long `acp run` may take to stop once sent SIGTERM.
    pub stop_timeout: Duration,
}

/// A value a unit file cannot carry.
#[derive(Debug, thiserror::Error)]
#[error("{what} {value} cannot go into a systemd unit: {why}")]
pub struct UnitError {
    what: &'static str,
    value: String,
    why: &'static str,
}

/// How long, at most, the delivery in flight can take to finish once
/// `acp run` is told to stop: waiting for the keyboard-and-mouse lock
/// (`gui.lock_timeout_ms`), then the longest pause before the submit key
/// an agent may set (60 s); typing, a Discord post and closing connections
/// fit in what that leaves.
#[must_use]
pub fn stop_timeout(gui_lock_timeout: Duration) -> Duration {
    gui_lock_timeout + Duration::from_secs(60)
}

/// The unit's file name for a root: `acp-` and the root's last component
/// (letters, digits, `-`, `_` and `.`; anything else becomes `_`), then
/// eight hex digits of the root's path hash, so two roots with the same
/// name get two units.
#[must_use]
pub fn unit_name(root: &Path) -> String {
    let base: String = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    let base = if base.is_empty() { "root".into() } else { base };
    let hash = blake3::hash(root.as_os_str().as_encoded_bytes()).to_hex();
    format!("acp-{base}-{}.service", &hash[..8])
}

/// The unit's text.
///
/// # Errors
/// [`UnitError`] when a path or value cannot be written so that systemd
/// reads it back as it is.
pub fn render(spec: &UnitSpec<'_>) -> Result<String, UnitError> {
    let root = path_setting("the acp root", spec.root)?;
    let exe = utf8("the acp binary", spec.exe)?;
    if !spec.exe.is_absolute() {
        return Err(UnitError {
            what: "the acp binary",
            value: format!("{exe:?}"),
            why: "it is not an absolute path: run acp by its full path",
        });
    }
    plain("the acp binary", exe)?;
    let mut env = Vec::new();
    for (key, value) in [("DISPLAY", spec.display), ("XAUTHORITY", spec.xauthority)] {
        if let Some(value) = value.filter(|v| !v.is_empty()) {
            plain(key, value)?;
            env.push(quoted(&format!("{key}={value}"), false));
        }
    }
    // A user unit runs as its user; a system unit without one as root.
    let user = match (spec.scope, spec.user) {
        (Scope::System, Some(user)) => Some(user_name(user)?),
        _ => None,
    };
    let exec = [exe, "--root", root, "run"]
        .iter()
        .map(|w| quoted(w, true))
        .collect::<Vec<_>>()
        .join(" ");
    let mut u = String::new();
    let scope = spec.scope;
    let ctl = match scope {
        Scope::User => "systemctl --user",
        Scope::System => "systemctl",
    };
    let _ = writeln!(
        u,
        "# Written by `acp service install` for the acp root {root}.\n\
         # Run it again after moving the root or the acp binary; `acp service uninstall`\n\
         # removes it.\n\
         [Unit]\n\
         Description=acp (Agent Cellphone) on {}",
        specifiers(root)
    );
    if scope == Scope::System {
        u.push_str("Wants=network-online.target\nAfter=network-online.target\n");
    }
    u.push_str("\n[Service]\nType=exec\n");
    if let Some(user) = user {
        let _ = writeln!(u, "User={user}");
    }
    let _ = writeln!(u, "WorkingDirectory={}", specifiers(root));
    let _ = writeln!(u, "ExecStart={exec}");
    // acp run reloads its config on SIGHUP (it also watches the files).
    u.push_str("ExecReload=/bin/kill -HUP $MAINPID\n");
    u.push_str(
        "# acp reads the root's .env itself: its secrets stay out of the environment\n\
         # that tmux and the other programs acp starts inherit.\n",
    );
    for assignment in env {
        let _ = writeln!(u, "Environment={assignment}");
    }
    let name = unit_name(spec.root);
    let stop = spec.stop_timeout.as_secs() + u64::from(spec.stop_timeout.subsec_nanos() > 0);
    let _ = write!(
        u,
        "Restart=on-failure\n\
         RestartSec=5\n\
         # Exit status 2 is a configuration error, which a restart does not fix:\n\
         # fix it (`acp doctor` says what), then `{ctl} restart {name}`.\n\
         RestartPreventExitStatus=2\n\
         # On SIGTERM acp stops taking work and finishes the delivery in flight\n\
         # (up to gui.lock_timeout_ms waiting for the keyboard, then at most a minute\n\
         # of pause before the submit key), puts the rest back in the queue and\n\
         # exits 0. Only acp gets the signal: a tmux command it runs finishes.\n\
         KillSignal=SIGTERM\n\
         KillMode=mixed\n\
         TimeoutStopSec={stop}\n\
         # Hardening that keeps keyboard-and-mouse and tmux delivery working: no\n\
         # PrivateTmp= (the X11 and tmux sockets are in /tmp), no ProtectHome= (roots\n\
         # and agents' workspaces usually are in /home).\n\
         NoNewPrivileges=yes\n\
         RestrictSUIDSGID=yes\n\
         LockPersonality=yes\n\
         RestrictRealtime=yes\n\
         UMask=0077\n"
    );
    if scope == Scope::System {
        u.push_str(
            "ProtectSystem=full\n\
             ProtectKernelTunables=yes\n\
             ProtectKernelModules=yes\n\
             ProtectControlGroups=yes\n",
        );
    }
    let _ = write!(u, "\n[Install]\nWantedBy={}\n", scope.wanted_by());
    Ok(u)
}

/// `path` as UTF-8, which unit files must be.
fn utf8<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, UnitError> {
    path.to_str().ok_or_else(|| UnitError {
        what,
        value: format!("{}", path.display()),
        why: "it is not UTF-8 text, which unit files must be: rename it",
    })
}

/// Refuses control characters (a newline would end the setting; no
/// setting's escapes cover them all).
fn plain<'a>(what: &'static str, value: &'a str) -> Result<&'a str, UnitError> {
    if value.chars().any(char::is_control) {
        return Err(UnitError {
            what,
            value: format!("{value:?}"),
            why: "it holds a control character (a newline, a tab...), which a unit file \
                  cannot carry: use a path without one",
        });
    }
    Ok(value)
}

/// A path for a setting that takes the rest of its line as it is
/// (`WorkingDirectory=`): absolute, and nothing systemd would read
/// differently.
fn path_setting<'a>(what: &'static str, path: &'a Path) -> Result<&'a str, UnitError> {
    let text = plain(what, utf8(what, path)?)?;
    let refuse = |why| UnitError {
        what,
        value: format!("{text:?}"),
        why,
    };
    if !path.is_absolute() {
        return Err(refuse("it is not an absolute path"));
    }
    if text.contains('\\') {
        return Err(refuse(
            "WorkingDirectory= has no way to write a backslash that every systemd reads the \
             same (and one at the end of a line joins the next): move the root to a path \
             without one",
        ));
    }
    if text.ends_with(char::is_whitespace) {
        return Err(refuse(
            "systemd strips the space at the end of a setting: move the root to a path that \
             does not end with one",
        ));
    }
    Ok(text)
}

/// A user name for `User=`.
fn user_name(user: &str) -> Result<String, UnitError> {
    if user.is_empty() || user.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(UnitError {
            what: "the user name",
            value: format!("{user:?}"),
            why: "User= takes one word: run the service as an account with a plain name",
        });
    }
    Ok(specifiers(user))
}

/// `%` doubled: every setting here expands `%` specifiers.
fn specifiers(text: &str) -> String {
    text.replace('%', "%%")
}

/// One double-quoted word for `ExecStart=` (`exec`: `$` doubled too, which
/// the command line expands) or `Environment=`.
fn quoted(text: &str, exec: bool) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' if exec => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec<'a>(exe: &'a Path, root: &'a Path) -> UnitSpec<'a> {
        UnitSpec {
            scope: Scope::User,
            exe,
            root,
            display: Some(":0"),
            xauthority: None,
            user: None,
            stop_timeout: stop_timeout(Duration::from_secs(10)),
        }
    }

    fn setting<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .collect()
    }

    #[test]
    fn a_user_unit_runs_acp_on_its_root_with_the_display() {
        let unit = render(&spec(
            Path::new("/usr/local/bin/acp"),
            Path::new("/home/me/swarm"),
        ))
        .unwrap();
        assert_eq!(
            setting(&unit, "ExecStart"),
            [r#""/usr/local/bin/acp" "--root" "/home/me/swarm" "run""#]
        );
        assert_eq!(setting(&unit, "WorkingDirectory"), ["/home/me/swarm"]);
        assert_eq!(setting(&unit, "Environment"), [r#""DISPLAY=:0""#]);
        assert_eq!(setting(&unit, "Restart"), ["on-failure"]);
        assert_eq!(setting(&unit, "ExecReload"), ["/bin/kill -HUP $MAINPID"]);
        assert_eq!(setting(&unit, "KillSignal"), ["SIGTERM"]);
        assert_eq!(setting(&unit, "TimeoutStopSec"), ["70"]);
        assert_eq!(setting(&unit, "WantedBy"), ["default.target"]);
        assert!(setting(&unit, "User").is_empty());
        assert!(setting(&unit, "EnvironmentFile").is_empty());
        // What would break the display or tmux sockets, or the root.
        for key in ["PrivateTmp", "ProtectHome", "ProtectSystem"] {
            assert!(setting(&unit, key).is_empty(), "{key} in\n{unit}");
        }
    }

    #[test]
    fn a_system_unit_names_its_user_and_waits_for_the_network() {
        let mut s = spec(Path::new("/usr/bin/acp"), Path::new("/srv/acp"));
        s.scope = Scope::System;
        s.user = Some("dev");
        let unit = render(&s).unwrap();
        assert_eq!(setting(&unit, "User"), ["dev"]);
        assert_eq!(setting(&unit, "WantedBy"), ["multi-user.target"]);
        assert_eq!(setting(&unit, "After"), ["network-online.target"]);
        assert_eq!(setting(&unit, "ProtectSystem"), ["full"]);
        s.user = Some("two words");
        assert!(render(&s).is_err());
    }

    #[test]
    fn paths_are_quoted_and_escaped_per_setting() {
        let exe = Path::new(r#"/opt/my "tools"\bin/a$b%c/acp"#);
        let root = Path::new("/home/me/my agents 100%");
        let mut s = spec(exe, root);
        s.display = Some("host:1 \"x\"");
        let unit = render(&s).unwrap();
        assert_eq!(
            setting(&unit, "ExecStart"),
            [r#""/opt/my \"tools\"\\bin/a$$b%%c/acp" "--root" "/home/me/my agents 100%%" "run""#]
        );
        assert_eq!(
            setting(&unit, "WorkingDirectory"),
            ["/home/me/my agents 100%%"]
        );
        assert_eq!(
            setting(&unit, "Description"),
            ["acp (Agent Cellphone) on /home/me/my agents 100%%"]
        );
        assert_eq!(setting(&unit, "Environment"), [r#""DISPLAY=host:1 \"x\"""#]);
    }

    #[test]
    fn paths_systemd_cannot_express_are_refused_with_what_to_do() {
        let exe = Path::new("/usr/bin/acp");
        for (root, says) in [
            ("/home/me/new\nline", "control character"),
            ("/home/me/tab\there", "control character"),
            ("/home/me/back\\slash", "backslash"),
            ("/home/me/trailing ", "space at the end"),
            ("relative/root", "absolute"),
        ] {
            let err = render(&spec(exe, Path::new(root))).unwrap_err().to_string();
            assert!(err.contains(says), "{root:?}: {err}");
            assert!(err.starts_with("the acp root"), "{err}");
        }
        let err = render(&spec(Path::new("acp"), Path::new("/srv/acp")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("absolute"), "{err}");
        let mut s = spec(exe, Path::new("/srv/acp"));
        s.display = Some(":0\nExecStartPre=/bin/evil");
        assert!(render(&s).unwrap_err().to_string().contains("DISPLAY"));
        #[cfg(unix)]
        {
            use std::os::unix::ffi::OsStrExt as _;
            let bad = std::ffi::OsStr::from_bytes(b"/srv/\xff");
            let err = render(&spec(exe, Path::new(bad))).unwrap_err().to_string();
            assert!(err.contains("UTF-8"), "{err}");
        }
    }

    #[test]
    fn the_name_says_which_root_and_tells_same_named_roots_apart() {
        let a = unit_name(Path::new("/home/me/swarm"));
        let b = unit_name(Path::new("/srv/swarm"));
        assert!(
            a.starts_with("acp-swarm-") && a.ends_with(".service"),
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(a, unit_name(Path::new("/home/me/swarm")));
        let odd = unit_name(Path::new("/home/me/my agents (new)"));
        assert!(odd.starts_with("acp-my_agents__new_-"), "{odd}");
        assert!(unit_name(Path::new("/")).starts_with("acp-root-"));
    }

    #[test]
    fn the_stop_timeout_covers_the_keyboard_lock_and_the_longest_pause() {
        assert_eq!(
            stop_timeout(Duration::from_secs(10)),
            Duration::from_secs(70)
        );
        let mut s = spec(Path::new("/usr/bin/acp"), Path::new("/srv/acp"));
        s.stop_timeout = Duration::from_millis(70_500);
        assert_eq!(setting(&render(&s).unwrap(), "TimeoutStopSec"), ["71"]);
    }
}
