//! Delivery methods and the dispatcher that drives them.
//!
//! A method puts one message in front of one agent. The dispatcher tries an
//! agent's methods in order (default: the inbox; keyboard-and-mouse delivery
//! plugs in as `gui`), records every attempt, and retries transient failures.

pub mod dispatcher;
pub mod gui;
pub mod inbox;

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::agents::Agent;
use crate::message::UnifiedMessage;

pub use dispatcher::Dispatcher;

/// The name of a delivery method, as written in config and the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MethodName {
    /// Keyboard and mouse into the agent's chat window.
    Gui,
    /// A markdown file in the agent's workspace inbox.
    Inbox,
}

impl MethodName {
    /// The name as text.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Gui => "gui",
            Self::Inbox => "inbox",
        }
    }
}

impl fmt::Display for MethodName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A method name that is not known.
#[derive(Debug, thiserror::Error)]
#[error("unknown delivery method {0:?}: use gui or inbox")]
pub struct UnknownMethod(pub String);

impl FromStr for MethodName {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "gui" => Ok(Self::Gui),
            "inbox" => Ok(Self::Inbox),
            other => Err(UnknownMethod(other.chars().take(32).collect())),
        }
    }
}

/// Which methods one message may use, chosen by the sender (`--via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Via {
    /// The agent's configured order.
    #[default]
    Auto,
    /// Only this method, no fallback.
    Only(MethodName),
}

impl Via {
    /// The text stored and shown: `auto`, `gui` or `inbox`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Only(m) => m.as_str(),
        }
    }

    /// The methods to try, in order, for this agent.
    #[must_use]
    pub fn methods_for(self, agent: &Agent) -> Vec<MethodName> {
        match self {
            Self::Auto => agent.delivery.clone(),
            Self::Only(m) => vec![m],
        }
    }
}

impl FromStr for Via {
    type Err = UnknownMethod;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "auto" {
            Ok(Self::Auto)
        } else {
            s.parse()
                .map(Self::Only)
                .map_err(|_| UnknownMethod(s.chars().take(32).collect()))
        }
    }
}

/// How an attempt failed, which decides what the dispatcher does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureKind {
    /// Might work later (disk full, permission being fixed, window busy):
    /// retried with backoff.
    Transient,
    /// Will not work for this message with this method: not retried.
    Permanent,
    /// The method cannot run here at all (no display, not built in):
    /// the next method is tried, no retry on its account.
    Unavailable,
}

impl FailureKind {
    /// The name stored with an attempt.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Transient => "transient",
            Self::Permanent => "permanent",
            Self::Unavailable => "unavailable",
        }
    }
}

/// Why one method could not deliver one message.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{reason}")]
pub struct DeliveryError {
    pub kind: FailureKind,
    pub reason: String,
}

impl DeliveryError {
    /// A failure worth retrying.
    #[must_use]
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Transient,
            reason: reason.into(),
        }
    }

    /// A failure not worth retrying with this method.
    #[must_use]
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Permanent,
            reason: reason.into(),
        }
    }

    /// The method cannot run here.
    #[must_use]
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            kind: FailureKind::Unavailable,
            reason: reason.into(),
        }
    }
}

/// A way of putting a message in front of an agent. Implementations are
/// called from blocking threads, one message at a time per agent.
pub trait DeliveryMethod: Send + Sync {
    /// Which method this is.
    fn name(&self) -> MethodName;

    /// Delivers `message` to `agent`. Must be idempotent per message id for
    /// the inbox (a retry after a crash must not make a second copy).
    /// Returns a short detail for the receipt (for example the inbox file).
    ///
    /// # Errors
    /// A [`DeliveryError`] saying why, and whether to retry.
    fn deliver(&self, agent: &Agent, message: &UnifiedMessage) -> Result<String, DeliveryError>;
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

    /// Every method, set up from the config: the inbox and keyboard and
    /// mouse. This is what `acp run` and `acp send` use.
    #[must_use]
    pub fn for_config(config: &crate::config::Config) -> Self {
        let mut methods = Self::standard();
        methods.add(Arc::new(gui::GuiMethod::start(config)));
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
