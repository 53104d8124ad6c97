//! Errors as RFC 9457 problem details (`application/problem+json`), with
//! the same "what to do" texts as the command line.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::app::{AppError, StartedError, is_user_error};
use crate::model::{AgentError, MessageId};

/// Set on a 403 answer, with its detail, so that the door audits the
/// refusal (in bounded form) whichever handler refused.
#[derive(Debug, Clone)]
pub(crate) struct Denied(pub(crate) String);

/// One problem, as the API answers it.
#[derive(Debug)]
pub(crate) struct Problem {
    status: StatusCode,
    detail: String,
    /// Extension members (RFC 9457 §3.2), beside the standard ones.
    more: serde_json::Map<String, serde_json::Value>,
}

impl Problem {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
            more: serde_json::Map::new(),
        }
    }

    /// The problem with an extension member `key`.
    pub(crate) fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.more.insert(key.to_owned(), value.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = self.more;
        body.insert("type".into(), "about:blank".into());
        body.insert(
            "title".into(),
            self.status.canonical_reason().unwrap_or("error").into(),
        );
        body.insert("status".into(), self.status.as_u16().into());
        body.insert("detail".into(), self.detail.clone().into());
        let mut response = (self.status, axum::Json(body)).into_response();
        if self.status == StatusCode::FORBIDDEN {
            response.extensions_mut().insert(Denied(self.detail));
        }
        response.headers_mut().insert(
            axum::http::header::CONTENT_TYPE,
            axum::http::HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

impl From<AppError> for Problem {
    fn from(e: AppError) -> Self {
        if let AppError::Cron(cron) = &e {
            // The expression parses as JSON but not as cron: where it
            // fails, for a client to point at.
            return Self::new(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())
                .with("field", cron.field)
                .with("column", cron.column());
        }
        let status = match &e {
            AppError::NotFound(_)
            | AppError::NoPrompt(_)
            | AppError::NoSchedule(_)
            | AppError::Agent(AgentError::Unknown { .. })
            | AppError::NotRecipient { .. }
            | AppError::Started(StartedError::NotStarted(_)) => StatusCode::NOT_FOUND,
            AppError::NotYours { .. } | AppError::NotYoursToAnswer { .. } => StatusCode::FORBIDDEN,
            AppError::Prefix(e) if e.is_not_found() => StatusCode::NOT_FOUND,
            AppError::NotDelivered { .. }
            | AppError::NothingToRetry { .. }
            | AppError::AgentGone { .. }
            | AppError::RetryElsewhere { .. }
            | AppError::Started(_) => StatusCode::CONFLICT,
            AppError::Message(crate::model::MessageError::BodyTooLarge { .. })
            | AppError::AttachmentTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            e if is_user_error(e) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let reference = MessageId::generate();
            tracing::error!(%reference, error = %e, "API call failed");
            return Self::new(
                status,
                format!("something went wrong (ref {reference}); the error is in acp's log"),
            );
        }
        Self::new(status, e.to_string())
    }
}
