//! The event stream: `GET /event` read as server-sent events, decoded, and reconnected after a drop.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_core::Stream;
use futures_util::StreamExt;
use reqwest::Method;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{Error, excerpt};
use crate::event::Event;
use crate::sse::SseDecoder;

/// How the stream reconnects.
#[derive(Debug, Clone)]
pub(crate) struct StreamConfig {
    /// How long to keep trying after a drop.
    pub(crate) reconnect_for: Duration,
    /// How long without a byte before the connection is taken for dead.
    pub(crate) idle_timeout: Duration,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            reconnect_for: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(45),
        }
    }
}

/// An item of the event stream.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
// Events are the items that matter and by far the most frequent: boxing them would add an allocation per
// event to save space in the rare other variants.
#[allow(clippy::large_enum_variant)]
pub enum StreamItem {
    /// An event.
    Event(Event),
    /// The connection dropped; the stream is about to reconnect. Until [`Reconnected`](Self::Reconnected)
    /// (or a final error) nothing arrives, so a consumer that waits on events should poll meanwhile (session
    /// status, messages) instead of waiting for the stream to come back.
    Dropped {
        /// Why the connection dropped (the server closed it, a read failed, or it was silent for the idle
        /// timeout).
        cause: String,
    },
    /// The connection dropped and is back: events sent meanwhile are lost (the server does not replay them),
    /// so a consumer that tracks state should read it again (session status, messages).
    Reconnected(Gap),
    /// A `data:` field that is not an event (not a JSON object with a `type`); the stream goes on.
    Undecodable {
        /// The field, cut at 2 KiB.
        data: String,
        /// Why it is not an event.
        reason: String,
    },
}

/// A time the stream was down.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// From the drop to the new connection.
    pub down_for: Duration,
    /// Connection attempts it took.
    pub attempts: u32,
    /// Why the connection dropped.
    pub cause: String,
}

/// The server's events, as a [`Stream`] of [`StreamItem`]s (from [`Client::events`]).
///
/// A background task on the current tokio runtime owns the connection: it reads the server-sent events,
/// decodes them, and after a drop yields [`StreamItem::Dropped`] at once, then reconnects with backoff
/// (100 ms doubling to 2 s) for up to the configured time, yielding [`StreamItem::Reconnected`] when back,
/// or a final [`Error::StreamLost`]. Dropping the stream stops the task.
///
/// ```no_run
/// use futures_util::StreamExt;
/// use opencode_client::{Client, StreamItem};
///
/// # async fn run() -> Result<(), opencode_client::Error> {
/// let client = Client::builder("http://127.0.0.1:4096")
///     // Never give up reconnecting; a connection silent for 30 s is dead.
///     .event_stream(std::time::Duration::MAX, std::time::Duration::from_secs(30))
///     .build()?;
/// let mut events = client.events().await?;
/// while let Some(item) = events.next().await {
///     match item? {
///         StreamItem::Event(event) => println!("{}", event.kind()),
///         StreamItem::Dropped { cause } => eprintln!("stream down ({cause}): polling until it is back"),
///         StreamItem::Reconnected(gap) => eprintln!("stream back after {:?}: reading state again", gap.down_for),
///         _ => {}
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EventStream {
    receiver: mpsc::Receiver<Result<StreamItem, Error>>,
    task: JoinHandle<()>,
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for EventStream {
    type Item = Result<StreamItem, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().receiver.poll_recv(cx)
    }
}

/// Connects to `/event` and returns the response, checking its status and that it is an event stream.
async fn connect(client: &Client) -> Result<reqwest::Response, Error> {
    let path = "/event";
    let request = client
        .request(Method::GET, path, &[])
        .header(reqwest::header::ACCEPT, "text/event-stream");
    // No total timeout: the stream lasts as long as the server runs. A silent connection is caught by the
    // idle timeout while reading.
    let response = client.execute("GET", path, request, None).await?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("text/event-stream") {
        return Err(Error::NotOpenCode {
            url: client.url().to_string(),
            detail: format!("GET {path} answered `{content_type}`, not an event stream"),
        });
    }
    Ok(response)
}

impl EventStream {
    pub(crate) async fn open(client: Client, config: StreamConfig) -> Result<EventStream, Error> {
        let first = connect(&client).await?;
        let (sender, receiver) = mpsc::channel(256);
        let task = tokio::spawn(run(client, config, first, sender));
        Ok(EventStream { receiver, task })
    }
}

/// Reads one connection until it ends; returns why it ended, or `None` if the consumer is gone.
async fn read(
    response: reqwest::Response,
    idle_timeout: Duration,
    sender: &mpsc::Sender<Result<StreamItem, Error>>,
) -> Option<String> {
    let mut decoder = SseDecoder::new();
    let mut body = response.bytes_stream();
    loop {
        let chunk = match tokio::time::timeout(idle_timeout, body.next()).await {
            Err(_) => return Some(format!("no data for {idle_timeout:?}")),
            Ok(None) => return Some("the server closed the stream".to_string()),
            Ok(Some(Err(error))) => return Some(error.to_string()),
            Ok(Some(Ok(chunk))) => chunk,
        };
        for message in decoder.push(&chunk) {
            let item = match Event::from_json(&message.data) {
                Ok(event) => StreamItem::Event(event),
                Err(error) => StreamItem::Undecodable {
                    data: excerpt(message.data.as_bytes()),
                    reason: error.to_string(),
                },
            };
            if sender.send(Ok(item)).await.is_err() {
                return None;
            }
        }
    }
}

async fn run(
    client: Client,
    config: StreamConfig,
    first: reqwest::Response,
    sender: mpsc::Sender<Result<StreamItem, Error>>,
) {
    let mut response = first;
    loop {
        let Some(cause) = read(response, config.idle_timeout, &sender).await else {
            return;
        };
        tracing::debug!(url = %client.url(), %cause, "OpenCode event stream dropped; reconnecting");
        // Said before the first attempt: reconnecting may take a while, and a consumer can poll meanwhile.
        let dropped = StreamItem::Dropped {
            cause: cause.clone(),
        };
        if sender.send(Ok(dropped)).await.is_err() {
            return;
        }
        let down_since = Instant::now();
        let mut attempts = 0u32;
        let mut delay = Duration::from_millis(100);
        response = loop {
            attempts += 1;
            match connect(&client).await {
                Ok(response) => break response,
                Err(error) if !error.is_retryable() => {
                    let _ = sender.send(Err(error)).await;
                    return;
                }
                Err(error) => {
                    if down_since.elapsed() >= config.reconnect_for {
                        let _ = sender
                            .send(Err(Error::StreamLost {
                                url: client.url().to_string(),
                                reason: format!(
                                    "dropped ({cause}) and not back after {attempts} attempts in {:?}: {error}",
                                    down_since.elapsed()
                                ),
                            }))
                            .await;
                        return;
                    }
                }
            }
            if sender.is_closed() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
        };
        let gap = Gap {
            down_for: down_since.elapsed(),
            attempts,
            cause,
        };
        if sender.send(Ok(StreamItem::Reconnected(gap))).await.is_err() {
            return;
        }
    }
}
