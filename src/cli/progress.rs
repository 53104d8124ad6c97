//! How `acp backup` shows the progress of a long run: a bar on a terminal,
//! JSON lines for scripts, or nothing.

use std::sync::Mutex;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;

use acp::app::Progress;

/// How `acp backup` shows the progress of a long run (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// A bar on stderr when it is a terminal and the output is not JSON.
    Auto,
    /// One JSON object per line on stderr: `{"event":"phase"|"start"|
    /// "progress"|"finish","phase":...}`; stdout keeps the result.
    Json,
    /// Nothing.
    None,
}

/// `--progress json`: one line per step, per phase start and end, and per
/// percent (or per 100 items) of a measured phase.
#[derive(Default)]
pub(super) struct JsonLines {
    state: Mutex<Measured>,
}

#[derive(Default)]
struct Measured {
    phase: String,
    total_bytes: u64,
    bytes: u64,
    items: u64,
    percent: u64,
}

impl JsonLines {
    /// Writes one line; a closed stderr is not an error worth stopping for.
    fn emit(line: &serde_json::Value) {
        use std::io::Write;
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }
}

impl Progress for JsonLines {
    fn step(&self, phase: &str) {
        if let Ok(_order) = self.state.lock() {
            Self::emit(&json!({"event": "phase", "phase": phase}));
        }
    }
    fn start(&self, phase: &str, total: u64) {
        if let Ok(mut m) = self.state.lock() {
            *m = Measured {
                phase: phase.to_owned(),
                total_bytes: total,
                ..Measured::default()
            };
            Self::emit(&json!({"event": "start", "phase": phase, "total_bytes": total}));
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(mut m) = self.state.lock() {
            m.bytes += bytes;
            m.items += 1;
            let percent = (m.bytes.saturating_mul(100))
                .checked_div(m.total_bytes)
                .map_or(100, |p| p.min(100));
            if percent > m.percent || m.items % 100 == 0 {
                m.percent = percent;
                Self::emit(&json!({
                    "event": "progress", "phase": m.phase, "items": m.items,
                    "bytes": m.bytes, "total_bytes": m.total_bytes, "percent": percent,
                }));
            }
        }
    }
    fn finish(&self) {
        if let Ok(m) = self.state.lock() {
            Self::emit(&json!({
                "event": "finish", "phase": m.phase, "items": m.items, "bytes": m.bytes,
            }));
        }
    }
}

/// A progress bar on stderr, only when it is a terminal and output is not
/// JSON.
pub(super) struct Bar {
    enabled: bool,
    bar: Mutex<Option<ProgressBar>>,
}

impl Bar {
    pub(super) fn new(json_out: bool) -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: !json_out && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
        }
    }
}

impl Progress for Bar {
    fn start(&self, phase: &str, total: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::new(total).with_message(phase.to_owned());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        if let Ok(mut slot) = self.bar.lock() {
            *slot = Some(bar);
        }
    }
    fn advance(&self, bytes: u64) {
        if let Ok(slot) = self.bar.lock()
            && let Some(bar) = slot.as_ref()
        {
            bar.inc(bytes);
        }
    }
    fn finish(&self) {
        if let Ok(mut slot) = self.bar.lock()
            && let Some(bar) = slot.take()
        {
            bar.finish_and_clear();
        }
    }
}
