//! Headless Chromium driven over its remote debugging protocol, for what a
//! `--dump-dom` cannot tell: how wide the laid-out page is on a phone's
//! screen, what a script left in the page, a screenshot of a given size.
//! The page under test is untouched: the expressions run in Chromium's
//! console, which the page's content security policy does not govern.

use std::io::{BufRead as _, BufReader, Read as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};
use tungstenite::stream::MaybeTlsStream;
use tungstenite::{Message, WebSocket};

use crate::support::wait_until;

/// How long one answer from Chromium may take.
const LIMIT: Duration = Duration::from_secs(30);

/// One Chromium with one tab, emulating a phone's screen.
pub(crate) struct Browser {
    child: Child,
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    session: String,
    next: u64,
    /// Chromium's standard error so far, for failures' messages.
    stderr: mpsc::Receiver<String>,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Chromium (with `env` added to its environment) showing an empty
    /// tab `width` × `height` CSS pixels, as a phone (touch, the
    /// viewport meta tag honoured) at twice the pixel density.
    pub(crate) fn phone(width: u32, height: u32, env: &[(&str, &str)]) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut child = Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--window-size={width},{height}"))
            .arg("about:blank")
            // Cargo's library path (build scripts' outputs) is not Chromium's.
            .env_remove("LD_LIBRARY_PATH")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Chromium names its endpoint on standard error; the rest of it is
        // read on so that the pipe never fills.
        let (lines, stderr) = mpsc::channel();
        let mut reader = BufReader::new(child.stderr.take().unwrap());
        std::thread::spawn(move || {
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                if lines.send(std::mem::take(&mut line)).is_err() {
                    let _ = reader.read_to_end(&mut Vec::new());
                    return;
                }
            }
        });
        let mut seen = String::new();
        let endpoint = loop {
            let line = stderr
                .recv_timeout(LIMIT)
                .unwrap_or_else(|e| panic!("chromium named no DevTools endpoint ({e}): {seen}"));
            if let Some(at) = line.find("ws://") {
                break line[at..].trim().to_owned();
            }
            seen.push_str(&line);
        };
        let (socket, _) = tungstenite::connect(&endpoint).unwrap();
        if let MaybeTlsStream::Plain(tcp) = socket.get_ref() {
            tcp.set_read_timeout(Some(LIMIT)).unwrap();
        }
        let mut browser = Self {
            child,
            socket,
            session: String::new(),
            next: 0,
            stderr,
            _profile: profile,
        };
        let target = browser.call("Target.createTarget", &json!({"url": "about:blank"}));
        let attached = browser.call(
            "Target.attachToTarget",
            &json!({"targetId": target["targetId"], "flatten": true}),
        );
        attached["sessionId"]
            .as_str()
            .unwrap()
            .clone_into(&mut browser.session);
        browser.call(
            "Emulation.setDeviceMetricsOverride",
            &json!({"width": width, "height": height, "deviceScaleFactor": 2, "mobile": true}),
        );
        browser
    }

    /// Sends one command (to the tab, once attached) and returns its result;
    /// events in between are passed over.
    pub(crate) fn call(&mut self, method: &str, params: &Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut command = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            command["sessionId"] = json!(self.session);
        }
        self.socket
            .send(Message::text(command.to_string()))
            .unwrap();
        loop {
            let message = match self.socket.read() {
                Ok(m) => m,
                Err(e) => panic!("chromium did not answer {method} ({e}): {}", self.log()),
            };
            let Message::Text(text) = message else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] != id {
                continue;
            }
            assert!(
                answer["error"].is_null(),
                "{method} failed: {answer}\n{}",
                self.log()
            );
            return answer["result"].clone();
        }
    }

    /// Opens `url` and waits until it has loaded (its scripts have run).
    pub(crate) fn open(&mut self, url: &str) {
        let navigated = self.call("Page.navigate", &json!({"url": url}));
        assert!(
            navigated["errorText"].is_null(),
            "cannot open {url}: {navigated}"
        );
        wait_until(LIMIT, || {
            self.eval(&format!(
                "document.readyState === 'complete' && location.href === {}",
                json!(url)
            )) == json!(true)
        });
    }

    /// The value of a JavaScript expression in the page.
    pub(crate) fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            &json!({"expression": expression, "returnByValue": true}),
        );
        assert!(
            result["exceptionDetails"].is_null(),
            "{expression} threw: {result}"
        );
        result["result"]["value"].clone()
    }

    /// A PNG of what the screen shows; with `whole`, of the whole page.
    pub(crate) fn screenshot(&mut self, whole: bool) -> Vec<u8> {
        let mut params = json!({"format": "png"});
        if whole {
            let size = &self.call("Page.getLayoutMetrics", &json!({}))["cssContentSize"];
            params["captureBeyondViewport"] = json!(true);
            params["clip"] = json!({"x": 0, "y": 0, "width": size["width"],
                "height": size["height"], "scale": 1});
        }
        let shot = self.call("Page.captureScreenshot", &params);
        base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap())
            .unwrap()
    }

    fn log(&self) -> String {
        self.stderr.try_iter().collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
