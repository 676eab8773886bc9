//! One error type for every HTTP answer, with one JSON shape.
//!
//! Handlers return `Result<_, AppError>`. An `AppError` made with a helper
//! (`bad_request`, `not_found`, …) carries a message for the caller that says
//! what was wrong and what to do. Any other error converts into a 500 whose
//! details are logged and never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jamstack_proto::ErrorBody;

#[derive(Debug)]
pub struct AppError {
    status: StatusCode,
    message: String,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AppError {
            status,
            message: message.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// What the caller is told (the dashboard shows it on an error page).
    pub fn message(&self) -> &str {
        &self.message
    }
}

pub fn forbidden(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::FORBIDDEN, message)
}

pub fn bad_request(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::BAD_REQUEST, message)
}

pub fn unauthorized(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::UNAUTHORIZED, message)
}

pub fn not_found(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::NOT_FOUND, message)
}

pub fn conflict(message: impl Into<String>) -> AppError {
    AppError::new(StatusCode::CONFLICT, message)
}

impl From<anyhow::Error> for AppError {
    fn from(error: anyhow::Error) -> Self {
        // A build asked of a site without a repository: the asker can fix it.
        if let Some(refused) = error.downcast_ref::<crate::builds::NoRepository>() {
            return conflict(refused.to_string());
        }
        tracing::error!(error = format!("{error:#}"), "internal error");
        AppError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal error; the controller's log has the details",
        )
    }
}

impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        anyhow::Error::from(error).into()
    }
}

/// A deploy the intake refused: the sender is told why, with the status
/// that says whether to fix the request (400), make it smaller (413), or
/// send every file instead of the changes since a base deploy (412).
impl From<crate::deploys::intake::IntakeError> for AppError {
    fn from(error: crate::deploys::intake::IntakeError) -> Self {
        use crate::deploys::intake::IntakeError;
        match error {
            IntakeError::Refused(message) => bad_request(message),
            IntakeError::TooLarge(message) => AppError::new(StatusCode::PAYLOAD_TOO_LARGE, message),
            IntakeError::BaseRefused(message) => AppError::new(StatusCode::PRECONDITION_FAILED, message),
            IntakeError::Internal(error) => error.into(),
        }
    }
}

/// A call about a leased job refused: a runner whose lease is gone is told
/// to stop (409); one whose build, site or deploy is gone, what vanished.
impl From<crate::leases::LeaseError> for AppError {
    fn from(error: crate::leases::LeaseError) -> Self {
        use crate::leases::LeaseError;
        match error {
            LeaseError::LeaseLost { job_id } => conflict(format!(
                "the lease on job {job_id} is no longer live (expired, reassigned or finished); stop working on it"
            )),
            LeaseError::Vanished(what) => not_found(format!("{what} vanished")),
            LeaseError::Internal(error) => error.into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        (self.status, Json(ErrorBody { error: self.message })).into_response()
    }
}

pub type AppResult<T> = Result<T, AppError>;
