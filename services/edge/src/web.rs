//! The web client (`web/`), served as static files at `/` from `[edge] web_dir`, so that a
//! person can use the system from a browser with nothing but the edge running.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::error::ApiError;
use crate::settings::EdgeSettings;

/// Logs at start-up whether the web client will be served, and why not when it cannot be: a
/// missing build is a note for the operator, never a reason to stop serving the API.
pub fn announce(edge: &EdgeSettings) {
    if !edge.web {
        tracing::info!("web client off (edge.web = false)");
    } else if Path::new(&edge.web_dir).join("index.html").is_file() {
        tracing::info!(dir = %edge.web_dir, "serving the web client at /");
    } else {
        tracing::warn!(
            dir = %edge.web_dir,
            "web client not built: {}/index.html is missing (run `npm ci && npm run build` in web/); / answers 404",
            edge.web_dir
        );
    }
}

/// What the router does with a path no route matched: a file of the web client for a GET
/// outside `/api/`, else 404 `NOT_FOUND` as JSON, like every API error.
pub async fn fallback(State(state): State<Arc<AppState>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if !state.edge.web || path.starts_with("/api/") || !matches!(method, Method::GET | Method::HEAD)
    {
        return no_endpoint().into_response();
    }
    let Some(file) = file_for(Path::new(&state.edge.web_dir), path) else {
        return no_endpoint().into_response();
    };
    match tokio::fs::read(&file).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, content_type(&file)),
                // The bundle's names do not change between builds: always revalidate.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            bytes,
        )
            .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && path == "/" => ApiError::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            format!(
                "the web client is not built ({}/index.html is missing): run `npm ci && npm run build` in web/",
                state.edge.web_dir
            ),
        )
        .into_response(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => no_endpoint().into_response(),
        Err(e) => ApiError::unavailable("reading the web client", e).into_response(),
    }
}

/// 404 `NOT_FOUND`, the answer to a path that names nothing.
fn no_endpoint() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint")
}

/// The file under `dir` that a URL path names: `index.html` for `/`, and otherwise only plain
/// names (letters, digits, `.`, `-`, `_`; no leading dot) in plain directories, so no path can
/// reach outside `dir` or a hidden file.
fn file_for(dir: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.strip_prefix('/')?;
    if relative.is_empty() {
        return Some(dir.join("index.html"));
    }
    let mut file = dir.to_path_buf();
    for segment in relative.split('/') {
        let plain = !segment.is_empty()
            && !segment.starts_with('.')
            && segment
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'));
        if !plain {
            return None;
        }
        file.push(segment);
    }
    Some(file)
}

/// The media type of a built file, by its extension (the few kinds the build makes).
fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json" | "map") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_the_index() {
        assert_eq!(
            file_for(Path::new("dist"), "/"),
            Some(PathBuf::from("dist/index.html"))
        );
    }

    #[test]
    fn plain_names_map_into_the_directory() {
        assert_eq!(
            file_for(Path::new("dist"), "/assets/app.js"),
            Some(PathBuf::from("dist/assets/app.js"))
        );
    }

    #[test]
    fn nothing_outside_the_directory_or_hidden() {
        for path in [
            "/../secret",
            "/a/../../b",
            "/.env",
            "/a//b",
            "/a/",
            "/%2e%2e/x",
            "x",
        ] {
            assert_eq!(file_for(Path::new("dist"), path), None, "{path}");
        }
    }

    #[test]
    fn types_follow_extensions() {
        assert_eq!(
            content_type(Path::new("a/app.js")),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(
            content_type(Path::new("a/blob")),
            "application/octet-stream"
        );
    }
}
