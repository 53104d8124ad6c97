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
}

impl Problem {
    pub(crate) fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            detail: detail.into(),
        }
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::json!({
            "type": "about:blank",
            "title": self.status.canonical_reason().unwrap_or("error"),
            "status": self.status.as_u16(),
            "detail": self.detail,
        });
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
        let status = match &e {
            AppError::NotFound(_)
            | AppError::NoPrompt(_)
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
