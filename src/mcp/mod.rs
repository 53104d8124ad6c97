//! `acp mcp`: a stdio MCP server (the official Rust SDK, `rmcp`) speaking
//! for one agent. Its tools call the core like every other door, with the
//! same checks and the same "what to do" texts, returned as MCP tool
//! errors; what they store is as durable and as deliverable as a message
//! sent with `acp send`.
//!
//! An agent sees only what concerns it: `read_message`, `reply`, `ack` and
//! a `reply_to` answer "no message with id ..." for another agent's
//! message, exactly as for one that does not exist, and `status` counts
//! only its own deliveries and messages.

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt, schemars, tool, tool_handler, tool_router};
use serde::Deserialize;
use serde_json::json;

use crate::app::{App, AppError, SendRequest, is_user_error};
use crate::model::{AgentId, Draft, Kind, MessageId, Recipient, Via};

/// Delivery priority.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Priority {
    Normal,
    Urgent,
    Critical,
}

impl From<Option<Priority>> for crate::model::Priority {
    fn from(p: Option<Priority>) -> Self {
        match p {
            None | Some(Priority::Normal) => Self::Normal,
            Some(Priority::Urgent) => Self::Urgent,
            Some(Priority::Critical) => Self::Critical,
        }
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct SendMessage {
    /// The agent to send to (for example Agent-2), or "discord" for the
    /// people on Discord.
    #[schemars(length(min = 1, max = 32))]
    to: String,
    /// What to say.
    #[schemars(length(min = 1, max = 16384))]
    body: String,
    priority: Option<Priority>,
    /// The id of the message this answers.
    #[schemars(length(equal = 26))]
    reply_to: Option<String>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Broadcast {
    /// What to tell every agent.
    #[schemars(length(min = 1, max = 16384))]
    body: String,
    priority: Option<Priority>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListInbox {
    /// Only messages not acknowledged yet (the default).
    unread_only: Option<bool>,
    /// How many, newest first (default 20).
    #[schemars(range(min = 1, max = 200))]
    limit: Option<u32>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct MessageRef {
    /// A message id (26 characters).
    #[schemars(length(equal = 26))]
    id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Reply {
    /// The message to answer.
    #[schemars(length(equal = 26))]
    id: String,
    /// The answer.
    #[schemars(length(min = 1, max = 16384))]
    body: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct PostDevlog {
    /// A markdown file under devlogs/ (a path relative to devlogs/, or
    /// absolute inside it).
    #[schemars(length(min = 1, max = 4096))]
    path: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct Nothing {}

/// How the captain answers a prompt.
#[derive(Debug, Clone, Copy, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
enum Answer {
    Allow,
    AllowSession,
    Deny,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct DecidePrompt {
    /// The prompt's id (26 characters), from `list_prompts`.
    #[schemars(length(equal = 26))]
    id: String,
    decision: Answer,
    /// A deny's reason, told to the agent.
    #[schemars(length(max = 500))]
    reason: Option<String>,
}

/// The server, speaking for one agent.
#[derive(Clone)]
pub struct AcpMcp {
    app: Arc<App>,
    agent: AgentId,
    #[expect(dead_code, reason = "the tool_handler macro reads the router")]
    tool_router: ToolRouter<Self>,
}

/// An answer: JSON text on success, the core's error text as a tool error.
fn answer(result: Result<serde_json::Value, AppError>) -> CallToolResult {
    match result {
        Ok(value) => CallToolResult::success(vec![ContentBlock::text(value.to_string())]),
        Err(e) if is_user_error(&e) => {
            CallToolResult::error(vec![ContentBlock::text(e.to_string())])
        }
        Err(e) => {
            let reference = MessageId::generate();
            tracing::error!(%reference, error = %e, "MCP tool failed");
            CallToolResult::error(vec![ContentBlock::text(format!(
                "something went wrong (ref {reference}); the error is in acp's log"
            ))])
        }
    }
}

fn id(text: &str) -> Result<MessageId, AppError> {
    Ok(text.parse()?)
}

#[tool_router]
impl AcpMcp {
    /// The server for `agent`.
    #[must_use]
    pub fn new(app: Arc<App>, agent: AgentId) -> Self {
        Self {
            app,
            agent,
            tool_router: Self::tool_router(),
        }
    }

    /// Message `text`, if it concerns this agent; otherwise the same "no
    /// message with id" as for one that does not exist.
    async fn mine(&self, text: &str) -> Result<MessageId, AppError> {
        let id = id(text)?;
        self.app.read_as(id, &self.agent).await?;
        Ok(id)
    }

    /// Stores a message and, when no `acp run` delivers for the root,
    /// makes the first attempt itself (as `acp send` does).
    async fn store(&self, request: SendRequest) -> Result<serde_json::Value, AppError> {
        let message = self.app.send(request).await?;
        let deliveries = if self.app.delivering() || message.to == Recipient::Discord {
            self.app.read(message.id).await?.1
        } else {
            self.app
                .deliver_here(message.id, false, std::time::Duration::ZERO)
                .await?
        };
        Ok(json!({ "id": message.id, "deliveries": deliveries }))
    }

    #[tool(
        description = "Send a message to one agent (or to the people on Discord with to = \"discord\"). It is stored durably before this returns."
    )]
    async fn send_message(&self, Parameters(p): Parameters<SendMessage>) -> CallToolResult {
        let result = async {
            let to = if p.to.eq_ignore_ascii_case("discord") {
                Recipient::Discord
            } else {
                Recipient::Agent(self.app.agents().lookup(&p.to)?.id.clone())
            };
            let kind = if to == Recipient::Discord {
                Kind::Report
            } else {
                Kind::AgentToAgent
            };
            let request = SendRequest {
                draft: Draft {
                    from: self.agent.to_string(),
                    to,
                    kind,
                    priority: p.priority.into(),
                    body: p.body,
                    tags: Vec::new(),
                    reply_to: match p.reply_to.as_deref() {
                        Some(text) => Some(self.mine(text).await?),
                        None => None,
                    },
                },
                via: Via::Auto,
            };
            self.store(request).await
        };
        answer(result.await)
    }

    #[tool(description = "Send a message to every agent (one delivery each).")]
    async fn broadcast(&self, Parameters(p): Parameters<Broadcast>) -> CallToolResult {
        let request = SendRequest {
            draft: Draft {
                from: self.agent.to_string(),
                to: Recipient::Broadcast,
                kind: Kind::Broadcast,
                priority: p.priority.into(),
                body: p.body,
                tags: Vec::new(),
                reply_to: None,
            },
            via: Via::Auto,
        };
        answer(self.store(request).await)
    }

    #[tool(
        description = "List this agent's messages, newest first. Listing does not acknowledge them."
    )]
    async fn list_inbox(&self, Parameters(p): Parameters<ListInbox>) -> CallToolResult {
        let result = async {
            let limit = usize::try_from(p.limit.unwrap_or(20).clamp(1, 200)).unwrap_or(20);
            let entries = self
                .app
                .inbox(self.agent.as_str(), p.unread_only.unwrap_or(true), limit)
                .await?;
            Ok(serde_json::to_value(entries).unwrap_or_default())
        };
        answer(result.await)
    }

    #[tool(
        description = "Read one message and its delivery history: a message to this agent (or to every agent), or one it sent."
    )]
    async fn read_message(&self, Parameters(p): Parameters<MessageRef>) -> CallToolResult {
        let result = async {
            let (message, deliveries) = self.app.read_as(id(&p.id)?, &self.agent).await?;
            Ok(json!({ "message": message, "deliveries": deliveries }))
        };
        answer(result.await)
    }

    #[tool(description = "Acknowledge a message sent to this agent, once acted on.")]
    async fn ack(&self, Parameters(p): Parameters<MessageRef>) -> CallToolResult {
        let result = async {
            let me = self.agent.to_string();
            let id = self.mine(&p.id).await?;
            let (agent, result) = self.app.ack(id, None, Some(&me), None, &me).await?;
            Ok(json!({ "agent": agent, "ack": result }))
        };
        answer(result.await)
    }

    #[tool(
        description = "Answer a message where it came from: the Discord channel it was sent from, or the inbox of the agent or person that sent it."
    )]
    async fn reply(&self, Parameters(p): Parameters<Reply>) -> CallToolResult {
        let result = async {
            let message = self
                .app
                .reply(
                    self.mine(&p.id).await?,
                    p.body,
                    crate::app::Replier::Agent(self.agent.as_str()),
                    crate::model::Priority::Normal,
                    &[],
                )
                .await?;
            if !self.app.delivering() && message.to != Recipient::Discord {
                self.app
                    .deliver_here(message.id, false, std::time::Duration::ZERO)
                    .await?;
            }
            Ok(json!({ "id": message.id, "to": message.to }))
        };
        answer(result.await)
    }

    #[tool(
        description = "Post a devlog (a markdown file under devlogs/) to Discord, unless this content was posted before."
    )]
    async fn post_devlog(&self, Parameters(p): Parameters<PostDevlog>) -> CallToolResult {
        let result = async {
            let post = self
                .app
                .post_devlog(std::path::Path::new(&p.path), Some(&self.agent))
                .await?;
            Ok(serde_json::to_value(post).unwrap_or_default())
        };
        answer(result.await)
    }

    #[tool(
        description = "For the captain, when approval.captain_decides is set: the other agents' prompts waiting for an answer."
    )]
    async fn list_prompts(&self, Parameters(_): Parameters<Nothing>) -> CallToolResult {
        let result = async {
            self.app.captain_may_decide(&self.agent).await?;
            let prompts: Vec<_> = self
                .app
                .open_prompts()
                .await?
                .into_iter()
                .filter(|p| p.agent != self.agent)
                .collect();
            Ok(serde_json::to_value(prompts).unwrap_or_default())
        };
        answer(result.await)
    }

    #[tool(
        description = "For the captain, when approval.captain_decides is set: answer another agent's prompt (allow, allow_session or deny). The first answer wins, whoever gives it."
    )]
    async fn decide_prompt(&self, Parameters(p): Parameters<DecidePrompt>) -> CallToolResult {
        let result = async {
            let id: crate::model::PromptId =
                p.id.parse()
                    .map_err(|e: crate::model::attention::BadPromptId| {
                        AppError::from(crate::app::Refused(e.to_string()))
                    })?;
            let decision = match p.decision {
                Answer::Allow => crate::model::Decision::Allow,
                Answer::AllowSession => crate::model::Decision::AllowSession,
                Answer::Deny => crate::model::Decision::Deny,
            };
            match self
                .app
                .decide_as_captain(&self.agent, id, decision, p.reason.as_deref())
                .await?
            {
                crate::app::Decide::Won(kept) => Ok(json!({ "prompt": id, "decided": kept })),
                crate::app::Decide::Already(kept) => {
                    Err(AppError::from(crate::app::Refused(format!(
                        "prompt {id} was already {} by {}: this answer was not used",
                        kept.decision.said(),
                        kept.by
                    ))))
                }
                crate::app::Decide::NotFound => Err(AppError::NoPrompt(id)),
            }
        };
        answer(result.await)
    }

    #[tool(
        description = "The agents, with their roles, the captain, last delivery and unacknowledged count."
    )]
    async fn list_agents(&self, Parameters(_): Parameters<Nothing>) -> CallToolResult {
        let result =
            async { Ok(serde_json::to_value(self.app.agent_views().await?).unwrap_or_default()) };
        answer(result.await)
    }

    #[tool(
        description = "This agent's deliveries by state and priority (those to it and those of messages it sent), its last delivery, and their recent failures."
    )]
    async fn status(&self, Parameters(_): Parameters<Nothing>) -> CallToolResult {
        let result = async {
            Ok(serde_json::to_value(self.app.status_as(&self.agent).await?).unwrap_or_default())
        };
        answer(result.await)
    }
}

#[tool_handler]
impl ServerHandler for AcpMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions(instructions(self.agent.as_str()))
    }
}

/// What the server tells the agent when it connects (MCP's
/// `instructions`); docs/mcp.md quotes it, and a test keeps the two equal.
#[must_use]
pub fn instructions(agent: &str) -> String {
    format!(
        "You are {agent}. Messages for you arrive in your inbox: list_inbox, read_message, then \
         ack once you have acted on one. Answer with reply (it goes where the message came \
         from), write to other agents with send_message, and end every task with post_devlog."
    )
}

/// Serves MCP on standard input and output for `agent` until the client
/// closes the connection.
///
/// # Errors
/// [`AppError`] for an unknown agent, or when the transport fails.
pub async fn serve_stdio(app: Arc<App>, agent: &str) -> Result<(), AppError> {
    let agent = app.agents().lookup(agent)?.id.clone();
    let server = AcpMcp::new(app, agent)
        .serve(rmcp::transport::io::stdio())
        .await
        .map_err(|e| AppError::Mcp(e.to_string()))?;
    server
        .waiting()
        .await
        .map_err(|e| AppError::Mcp(e.to_string()))?;
    Ok(())
}
