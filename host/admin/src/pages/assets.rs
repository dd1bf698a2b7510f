//! The static files of the pages, compiled in (`include_str!`): the style
//! sheet, the small script, the icon.

use std::sync::Arc;

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::AppState;

/// `/static/style.css`.
pub const STYLE: &str = include_str!("../../static/style.css");
/// `/static/app.js`.
pub const SCRIPT: &str = include_str!("../../static/app.js");
/// `/static/favicon.svg`.
pub const ICON: &str = include_str!("../../static/favicon.svg");

/// The static files' routes (open to anyone: the sign-in page uses them).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/static/style.css",
            get(|| async { file("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/static/app.js",
            get(|| async { file("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/static/favicon.svg",
            get(|| async { file("image/svg+xml", ICON) }),
        )
}

fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "max-age=300")],
        body,
    )
        .into_response()
}
