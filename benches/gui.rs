//! Keyboard-and-mouse benchmark under Xvfb: time from dispatch to submit for
//! 100-character, 2,000-character multi-line and 10,000-character bodies, by
//! paste and by typing, through acp's real enigo path, and the same
//! deliveries by the original system's method (pyautogui + pyperclip) in the
//! same run. Prints a markdown table (copied into BENCHMARKS.md).
//!
//! Run: `make bench-gui` (installs Xvfb, Tk, xclip and a venv with pyautogui).

#[path = "../tests/it/desktop.rs"]
#[allow(dead_code, reason = "shared with the tests; the bench uses part of it")]
mod desktop;

/// The piece of the tests' support module that `desktop` uses.
mod support {
    pub fn wait_until(limit: std::time::Duration, mut f: impl FnMut() -> bool) {
        let start = std::time::Instant::now();
        while !f() {
            assert!(
                start.elapsed() < limit,
                "condition not met within {limit:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

use std::process::Command;
use std::time::{Duration, Instant};

use acp::config::{Config, Env};
use acp::delivery::DeliveryMethod;
use acp::delivery::gui::GuiMethod;
use acp::model::gui::InputMode;
use acp::model::{Draft, Kind, Priority, Recipient};

use desktop::ChatBox;

const PRE_SUBMIT_MS: u64 = 200;

fn body(chars: usize, multi_line: bool) -> String {
    let line = "Refactor the parser, keep the public API, add tests for edge cases; report back. ";
    let mut text = String::new();
    while text.len() < chars {
        text.push_str(&line[..line.len().min(chars - text.len())]);
        if multi_line && text.len() < chars {
            text.push('\n');
        }
    }
    text.truncate(chars);
    text.trim_end().to_owned()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// acp's median time from dispatch to submit.
fn acp_median(
    method: &GuiMethod,
    agent: &acp::model::Agent,
    chat: &ChatBox,
    text: &str,
    reps: usize,
) -> f64 {
    let mut times = Vec::new();
    for _ in 0..reps {
        let msg = Draft {
            from: "bench".into(),
            to: Recipient::Agent(agent.id.clone()),
            kind: Kind::Human,
            priority: Priority::Normal,
            body: text.to_owned(),
            tags: vec![],
            reply_to: None,
        }
        .build(1 << 20)
        .unwrap();
        let before = chat.submits().len();
        let start = Instant::now();
        method
            .deliver(acp::delivery::Target::Agent(agent), &msg)
            .unwrap();
        times.push(start.elapsed().as_secs_f64() * 1000.0);
        chat.wait_for_submits(before + 1);
    }
    median(times)
}

/// Where and how the pyautogui baseline runs.
struct Baseline<'a> {
    python: &'a std::path::Path,
    display: &'a str,
    dir: &'a std::path::Path,
    point: (i32, i32),
}

/// The pyautogui + pyperclip baseline's median time from start to submit.
fn pyautogui_median(b: &Baseline<'_>, text: &str, mode: InputMode, reps: usize) -> f64 {
    let body_file = b.dir.join("body.txt");
    let result_file = b.dir.join("pyautogui.txt");
    let xauth = b.dir.join("xauthority");
    std::fs::write(&xauth, b"").unwrap();
    std::fs::write(&body_file, text).unwrap();
    let status = Command::new(b.python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/benches/pyautogui_baseline.py"
        ))
        .args([
            b.point.0.to_string(),
            b.point.1.to_string(),
            PRE_SUBMIT_MS.to_string(),
            reps.to_string(),
        ])
        .arg(&body_file)
        .arg(if mode == InputMode::Paste {
            "paste"
        } else {
            "type"
        })
        .arg(b.dir.join("Agent-1_chat.jsonl"))
        .arg(&result_file)
        .env("DISPLAY", b.display)
        .env("XAUTHORITY", &xauth)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the pyautogui baseline failed");
    std::fs::read_to_string(&result_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn main() {
    // ACP_LOG=acp=debug shows the timing of each step.
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("ACP_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let venv_python =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-venv/bin/python");
    assert!(
        venv_python.exists(),
        "run `make bench-gui`, which creates target/bench-venv with pyautogui"
    );
    // The clipboard (arboard) connects to $DISPLAY itself, so the bench runs
    // on the display it is given: scripts/bench-gui.sh starts an Xvfb and
    // exports it.
    let display = std::env::var("DISPLAY")
        .expect("DISPLAY is not set: run `make bench-gui`, which starts an Xvfb for the bench");
    let dir = tempfile::tempdir().unwrap();
    acp::app::init(dir.path(), 1).unwrap();
    let mut env = Env::new();
    env.insert("DISPLAY".into(), display.clone());
    let config = Config::load(dir.path(), &env).unwrap();
    let chat = ChatBox::open_on(&display, dir.path(), "Agent-1 chat", 100, 100);
    let (x, y) = chat.center();
    desktop::write_coordinates(dir.path(), &[("Agent-1", (x, y), None)]);
    let method = GuiMethod::start(
        &config.gui,
        acp::delivery::gui::Points::file(config.coords_path()),
        dir.path().join("data/gui.lock"),
    );

    let cases = [
        ("100 chars, one line", body(100, false)),
        ("2,000 chars, multi-line", body(2000, true)),
        ("10,000 chars, multi-line", body(10_000, true)),
    ];
    println!(
        "| body | method | acp (ms) | acp minus the {PRE_SUBMIT_MS} ms pre-submit delay (ms) | pyautogui + pyperclip (ms) | pyautogui ÷ acp |"
    );
    println!("|---|---|---:|---:|---:|---:|");
    for (name, text) in &cases {
        for mode in [InputMode::Paste, InputMode::Type] {
            if std::env::var("ACP_BENCH_ONLY")
                .is_ok_and(|only| only != format!("{mode:?}").to_lowercase())
            {
                continue;
            }
            let reps = if text.len() > 5000 && mode == InputMode::Type {
                2
            } else {
                5
            };
            let mut agent = config.agents.all()[0].clone();
            agent.gui.input = mode;
            agent.gui.pre_submit_delay = Duration::from_millis(PRE_SUBMIT_MS);
            let acp_ms = acp_median(&method, &agent, &chat, text, reps);
            let before = chat.submits().len();
            let py_ms = pyautogui_median(
                &Baseline {
                    python: &venv_python,
                    display: &display,
                    dir: dir.path(),
                    point: (x, y),
                },
                text,
                mode,
                reps,
            );
            let got = chat.wait_for_submits(before + reps);
            let whole = got[before..].iter().all(|s| s == text);
            #[expect(clippy::cast_precision_loss, reason = "milliseconds for a table")]
            let delay = PRE_SUBMIT_MS as f64;
            println!(
                "| {name} | {} | {acp_ms:.1} | {:.1} | {py_ms:.1}{} | {:.1}× |",
                if mode == InputMode::Paste {
                    "paste"
                } else {
                    "type"
                },
                acp_ms - delay,
                if whole { "" } else { " (text arrived damaged)" },
                py_ms / acp_ms
            );
        }
    }
    println!(
        "\nmedians over 5 runs (2 for typing 10,000 characters); every acp delivery was checked to arrive whole in the window"
    );
}
