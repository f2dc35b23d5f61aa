//! Bad input and broken servers, without OpenCode: nothing listening, something that is not OpenCode, a
//! response that does not decode, a slow server, a bad URL; and the event stream's reconnection, against a
//! fake server that drops the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use opencode_client::{Client, Error, EventPayload, StreamItem};

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

fn client(url: &str) -> Client {
    Client::builder(url)
        .timeout(Duration::from_millis(500))
        .event_stream(Duration::from_secs(5), Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = client(&url).health().await.unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(
        error.to_string().contains("could not connect to"),
        "{error}"
    );
    assert!(error.is_retryable());
    assert!(matches!(
        client(&url).events().await.unwrap_err(),
        Error::Connect { .. }
    ));
}

#[tokio::test]
async fn a_server_that_is_not_opencode_is_named_so() {
    let url = serve(Router::new()).await;
    let error = client(&url).health().await.unwrap_err();
    assert!(matches!(error, Error::NotOpenCode { .. }), "{error:?}");
    assert!(
        error
            .to_string()
            .contains("does not look like an OpenCode server"),
        "{error}"
    );

    let html = serve(
        Router::new()
            .fallback(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html>hi</html>") }),
    )
    .await;
    let error = client(&html).health().await.unwrap_err();
    assert!(matches!(error, Error::NotOpenCode { .. }), "{error:?}");
    let error = client(&html).events().await.unwrap_err();
    assert!(
        matches!(error, Error::NotOpenCode { .. }),
        "an HTML page is not an event stream: {error:?}"
    );
}

#[tokio::test]
async fn a_response_that_does_not_decode_names_the_json_path() {
    let url = serve(Router::new().route(
        "/session",
        get(|| async {
            (
                [(header::CONTENT_TYPE, "application/json")],
                r#"[{"id":"ses_1","time":{"created":1}},{"id":5}]"#,
            )
        }),
    ))
    .await;
    let error = client(&url).sessions().await.unwrap_err();
    match &error {
        Error::Decode {
            json_path,
            method,
            path,
            body,
            ..
        } => {
            assert_eq!(json_path, "[1].id");
            assert_eq!((*method, path.as_str()), ("GET", "/session"));
            assert!(body.contains(r#"{"id":5}"#));
        }
        other => panic!("expected a decode error, got {other:?}"),
    }
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn an_error_status_keeps_the_body() {
    let url = serve(Router::new().route(
        "/session/{id}",
        get(|| async {
            (
                StatusCode::NOT_FOUND,
                r#"{"name":"NotFoundError","data":{"message":"Session not found"}}"#,
            )
        }),
    ))
    .await;
    let error = client(&url).session("ses_missing").await.unwrap_err();
    assert_eq!(error.status(), Some(404));
    let message = error.to_string();
    assert!(
        message.contains("GET /session/ses_missing failed with HTTP 404"),
        "{message}"
    );
    assert!(message.contains("Session not found"), "{message}");
}

#[tokio::test]
async fn the_event_stream_and_the_calls_report_a_refusal_alike() {
    // One request path: the same directory parameter, the same auth header, the same error for a status.
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let recorder = Arc::clone(&seen);
    let url = serve(
        Router::new().fallback(move |request: axum::extract::Request| {
            let recorder = Arc::clone(&recorder);
            async move {
                recorder.lock().unwrap().push((
                    request.uri().to_string(),
                    request
                        .headers()
                        .get(header::AUTHORIZATION)
                        .map(|value| value.to_str().unwrap().to_string()),
                ));
                (StatusCode::UNAUTHORIZED, "Unauthorized")
            }
        }),
    )
    .await;
    let client = Client::builder(&url)
        .password("secret")
        .directory("/work/a b")
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let call = client.sessions().await.unwrap_err();
    let stream = client.events().await.unwrap_err();
    for (error, path) in [(&call, "/session"), (&stream, "/event")] {
        assert_eq!(error.status(), Some(401), "{error:?}");
        assert!(!error.is_retryable());
        assert_eq!(
            error.to_string(),
            format!(
                "GET {path} failed with HTTP 401 (wrong or missing password: set it with \
                 `ClientBuilder::password`): Unauthorized"
            )
        );
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    for (uri, auth) in &seen {
        assert!(uri.ends_with("?directory=%2Fwork%2Fa+b"), "{uri}");
        // `opencode:secret` in base64.
        assert_eq!(auth.as_deref(), Some("Basic b3BlbmNvZGU6c2VjcmV0"));
    }
}

#[tokio::test]
async fn a_slow_server_times_out() {
    let url = serve(Router::new().route(
        "/session",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            "[]"
        }),
    ))
    .await;
    let error = client(&url).sessions().await.unwrap_err();
    assert!(
        matches!(error, Error::Timeout { after, .. } if after == Duration::from_millis(500)),
        "{error:?}"
    );
}

#[test]
fn bad_urls_are_refused_with_the_reason() {
    for url in ["not a url", "ftp://127.0.0.1:1", "http://"] {
        let error = Client::builder(url).build().unwrap_err();
        assert!(
            matches!(error, Error::InvalidUrl { .. }),
            "{url}: {error:?}"
        );
    }
    let client = Client::builder("http://127.0.0.1:4096/base")
        .build()
        .unwrap();
    assert_eq!(client.url().as_str(), "http://127.0.0.1:4096/base/");
}

/// A fake `/event` that sends two events and closes the stream, then (on the next connection) two more.
fn dropping_event_server(connections: Arc<AtomicUsize>) -> Router {
    Router::new().route(
        "/event",
        get(move || {
            let connection = connections.fetch_add(1, Ordering::SeqCst);
            async move {
                let body = format!(
                    "data: {{\"type\":\"server.connected\",\"properties\":{{}}}}\n\n\
                     data: {{\"id\":\"evt_{connection}\",\"type\":\"session.idle\",\"properties\":{{\"sessionID\":\"ses_{connection}\"}}}}\n\n\
                     : a comment\n\n\
                     data: not json\n\n\
                     data: {{\"type\":\"brand.new.event\",\"properties\":{{\"x\":[1,2]}}}}\n\n"
                );
                Response::builder()
                    .header(header::CONTENT_TYPE, "text/event-stream")
                    .body(Body::from(body))
                    .unwrap()
                    .into_response()
            }
        }),
    )
}

#[tokio::test]
async fn the_event_stream_reconnects_and_reports_the_gap() {
    let connections = Arc::new(AtomicUsize::new(0));
    let url = serve(dropping_event_server(Arc::clone(&connections))).await;
    let mut events = client(&url).events().await.unwrap();
    let mut items = Vec::new();
    while items.len() < 10 {
        let item = tokio::time::timeout(Duration::from_secs(10), events.next())
            .await
            .expect("items keep coming")
            .expect("the stream goes on")
            .expect("no error");
        items.push(item);
    }
    let idle = |item: &StreamItem| match item {
        StreamItem::Event(event) => match &event.payload {
            EventPayload::SessionIdle { session_id } => Some(session_id.clone()),
            _ => None,
        },
        _ => None,
    };
    assert_eq!(idle(&items[1]), Some("ses_0".into()));
    assert!(matches!(&items[2], StreamItem::Undecodable { data, .. } if data == "not json"));
    match &items[3] {
        StreamItem::Event(event) => match &event.payload {
            EventPayload::Other { kind, properties } => {
                assert_eq!(kind, "brand.new.event");
                assert_eq!(
                    properties["x"][1], 2,
                    "unknown events keep their properties"
                );
            }
            other => panic!("an unknown event is kept: {other:?}"),
        },
        other => panic!("{other:?}"),
    }
    match &items[4] {
        StreamItem::Dropped { cause } => assert!(cause.contains("closed"), "{cause}"),
        other => panic!("the stream says it dropped: {other:?}"),
    }
    match &items[5] {
        StreamItem::Reconnected(gap) => {
            assert!(gap.attempts >= 1);
            assert!(gap.cause.contains("closed"), "{gap:?}");
        }
        other => panic!("after the drop the stream says it reconnected: {other:?}"),
    }
    assert_eq!(idle(&items[7]), Some("ses_1".into()));
    assert!(connections.load(Ordering::SeqCst) >= 2);
}

#[tokio::test]
async fn the_event_stream_gives_up_after_its_reconnect_window() {
    let connections = Arc::new(AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server =
        tokio::spawn(
            async move { axum::serve(listener, dropping_event_server(connections)).await },
        );
    let client = Client::builder(format!("http://{address}"))
        .event_stream(Duration::from_millis(600), Duration::from_secs(5))
        .build()
        .unwrap();
    let mut events = client.events().await.unwrap();
    // The server goes away for good after the first connection.
    server.abort();
    let mut last = None;
    while let Some(item) = tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .unwrap()
    {
        last = Some(item);
    }
    match last {
        Some(Err(Error::StreamLost { reason, .. })) => {
            assert!(reason.contains("attempts"), "{reason}")
        }
        other => panic!("the stream ends with StreamLost, got {other:?}"),
    }
}

/// The next item of a stream, failing after 10 s.
async fn next_item(events: &mut opencode_client::EventStream) -> StreamItem {
    tokio::time::timeout(Duration::from_secs(10), events.next())
        .await
        .expect("an item within 10 s")
        .expect("the stream goes on")
        .expect("no error")
}

#[tokio::test]
async fn a_drop_is_reported_before_reconnecting_and_reconnecting_can_last_forever() {
    // The first connection sends its events and closes; after that the server refuses `/event` (503) until
    // the test lets it answer again, which it does only once the stream has said it dropped: so `Dropped`
    // must come before any reconnection succeeds, not with it.
    let connections = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let router = {
        let connections = Arc::clone(&connections);
        let open = Arc::clone(&open);
        Router::new().route(
            "/event",
            get(move || {
                let attempt = connections.fetch_add(1, Ordering::SeqCst);
                let open = open.swap(false, Ordering::SeqCst);
                async move {
                    if !open {
                        return (StatusCode::SERVICE_UNAVAILABLE, "restarting").into_response();
                    }
                    let body = format!(
                        "data: {{\"type\":\"session.idle\",\"properties\":{{\"sessionID\":\"ses_{attempt}\"}}}}\n\n"
                    );
                    Response::builder()
                        .header(header::CONTENT_TYPE, "text/event-stream")
                        .body(Body::from(body))
                        .unwrap()
                        .into_response()
                }
            }),
        )
    };
    let url = serve(router).await;
    // Reconnect for ever, and never take a silent connection for dead: neither may overflow a deadline.
    let client = Client::builder(&url)
        .event_stream(Duration::MAX, Duration::MAX)
        .build()
        .unwrap();
    let mut events = client.events().await.unwrap();
    assert!(matches!(next_item(&mut events).await, StreamItem::Event(_)));
    match next_item(&mut events).await {
        StreamItem::Dropped { cause } => assert!(cause.contains("closed"), "{cause}"),
        other => panic!("the stream says it dropped at once: {other:?}"),
    }
    // Refused a few times (each a retryable 503, which the endless window keeps retrying), then let in.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while connections.load(Ordering::SeqCst) < 3 {
        assert!(tokio::time::Instant::now() < deadline, "the stream retries");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open.store(true, Ordering::SeqCst);
    match next_item(&mut events).await {
        StreamItem::Reconnected(gap) => {
            assert!(gap.attempts >= 2, "{gap:?}");
            assert!(gap.cause.contains("closed"), "{gap:?}");
        }
        other => panic!("then that it is back: {other:?}"),
    }
    match next_item(&mut events).await {
        StreamItem::Event(event) => assert!(event.session_id().is_some_and(|id| id != "ses_0")),
        other => panic!("and the new connection's events follow: {other:?}"),
    }
}
