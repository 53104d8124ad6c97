//! Keeps the help and the guide true to the command line.
//!
//! - Every command's `--help` describes every argument and ends with
//!   examples, and every example parses.
//! - Every `acp ...` command line in a code block of `README.md` and
//!   `docs/*.md` parses with the same parser `acp` uses, every relative
//!   link reaches a file (and a heading, for `#anchor`s, by GitHub's
//!   rules), and every page of `docs/` is in the README's index.
//! - What docs/mcp.md quotes of the MCP server's instructions is what the
//!   server sends.
//!
//! Placeholders in the docs are real-looking values (`Agent-3`, a ULID such
//! as `01JDQ3Z5X8J6Y4F2K9M0N1P2Q3`), so each line is one a person could
//! paste.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use clap::{CommandFactory as _, Parser as _};
use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd};

use super::Cli;

/// The acp invocations on one shell line: each pipeline stage or command
/// (`|`, `&&`, `||`, `;`) whose program is acp, with its arguments (the
/// program first), after environment assignments (`ACP_AGENT=Agent-3
/// acp ...`) and a prompt (`$ `, `desk-1$ `), without redirections and
/// comments. Lines that are not shell (a config file's) yield nothing.
fn acp_invocations(line: &str) -> Result<Vec<Vec<String>>, String> {
    let Some(words) = shlex::split(line) else {
        // Unbalanced quotes: an error only where acp was meant to run.
        return if line.trim_start().starts_with("acp ") {
            Err("unbalanced quotes".into())
        } else {
            Ok(Vec::new())
        };
    };
    let mut out = Vec::new();
    for (n, stage) in words
        .split(|w| ["|", "||", "&&", ";", "&"].contains(&w.as_str()))
        .enumerate()
    {
        let mut rest = stage;
        if n == 0 && rest.first().is_some_and(|w| w.ends_with('$')) {
            rest = &rest[1..];
        }
        while rest.first().is_some_and(|w| is_assignment(w)) {
            rest = &rest[1..];
        }
        let Some(program) = rest.first() else {
            continue;
        };
        if Path::new(program).file_name().is_none_or(|f| f != "acp") {
            continue;
        }
        let mut argv = Vec::new();
        let mut words = rest.iter();
        while let Some(word) = words.next() {
            if [">", ">>", "<", "2>", "2>>", "&>"].contains(&word.as_str()) {
                words.next();
            } else if !(word.starts_with('>') || word.starts_with('<') || word.starts_with("2>")) {
                argv.push(word.clone());
            }
        }
        out.push(argv);
    }
    Ok(out)
}

/// `NAME=VALUE`, as sh reads an assignment before a command.
fn is_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(name, _)| {
        name.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Whether clap takes `argv`; the error it gives otherwise. A request for
/// help or the version counts as parsed.
fn parses(argv: &[String]) -> Result<(), String> {
    match Cli::try_parse_from(argv) {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e
            .render()
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()),
    }
}

/// Shell lines of a block of text, with their first line's number: lines
/// ending in `\` continue on the next.
fn shell_lines(text: &str, first_line: usize) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut open = false;
    for (i, line) in text.lines().enumerate() {
        let (body, continues) = match line.trim_end().strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line, false),
        };
        match out.last_mut() {
            Some((_, joined)) if open => {
                joined.push(' ');
                joined.push_str(body.trim());
            }
            _ => out.push((first_line + i, body.to_owned())),
        }
        open = continues;
    }
    out
}

/// Checks every acp invocation in `text`; failures as `WHERE:LINE: the
/// line: the error`.
fn check_lines(place: &str, text: &str, first_line: usize, failures: &mut Vec<String>) -> usize {
    let mut checked = 0;
    for (number, line) in shell_lines(text, first_line) {
        match acp_invocations(&line) {
            Err(e) => failures.push(format!("{place}:{number}: {}: {e}", line.trim())),
            Ok(invocations) => {
                for argv in invocations {
                    checked += 1;
                    if let Err(e) = parses(&argv) {
                        failures.push(format!("{place}:{number}: {}: {e}", line.trim()));
                    }
                }
            }
        }
    }
    checked
}

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every page of docs/.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![manifest_dir().join("README.md")];
    let mut pages: Vec<PathBuf> = std::fs::read_dir(manifest_dir().join("docs"))
        .expect("docs/ is readable")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    pages.sort();
    files.extend(pages);
    files
}

fn display(path: &Path) -> String {
    path.strip_prefix(manifest_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Languages of code blocks that hold no shell lines.
const NOT_SHELL: &[&str] = &[
    "toml", "json", "jsonc", "markdown", "md", "yaml", "rust", "conf",
];

/// What a markdown file holds that the checks need.
#[derive(Default)]
struct Page {
    /// Code blocks that may hold shell lines: (first line, text).
    shell_blocks: Vec<(usize, String)>,
    /// Link destinations with their line.
    links: Vec<(usize, String)>,
    /// Heading anchors, as GitHub makes them.
    anchors: BTreeSet<String>,
}

fn read_page(text: &str) -> Page {
    let mut page = Page::default();
    let mut block: Option<(usize, String)> = None;
    let mut heading: Option<String> = None;
    let mut slugs: BTreeMap<String, usize> = BTreeMap::new();
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match &kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_owned()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                if !NOT_SHELL.contains(&lang.as_str()) {
                    block = Some((0, String::new()));
                }
            }
            Event::Text(t) if block.is_some() => {
                if let Some((first, body)) = &mut block {
                    if body.is_empty() {
                        *first = line_of(text, range.start);
                    }
                    body.push_str(&t);
                }
            }
            Event::End(TagEnd::CodeBlock) => page.shell_blocks.extend(block.take()),
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                page.links
                    .push((line_of(text, range.start), dest_url.to_string()));
            }
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::Text(t) | Event::Code(t) if heading.is_some() => {
                if let Some(h) = &mut heading {
                    h.push_str(&t);
                }
            }
            Event::End(TagEnd::Heading(_)) => {
                if let Some(h) = heading.take() {
                    let slug = slug(&h);
                    let seen = slugs.entry(slug.clone()).or_insert(0);
                    page.anchors.insert(if *seen == 0 {
                        slug
                    } else {
                        format!("{slug}-{seen}")
                    });
                    *seen += 1;
                }
            }
            _ => {}
        }
    }
    page
}

/// A heading's anchor as GitHub makes it: lower case, spaces as `-`,
/// everything but letters, digits, `-` and `_` left out.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

/// The commands of the tree under `cmd`, with their path (`acp backup
/// create`), the generated `help` left out.
fn commands(cmd: &clap::Command, path: &str, out: &mut Vec<(String, clap::Command)>) {
    out.push((path.to_owned(), cmd.clone()));
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        commands(sub, &format!("{path} {}", sub.get_name()), out);
    }
}

#[test]
fn every_command_describes_its_arguments_and_shows_examples_that_parse() {
    let mut root = Cli::command();
    root.build();
    let mut all = Vec::new();
    commands(&root, "acp", &mut all);
    let mut gaps = Vec::new();
    for (path, cmd) in &all {
        if cmd.get_about().is_none() && path != "acp" {
            gaps.push(format!("{path}: no description"));
        }
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if ["help", "version"].contains(&id) {
                continue;
            }
            if arg.get_help().is_none() && arg.get_long_help().is_none() {
                gaps.push(format!("{path}: argument {id} has no help text"));
            }
        }
        let after = cmd
            .get_after_long_help()
            .or_else(|| cmd.get_after_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        let examples = after.split_once("Examples:").map_or("", |(_, e)| e);
        let place = format!("`{path} --help`");
        if check_lines(&place, examples, 1, &mut gaps) == 0 {
            gaps.push(format!(
                "{path}: no example after its help (\"Examples:\" then acp lines)"
            ));
        }
    }
    assert!(
        gaps.is_empty(),
        "--help is missing something:\n{}",
        gaps.join("\n")
    );
}

#[test]
fn every_command_line_in_the_docs_parses() {
    let mut failures = Vec::new();
    let mut checked = 0;
    for file in markdown_files() {
        let text = std::fs::read_to_string(&file).expect("a readable markdown file");
        for (first, block) in read_page(&text).shell_blocks {
            checked += check_lines(&display(&file), &block, first, &mut failures);
        }
    }
    assert!(
        checked >= 40,
        "only {checked} acp command lines found in the docs"
    );
    assert!(
        failures.is_empty(),
        "command lines in the docs that acp would refuse:\n{}",
        failures.join("\n")
    );
}

#[test]
fn every_relative_link_in_the_docs_reaches_its_file_and_heading() {
    let pages: BTreeMap<PathBuf, (String, Page)> = markdown_files()
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).expect("a readable markdown file");
            let page = read_page(&text);
            (f, (text, page))
        })
        .collect();
    let mut broken = Vec::new();
    for (file, (_, page)) in &pages {
        for (line, dest) in &page.links {
            if dest.contains("://") || dest.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = dest.split_once('#').unwrap_or((dest, ""));
            let target = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("a file's folder").join(path)
            };
            let here = format!("{}:{line}: {dest}", display(file));
            if !target.exists() {
                broken.push(format!("{here}: no file {}", display(&target)));
                continue;
            }
            if anchor.is_empty() {
                continue;
            }
            let anchors = match pages.get(&target) {
                Some((_, p)) => p.anchors.clone(),
                None => match std::fs::read_to_string(&target) {
                    Ok(text) if target.extension().is_some_and(|e| e == "md") => {
                        read_page(&text).anchors
                    }
                    _ => {
                        broken.push(format!(
                            "{here}: an anchor into a file that has no headings"
                        ));
                        continue;
                    }
                },
            };
            if !anchors.contains(anchor) {
                broken.push(format!(
                    "{here}: no heading #{anchor} in {}",
                    display(&target)
                ));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn every_page_of_the_guide_is_in_the_readme_index() {
    let readme = std::fs::read_to_string(manifest_dir().join("README.md")).expect("README.md");
    let linked: BTreeSet<String> = read_page(&readme)
        .links
        .into_iter()
        .map(|(_, dest)| dest.split('#').next().unwrap_or_default().to_owned())
        .collect();
    let missing: Vec<String> = markdown_files()
        .iter()
        .skip(1)
        .map(|p| display(p))
        .filter(|p| !linked.contains(p))
        .collect();
    assert!(
        missing.is_empty(),
        "pages of docs/ the README does not list: {missing:?}"
    );
}

#[test]
fn the_mcp_page_quotes_what_the_server_tells_agents() {
    let words = |text: &str| text.split_whitespace().collect::<Vec<_>>().join(" ");
    let page = std::fs::read_to_string(manifest_dir().join("docs/mcp.md")).expect("docs/mcp.md");
    // Quoted as a block quote: the text without its `>` markers.
    let page: Vec<&str> = page
        .lines()
        .map(|l| l.trim_start().trim_start_matches('>'))
        .collect();
    let page = page.join("\n");
    let sent = words(&acp::mcp::instructions("Agent-3"));
    assert!(
        words(&page).contains(&sent),
        "docs/mcp.md should quote, word for word, what `acp mcp --agent Agent-3` sends:\n{sent}"
    );
}

#[test]
fn command_lines_are_read_as_a_shell_reads_them() {
    let argvs = |line: &str| acp_invocations(line).unwrap();
    assert_eq!(
        argvs("ACP_AGENT=Agent-3 acp inbox ack 01JDQ3Z5X8J6Y4F2K9M0N1P2Q3  # done"),
        [["acp", "inbox", "ack", "01JDQ3Z5X8J6Y4F2K9M0N1P2Q3"]]
    );
    assert_eq!(
        argvs("desk-1$ acp --json backup list | head -1 && acp status > out.txt"),
        [
            vec!["acp", "--json", "backup", "list"],
            vec!["acp", "status"]
        ]
    );
    assert_eq!(
        argvs("git log -3 | target/release/acp send --to Agent-2 -"),
        [["target/release/acp", "send", "--to", "Agent-2", "-"]]
    );
    assert!(argvs("make run    # acp run on ./demo").is_empty());
    assert!(argvs("command = \"acp hook\"").is_empty());
    assert!(acp_invocations("acp send --to Agent-2 \"unclosed").is_err());
    let lines = shell_lines(
        "acp send --to Agent-2 \\\n  --wait \"hi\"\nacp status\n",
        10,
    );
    assert_eq!(
        lines,
        [
            (10, "acp send --to Agent-2  --wait \"hi\"".to_owned()),
            (12, "acp status".to_owned())
        ]
    );
    // The checks can fail: a wrong flag, a bad id, a missing argument.
    for wrong in [
        "acp send --to Agent-2 --priority high \"x\"",
        "acp inbox read ID",
        "acp send \"no recipient\"",
        "acp backup list --progress json",
    ] {
        let mut failures = Vec::new();
        check_lines("test", wrong, 1, &mut failures);
        assert_eq!(failures.len(), 1, "{wrong}: {failures:?}");
    }
    assert_eq!(
        slug("HTTP: status page, API, metrics, webhooks"),
        "http-status-page-api-metrics-webhooks"
    );
    assert_eq!(slug("`acp run` as a service"), "acp-run-as-a-service");
    let page =
        read_page("# A\n\n## A\n\n[x](#a-1)\n\n```sh\nacp status\n```\n\n```toml\nacp = 1\n```\n");
    assert!(page.anchors.contains("a") && page.anchors.contains("a-1"));
    assert_eq!(page.links, [(5, "#a-1".to_owned())]);
    assert_eq!(page.shell_blocks, [(8, "acp status\n".to_owned())]);
}
