//! The client's one error type.

use std::time::Duration;

/// Everything that can go wrong talking to an OpenCode server, with what a caller needs to act on it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server URL cannot be used.
    #[error("invalid OpenCode server URL `{url}`: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the server's address.
    #[error("could not connect to {url}: {source} (is an OpenCode server listening there?)")]
    Connect {
        /// The URL.
        url: String,
        /// The connection error.
        #[source]
        source: reqwest::Error,
    },
    /// The server did not answer in time.
    #[error("{method} {path} timed out after {after:?}")]
    Timeout {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The timeout.
        after: Duration,
    },
    /// The server answered with an error status.
    #[error("{method} {path} failed with HTTP {status}{hint}: {body}")]
    Status {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The start of the response body (at most 2 KiB).
        body: String,
        /// A hint for common statuses (a wrong password), or empty.
        hint: &'static str,
    },
    /// The response is not what the API describes.
    #[error(
        "{method} {path}: the response does not decode at `{json_path}`: {message} (the body starts with: {body})"
    )]
    Decode {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// Where in the JSON decoding failed (`.` is the whole body).
        json_path: String,
        /// What failed.
        message: String,
        /// The start of the body (at most 2 KiB).
        body: String,
    },
    /// The server at the URL answers, but not as OpenCode does.
    #[error("{url} does not look like an OpenCode server: {detail}")]
    NotOpenCode {
        /// The URL.
        url: String,
        /// What it answered instead.
        detail: String,
    },
    /// The connection failed after the request was sent.
    #[error("{method} {path}: {source}")]
    Transport {
        /// The request's method.
        method: &'static str,
        /// The request's path.
        path: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The event stream was lost and could not be brought back.
    #[error("the event stream from {url} is lost: {reason}")]
    StreamLost {
        /// The server's URL.
        url: String,
        /// Why it could not reconnect.
        reason: String,
    },
}

/// How much of a body an error keeps.
pub(crate) const BODY_EXCERPT: usize = 2048;

/// The first `BODY_EXCERPT` bytes of `body`, cut at a character boundary.
pub(crate) fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= BODY_EXCERPT {
        return text.into_owned();
    }
    let mut end = BODY_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

impl Error {
    /// The HTTP status, for an error status.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: no connection, a timeout, a dropped connection, or a
    /// 408, 429 or 5xx status. A wrong password, a missing session or a response that does not decode will
    /// not get better.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connect { .. }
            | Error::Timeout { .. }
            | Error::Transport { .. }
            | Error::StreamLost { .. } => true,
            Error::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Error::InvalidUrl { .. } | Error::Decode { .. } | Error::NotOpenCode { .. } => false,
        }
    }

    pub(crate) fn hint_for(status: u16) -> &'static str {
        match status {
            401 => " (wrong or missing password: set it with `ClientBuilder::password`)",
            404 => " (no such session, message or route)",
            _ => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16) -> Error {
        Error::Status {
            method: "GET",
            path: "/session".to_string(),
            status,
            body: String::new(),
            hint: Error::hint_for(status),
        }
    }

    #[test]
    fn statuses_that_may_pass_are_retryable_and_the_others_not() {
        for code in [408, 429, 500, 502, 503, 504, 599] {
            assert!(status(code).is_retryable(), "HTTP {code} may pass");
        }
        for code in [400, 401, 403, 404, 409, 422, 499] {
            assert!(
                !status(code).is_retryable(),
                "HTTP {code} will not get better"
            );
        }
    }

    #[test]
    fn other_errors_are_retryable_by_kind() {
        let decode = Error::Decode {
            method: "GET",
            path: "/session".to_string(),
            json_path: "[0].id".to_string(),
            message: "invalid type".to_string(),
            body: "[{\"id\":5}]".to_string(),
        };
        let not_opencode = Error::NotOpenCode {
            url: "http://127.0.0.1:1/".to_string(),
            detail: "HTML".to_string(),
        };
        let invalid = Error::InvalidUrl {
            url: "ftp://x".to_string(),
            reason: "scheme".to_string(),
        };
        for error in [&decode, &not_opencode, &invalid] {
            assert!(!error.is_retryable(), "{error}");
        }
        let timeout = Error::Timeout {
            method: "POST",
            path: "/session".to_string(),
            after: Duration::from_secs(1),
        };
        let lost = Error::StreamLost {
            url: "http://127.0.0.1:1/".to_string(),
            reason: "gone".to_string(),
        };
        for error in [&timeout, &lost] {
            assert!(error.is_retryable(), "{error}");
        }
        assert_eq!(decode.status(), None);
        assert_eq!(status(429).status(), Some(429));
    }
}
