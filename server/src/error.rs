//! One error type for the whole site. On the API (`/api/…`) it renders as JSON with a fitting status; on pages as an
//! HTML page with the same status and a way back.

use askama::Template;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppError {
    #[error("{what} `{id}` not found")]
    NotFound { what: &'static str, id: String },
    #[error("no page at {0}")]
    NoRoute(String),
    #[error("bad parameter `{parameter}`: {message}")]
    BadParameter { parameter: String, message: String },
    #[error("request body too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: usize },
    #[error("request URI too long (limit {limit} bytes)")]
    UriTooLong { limit: usize },
    #[error("internal error: {0}")]
    Internal(String),
}

impl AppError {
    pub fn status(&self) -> StatusCode {
        match self {
            AppError::NotFound { .. } | AppError::NoRoute(_) => StatusCode::NOT_FOUND,
            AppError::BadParameter { .. } => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            AppError::NotFound { .. } => "not_found",
            AppError::NoRoute(_) => "no_route",
            AppError::BadParameter { .. } => "bad_parameter",
            AppError::PayloadTooLarge { .. } => "payload_too_large",
            AppError::UriTooLong { .. } => "uri_too_long",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn bad(parameter: &str, message: impl Into<String>) -> AppError {
        AppError::BadParameter {
            parameter: parameter.to_owned(),
            message: message.into(),
        }
    }

    /// This error as the API's JSON response.
    pub fn into_json(self) -> Response {
        let status = self.status();
        let parameter = match &self {
            AppError::BadParameter { parameter, .. } => Some(parameter.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                status: status.as_u16(),
                code: self.code(),
                message: self.to_string(),
                parameter,
            },
        };
        (status, axum::Json(body)).into_response()
    }

    /// This error as an HTML page.
    pub fn into_page(self) -> Response {
        let status = self.status();
        let page = ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error"),
            message: self.to_string(),
        };
        match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                page.message,
            )
                .into_response(),
        }
    }
}

/// The one JSON error shape of the API: `{"error": {"status", "code", "message", "parameter"?}}`.
#[derive(Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize)]
pub struct ErrorDetail {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    reason: &'static str,
    message: String,
}

/// An error on an API route: renders as JSON.
pub struct ApiError(pub AppError);

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.0.into_json()
    }
}

/// An error on a page route: renders as HTML.
pub struct PageError(pub AppError);

impl From<AppError> for PageError {
    fn from(e: AppError) -> Self {
        PageError(e)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.into_page()
    }
}

/// The parameters in a route's path (`/entries/{id}`), like axum's `Path`, except that a segment it cannot take (not
/// UTF-8 once percent-decoded) is a 400 naming the parameter in the site's shapes — JSON on the API, a page
/// elsewhere — rather than axum's plain-text rejection.
pub struct PathParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for PathParams<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(params)) => Ok(PathParams(params)),
            Err(rejection) => {
                let e = AppError::from(rejection);
                Err(if crate::is_api(parts.uri.path()) {
                    e.into_json()
                } else {
                    e.into_page()
                })
            }
        }
    }
}

impl From<PathRejection> for AppError {
    fn from(rejection: PathRejection) -> AppError {
        use axum::extract::path::ErrorKind;
        if let PathRejection::FailedToDeserializePathParams(e) = &rejection
            && let ErrorKind::InvalidUtf8InPathParam { key } = e.kind()
        {
            return AppError::bad(key, "not valid UTF-8 once percent-decoded");
        }
        AppError::bad("path", rejection.body_text())
    }
}
