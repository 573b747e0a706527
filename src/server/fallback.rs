//! JSON answers for requests no route serves: 404 for an unknown path, 405
//! for a known path with the wrong method (axum's own are empty bodies,
//! which some clients cannot parse).

use super::api_error::ApiError;
use axum::http::{Method, StatusCode, Uri};

/// Any unknown path: JSON 404.
pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route for {method} {}", uri.path()),
    )
}

/// A known path with the wrong method: JSON 405.
pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not supported on {}", uri.path()),
    )
}
