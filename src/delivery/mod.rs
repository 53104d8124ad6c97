//! Delivery methods and the dispatcher that drives them.
//!
//! A method puts one message in front of one agent. The dispatcher tries an
//! agent's methods in order (default: the inbox; keyboard-and-mouse delivery
//! plugs in as `gui`), records every attempt, and retries transient failures.

pub mod discord;
pub mod dispatcher;
pub mod gui;
pub mod inbox;
pub mod lease;
pub mod person;
pub mod tmux;

use std::collections::HashMap;
use std::sync::Arc;

use crate::model::{Agent, DeliveryError, MethodName, UnifiedMessage};

pub use dispatcher::Dispatcher;

/// Who one delivery is for, as a method sees it.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    /// An agent, with its settings.
    Agent(&'a Agent),
    /// The people on Discord.
    Discord,
    /// An agent of another machine, reached through it (the `cluster`
    /// method), with the methods the sender allowed.
    Remote(&'a Agent, crate::model::Via),
    /// One person's inbox.
    Person(&'a crate::model::PersonName),
}

impl<'a> Target<'a> {
    /// The agent, or the error a method that only reaches agents gives.
    ///
    /// # Errors
    /// [`DeliveryError`] (unavailable) for Discord.
    pub fn agent(self, method: MethodName) -> Result<&'a Agent, DeliveryError> {
        match self {
            Self::Agent(agent) => Ok(agent),
            Self::Discord => Err(DeliveryError::unavailable(format!(
                "{method} delivers to agents, not to Discord"
            ))),
            Self::Person(name) => Err(DeliveryError::unavailable(format!(
                "{method} delivers to agents, not to a person's inbox ({name})"
            ))),
            Self::Remote(agent, _) => Err(DeliveryError::unavailable(format!(
                "{} runs on another machine ({}): {method} cannot reach it from here",
                agent.id,
                agent
                    .node
                    .as_ref()
                    .map_or("?", crate::model::NodeName::as_str)
            ))),
        }
    }
}

/// A way of putting a message in front of its recipient. Implementations
/// are called from blocking threads, one message at a time per recipient.
pub trait DeliveryMethod: Send + Sync {
    /// Which method this is.
    fn name(&self) -> MethodName;

    /// Delivers `message` to `to`. Must be idempotent per message id (a
    /// retry after a crash must not make a second copy). Returns a short
    /// detail for the receipt (for example the inbox file).
    ///
    /// # Errors
    /// A [`DeliveryError`] saying why, and whether to retry.
    fn deliver(&self, to: Target<'_>, message: &UnifiedMessage) -> Result<String, DeliveryError>;
}

/// The methods available in this process, by name.
#[derive(Clone, Default)]
pub struct Methods(HashMap<MethodName, Arc<dyn DeliveryMethod>>);

impl Methods {
    /// The methods every build has: the inbox.
    #[must_use]
    pub fn standard() -> Self {
        let mut methods = Self::default();
        methods.add(Arc::new(inbox::InboxMethod));
        methods
    }

    /// Every method: the inbox, people's inboxes (under `people`), tmux
    /// (pane locks under `tmux_locks`), and keyboard and mouse with its
    /// settings, the agents' points and the keyboard lock. This is what
    /// `acp run` and `acp send` use.
    #[must_use]
    pub fn all(
        gui: &crate::config::GuiConfig,
        points: gui::Points,
        gui_lock: std::path::PathBuf,
        tmux_locks: std::path::PathBuf,
        people: std::path::PathBuf,
    ) -> Self {
        let mut methods = Self::standard();
        methods.add(Arc::new(person::PersonMethod::new(people)));
        methods.add(Arc::new(gui::GuiMethod::start(gui, points, gui_lock)));
        methods.add(Arc::new(tmux::TmuxMethod::new(tmux_locks)));
        methods
    }

    /// Adds or replaces a method.
    pub fn add(&mut self, method: Arc<dyn DeliveryMethod>) {
        self.0.insert(method.name(), method);
    }

    /// The method of that name, if this process has it.
    #[must_use]
    pub fn get(&self, name: MethodName) -> Option<&Arc<dyn DeliveryMethod>> {
        self.0.get(&name)
    }
}
