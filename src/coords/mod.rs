// Over 400 lines: the file's format, its checks and their tests, as the one place that knows the
// file.

//! `config/coordinates.json`: the single source of truth for where each
//! agent's chat input (and onboarding input) sits on screen.
//!
//! The shape is the original system's, with an optional monitor layout:
//!
//! ```json
//! {
//!   "monitors": [{"name": "left", "x": -1920, "y": 0, "width": 1920, "height": 1080}],
//!   "Agent-1": {"chat_input_coordinates": [-1269, 481],
//!               "onboarding_coordinates": [-1265, 171],
//!               "monitor": "left", "description": "top-left Cursor window"}
//! }
//! ```

mod clashes;
mod json;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::model::MethodName;
use crate::model::{AgentId, Registry};

/// A problem reading the coordinates file.
#[derive(Debug, thiserror::Error)]
pub enum CoordsError {
    #[error("cannot read or write {file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: {reason}")]
    Parse { file: String, reason: String },
}

/// The largest coordinates file read: far more than any swarm needs (a few
/// hundred bytes an agent), and a bound on what validation can cost.
pub(crate) const MAX_FILE_BYTES: u64 = 1 << 20;

/// The most monitors a file may list.
pub(crate) const MAX_MONITORS: usize = 64;

/// A screen point in the virtual desktop's coordinates (negative left of or
/// above the primary monitor).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

/// One monitor of the layout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    pub name: String,
    pub x: i32,
    pub y: i32,
    pub width: u32,
    pub height: u32,
}

impl Monitor {
    /// Whether the point lies on this monitor.
    #[must_use]
    pub fn contains(&self, p: Point) -> bool {
        let (x, y) = (i64::from(p.x), i64::from(p.y));
        x >= i64::from(self.x)
            && x < i64::from(self.x) + i64::from(self.width)
            && y >= i64::from(self.y)
            && y < i64::from(self.y) + i64::from(self.height)
    }

    fn overlaps(&self, o: &Monitor) -> bool {
        let (ax2, ay2) = (
            i64::from(self.x) + i64::from(self.width),
            i64::from(self.y) + i64::from(self.height),
        );
        let (bx2, by2) = (
            i64::from(o.x) + i64::from(o.width),
            i64::from(o.y) + i64::from(o.height),
        );
        i64::from(self.x) < bx2
            && i64::from(o.x) < ax2
            && i64::from(self.y) < by2
            && i64::from(o.y) < ay2
    }
}

/// Where one agent's inputs are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentPoints {
    pub chat_input: Point,
    pub onboarding_input: Option<Point>,
    /// The monitor the agent's window is on, by name, if given.
    pub monitor: Option<String>,
    pub description: String,
}

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Coordinates {
    pub monitors: Vec<Monitor>,
    pub agents: BTreeMap<AgentId, AgentPoints>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    chat_input_coordinates: [i32; 2],
    onboarding_coordinates: Option<[i32; 2]>,
    monitor: Option<String>,
    #[serde(default)]
    description: String,
}

impl Coordinates {
    /// Reads and parses a coordinates file.
    ///
    /// # Errors
    /// [`CoordsError`] naming the file and what is wrong.
    pub fn load(path: &Path) -> Result<Self, CoordsError> {
        let file = path.display().to_string();
        let read = |source| CoordsError::Read {
            file: file.clone(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read)?.len();
        if size > MAX_FILE_BYTES {
            return Err(CoordsError::Parse {
                file,
                reason: format!(
                    "is {size} bytes, over the limit of {MAX_FILE_BYTES}: it holds one entry per \
                     agent, so this is not the right file (or it was damaged); restore it from a \
                     backup or run `acp coords capture`"
                ),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read)?;
        Self::parse(&text).map_err(|reason| CoordsError::Parse { file, reason })
    }

    /// Parses the JSON text of a coordinates file.
    ///
    /// # Errors
    /// A sentence saying which key is wrong and why.
    pub fn parse(text: &str) -> Result<Self, String> {
        let top: json::Entries =
            serde_json::from_str(text).map_err(|e| format!("not a JSON object of agents: {e}"))?;
        if let Some(key) = top.duplicate() {
            return Err(format!(
                "key `{key}` appears more than once: keep one entry per agent"
            ));
        }
        let mut out = Coordinates::default();
        for (key, value) in top.0 {
            if key == "monitors" {
                out.monitors =
                    serde_json::from_value(value).map_err(|e| format!("key `monitors`: {e}"))?;
                if out.monitors.len() > MAX_MONITORS {
                    return Err(format!(
                        "key `monitors` lists {} monitors, more than the {MAX_MONITORS} any \
                         desktop has",
                        out.monitors.len()
                    ));
                }
                continue;
            }
            let id: AgentId = key.parse().map_err(|e| format!("key `{key}`: {e}"))?;
            let raw: RawEntry =
                serde_json::from_value(value).map_err(|e| format!("key `{key}`: {e}"))?;
            let point = |[x, y]: [i32; 2]| Point { x, y };
            out.agents.insert(
                id,
                AgentPoints {
                    chat_input: point(raw.chat_input_coordinates),
                    onboarding_input: raw.onboarding_coordinates.map(point),
                    monitor: raw.monitor,
                    description: raw.description,
                },
            );
        }
        Ok(out)
    }

    /// Checks the layout against the registry. See [`Finding`].
    #[must_use]
    pub fn validate(&self, registry: &Registry, near_radius_px: u32) -> Vec<Finding> {
        let mut out = Findings::default();
        self.check_monitors(&mut out);
        let points = self.points();
        self.check_points_on_monitors(&points, &mut out);
        clashes::check(&points, near_radius_px, registry, &mut out);
        self.check_registry(registry, &mut out);
        out.into_vec()
    }

    /// Checks every point against the live monitor layout read from the
    /// display.
    #[must_use]
    pub(crate) fn check_live(&self, live: &[Monitor]) -> Vec<Finding> {
        let mut out = Findings::default();
        let layout = live
            .iter()
            .map(|m| format!("{} {}x{}+{}+{}", m.name, m.width, m.height, m.x, m.y))
            .collect::<Vec<_>>()
            .join(", ");
        for (id, what, p) in self.points() {
            if !live.iter().any(|m| m.contains(p)) {
                out.error(
                    Some(id),
                    format!("{what} {p} is off the live screen (monitors now: {layout}): re-capture it with `acp coords capture {id} --save`"),
                );
            }
        }
        out.into_vec()
    }

    /// Writes one point into the coordinates file, keeping everything else in
    /// it (other agents, monitors, descriptions, key order). The file is
    /// replaced atomically and must still parse afterwards.
    ///
    /// # Errors
    /// [`CoordsError`] if the file cannot be read, parsed or written.
    pub fn save_point(
        path: &Path,
        agent: &AgentId,
        onboarding: bool,
        p: Point,
    ) -> Result<(), CoordsError> {
        let file = path.display().to_string();
        let parse = |reason: String| CoordsError::Parse {
            file: file.clone(),
            reason,
        };
        let mut doc: serde_json::Value = match std::fs::read_to_string(path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| parse(format!("not JSON: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
            Err(source) => return Err(CoordsError::Read { file, source }),
        };
        let top = doc
            .as_object_mut()
            .ok_or_else(|| parse("not a JSON object of agents".into()))?;
        let entry = top
            .entry(agent.as_str())
            .or_insert_with(|| serde_json::json!({}));
        let entry = entry
            .as_object_mut()
            .ok_or_else(|| parse(format!("key `{agent}` is not an object")))?;
        let key = if onboarding {
            "onboarding_coordinates"
        } else {
            "chat_input_coordinates"
        };
        entry.insert(key.into(), serde_json::json!([p.x, p.y]));
        if !entry.contains_key("chat_input_coordinates") {
            entry.insert(
                "chat_input_coordinates".into(),
                serde_json::json!([p.x, p.y]),
            );
        }
        let text = serde_json::to_string_pretty(&doc).map_err(|e| parse(e.to_string()))?;
        // Points on one line, as people write them: [x, y].
        let inline =
            regex::Regex::new(r"\[\s*(-?\d+),\s*(-?\d+)\s*\]").map_err(|e| parse(e.to_string()))?;
        let mut text = inline.replace_all(&text, "[$1, $2]").into_owned();
        text.push('\n');
        Self::parse(&text).map_err(parse)?;
        let dir = path.parent().unwrap_or_else(|| Path::new("."));
        let write = |source: std::io::Error| CoordsError::Read {
            file: file.clone(),
            source,
        };
        let mut temp = tempfile::NamedTempFile::new_in(dir).map_err(write)?;
        std::io::Write::write_all(&mut temp, text.as_bytes()).map_err(write)?;
        temp.as_file().sync_all().map_err(write)?;
        temp.persist(path).map_err(|e| write(e.error))?;
        Ok(())
    }

    /// Every configured point: (agent, which input, point).
    fn points(&self) -> Vec<(&AgentId, &'static str, Point)> {
        let mut points = Vec::new();
        for (id, a) in &self.agents {
            points.push((id, "chat input", a.chat_input));
            if let Some(p) = a.onboarding_input {
                points.push((id, "onboarding input", p));
            }
        }
        points
    }

    fn check_monitors(&self, out: &mut Findings) {
        for (i, m) in self.monitors.iter().enumerate() {
            if m.width == 0 || m.height == 0 {
                out.error(
                    None,
                    format!(
                        "monitor {:?} has no area: give its width and height in pixels",
                        m.name
                    ),
                );
            }
            for o in &self.monitors[i + 1..] {
                if m.overlaps(o) {
                    out.error(
                        None,
                        format!(
                            "monitors {:?} and {:?} overlap: fix their x/y/width/height",
                            m.name, o.name
                        ),
                    );
                }
            }
        }
        for (id, a) in &self.agents {
            if let Some(name) = &a.monitor
                && !self.monitors.iter().any(|m| &m.name == name)
            {
                out.error(
                    Some(id),
                    format!("names monitor {name:?}, which is not in the `monitors` list"),
                );
            }
        }
    }

    fn check_points_on_monitors(&self, points: &[(&AgentId, &str, Point)], out: &mut Findings) {
        if self.monitors.is_empty() {
            if !self.agents.is_empty() {
                out.warning(
                    None,
                    "no `monitors` list: points cannot be checked against the screen layout".into(),
                );
            }
            return;
        }
        for &(id, what, p) in points {
            let named = self.agents[id].monitor.as_deref();
            match (self.monitors.iter().find(|m| m.contains(p)), named) {
                (None, _) => out.error(
                    Some(id),
                    format!("{what} {p} is outside every monitor: re-capture it with `acp coords capture {id}` or fix the monitors list"),
                ),
                (Some(m), Some(name)) if m.name != name => {
                    out.error(Some(id), format!("{what} {p} is on monitor {:?}, not on {name:?} as configured", m.name));
                }
                _ => {}
            }
        }
    }

    fn check_registry(&self, registry: &Registry, out: &mut Findings) {
        for agent in registry.all() {
            if self.agents.contains_key(&agent.id) {
                continue;
            }
            let message = format!(
                "has no coordinates: keyboard-and-mouse delivery cannot reach it (add it, or run \
                 `acp coords capture {} --save`)",
                agent.id
            );
            if agent.delivery.contains(&MethodName::Gui) {
                out.error(Some(&agent.id), message);
            } else {
                out.warning(Some(&agent.id), message);
            }
        }
        for id in self.agents.keys() {
            if registry.get(id).is_err() {
                out.warning(
                    Some(id),
                    "has coordinates but is not a configured agent in config/acp.toml".into(),
                );
            }
        }
    }
}

/// The most findings listed one by one; past that they are counted, so a
/// huge or broken file gives a short report.
pub(crate) const MAX_LISTED: usize = 50;

#[derive(Default)]
struct Findings {
    listed: Vec<Finding>,
    more_errors: usize,
    more_warnings: usize,
}

impl Findings {
    fn push(&mut self, severity: Severity, agent: Option<&AgentId>, message: String) {
        if self.listed.len() >= MAX_LISTED {
            match severity {
                Severity::Error => self.more_errors += 1,
                Severity::Warning => self.more_warnings += 1,
            }
            return;
        }
        self.listed.push(Finding {
            severity,
            agent: agent.map(ToString::to_string),
            message,
        });
    }

    /// The findings, with one line for those not listed (an error if any
    /// of them is one).
    fn into_vec(mut self) -> Vec<Finding> {
        if self.more_errors + self.more_warnings > 0 {
            self.listed.push(Finding {
                severity: if self.more_errors > 0 {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                agent: None,
                message: format!(
                    "{} more error(s) and {} more warning(s) not listed: fix the ones above \
                     first, or check that this is the right file",
                    self.more_errors, self.more_warnings
                ),
            });
        }
        self.listed
    }
    fn error(&mut self, agent: Option<&AgentId>, message: String) {
        self.push(Severity::Error, agent, message);
    }
    fn warning(&mut self, agent: Option<&AgentId>, message: String) {
        self.push(Severity::Warning, agent, message);
    }
}

/// How bad a finding is; errors make `acp coords validate` exit non-zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One thing validation found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub agent: Option<String>,
    pub message: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        match &self.agent {
            Some(a) => write!(f, "{level}: {a} {}", self.message),
            None => write!(f, "{level}: {}", self.message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Agent;

    fn registry(ids: &[&str], gui: bool) -> Registry {
        Registry::new(
            ids.iter()
                .map(|id| Agent {
                    id: id.parse().unwrap(),
                    name: (*id).into(),
                    role: String::new(),
                    workspace: "/w".into(),
                    delivery: if gui {
                        vec![MethodName::Gui, MethodName::Inbox]
                    } else {
                        vec![MethodName::Inbox]
                    },
                    gui: crate::model::gui::GuiSettings::default(),
                    tmux: None,
                    node: None,
                })
                .collect(),
        )
    }

    const LAYOUT: &str = r#"{
      "monitors": [{"name": "left", "x": -1920, "y": 0, "width": 1920, "height": 1080},
                   {"name": "main", "x": 0, "y": 0, "width": 2560, "height": 1440}],
      "Agent-1": {"chat_input_coordinates": [-1269, 481], "onboarding_coordinates": [-1265, 171], "description": "left top"},
      "Agent-2": {"chat_input_coordinates": [2000, 1400], "monitor": "main"}
    }"#;

    #[test]
    fn a_good_multi_monitor_layout_passes() {
        let c = Coordinates::parse(LAYOUT).unwrap();
        assert_eq!(c.agents.len(), 2);
        let findings = c.validate(&registry(&["Agent-1", "Agent-2"], true), 10);
        assert!(findings.is_empty(), "{findings:?}");
    }

    #[test]
    fn problems_are_reported() {
        let text = r#"{
          "monitors": [{"name": "left", "x": -1920, "y": 0, "width": 1920, "height": 1080}],
          "Agent-1": {"chat_input_coordinates": [-100, 500]},
          "Agent-2": {"chat_input_coordinates": [-95, 505]},
          "Agent-3": {"chat_input_coordinates": [5000, 10]},
          "Ghost": {"chat_input_coordinates": [-1000, 10]}
        }"#;
        let c = Coordinates::parse(text).unwrap();
        let f = c.validate(
            &registry(&["Agent-1", "Agent-2", "Agent-3", "Agent-4"], true),
            10,
        );
        let text: Vec<String> = f.iter().map(ToString::to_string).collect();
        let has = |needle: &str| text.iter().any(|t| t.contains(needle));
        assert!(
            has("Agent-3 chat input (5000, 10) is outside every monitor"),
            "{text:#?}"
        );
        assert!(has("nearly the same point"), "{text:#?}");
        assert!(has("error: Agent-4 has no coordinates"), "{text:#?}");
        assert!(
            has("warning: Ghost has coordinates but is not a configured agent"),
            "{text:#?}"
        );
    }

    #[test]
    fn saving_a_point_keeps_the_rest_of_the_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("coordinates.json");
        std::fs::write(&path, LAYOUT).unwrap();
        let id: AgentId = "Agent-2".parse().unwrap();
        Coordinates::save_point(&path, &id, false, Point { x: 10, y: 20 }).unwrap();
        let c = Coordinates::load(&path).unwrap();
        assert_eq!(c.agents[&id].chat_input, Point { x: 10, y: 20 });
        assert_eq!(c.agents[&id].monitor.as_deref(), Some("main"));
        assert_eq!(c.monitors.len(), 2);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.find("monitors").unwrap() < text.find("Agent-1").unwrap(),
            "key order kept: {text}"
        );
        assert!(text.contains("left top"), "descriptions kept: {text}");
        let new: AgentId = "Agent-9".parse().unwrap();
        Coordinates::save_point(&path, &new, true, Point { x: 5, y: 6 }).unwrap();
        let c = Coordinates::load(&path).unwrap();
        assert_eq!(c.agents[&new].onboarding_input, Some(Point { x: 5, y: 6 }));
    }

    #[test]
    fn malformed_files_say_which_key() {
        let err =
            Coordinates::parse(r#"{"Agent-1": {"chat_input_coordinates": [1]}}"#).unwrap_err();
        assert!(err.contains("Agent-1"), "{err}");
        let err =
            Coordinates::parse(r#"{"../x": {"chat_input_coordinates": [1, 2]}}"#).unwrap_err();
        assert!(err.contains("../x"), "{err}");
        assert!(Coordinates::parse("[1,2]").is_err());
    }
}
