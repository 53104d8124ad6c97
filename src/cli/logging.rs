//! The log on stderr: filtered by `ACP_LOG` (or `-v`), with two guards no
//! setting lifts.
//!
//! - The HTTP, TLS, gateway, NATS and MCP crates under acp are capped
//!   ([`CAPS`]): serenity's request spans carry each request's URL (a
//!   webhook's or an interaction's token in its path) and its body as a
//!   byte array, and the others' debug and trace output is bodies and
//!   frames. acp's own trace level says what it sends, as text.
//! - Every line passes through a [`Redactor`] before it is written: the
//!   secrets the environment holds (known once `.env` is read) and every
//!   secret shape (a token in a Discord URL, credentials in a URL) are
//!   replaced by `[redacted]`.

use std::io::Write;
use std::sync::{Arc, RwLock};

use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::{EnvFilter, FilterExt as _, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::{Layer as _, Registry};

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

/// Writes one log line, redacted, to stderr when dropped.
struct Line(Vec<u8>);

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        let text = String::from_utf8_lossy(&self.0);
        let redactor = SECRETS
            .read()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_default();
        let text = redactor.redact(&text);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

struct Lines;

impl MakeWriter<'_> for Lines {
    type Writer = Line;

    fn make_writer(&self) -> Line {
        Line(Vec::with_capacity(256))
    }
}

/// Installs the log: `ACP_LOG` if set, else `default_level`.
pub(crate) fn init(default_level: &str) {
    let wanted =
        EnvFilter::try_from_env("ACP_LOG").unwrap_or_else(|_| EnvFilter::new(default_level));
    let caps = CAPS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, (target, level)| t.with_target(*target, *level),
    );
    // No `log` bridge: enigo and arboard log keymap details through `log`
    // at warn level, and acp reports their failures itself.
    // Colours only on a terminal: a log file or a journal gets plain text.
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(Lines)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_filter(wanted.and(caps));
    let _ = tracing::subscriber::set_global_default(Registry::default().with(layer));
}
