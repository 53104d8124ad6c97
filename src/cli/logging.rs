//! The log: on stderr, or appended to `--log-file`; text, or one JSON
//! object per line with `ACP_LOG_FORMAT=json`; filtered by `ACP_LOG` (or
//! `-v`), with two guards no setting lifts.
//!
//! Colours only on a terminal. When stderr is the journal (systemd sets
//! `JOURNAL_STREAM` to its device and inode), lines carry no time of
//! their own (the journal stamps each) and start with their syslog
//! priority (`<3>` error ... `<7>` debug), so `journalctl -p warning`
//! works.
//!
//! - The HTTP, TLS, gateway, NATS and MCP crates under acp are capped
//!   ([`CAPS`]): serenity's request spans carry each request's URL (a
//!   webhook's or an interaction's token in its path) and its body as a
//!   byte array, and the others' debug and trace output is bodies and
//!   frames. acp's own trace level says what it sends, as text.
//! - Every line passes through a [`Redactor`] before it is written: the
//!   secrets the environment holds (known once `.env` is read) and every
//!   secret shape (a token in a Discord URL, credentials in a URL) are
//!   replaced by `[redacted]`. A JSON line is redacted value by value,
//!   so a secret JSON would escape is found too.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use tracing::level_filters::LevelFilter;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{Layer, Registry};

use acp::app::{Env, Redactor};

/// The most each crate under acp may log, whatever `ACP_LOG` asks.
const CAPS: &[(&str, LevelFilter)] = &[
    ("serenity", LevelFilter::WARN),
    ("poise", LevelFilter::WARN),
    ("reqwest", LevelFilter::WARN),
    ("hyper", LevelFilter::WARN),
    ("hyper_util", LevelFilter::WARN),
    ("h2", LevelFilter::WARN),
    ("rustls", LevelFilter::WARN),
    ("tungstenite", LevelFilter::WARN),
    ("tokio_tungstenite", LevelFilter::WARN),
    ("async_nats", LevelFilter::INFO),
    ("rmcp", LevelFilter::INFO),
];

/// The secrets to keep out of the log; empty until the environment is
/// read.
static SECRETS: RwLock<Option<Arc<Redactor>>> = RwLock::new(None);

/// Keeps the secrets `env` holds out of every later log line.
pub(crate) fn hide(env: &Env) {
    let redactor = Arc::new(Redactor::from_env(env));
    if let Ok(mut secrets) = SECRETS.write() {
        *secrets = Some(redactor);
    }
}

/// How each line is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Text,
    Json,
}

impl Format {
    /// `ACP_LOG_FORMAT`: `text` (the default) or `json`.
    fn from_env() -> Result<Self, String> {
        match std::env::var("ACP_LOG_FORMAT") {
            Err(std::env::VarError::NotPresent) => parse_format(None),
            Ok(v) => parse_format(Some(&v)),
            Err(std::env::VarError::NotUnicode(_)) => {
                Err("ACP_LOG_FORMAT is not text: use text or json".to_owned())
            }
        }
    }
}

/// A log format's name (none or empty: text).
fn parse_format(value: Option<&str>) -> Result<Format, String> {
    match value {
        None | Some("") => Ok(Format::Text),
        Some(v) if v.eq_ignore_ascii_case("text") => Ok(Format::Text),
        Some(v) if v.eq_ignore_ascii_case("json") => Ok(Format::Json),
        Some(v) => Err(format!(
            "ACP_LOG_FORMAT={v:?} is not a log format: use text or json"
        )),
    }
}

/// Where lines go.
#[derive(Debug, Clone)]
enum Sink {
    /// stderr; `journal` when it is systemd's journal.
    Stderr { journal: bool },
    /// Appended to a file, opened for each line so that a log rotated
    /// away (renamed or removed) is followed by a new file.
    File(PathBuf),
}

/// Whether stderr is the journal: `JOURNAL_STREAM` names its device and
/// inode (a variable alone could be inherited by a child whose stderr
/// went elsewhere).
fn stderr_is_journal() -> bool {
    let Some((dev, ino)) = std::env::var("JOURNAL_STREAM")
        .ok()
        .and_then(|v| v.split_once(':').map(|(d, i)| (d.to_owned(), i.to_owned())))
    else {
        return false;
    };
    rustix::fs::fstat(std::io::stderr()).is_ok_and(|st| {
        dev.parse::<u64>().ok() == Some(st.st_dev) && ino.parse::<u64>().ok() == Some(st.st_ino)
    })
}

/// Opens the log file for appending, created for its owner only.
fn open_log(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt as _;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Writes one log line, redacted, to its sink when dropped.
struct Line {
    buf: Vec<u8>,
    sink: Arc<Sink>,
    format: Format,
    /// The syslog priority prefix, for the journal.
    priority: Option<&'static str>,
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.buf);
        let redactor = SECRETS
            .read()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_default();
        let text = match self.format {
            Format::Text => redactor.redact(&text).into_owned(),
            Format::Json => redact_json(&redactor, &text),
        };
        let text = match self.priority {
            // Every line of a message that holds newlines keeps its level;
            // the level's padding goes (the prefix says it).
            Some(prefix) => {
                let mut out = String::with_capacity(text.len() + 8);
                for (i, line) in text.lines().enumerate() {
                    out.push_str(prefix);
                    out.push_str(if i == 0 { line.trim_start() } else { line });
                    out.push('\n');
                }
                out
            }
            None => text,
        };
        match &*self.sink {
            Sink::Stderr { .. } => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
            }
            Sink::File(path) => {
                // One write of the whole line: lines of several processes
                // appending to one file do not interleave.
                if open_log(path)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .is_err()
                {
                    let _ = std::io::stderr().lock().write_all(text.as_bytes());
                }
            }
        }
    }
}

/// A JSON line with every string in it redacted; the line redacted as
/// text if it is not JSON.
fn redact_json(redactor: &Redactor, line: &str) -> String {
    fn walk(value: &mut serde_json::Value, redactor: &Redactor) {
        match value {
            serde_json::Value::String(s) => {
                if let std::borrow::Cow::Owned(clean) = redactor.redact(s) {
                    *s = clean;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| walk(v, redactor)),
            serde_json::Value::Object(map) => map.values_mut().for_each(|v| walk(v, redactor)),
            _ => {}
        }
    }
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(mut value) => {
            walk(&mut value, redactor);
            let mut out = value.to_string();
            out.push('\n');
            out
        }
        Err(_) => redactor.redact(line).into_owned(),
    }
}

struct Lines {
    sink: Arc<Sink>,
    format: Format,
}

impl Lines {
    fn line(&self, priority: Option<&'static str>) -> Line {
        Line {
            buf: Vec::with_capacity(256),
            sink: Arc::clone(&self.sink),
            format: self.format,
            priority,
        }
    }
}

impl MakeWriter<'_> for Lines {
    type Writer = Line;

    fn make_writer(&self) -> Line {
        self.line(None)
    }

    fn make_writer_for(&self, meta: &Metadata<'_>) -> Line {
        let journal = matches!(*self.sink, Sink::Stderr { journal: true });
        self.line(journal.then(|| match *meta.level() {
            Level::ERROR => "<3>",
            Level::WARN => "<4>",
            Level::INFO => "<6>",
            Level::DEBUG | Level::TRACE => "<7>",
        }))
    }
}

/// Installs the log: `ACP_LOG` if set, else `default_level`; to
/// `log_file` if given, else stderr; in `ACP_LOG_FORMAT`.
///
/// # Errors
/// A bad `ACP_LOG_FORMAT`, or a log file that cannot be opened: bad input,
/// said before anything runs.
pub(crate) fn init(default_level: &str, log_file: Option<&Path>) -> Result<(), String> {
    let format = Format::from_env()?;
    let sink = match log_file {
        Some(path) => {
            let path = std::path::absolute(path)
                .map_err(|e| format!("cannot resolve --log-file {}: {e}", path.display()))?;
            open_log(&path).map_err(|e| {
                format!(
                    "cannot open --log-file {} for appending: {e}: give a path in a directory \
                     you can write",
                    path.display()
                )
            })?;
            Sink::File(path)
        }
        None => Sink::Stderr {
            journal: stderr_is_journal(),
        },
    };
    let wanted =
        EnvFilter::try_from_env("ACP_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let caps = CAPS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, (target, level)| t.with_target(*target, *level),
    );
    let filter = wanted.and(caps);
    // Colours only on a terminal: a log file or a journal gets plain text.
    let ansi =
        matches!(sink, Sink::Stderr { .. }) && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // The journal stamps each line itself.
    let timed = !matches!(sink, Sink::Stderr { journal: true });
    let writer = Lines {
        sink: Arc::new(sink),
        format,
    };
    // No `log` bridge: enigo and arboard log keymap details through `log`
    // at warn level, and acp reports their failures itself.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(writer)
        .with_ansi(ansi);
    let layer: Box<dyn Layer<Registry> + Send + Sync> = match (format, timed) {
        (Format::Text, true) => fmt.with_filter(filter).boxed(),
        (Format::Text, false) => fmt.without_time().with_filter(filter).boxed(),
        (Format::Json, true) => fmt.json().with_filter(filter).boxed(),
        (Format::Json, false) => fmt.json().without_time().with_filter(filter).boxed(),
    };
    let _ = tracing::subscriber::set_global_default(Registry::default().with(layer));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_line_is_redacted_value_by_value_even_where_json_escapes_the_secret() {
        let mut env = Env::new();
        env.insert("DISCORD_TOKEN".into(), r#"tok"en\with-quotes-1234"#.into());
        let redactor = Redactor::from_env(&env);
        let event = serde_json::json!({
            "level": "TRACE",
            "fields": {"message": "posting", "body": r#"say tok"en\with-quotes-1234 twice"#},
            "spans": [{"url": "https://discord.com/api/webhooks/1/abcdef-token"}],
        });
        let line = format!("{event}\n");
        assert!(!line.contains(r#"tok"en\with"#), "JSON escapes it: {line}");
        let clean = redact_json(&redactor, &line);
        let value: serde_json::Value = serde_json::from_str(&clean).unwrap();
        assert_eq!(value["fields"]["body"], "say [redacted] twice");
        assert_eq!(
            value["spans"][0]["url"],
            "https://discord.com/api/webhooks/1/[redacted]"
        );
        assert_eq!(value["level"], "TRACE");
        assert!(clean.ends_with('\n') && clean.lines().count() == 1);
        // Not JSON: redacted as text.
        assert_eq!(
            redact_json(&redactor, r#"plain tok"en\with-quotes-1234"#),
            "plain [redacted]"
        );
    }

    #[test]
    fn the_log_format_is_text_or_json_and_nothing_else() {
        for (value, expected) in [
            ("", Ok(Format::Text)),
            ("text", Ok(Format::Text)),
            ("JSON", Ok(Format::Json)),
            (
                "xml",
                Err("ACP_LOG_FORMAT=\"xml\" is not a log format: use text or json".to_owned()),
            ),
        ] {
            let got = parse_format(Some(value));
            assert_eq!(got, expected, "{value:?}");
        }
        assert_eq!(parse_format(None), Ok(Format::Text));
    }
}
