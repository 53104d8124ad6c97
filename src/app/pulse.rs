// Over 400 lines with its unit tests: the loop, its look at the panes and the words it posts,
// which read best side by side.

//! The pulse: an agent with no activity for `[pulse] after_minutes` gets a
//! nudge (a message from `pulse`), once per quiet spell, and the person is
//! told in the agent's Discord thread.
//!
//! Activity is what the store keeps of the agent (see
//! [`Store::last_activity`](crate::store::Store::last_activity)): a message
//! delivered to it, a message or an ack from it, a change of its state, a
//! hook event, and its tmux pane changing, which this loop looks at and
//! notes. What the pulse sends is never activity, so a spell ends only
//! when the agent (or someone writing to it) does something. A spell is
//! keyed by the activity it follows and decided once in the store, with
//! its nudge and note in the same transaction: a restart, or a second
//! look, never nudges it again.
//!
//! An agent that waits for a person (an open prompt, or `needs_approval`,
//! `asking`, `done`, `exited`) is not quiet: it is the person's turn.
//! During `quiet_hours` nobody is nudged; a spell still quiet when they
//! end is nudged then, once.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio_util::sync::CancellationToken;

use super::{App, AppError, blocking};
use crate::model::attention::waited;
use crate::model::tmux::TmuxSettings;
use crate::model::{AgentId, Destination, Draft, Kind, MessageId, Priority, Recipient, Via};
use crate::store::pulse::{LastActivity, PULSE_SENDER, Pulse};
use crate::store::{Submission, now_ms};

/// How often the loop looks: a sixth of the quiet time, within these.
const TICK_MIN: Duration = Duration::from_millis(200);
const TICK_MAX: Duration = Duration::from_secs(10);

/// How often a busy agent's signs of life are written: a tenth of the
/// quiet time, at most once a minute.
#[must_use]
fn note_every(after: Duration) -> i64 {
    let every = (after / 10).min(Duration::from_secs(60));
    i64::try_from(every.as_millis()).unwrap_or(60_000).max(1)
}

fn tick(after: Duration) -> Duration {
    (after / 6).clamp(TICK_MIN, TICK_MAX)
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// What the loop keeps between looks.
#[derive(Default)]
struct Memory {
    /// Each tmux pane's screen as last seen (a hash).
    panes: HashMap<AgentId, u64>,
    /// Agents just nudged (the nudge, when): their pane changes are the
    /// nudge arriving (not the agent's doing) until its delivery is over
    /// and has settled, or one quiet time has passed.
    settling: HashMap<AgentId, (MessageId, i64)>,
    /// Spells held for the quiet hours (said once in the log).
    held: HashSet<(AgentId, i64)>,
}

/// The nudge's text: the configured one, `{quiet}` filled in.
fn nudge_text(template: &str, quiet_ms: i64) -> String {
    template.replace("{quiet}", &waited(quiet_ms))
}

/// `at` (ms since the epoch) as a time of day in `zone`: "14:02 CET".
fn clock(at: i64, zone: &jiff::tz::TimeZone) -> String {
    Timestamp::from_millisecond(at).map_or_else(
        |_| at.to_string(),
        |t| {
            t.to_zoned_datetime(zone.clone())
                .strftime("%H:%M %Z")
                .to_string()
        },
    )
}

/// What tells the person: how long, the last sign of the agent, the nudge.
fn note_text(
    quiet_ms: i64,
    last: Option<&LastActivity>,
    zone: &jiff::tz::TimeZone,
    nudge: MessageId,
) -> String {
    let quiet = waited(quiet_ms);
    match last {
        Some(last) => format!(
            "💤 quiet for {quiet} (last: {} at {}): nudged (message {nudge})",
            last.source.said(),
            clock(last.at, zone)
        ),
        None => format!(
            "💤 quiet for {quiet}, nothing seen of it since acp run started: nudged (message \
             {nudge})"
        ),
    }
}

/// An agent as `acp agents` shows it to the pulse: active a moment ago,
/// or quiet this long, and whether this spell was nudged.
fn pulse_word(
    now: i64,
    after: Duration,
    last: Option<&LastActivity>,
    pulse: Option<&Pulse>,
    zone: &jiff::tz::TimeZone,
) -> String {
    let word = match last {
        Some(l) if now - l.at >= ms(after) => {
            format!(
                "quiet for {} (last: {})",
                waited(now - l.at),
                l.source.said()
            )
        }
        Some(l) => format!("active {} ago ({})", waited(now - l.at), l.source.said()),
        None => "no activity seen yet".to_owned(),
    };
    let spell_from = last.map_or(0, |l| l.at);
    match pulse.filter(|p| p.spell_from >= spell_from) {
        Some(p) => format!("{word}, nudged at {}", clock(p.at, zone)),
        None => word,
    }
}

/// The screen of an agent's pane, hashed; `None` when it cannot be read.
fn pane_hash(s: &TmuxSettings) -> Option<u64> {
    let pane = crate::delivery::tmux::inspect(s).ok()?;
    let screen = crate::delivery::tmux::screen(s, &pane.id).ok()?;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    screen.hash(&mut h);
    Some(h.finish())
}

impl App {
    /// The agents the pulse watches here: this machine's, in
    /// `[pulse] agents` (every agent when it names none).
    fn pulse_agents(&self) -> Vec<AgentId> {
        self.registry
            .all()
            .iter()
            .filter(|a| self.is_local(a) && self.config.pulse.watches(&a.id))
            .map(|a| a.id.clone())
            .collect()
    }

    /// Nudges quiet agents until `cancel`: what `acp run` does when
    /// `[pulse] after_minutes` is set (not on a node of a swarm: the hub
    /// pulses).
    pub async fn run_pulse(self: Arc<Self>, cancel: CancellationToken) {
        let Some(after) = self.config.pulse.after else {
            return;
        };
        if self.config.cluster.as_ref().is_some_and(|c| !c.is_hub()) {
            return;
        }
        if let Some(listed) = &self.config.pulse.agents {
            for id in listed.iter().filter(|id| self.registry.get(id).is_err()) {
                tracing::warn!(agent = %id, "[pulse] agents names an agent acp does not know: it is left out");
            }
        }
        let every = tick(after);
        tracing::info!(
            after = %waited(ms(after)),
            quiet_hours = %self.config.pulse.quiet_hours.map(|q| q.to_string()).unwrap_or_default(),
            "the pulse nudges agents that go quiet"
        );
        let started = now_ms();
        let mut memory = Memory::default();
        loop {
            if let Err(e) = self.pulse_once(started, &mut memory).await {
                tracing::warn!(error = %e, "the pulse could not look at the agents; trying again");
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
        }
    }

    /// One look at every agent the pulse watches: their panes first (a
    /// change is a sign of life), then each one quiet long enough is
    /// nudged, once per spell. Returns how many were nudged.
    async fn pulse_once(&self, started: i64, memory: &mut Memory) -> Result<usize, AppError> {
        let Some(after) = self.config.pulse.after else {
            return Ok(0);
        };
        let agents = self.pulse_agents();
        self.look_at_panes(&agents, after, memory).await?;
        let waiting: HashSet<String> = self.waiting().await?.into_iter().map(|w| w.agent).collect();
        let zone = self.schedule_zone();
        let quiet_hours = self
            .config
            .pulse
            .quiet_hours
            .filter(|q| q.contains(Timestamp::now().to_zoned_datetime(zone.clone()).time()));
        if quiet_hours.is_none() {
            memory.held.clear();
        }
        let mut nudged = 0;
        for agent in agents {
            if waiting.contains(agent.as_str()) {
                continue;
            }
            let (store, who) = (Arc::clone(&self.store), agent.to_string());
            let last = blocking(move || store.last_activity(&who)).await?;
            let spell_from = last.as_ref().map_or(0, |l| l.at);
            let now = now_ms();
            // Nothing is known of the time acp run was down: a spell is
            // counted from the start at the earliest.
            if now - spell_from.max(started) < ms(after) {
                continue;
            }
            let (store, who) = (Arc::clone(&self.store), agent.to_string());
            if blocking(move || store.pulsed(&who, spell_from)).await? {
                continue;
            }
            if let Some(q) = quiet_hours {
                if memory.held.insert((agent.clone(), spell_from)) {
                    tracing::info!(%agent, quiet_hours = %q, "an agent is quiet, in the quiet hours: nudged when they end, if still quiet");
                }
                continue;
            }
            let quiet_ms = now - if spell_from > 0 { spell_from } else { started };
            if let Some(id) = self
                .nudge(&agent, spell_from, quiet_ms, last.as_ref())
                .await?
            {
                memory.settling.insert(agent, (id, now));
                nudged += 1;
            }
        }
        Ok(nudged)
    }

    /// Looks at each watched tmux pane here: one that changed since the
    /// last look is a sign of life, noted (unless it is the nudge
    /// arriving).
    async fn look_at_panes(
        &self,
        agents: &[AgentId],
        after: Duration,
        memory: &mut Memory,
    ) -> Result<(), AppError> {
        let panes: Vec<(AgentId, TmuxSettings)> = self
            .local_tmux_agents()
            .into_iter()
            .filter(|(id, _)| agents.contains(id))
            .collect();
        if panes.is_empty() {
            return Ok(());
        }
        let seen = tokio::task::spawn_blocking(move || {
            panes
                .into_iter()
                .map(|(id, s)| (id, pane_hash(&s)))
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|_| AppError::Store(crate::store::StoreError::Interrupted))?;
        for (agent, hash) in seen {
            let Some(hash) = hash else {
                memory.panes.remove(&agent);
                continue;
            };
            let changed = memory
                .panes
                .insert(agent.clone(), hash)
                .is_some_and(|before| before != hash);
            if changed && !self.settling(&agent, after, memory).await? {
                let store = Arc::clone(&self.store);
                let (who, every) = (agent.to_string(), note_every(after));
                blocking(move || store.note_alive(&who, now_ms(), "pane", every)).await?;
            }
        }
        Ok(())
    }

    /// Whether `agent`'s pane may still be showing the nudge arrive: its
    /// delivery is not over, or ended less than two looks ago (for one quiet
    /// time at most).
    async fn settling(
        &self,
        agent: &AgentId,
        after: Duration,
        memory: &mut Memory,
    ) -> Result<bool, AppError> {
        let Some((id, nudged_at)) = memory.settling.get(agent).copied() else {
            return Ok(false);
        };
        let store = Arc::clone(&self.store);
        let deliveries = blocking(move || store.deliveries_of(id)).await?;
        let now = now_ms();
        let over = now - nudged_at > ms(after)
            || deliveries
                .iter()
                .find(|d| d.agent == agent.as_str())
                .is_none_or(|d| d.is_final() && now - d.updated_at > 2 * ms(tick(after)));
        if over {
            memory.settling.remove(agent);
        }
        Ok(!over)
    }

    /// Nudges `agent` for its spell after `spell_from`: the nudge and the
    /// note to the person stored once, with the spell. The nudge's id, if
    /// this call stored it.
    async fn nudge(
        &self,
        agent: &AgentId,
        spell_from: i64,
        quiet_ms: i64,
        last: Option<&LastActivity>,
    ) -> Result<Option<MessageId>, AppError> {
        let pulse = &self.config.pulse;
        let message = Draft {
            from: PULSE_SENDER.to_owned(),
            to: Recipient::Agent(agent.clone()),
            kind: Kind::System,
            priority: pulse.priority,
            body: nudge_text(&pulse.text, quiet_ms),
            tags: vec!["pulse".into()],
            reply_to: None,
        }
        // Made here from checked config: a long `{quiet}` never makes it
        // too big to send.
        .build(self.config.limits.max_body_bytes.max(pulse.text.len() + 64))?;
        let id = message.id;
        let nudge = Submission {
            message,
            via: Via::Auto,
            to: vec![Destination::Agent(agent.clone())],
            audit: None,
        };
        let note = self
            .thread_post(
                agent,
                note_text(quiet_ms, last, &self.schedule_zone(), id),
                Priority::Normal,
                "pulse",
            )
            .await;
        let (store, who, n, note_owned) = (
            Arc::clone(&self.store),
            agent.to_string(),
            nudge.clone(),
            note.clone(),
        );
        let now = now_ms();
        let stored =
            blocking(move || store.pulse(&who, spell_from, now, &n, note_owned.as_ref())).await?;
        if !stored {
            return Ok(None);
        }
        tracing::info!(%agent, quiet = %waited(quiet_ms), message = %id, "nudged a quiet agent");
        self.accepted(&nudge.message, 1);
        if let Some(note) = note {
            self.accepted(&note.message, 1);
        }
        Ok(Some(id))
    }

    /// For each agent, in the registry's order, with the pulse on for it
    /// here: how long it has been quiet, and whether this spell was
    /// nudged.
    ///
    /// # Errors
    /// [`AppError::Store`].
    pub(super) async fn pulse_words(&self) -> Result<Vec<Option<String>>, AppError> {
        let all = self.registry.all();
        let Some(after) = self.config.pulse.after else {
            return Ok(vec![None; all.len()]);
        };
        let watched: Vec<Option<String>> = all
            .iter()
            .map(|a| {
                (self.is_local(a) && self.config.pulse.watches(&a.id)).then(|| a.id.to_string())
            })
            .collect();
        let store = Arc::clone(&self.store);
        let found = blocking(move || {
            watched
                .into_iter()
                .map(|agent| match agent {
                    Some(agent) => Ok(Some((
                        store.last_activity(&agent)?,
                        store.last_pulse(&agent)?,
                    ))),
                    None => Ok(None),
                })
                .collect::<Result<Vec<_>, crate::store::StoreError>>()
        })
        .await?;
        let (now, zone) = (now_ms(), self.schedule_zone());
        Ok(found
            .into_iter()
            .map(|f| {
                f.map(|(last, pulse)| pulse_word(now, after, last.as_ref(), pulse.as_ref(), &zone))
            })
            .collect())
    }

    /// A hook event that left `agent` in the state it was in (a tool used
    /// while working) is still a sign of life: noted for the pulse, at
    /// most once per a tenth of its quiet time.
    pub(super) async fn note_hook_event(&self, agent: &AgentId, evidence: &str) {
        let Some(after) = self.config.pulse.after else {
            return;
        };
        let (store, who, evidence) = (
            Arc::clone(&self.store),
            agent.to_string(),
            evidence.to_owned(),
        );
        let every = note_every(after);
        if let Err(e) = blocking(move || store.note_alive(&who, now_ms(), &evidence, every)).await {
            tracing::warn!(%agent, error = %e, "cannot note a hook event for the pulse");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::pulse::Source;

    #[test]
    fn the_nudge_and_the_note_say_how_long_and_what_was_last() {
        assert_eq!(
            nudge_text(&crate::config::PulseConfig::default().text, 42 * 60_000),
            "You have been quiet for 42 min. If you are blocked, say what you need; otherwise \
             continue with your task."
        );
        let id = MessageId::generate();
        let utc = jiff::tz::TimeZone::UTC;
        let last = LastActivity {
            at: 3_600_000,
            source: Source::Delivered,
        };
        assert_eq!(
            note_text(90_000, Some(&last), &utc, id),
            format!(
                "💤 quiet for 1 min (last: a message delivered to it at 01:00 UTC): nudged (message {id})"
            )
        );
        assert!(note_text(5_000, None, &utc, id).contains("since acp run started"));
    }

    #[test]
    fn acp_agents_says_active_or_quiet_and_nudged() {
        let utc = jiff::tz::TimeZone::UTC;
        let after = Duration::from_secs(600);
        let last = LastActivity {
            at: 0,
            source: Source::Sent,
        };
        assert_eq!(
            pulse_word(30_000, after, Some(&last), None, &utc),
            "active 30 s ago (a message from it)"
        );
        let nudged = Pulse {
            spell_from: 0,
            at: 660_000,
            message_id: "x".into(),
        };
        assert_eq!(
            pulse_word(2_520_000, after, Some(&last), Some(&nudged), &utc),
            "quiet for 42 min (last: a message from it), nudged at 00:11 UTC"
        );
        // A nudge of an earlier spell is not this one's.
        let later = LastActivity { at: 1, ..last };
        assert!(
            !pulse_word(2_520_000, after, Some(&later), Some(&nudged), &utc).contains("nudged")
        );
        assert_eq!(
            pulse_word(1, after, None, None, &utc),
            "no activity seen yet"
        );
    }

    #[test]
    fn the_loop_looks_often_enough_and_writes_rarely() {
        assert_eq!(tick(Duration::from_secs(1800)), TICK_MAX);
        assert_eq!(tick(Duration::from_secs(3)), Duration::from_millis(500));
        assert_eq!(tick(Duration::from_millis(600)), TICK_MIN);
        assert_eq!(note_every(Duration::from_secs(1800)), 60_000);
        assert_eq!(note_every(Duration::from_secs(6)), 600);
    }
}
