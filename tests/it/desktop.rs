//! A real X server (Xvfb) with real windows for the keyboard-and-mouse
//! tests. Each test starts its own server on a free display and stops it.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::wait_until;

/// Width and height of the virtual screen: two 1920×1080 monitors side by
/// side.
pub const SCREEN: (u32, u32) = (3840, 1080);

/// A running Xvfb.
pub struct Xvfb {
    child: Child,
    pub display: String,
}

impl Xvfb {
    /// Starts Xvfb on a free display (it picks one and tells us through
    /// `-displayfd`).
    pub fn start() -> Self {
        let mut child = Command::new("Xvfb")
            .args(["-displayfd", "1", "-screen", "0", &format!("{}x{}x24", SCREEN.0, SCREEN.1), "-nolisten", "tcp", "-noreset"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb is not installed: run the tests with `make test`, which installs it (Debian package xvfb)");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let number: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb did not report a display: {line:?}"));
        Self {
            child,
            display: format!(":{number}"),
        }
    }

    /// Kills the server (to test a desktop that goes away).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        self.kill();
    }
}

fn python() -> &'static str {
    // Debian's python3 has tkinter with python3-tk; a pyenv build may not.
    if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

/// A chat-input window (tests/support/chatbox.py) that records what it gets.
pub struct ChatBox {
    child: Child,
    out: PathBuf,
    pub x: i32,
    pub y: i32,
    pub width: i32,
    pub height: i32,
}

impl ChatBox {
    /// Opens a window titled `title` at (x, y), 500×200, and waits until it
    /// is mapped and ready.
    pub fn open(x11: &Xvfb, dir: &Path, title: &str, x: i32, y: i32) -> Self {
        Self::open_on(&x11.display, dir, title, x, y)
    }

    /// The same on a display given by name.
    pub fn open_on(display: &str, dir: &Path, title: &str, x: i32, y: i32) -> Self {
        Self::open_with(display, dir, (title, x, y), &[])
    }

    /// The same with chatbox.py's options (`--hold-focus`,
    /// `--focus-after-click MS`).
    pub fn open_with(display: &str, dir: &Path, at: (&str, i32, i32), options: &[&str]) -> Self {
        let (title, x, y) = at;
        let out = dir.join(format!("{}.jsonl", title.replace(' ', "_")));
        let (width, height) = (500, 200);
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/chatbox.py");
        let child = Command::new(python())
            .arg(script)
            .args([title, &format!("{width}x{height}+{x}+{y}")])
            .arg(&out)
            .args(options)
            .env("DISPLAY", display)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let ready = out.with_extension("jsonl.ready");
        wait_until(Duration::from_secs(30), || ready.exists());
        Self {
            child,
            out,
            x,
            y,
            width,
            height,
        }
    }

    /// The middle of the window, where its text input is.
    pub fn center(&self) -> (i32, i32) {
        (self.x + self.width / 2, self.y + self.height / 2)
    }

    fn events(&self) -> Vec<serde_json::Value> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Waits until the window has handled `n` submits: X clients process
    /// their events after acp has sent them, a 10 KB body takes a moment.
    pub fn wait_for_submits(&self, n: usize) -> Vec<String> {
        wait_until(Duration::from_secs(60), || self.submits().len() >= n);
        // Not a wait for anything to happen: a short look for an extra
        // submit that should not come (a body split in two). Absence has no
        // event to wait for; correct code passes whatever this lasts.
        std::thread::sleep(Duration::from_millis(300));
        self.submits()
    }

    /// Every submitted text, in order.
    pub fn submits(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "submit")
            .map(|e| e["text"].as_str().unwrap().to_owned())
            .collect()
    }

    /// How many times the window got the keyboard focus.
    pub fn focus_count(&self) -> usize {
        self.events()
            .iter()
            .filter(|e| e["event"] == "focus")
            .count()
    }

    /// Special keys recorded (ctrl+n).
    pub fn keys(&self) -> Vec<String> {
        self.events()
            .iter()
            .filter(|e| e["event"] == "key")
            .map(|e| e["key"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Text typed or pasted but not submitted.
    pub fn draft(&self) -> String {
        fs::read_to_string(self.out.with_extension("jsonl.draft")).unwrap_or_default()
    }
}

impl Drop for ChatBox {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `config/coordinates.json` for a root: two monitors side by side and
/// the given agents' points.
/// An agent, its chat-input point and its optional onboarding point.
pub type AgentPoints<'a> = (&'a str, (i32, i32), Option<(i32, i32)>);

pub fn write_coordinates(root: &Path, agents: &[AgentPoints<'_>]) {
    let mut doc = serde_json::json!({
        "monitors": [
            {"name": "left", "x": 0, "y": 0, "width": 1920, "height": 1080},
            {"name": "right", "x": 1920, "y": 0, "width": 1920, "height": 1080}
        ]
    });
    for (id, chat, onboarding) in agents {
        let mut entry = serde_json::json!({ "chat_input_coordinates": [chat.0, chat.1] });
        if let Some(o) = onboarding {
            entry["onboarding_coordinates"] = serde_json::json!([o.0, o.1]);
        }
        doc[*id] = entry;
    }
    fs::write(
        root.join("config/coordinates.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
}

/// A program holding the clipboard with a text, as the user's editor would
/// after a copy (a hidden Tk window).
pub struct ClipboardOwner(Child);

impl ClipboardOwner {
    /// Puts `text` on the display's clipboard and keeps serving it.
    pub fn hold(display: &str, text: &str) -> Self {
        let mut child = Command::new(python())
            .args([
                "-c",
                "import sys, tkinter\n\
                 r = tkinter.Tk(); r.withdraw()\n\
                 r.clipboard_clear(); r.clipboard_append(sys.argv[1]); r.update()\n\
                 print('ready', flush=True)\n\
                 r.mainloop()",
                text,
            ])
            .env("DISPLAY", display)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "the clipboard owner did not start");
        Self(child)
    }
}

impl Drop for ClipboardOwner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The text on the display's clipboard, as another program pasting would
/// get it; `None` when nobody holds the clipboard.
pub fn clipboard_text(display: &str) -> Option<String> {
    let out = Command::new(python())
        .args([
            "-c",
            "import sys, tkinter\n\
             r = tkinter.Tk(); r.withdraw()\n\
             try:\n    sys.stdout.write(r.clipboard_get())\n\
             except tkinter.TclError:\n    sys.exit(3)",
        ])
        .env("DISPLAY", display)
        .stderr(Stdio::null())
        .output()
        .unwrap();
    match out.status.code() {
        Some(0) => Some(String::from_utf8(out.stdout).unwrap()),
        Some(3) => None,
        other => panic!("reading the clipboard failed ({other:?})"),
    }
}
