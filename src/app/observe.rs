//! What the status page and the metrics read: recent deliveries, the
//! delivery rate, and the Discord connection as the bot reports it.

use std::sync::Arc;

use serde::Serialize;

use super::{App, AppError, blocking};
use crate::store::activity::RecentDelivery;

/// The Discord connection, as the bot last reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiscordLink {
    /// No token: the bot does not run.
    Off,
    /// Starting, or reconnecting.
    Connecting,
    /// The gateway session is live.
    Connected,
    /// The bot stopped (a refused token, say): see the log.
    Stopped,
}

impl DiscordLink {
    /// The word shown.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Off => "not configured",
            Self::Connecting => "connecting",
            Self::Connected => "connected",
            Self::Stopped => "stopped",
        }
    }
}

impl App {
    /// The newest `limit` deliveries, with their outcome.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn recent_deliveries(&self, limit: usize) -> Result<Vec<RecentDelivery>, AppError> {
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.recent_deliveries(limit)).await?)
    }

    /// Deliveries per minute over the last `minutes` minutes, one entry per
    /// minute (zeros included), oldest first: (minute start, count).
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub async fn delivered_per_minute(&self, minutes: i64) -> Result<Vec<(i64, u64)>, AppError> {
        let now = jiff::Timestamp::now().as_millisecond();
        let first = (now / 60_000 - minutes + 1) * 60_000;
        let store = Arc::clone(&self.store);
        let counts = blocking(move || store.delivered_per_minute(first)).await?;
        Ok((0..minutes)
            .map(|i| {
                let minute = first + i * 60_000;
                let n = counts
                    .iter()
                    .find(|(m, _)| *m == minute)
                    .map_or(0, |(_, n)| *n);
                (minute, n)
            })
            .collect())
    }

    /// The Discord connection as the bot last reported it.
    #[must_use]
    pub fn discord_link(&self) -> DiscordLink {
        if self.config.discord.token.is_none() {
            return DiscordLink::Off;
        }
        *self
            .discord_link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The bot reports its connection.
    pub fn set_discord_link(&self, link: DiscordLink) {
        *self
            .discord_link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = link;
    }
}

/// A dispatcher whose loop has not come round for this long is not alive
/// (its longest sleep is the poll interval, at most a minute).
const BEAT_LIMIT_MS: i64 = 70_000;

impl App {
    /// Whether the store takes writes now.
    ///
    /// # Errors
    /// [`AppError::Store`] saying why not.
    pub async fn store_writable(&self) -> Result<(), AppError> {
        self.store_is_intact()?;
        let store = Arc::clone(&self.store);
        Ok(blocking(move || store.probe_write()).await?)
    }

    /// Whether this process's dispatcher is running and going round.
    #[must_use]
    pub fn dispatcher_alive(&self) -> bool {
        let beat = self
            .dispatcher_beat
            .load(std::sync::atomic::Ordering::Relaxed);
        beat > 0 && jiff::Timestamp::now().as_millisecond() - beat < BEAT_LIMIT_MS
    }

    /// A front door tells the metrics about a command it finished.
    pub fn record_command(
        &self,
        door: &'static str,
        name: &str,
        ok: bool,
        took: std::time::Duration,
    ) {
        self.events.publish(crate::events::Event::Command {
            door,
            name: name.to_owned(),
            ok,
            ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        });
    }
}

/// What tmux delivery would see in a pane, for `acp tmux attach`.
#[derive(Debug, Clone, Serialize)]
pub struct TmuxProbe {
    pub agent: crate::model::AgentId,
    pub target: String,
    /// The pane id and its running command, if the pane is there.
    pub pane: Option<(String, String)>,
    /// `Ok` if the guard accepts the pane, else its reason.
    pub verdict: Result<(), String>,
    /// Whether the agent waits for input (by its idle pattern), if known.
    pub idle: Option<bool>,
    /// The line to put in the agent's `[[agents]]` table.
    pub config_line: String,
}

impl App {
    /// What tmux delivery would see in `target` for `agent`, with the
    /// agent's command and idle patterns (or none yet).
    ///
    /// # Errors
    /// [`AppError::Agent`] for an unknown agent, [`AppError::Refused`] for
    /// a target or socket acp does not accept.
    pub async fn probe_tmux(
        &self,
        agent: &str,
        target: &str,
        socket: Option<&str>,
    ) -> Result<TmuxProbe, AppError> {
        use crate::model::tmux::{TmuxSettings, WhenBusy, valid_socket, valid_target};
        let agent = self.registry.lookup(agent)?.clone();
        if !valid_target(target) {
            return Err(super::Refused(format!(
                "{target:?} is not a tmux target: use session:window.pane or a pane id such as %3"
            ))
            .into());
        }
        if let Some(s) = socket
            && !valid_socket(s)
        {
            return Err(super::Refused(format!("{s:?} is not a tmux socket name")).into());
        }
        let mut settings = agent.tmux.clone().unwrap_or(TmuxSettings {
            target: String::new(),
            socket: None,
            command: None,
            idle_pattern: None,
            busy_max_wait: std::time::Duration::from_secs(60),
            when_busy: WhenBusy::Wait,
            pre_submit_delay: std::time::Duration::from_millis(200),
            submit_key: "Enter".into(),
            paste_into_shell: false,
            profile: None,
            profiles: self.config.profiles.clone(),
        });
        target.clone_into(&mut settings.target);
        if let Some(s) = socket {
            settings.socket = Some(s.to_owned());
        }
        let probe = tokio::task::spawn_blocking(move || {
            let looked = crate::delivery::tmux::inspect(&settings);
            let mut pane = None;
            let verdict = match &looked {
                Ok(p) => {
                    pane = Some((p.id.clone(), p.command.clone()));
                    Ok(())
                }
                Err(e) => Err(e.reason.clone()),
            };
            let idle = pane
                .as_ref()
                .and_then(|(id, _)| crate::delivery::tmux::is_idle(&settings, id).ok())
                .filter(|_| settings.idle_pattern.is_some());
            // A real guard: the configured one, else the program seen
            // there, else (no pane, or a shell) the agents' own programs.
            // Never a shell.
            let seen = pane
                .as_ref()
                .map(|(_, c)| c)
                .filter(|c| !c.is_empty() && !crate::model::tmux::is_shell(c));
            let guard = match (&settings.command, seen) {
                (Some(c), _) if !crate::model::tmux::SHELLS.iter().any(|s| c.is_match(s)) => {
                    c.to_string()
                }
                (_, Some(c)) => format!("^{}$", regex::escape(c)),
                _ => crate::model::tmux::AGENT_PROGRAMS.to_owned(),
            };
            let command = format!(", command = {}", toml::Value::String(guard));
            let socket = settings
                .socket
                .as_ref()
                .map(|s| format!(", socket = \"{s}\""))
                .unwrap_or_default();
            TmuxProbe {
                agent: agent.id.clone(),
                target: settings.target.clone(),
                pane,
                verdict,
                idle,
                config_line: format!(
                    "tmux = {{ target = \"{}\"{socket}{command} }}",
                    settings.target
                ),
            }
        })
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?;
        Ok(probe)
    }
}

impl App {
    /// Writes `probe`'s line (and tmux first in the delivery order) into
    /// the agent's `[[agents]]` table in `config/acp.toml`, checked by
    /// loading the result first. A table that already names its delivery
    /// order or a tmux pane is left for a person to edit.
    ///
    /// # Errors
    /// [`AppError::Refused`] saying what to edit by hand, or I/O.
    pub fn save_tmux(&self, probe: &TmuxProbe) -> Result<std::path::PathBuf, AppError> {
        let path = self.config.root.join(crate::config::CONFIG_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            AppError::Init(std::io::Error::other(format!("{}: {e}", path.display())))
        })?;
        let raw: toml::Table = toml::from_str(&text).map_err(|e| {
            super::Refused(format!(
                "{} does not parse ({e}): fix it first",
                path.display()
            ))
        })?;
        let table = raw
            .get("agents")
            .and_then(toml::Value::as_array)
            .and_then(|agents| {
                agents.iter().find(|a| {
                    a.get("id").and_then(toml::Value::as_str) == Some(probe.agent.as_str())
                })
            });
        if table.is_some_and(|t| t.get("tmux").is_some() || t.get("delivery").is_some()) {
            return Err(super::Refused(format!(
                "{}'s table in config/acp.toml already sets delivery or tmux: edit it by hand with \
                 the line above",
                probe.agent
            ))
            .into());
        }
        let id_line = format!("id = \"{}\"\n", probe.agent);
        let Some(at) = text.find(&id_line) else {
            return Err(super::Refused(format!(
                "cannot find `{}` in config/acp.toml: add the line above to the agent's table by \
                 hand",
                id_line.trim()
            ))
            .into());
        };
        let insert = format!("delivery = [\"tmux\", \"inbox\"]\n{}\n", probe.config_line);
        let mut new = text.clone();
        new.insert_str(at + id_line.len(), &insert);
        crate::config::Config::from_toml(&self.config.root, &new, &crate::config::Env::new())?;
        let temp = path.with_extension("toml.new");
        std::fs::write(&temp, &new)
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(AppError::Init)?;
        Ok(path)
    }
}
