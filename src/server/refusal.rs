//! Refusals written straight onto a connection, as problem documents like every other refusal of
//! the API: in place of hyper's own answers to request heads it cannot parse (which have empty
//! bodies), and to a connection over the limits.

use axum::http::StatusCode;
use quire_api::error::{ApiError, PROBLEM_JSON};

/// hyper's answer to a request head it cannot parse: the status line, then only `content-length:
/// 0`, `date` and `connection` headers, and no body. The API's own refusals always carry a
/// problem body and its content type, so they never look like this.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct HyperRefusal<'a> {
    pub(super) status: StatusCode,
    /// hyper's `date` header value, kept for the replacement.
    pub(super) date: Option<&'a [u8]>,
}

/// Recognises hyper's refusal in one write; anything else (a response of the API, body bytes,
/// HTTP/2 frames) is not one.
pub(super) fn hyper_refusal(buf: &[u8]) -> Option<HyperRefusal<'_>> {
    let head = std::str::from_utf8(buf.strip_suffix(b"\r\n\r\n")?).ok()?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next()?;
    let status = [
        StatusCode::BAD_REQUEST,
        StatusCode::URI_TOO_LONG,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ]
    .into_iter()
    .find(|status| {
        let expected = format!(
            "HTTP/1.1 {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or_default()
        );
        status_line == expected
    })?;
    let mut empty = false;
    let mut date = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            empty = value == "0";
        } else if name.eq_ignore_ascii_case("date") {
            date = Some(value.as_bytes());
        } else if !name.eq_ignore_ascii_case("connection") {
            return None;
        }
    }
    empty.then_some(HyperRefusal { status, date })
}

/// The problem to send instead of hyper's refusal with `status`.
pub(super) fn for_unparsed_head(status: StatusCode, limits: &super::conn::Limits) -> ApiError {
    match status {
        StatusCode::URI_TOO_LONG => ApiError::new(
            status,
            "uri_too_long",
            format!(
                "the request target is too long; at most {} bytes are accepted",
                limits.max_uri_bytes
            ),
        ),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ApiError::new(
            status,
            "headers_too_large",
            format!(
                "the request head is too large (at most {} bytes of headers and {} bytes of \
                 target are accepted) or has too many header fields",
                limits.max_header_bytes, limits.max_uri_bytes
            ),
        ),
        _ => ApiError::new(
            status,
            "malformed_request",
            "the request line or a header field is not valid HTTP/1.1",
        ),
    }
}

/// A whole HTTP/1.1 response carrying `error`'s problem, after which the connection closes.
pub(super) fn response(
    error: &ApiError,
    date: Option<&[u8]>,
    retry_after_secs: Option<u64>,
) -> Vec<u8> {
    let body = serde_json::to_vec(&error.problem()).unwrap_or_default();
    let status = error.status();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\n\
         connection: close\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default(),
        body.len()
    )
    .into_bytes();
    if let Some(seconds) = retry_after_secs {
        out.extend_from_slice(format!("retry-after: {seconds}\r\n").as_bytes());
    }
    if let Some(date) = date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

/// What a plain-HTTP connection over the limits is told before it is closed.
pub(super) fn too_many_connections() -> Vec<u8> {
    let error = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too_many_connections",
        "the server has as many connections open as it accepts, from this client or in all; \
         close idle ones or retry later",
    );
    response(&error, None, Some(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_refusals_are_recognised_with_their_date() {
        let written = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\
                        date: Sun, 06 Dec 2026 13:01:54 GMT\r\n\r\n";
        assert_eq!(
            hyper_refusal(written),
            Some(HyperRefusal {
                status: StatusCode::BAD_REQUEST,
                date: Some(b"Sun, 06 Dec 2026 13:01:54 GMT".as_slice()),
            })
        );
        let written = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            hyper_refusal(written).map(|r| r.status),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        let written = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            hyper_refusal(written).map(|r| r.status),
            Some(StatusCode::URI_TOO_LONG)
        );
    }

    #[test]
    fn responses_of_the_api_are_left_alone() {
        for written in [
            // A problem of the API: it has a content type and a body.
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n\
              content-length: 2\r\n\r\n{}"
                .as_slice(),
            b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/problem+json\r\n\
              content-length: 0\r\n\r\n",
            // Another status, or a body still to come.
            b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n",
            b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\nHTTP/1.1 200 OK",
            b"",
        ] {
            assert_eq!(hyper_refusal(written), None, "{}", written.escape_ascii());
        }
    }

    #[test]
    fn a_refusal_is_a_problem_document() {
        let limits = crate::server::conn::Limits::default();
        let error = for_unparsed_head(StatusCode::BAD_REQUEST, &limits);
        let bytes = response(&error, Some(b"today"), None);
        let text = String::from_utf8(bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{head}");
        assert!(head.contains("content-type: application/problem+json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("date: today"));
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 400);
        assert_eq!(problem["code"], "malformed_request");
        assert_eq!(problem["type"], "/problems/malformed-request");
        assert_eq!(problem["title"], "Bad Request");
    }
}
