//! Every error under `/api/` in one JSON shape, `{"error": code, "message": text}`: whatever
//! answered it (a handler's `Error`, a server function's `AppError`, axum's rejections of a bad
//! path or a wrong method, an unknown path, a timeout). Nothing of the original plain text is
//! passed on: it may name internals.

use axum::extract::Request;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

/// The code and message of an error that came without its own JSON.
fn describe(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::BAD_REQUEST => ("bad_request", "the request is malformed"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "missing or wrong credentials"),
        StatusCode::FORBIDDEN => ("forbidden", "not allowed"),
        StatusCode::NOT_FOUND => ("not_found", "no such resource"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this resource does not answer that method",
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long to arrive"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "the body's content type is not accepted",
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "rate_limited",
            "too many requests from your address; try again in a minute",
        ),
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::GATEWAY_TIMEOUT => {
            ("unavailable", "temporarily unavailable; please retry")
        }
        status if status.is_client_error() => ("bad_request", "the request was not accepted"),
        _ => ("internal", "something went wrong on our side"),
    }
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

/// The status of an error that came as 500 with the JSON shape: a server function whose
/// arguments could not be read answers 500 `bad_request`, a client's mistake.
fn status_of(code: &str) -> Option<StatusCode> {
    match code {
        "bad_request" => Some(StatusCode::BAD_REQUEST),
        "validation" => Some(StatusCode::UNPROCESSABLE_ENTITY),
        "not_found" => Some(StatusCode::NOT_FOUND),
        "conflict" => Some(StatusCode::CONFLICT),
        "unauthorized" => Some(StatusCode::UNAUTHORIZED),
        "unavailable" => Some(StatusCode::SERVICE_UNAVAILABLE),
        _ => None,
    }
}

/// Largest error body looked into.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// Middleware: gives an error answer under `/api/` that is not JSON the JSON error shape,
/// keeping its status and headers (`Allow` of a 405, `Retry-After`); and gives a JSON 500 whose
/// code says otherwise the status of its code.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    if !api || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    if is_json(&response) {
        if status != StatusCode::INTERNAL_SERVER_ERROR {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, ERROR_BODY_LIMIT).await else {
            return Response::from_parts(parts, axum::body::Body::empty());
        };
        let code = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|body| body.get("error")?.as_str().and_then(status_of));
        if let Some(status) = code {
            parts.status = status;
        }
        return Response::from_parts(parts, axum::body::Body::from(bytes));
    }
    let (code, message) = describe(status);
    let (mut parts, _) = response.into_parts();
    let body = json!({ "error": code, "message": message }).to_string();
    parts
        .headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(body))
}
