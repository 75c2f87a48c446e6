//! The operators' dashboard: `GET /api/v1/dashboard-config` (what the web app needs before
//! login: the optional map tile server) and the app's static files at `/`.
//!
//! The files come from a directory (`dashboards/dist` built by Vite, or where a package
//! installed them); paths that match no file under it fall through to the API's 404. Every
//! response carries a strict Content-Security-Policy: scripts, styles and connections from
//! the platform only; images also from the configured tile server.

use std::path::PathBuf;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::json::ApiJson;
use crate::ApiState;

/// What the dashboard is served with.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DashboardConfig {
    /// Raster tile URL template (`https://tiles.example/{z}/{x}/{y}.png`); `None`: no
    /// background map, zones and sensors only (no request leaves the platform).
    pub tile_url: Option<String>,
    /// Attribution to show with the tiles.
    pub tile_attribution: Option<String>,
    /// The built web app's directory; `None`: no dashboard served.
    #[serde(skip)]
    pub dir: Option<PathBuf>,
}

/// The answer of `GET /api/v1/dashboard-config`.
#[derive(Debug, Serialize)]
pub struct ConfigResponse<'a> {
    /// See [`DashboardConfig::tile_url`].
    pub tile_url: Option<&'a str>,
    /// See [`DashboardConfig::tile_attribution`].
    pub tile_attribution: Option<&'a str>,
    /// The platform's version.
    pub version: &'static str,
}

/// The dashboard's settings (no authentication: the login page needs them).
pub async fn config(State(state): State<ApiState>) -> Response {
    ApiJson(ConfigResponse {
        tile_url: state.dashboard.tile_url.as_deref(),
        tile_attribution: state.dashboard.tile_attribution.as_deref(),
        version: env!("CARGO_PKG_VERSION"),
    })
    .into_response()
}

/// The Content-Security-Policy of the dashboard's pages.
pub fn content_security_policy(config: &DashboardConfig) -> HeaderValue {
    let tiles = config
        .tile_url
        .as_deref()
        .and_then(tile_origin)
        .map(|origin| format!(" {origin}"))
        .unwrap_or_default();
    let policy = format!(
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
         img-src 'self' data:{tiles}; connect-src 'self'; font-src 'self'; object-src 'none'; \
         base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    );
    HeaderValue::from_str(&policy)
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'"))
}

/// `scheme://host[:port]` of a tile URL template, for the CSP (a `{s}` subdomain template
/// becomes `*`).
fn tile_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?.replace("{s}", "*");
    let host_ok = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]*".contains(&b));
    (matches!(scheme, "http" | "https") && host_ok).then(|| format!("{scheme}://{host}"))
}

/// Adds the dashboard's security headers to a static response.
pub fn secure(mut response: Response, csp: &HeaderValue) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, csp.clone());
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_allows_only_the_platform_and_the_tile_origin() {
        let none = content_security_policy(&DashboardConfig::default());
        let text = none.to_str().unwrap();
        assert!(text.contains("img-src 'self' data:;"), "{text}");
        assert!(text.contains("connect-src 'self'"));
        let with_tiles = content_security_policy(&DashboardConfig {
            tile_url: Some("https://tiles.example.org:8443/{z}/{x}/{y}.png".into()),
            ..DashboardConfig::default()
        });
        assert!(with_tiles
            .to_str()
            .unwrap()
            .contains("img-src 'self' data: https://tiles.example.org:8443;"));
        assert_eq!(
            tile_origin("https://{s}.tile.example.org/{z}/{x}/{y}.png").as_deref(),
            Some("https://*.tile.example.org")
        );
        assert_eq!(tile_origin("javascript:alert(1)"), None);
        assert_eq!(tile_origin("https://a b/x"), None);
    }
}
