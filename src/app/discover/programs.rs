//! Which running program is a terminal coding agent: by the process's
//! name (`comm`), its command line's program (`argv[0]`), its executable
//! (Claude Code's native install), or the script an interpreter runs
//! (`node .../@anthropic-ai/claude-code/cli.js`, `python3 .../bin/aider`).
//! A shell is never an agent.

use crate::config::ProgramPattern;
use crate::model::tmux::is_shell;

/// A terminal agent acp knows.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Known {
    /// Its program's name: what acp calls it in ids and guards.
    pub program: &'static str,
    /// What people call it.
    pub title: &'static str,
    /// The pane profile that reads its screen.
    pub profile: &'static str,
    /// Parts of the paths of its npm packages' scripts.
    packages: &'static [&'static str],
}

/// The terminal agents acp knows (the programs of
/// [`AGENT_PROGRAMS`](crate::model::tmux::AGENT_PROGRAMS)).
const KNOWN: &[Known] = &[
    Known {
        program: "claude",
        title: "Claude Code",
        profile: "claude",
        packages: &["/@anthropic-ai/claude-code/"],
    },
    Known {
        program: "codex",
        title: "Codex CLI",
        profile: "codex",
        packages: &["/@openai/codex/"],
    },
    Known {
        program: "gemini",
        title: "Gemini CLI",
        profile: "gemini",
        packages: &["/@google/gemini-cli/"],
    },
    Known {
        program: "aider",
        title: "aider",
        profile: "aider",
        packages: &[],
    },
    Known {
        program: "opencode",
        title: "OpenCode",
        profile: "generic",
        packages: &["/opencode-ai/"],
    },
    Known {
        program: "cursor-agent",
        title: "Cursor CLI",
        profile: "generic",
        packages: &[],
    },
    Known {
        program: "goose",
        title: "Goose",
        profile: "generic",
        packages: &[],
    },
    Known {
        program: "amp",
        title: "Amp",
        profile: "generic",
        packages: &["/@sourcegraph/amp/"],
    },
    Known {
        program: "qwen",
        title: "Qwen Code",
        profile: "generic",
        packages: &["/@qwen-code/qwen-code/"],
    },
    Known {
        program: "crush",
        title: "Crush",
        profile: "generic",
        packages: &[],
    },
];

/// Programs that run a script named by their arguments.
const INTERPRETERS: &[&str] = &["node", "nodejs", "bun", "deno", "python", "python3"];

/// Interpreter options whose value is the next argument (not the script).
const TAKES_VALUE: &[&str] = &[
    "-r",
    "--require",
    "--import",
    "--loader",
    "--experimental-loader",
    "-C",
    "--conditions",
    "--title",
    "-W",
    "-X",
];

/// What a process looks like from outside.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    /// `/proc/PID/comm`: the executed file's name (15 bytes at most), or
    /// what the program set.
    pub comm: String,
    /// `/proc/PID/cmdline`.
    pub argv: Vec<String>,
    /// `/proc/PID/exe`, when readable.
    pub exe: Option<String>,
}

/// An agent program seen in a process.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Seen {
    /// The program's name.
    pub program: String,
    /// The agent acp knows it for, or none (a `[discover] programs`
    /// entry).
    pub known: Option<&'static Known>,
    /// How it was told: "process name claude".
    pub how: String,
}

/// A path's last part.
fn base(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The script an interpreter's arguments name, or `python -m MODULE`'s
/// module; none for code given inline (`-e`, `-c`).
fn script(command_line: &[String]) -> Option<&str> {
    let mut rest = command_line.iter().skip(1);
    while let Some(arg) = rest.next() {
        match arg.as_str() {
            "--" => return rest.next().map(String::as_str),
            "-e" | "--eval" | "-p" | "--print" | "-c" => return None,
            "-m" => return rest.next().map(|m| m.split('.').next().unwrap_or(m)),
            a if TAKES_VALUE.contains(&a) => {
                rest.next();
            }
            a if a.starts_with('-') => {}
            a => return Some(a),
        }
    }
    None
}

/// The name of an interpreter (`python3.12` is `python3`).
fn is_interpreter(name: &str) -> bool {
    let name = name.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
    INTERPRETERS.contains(&name)
}

/// The script's name without its extension (`cli.js` is `cli`).
fn script_name(path: &str) -> &str {
    let name = base(path);
    [".js", ".mjs", ".cjs", ".ts", ".py"]
        .iter()
        .find_map(|ext| name.strip_suffix(ext))
        .unwrap_or(name)
}

fn known(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.program == name)
}

/// The agent program `facts` shows, if any: a known one first, then one
/// of `extra`.
pub(super) fn identify(facts: &Facts, extra: &[ProgramPattern]) -> Option<Seen> {
    let argv0 = facts
        .argv
        .first()
        .map_or("", |a| base(a.trim_start_matches('-')));
    let script = if is_interpreter(&facts.comm) || is_interpreter(argv0) {
        script(&facts.argv)
    } else {
        None
    };
    let mut names = vec![(facts.comm.as_str(), "process name"), (argv0, "command")];
    if let Some(s) = script {
        names.push((script_name(s), "script"));
    }
    names.retain(|(name, _)| !name.is_empty() && !is_shell(name));
    let seen = |program: &str, known, how: String| Seen {
        program: program.to_owned(),
        known,
        how,
    };
    for (name, what) in &names {
        if let Some(k) = known(name) {
            let shown = if *what == "script" {
                script.unwrap_or(name)
            } else {
                name
            };
            return Some(seen(k.program, Some(k), format!("{what} {shown}")));
        }
    }
    // Claude Code's native install: ~/.local/share/claude/versions/X.Y.Z.
    if let Some(exe) = &facts.exe
        && let Some((dir, version)) = exe.rsplit_once('/')
        && dir.ends_with("/claude/versions")
        && version.split('.').count() == 3
        && version.split('.').all(|p| p.parse::<u32>().is_ok())
    {
        return Some(seen("claude", known("claude"), format!("executable {exe}")));
    }
    if let Some(s) = script
        && let Some(k) = KNOWN
            .iter()
            .find(|k| k.packages.iter().any(|p| s.contains(p)))
    {
        return Some(seen(k.program, Some(k), format!("script {s}")));
    }
    names.iter().find_map(|(name, what)| {
        let pattern = extra.iter().find(|p| p.is_match(name))?;
        Some(seen(
            name,
            None,
            format!("{what} {name} ([discover] programs {:?})", pattern.as_str()),
        ))
    })
}

/// The guard for a pane where `program` was seen and tmux shows
/// `pane_command`: both names, a version number (Claude Code's native
/// install shows its version) as any version.
pub(super) fn guard(program: &str, pane_command: &str) -> String {
    let program = regex::escape(program);
    let is_version = pane_command.split('.').count() == 3
        && pane_command.split('.').all(|p| p.parse::<u32>().is_ok());
    let shown = if is_version {
        r"\d+\.\d+\.\d+".to_owned()
    } else {
        regex::escape(pane_command)
    };
    if shown.is_empty() || shown == program {
        format!("^{program}$")
    } else {
        format!("^({program}|{shown})$")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(comm: &str, argv: &[&str], exe: Option<&str>) -> Facts {
        Facts {
            comm: comm.into(),
            argv: argv.iter().map(|a| (*a).to_owned()).collect(),
            exe: exe.map(str::to_owned),
        }
    }

    fn program(f: &Facts) -> Option<String> {
        identify(f, &[]).map(|s| s.program)
    }

    #[test]
    fn each_agent_is_known_however_it_was_started() {
        let cases = [
            // npm Claude Code sets its process title.
            (
                facts("claude", &["claude"], Some("/usr/bin/node")),
                "claude",
            ),
            // ... or not: node and the package's script.
            (
                facts(
                    "node",
                    &[
                        "node",
                        "--max-old-space-size=4096",
                        "/usr/lib/node_modules/@anthropic-ai/claude-code/cli.js",
                        "--resume",
                    ],
                    None,
                ),
                "claude",
            ),
            // The native install shows its version as its name.
            (
                facts(
                    "2.0.76",
                    &["/home/me/.local/bin/claude"],
                    Some("/home/me/.local/share/claude/versions/2.0.76"),
                ),
                "claude",
            ),
            (
                facts(
                    "MainThread",
                    &["2.0.76"],
                    Some("/home/me/.local/share/claude/versions/2.0.76"),
                ),
                "claude",
            ),
            // Codex: the npm wrapper and the Rust binary it starts.
            (
                facts(
                    "node",
                    &["node", "/usr/lib/node_modules/@openai/codex/bin/codex.js"],
                    None,
                ),
                "codex",
            ),
            (
                facts(
                    "codex",
                    &[
                        "/usr/lib/node_modules/@openai/codex-linux-x64/vendor/x86_64-unknown-linux-musl/codex/codex",
                    ],
                    None,
                ),
                "codex",
            ),
            (
                facts(
                    "node",
                    &[
                        "/usr/bin/node",
                        "-r",
                        "/tmp/hook.js",
                        "/usr/lib/node_modules/@google/gemini-cli/dist/index.js",
                    ],
                    None,
                ),
                "gemini",
            ),
            // aider: a Python entry point with its interpreter as argv[0].
            (
                facts(
                    "aider",
                    &["/home/me/.venv/bin/python3", "/home/me/.venv/bin/aider"],
                    None,
                ),
                "aider",
            ),
            (
                facts("python3.12", &["python3.12", "-m", "aider.main"], None),
                "aider",
            ),
            (facts("opencode", &["opencode"], None), "opencode"),
        ];
        for (f, want) in cases {
            assert_eq!(program(&f).as_deref(), Some(want), "{f:?}");
        }
    }

    #[test]
    fn shells_interpreters_and_lookalikes_are_not_agents() {
        for f in [
            facts("bash", &["-bash"], None),
            facts("zsh", &["/bin/zsh"], None),
            // A script named after no agent, inline code, a bare node.
            facts("node", &["node", "/srv/app/server.js"], None),
            facts("node", &["node", "-e", "require('claude')"], None),
            facts("node", &["node"], None),
            facts("python3", &["python3"], None),
            // A word in the arguments is not the program.
            facts("vim", &["vim", "claude.md"], None),
            facts("grep", &["grep", "-r", "codex", "."], None),
            // A version-named executable elsewhere.
            facts("1.2.3", &["/opt/tool/1.2.3"], Some("/opt/tool/1.2.3")),
        ] {
            assert_eq!(program(&f), None, "{f:?}");
        }
        // A shell running a script is the shell, whatever the script.
        let f = facts("sh", &["sh", "/usr/local/bin/claude-wrapper"], None);
        assert_eq!(program(&f), None);
    }

    #[test]
    fn configured_programs_are_found_by_their_whole_name() {
        let text = "[discover]\nprograms = [\"my-agent\", \"llm-.*\"]\n";
        let config = crate::config::Config::from_toml(
            std::path::Path::new("/r"),
            text,
            &crate::config::Env::new(),
        )
        .unwrap();
        let extra = &config.discover.programs;
        let seen = identify(&facts("my-agent", &["my-agent"], None), extra).unwrap();
        assert_eq!(seen.program, "my-agent");
        assert!(seen.known.is_none());
        assert!(seen.how.contains("my-agent"), "{}", seen.how);
        let seen = identify(
            &facts("python3", &["/usr/bin/python3", "/opt/llm-chat.py"], None),
            extra,
        )
        .unwrap();
        assert_eq!(seen.program, "llm-chat");
        assert_eq!(
            identify(&facts("my-agent2", &["my-agent2"], None), extra),
            None
        );
    }

    #[test]
    fn the_guard_names_the_program_and_what_tmux_shows() {
        assert_eq!(guard("claude", "claude"), "^claude$");
        assert_eq!(guard("claude", "node"), "^(claude|node)$");
        assert_eq!(guard("claude", "2.0.76"), r"^(claude|\d+\.\d+\.\d+)$");
        assert_eq!(guard("aider", "python3"), "^(aider|python3)$");
        assert_eq!(guard("cursor-agent", "a.b"), r"^(cursor\-agent|a\.b)$");
        let g = regex::Regex::new(&guard("claude", "2.0.76")).unwrap();
        assert!(g.is_match("2.1.3") && g.is_match("claude") && !g.is_match("bash"));
    }
}
