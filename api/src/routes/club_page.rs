//! `GET /club`: the book club's page for members' browsers (and phones). Plain HTML, CSS and
//! JavaScript, vendored into the binary; the page reads the club's REST endpoints and follows the
//! live hub over a WebSocket. A strict Content-Security-Policy allows nothing but this origin
//! (scripts, styles, fetches and the WebSocket).

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

const INDEX_HTML: &str = include_str!("../../assets/club/index.html");
const CLUB_JS: &str = include_str!("../../assets/club/club.js");
const CLUB_CSS: &str = include_str!("../../assets/club/club.css");

/// The page.
pub(crate) async fn index(request_headers: HeaderMap) -> Response {
    asset(&request_headers, "text/html; charset=utf-8", INDEX_HTML)
}

/// The page's script.
pub(crate) async fn script(request_headers: HeaderMap) -> Response {
    asset(&request_headers, "text/javascript; charset=utf-8", CLUB_JS)
}

/// The page's style sheet.
pub(crate) async fn style(request_headers: HeaderMap) -> Response {
    asset(&request_headers, "text/css; charset=utf-8", CLUB_CSS)
}

fn asset(request_headers: &HeaderMap, content_type: &'static str, body: &'static str) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(request_headers)) {
        headers.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // The assets change with the binary: revalidate rather than serve an old script to a new API.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    (headers, body).into_response()
}

/// Only this origin: scripts, styles, images, fetches and the WebSocket (`ws:`/`wss:` to the same
/// host, spelled out because older browsers do not let `'self'` match them). No inline script or
/// style, no plugins, no framing, no base-URI or form-target tricks.
fn content_security_policy(request_headers: &HeaderMap) -> String {
    let mut connect = String::from("'self'");
    if let Some(host) = request_headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plain_host(h))
    {
        connect.push_str(&format!(" ws://{host} wss://{host}"));
    }
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src {connect}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// A `Host` that can go into the policy verbatim: a name or address with an optional port, and
/// nothing that could end a source expression or a directive.
fn is_plain_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_policy_names_only_this_host_for_websockets() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static("club.example:8443"));
        let csp = content_security_policy(&headers);
        assert!(csp.contains("connect-src 'self' ws://club.example:8443 wss://club.example:8443;"));
        assert!(csp.contains("default-src 'none'"));
        assert!(csp.contains("script-src 'self';"));

        headers.insert(header::HOST, HeaderValue::from_static("evil; script-src *"));
        let csp = content_security_policy(&headers);
        assert!(csp.contains("connect-src 'self';"), "{csp}");
        assert!(!csp.contains("evil"));
    }

    #[test]
    fn the_page_references_only_its_own_assets() {
        assert!(INDEX_HTML.contains("src=\"/club/club.js\""));
        assert!(INDEX_HTML.contains("href=\"/club/club.css\""));
        // No inline script or style: the policy would block them.
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("<style"));
        assert!(!INDEX_HTML.contains("style=\""));
        assert!(!CLUB_JS.contains("innerHTML"));
        assert!(!CLUB_JS.contains("http://") && !CLUB_JS.contains("https://"));
    }
}
