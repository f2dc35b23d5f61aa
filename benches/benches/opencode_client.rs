//! `opencode-client` beside the official JavaScript SDK (`@opencode-ai/sdk`, run with node), each beside a
//! raw-HTTP baseline in its own language, all against the same server in the same run.
//!
//! Two workloads, the same for every contender:
//!
//! - `session_crud`: create a session, get it, delete it (three requests, the response of each read).
//! - `event_round_trip`: with an `/event` stream already open, post a toast (`POST /tui/show-toast`) and wait
//!   until its `tui.toast.show` event arrives on the stream. Each toast carries a message no other iteration
//!   uses, and the wait is for that message.
//!
//! Four contenders:
//!
//! - `opencode_client`: our typed client (`Client`, `EventStream`) on a current-thread tokio runtime.
//! - `reqwest_raw`: plain reqwest with the same requests and bodies, a precomputed `Authorization` header, no
//!   per-call timeout, no JSON decoding (the session id is cut out of the response bytes, the toast found by
//!   searching the stream's bytes for its quoted message).
//! - `@opencode-ai/sdk` and `fetch (raw)`: the same in node, from `benches/js/sdk_bench.mjs`.
//!
//! A client's *overhead* is its time minus its language's raw baseline: the server's work is the same for
//! both and cancels. Two servers, both with a password (every request carries Basic auth):
//!
//! - **OpenCode**: a real `opencode serve` started by the testkit, with a scripted model. A session
//!   create + get + delete costs it tens of milliseconds and varies by more than that from one iteration to
//!   the next, so the figures are the absolute per-operation times a user sees; overheads of tens of
//!   microseconds are below their noise.
//! - **replay**: an in-process HTTP/1.1 server that answers every route with responses recorded from
//!   OpenCode 1.18.33 (the same bodies and headers, the same event shapes) and does nothing else, so the
//!   client's share of each operation is large enough to measure.
//!
//! Criterion times the two Rust contenders (groups `opencode_client/session_crud` and
//! `opencode_client/event_round_trip` on OpenCode, `opencode_client/replay_session_crud` and
//! `opencode_client/replay_event_round_trip` on the replay server). After criterion, a comparison runs all four
//! contenders the same way on each server: each iteration timed alone; the two contenders of a language take
//! turns in blocks (25 iterations on OpenCode, 100 on the replay server), the first of each pair of blocks
//! alternating; the Rust side and node alternate in rounds. It prints each contender's median, p90 and CPU
//! time per operation (Rust: the thread that runs the client, which is all of it on a current-thread
//! runtime; node: the whole process, as `process.cpuUsage()` counts it), then each client's overhead: the
//! median over neighbouring block pairs of the difference of their medians (with its quartiles), and the
//! difference in CPU time per operation; and the ratios ours / SDK. In the event workload each block opens
//! its own stream before its clock starts, so the server always has exactly one subscriber.
//!
//! The node side installs `benches/js` with `npm ci` the first time; without node or npm, or if the install
//! fails, it says why and the comparison shows the Rust figures only. `ORCH_SKIP_OPENCODE=1` skips the whole
//! bench (as it skips the tests that need OpenCode). `OPENCODE_BENCH_ITERATIONS` (default 400) and
//! `OPENCODE_BENCH_REPLAY_ITERATIONS` (default 4000) size the comparison, `OPENCODE_BENCH_ROUNDS` (default 4)
//! splits it; under `--test` (and `cargo test --benches`) it runs one iteration of each.

use std::cell::OnceCell;
use std::convert::Infallible;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use criterion::{BenchmarkGroup, Criterion, SamplingMode, measurement::WallTime};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use opencode_client::testkit::{OpencodeServer, Script, ScriptedModel};
use opencode_client::{
    Client, CreateSession, EventPayload, EventStream, StreamItem, Toast, ToastVariant,
};
use reqwest::Method;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use tokio::sync::broadcast;

/// How long one operation may take before the bench gives up on the server.
const OPERATION_LIMIT: Duration = Duration::from_secs(30);

/// Warm-up iterations per contender before the comparison's timed blocks.
const WARMUP: usize = 20;

/// The two workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Workload {
    SessionCrud,
    EventRoundTrip,
}

impl Workload {
    const ALL: [Workload; 2] = [Workload::SessionCrud, Workload::EventRoundTrip];

    fn name(self) -> &'static str {
        match self {
            Workload::SessionCrud => "session_crud",
            Workload::EventRoundTrip => "event_round_trip",
        }
    }
}

/// The Rust contenders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Contender {
    Ours,
    RawReqwest,
}

impl Contender {
    const ALL: [Contender; 2] = [Contender::Ours, Contender::RawReqwest];

    fn name(self) -> &'static str {
        match self {
            Contender::Ours => "opencode_client",
            Contender::RawReqwest => "reqwest_raw",
        }
    }
}

/// A toast message no other iteration uses.
fn unique_message(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// The raw-HTTP baseline: plain reqwest, the same requests, nothing decoded.
#[derive(Debug)]
struct RawHttp {
    http: reqwest::Client,
    base: String,
    authorization: Option<HeaderValue>,
}

impl RawHttp {
    fn new(url: &str, password: Option<&str>) -> RawHttp {
        let authorization = password.map(|password| {
            let token = base64(format!("opencode:{password}").as_bytes());
            HeaderValue::from_str(&format!("Basic {token}")).expect("a valid header value")
        });
        RawHttp {
            http: reqwest::Client::new(),
            base: url.trim_end_matches('/').to_string(),
            authorization,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }

    async fn send(&self, method: Method, path: &str, json_body: Option<String>) -> bytes::Bytes {
        let mut request = self.request(method.clone(), path);
        if let Some(body) = json_body {
            request = request.header(CONTENT_TYPE, "application/json").body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        let status = response.status();
        let body = response
            .bytes()
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"));
        assert!(
            status.is_success(),
            "{method} {path} answered {status}: {body:?}"
        );
        body
    }

    async fn session_crud(&self) {
        let created = self
            .send(Method::POST, "/session", Some("{}".to_string()))
            .await;
        let id = session_id(&created);
        let path = format!("/session/{id}");
        black_box(self.send(Method::GET, &path, None).await);
        black_box(self.send(Method::DELETE, &path, None).await);
    }

    async fn open_events(&self) -> RawEvents {
        let response = self
            .request(Method::GET, "/event")
            .header(ACCEPT, "text/event-stream")
            .send()
            .await
            .expect("GET /event");
        assert!(
            response.status().is_success(),
            "GET /event answered {}",
            response.status()
        );
        let mut events = RawEvents {
            body: response.bytes_stream().boxed(),
            buffer: Vec::new(),
        };
        events.until(b"\"server.connected\"").await;
        events
    }

    async fn event_round_trip(&self, events: &mut RawEvents) {
        let message = unique_message("raw");
        let body = format!("{{\"message\":\"{message}\",\"variant\":\"info\"}}");
        black_box(self.send(Method::POST, "/tui/show-toast", Some(body)).await);
        // With its quotes, so that `…-1` does not match inside `…-10`.
        events.until(format!("\"{message}\"").as_bytes()).await;
    }
}

/// The session id in a `POST /session` response, found without decoding the JSON.
fn session_id(body: &[u8]) -> String {
    let key = b"\"id\":\"";
    let start = find(body, key)
        .unwrap_or_else(|| panic!("no session id in {}", String::from_utf8_lossy(body)))
        + key.len();
    let length = body[start..]
        .iter()
        .position(|&byte| byte == b'"')
        .expect("the id's closing quote");
    String::from_utf8_lossy(&body[start..start + length]).into_owned()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// Standard base64 with padding (RFC 4648 §4), for the Basic auth header.
fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let triple = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for (i, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((triple >> shift) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The raw baseline's event stream: the response's bytes, searched as they come.
struct RawEvents {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
}

impl RawEvents {
    /// Reads until `needle` has arrived and drops everything up to its end.
    async fn until(&mut self, needle: &[u8]) {
        loop {
            if let Some(at) = find(&self.buffer, needle) {
                self.buffer.drain(..at + needle.len());
                return;
            }
            match self.body.next().await {
                Some(Ok(chunk)) => self.buffer.extend_from_slice(&chunk),
                Some(Err(error)) => panic!("the raw event stream failed: {error}"),
                None => panic!("the raw event stream ended"),
            }
        }
    }
}

/// Reads our stream until an event for which `wanted` is true.
async fn next_matching(events: &mut EventStream, wanted: impl Fn(&EventPayload) -> bool) {
    while let Some(item) = events.next().await {
        match item.expect("the event stream stays up") {
            StreamItem::Event(event) if wanted(&event.payload) => return,
            _ => {}
        }
    }
    panic!("the event stream ended");
}

/// An open event stream of either contender.
enum Events {
    Ours(EventStream),
    Raw(RawEvents),
}

// --- The replay server -------------------------------------------------------------------------------------

/// A session as OpenCode 1.18.33 answers `POST /session` and `GET /session/{id}` (recorded).
const RECORDED_SESSION: &str = r#"{"id":"ses_de30a299effeT11w4vco2nVGwQ","slug":"mighty-panda","projectID":"global","directory":"/tmp/tmp.hGCpNKTUIs/p","path":"","cost":0,"tokens":{"input":0,"output":0,"reasoning":0,"cache":{"read":0,"write":0}},"title":"New session - 2026-11-27T12:23:22.977Z","version":"1.18.33","time":{"created":1795782202977,"updated":1795782202977}}"#;

/// The first event of every stream, as OpenCode sends it.
const RECORDED_CONNECTED: &str = "data: {\"id\":\"evt_21cf5d827001XT5lp5SDZ8lzIv\",\"type\":\"server.connected\",\"properties\":{}}\n\n";

#[derive(Clone)]
struct Replay {
    authorization: HeaderValue,
    events: broadcast::Sender<Bytes>,
}

impl Replay {
    fn authorized(&self, headers: &HeaderMap) -> bool {
        headers.get(AUTHORIZATION) == Some(&self.authorization)
    }
}

/// A JSON answer with the headers OpenCode sends (`Content-Type`, `Vary`; axum adds `Date` and
/// `Content-Length`), or a 401 without the password.
fn replay_json(replay: &Replay, headers: &HeaderMap, body: String) -> Response {
    if !replay.authorized(headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    (
        [("content-type", "application/json"), ("vary", "Origin")],
        body,
    )
        .into_response()
}

async fn replay_show_toast(
    State(replay): State<Replay>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !replay.authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    // Like OpenCode: read the toast, publish it with the default duration, answer `true`.
    let Ok(mut toast) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    toast["duration"] = serde_json::json!(5000);
    let event = serde_json::json!({
        "id": "evt_21cf5dc220012sEof1FjhFS27i",
        "type": "tui.toast.show",
        "properties": toast,
    });
    let _ = replay
        .events
        .send(Bytes::from(format!("data: {event}\n\n")));
    replay_json(&replay, &headers, "true".to_string())
}

async fn replay_events(State(replay): State<Replay>, headers: HeaderMap) -> Response {
    if !replay.authorized(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let first = futures_util::stream::once(async {
        Ok::<_, Infallible>(Bytes::from_static(RECORDED_CONNECTED.as_bytes()))
    });
    let published =
        futures_util::stream::unfold(replay.events.subscribe(), |mut receiver| async move {
            loop {
                match receiver.recv().await {
                    Ok(event) => return Some((Ok(event), receiver)),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    (
        [("content-type", "text/event-stream"), ("vary", "Origin")],
        Body::from_stream(first.chain(published)),
    )
        .into_response()
}

/// Starts the replay server on the current runtime; returns its URL.
async fn start_replay(password: &str) -> String {
    let token = base64(format!("opencode:{password}").as_bytes());
    let replay = Replay {
        authorization: HeaderValue::from_str(&format!("Basic {token}")).expect("a header value"),
        events: broadcast::channel(1024).0,
    };
    let app = Router::new()
        .route(
            "/session",
            post(
                |State(replay): State<Replay>, headers: HeaderMap| async move {
                    replay_json(&replay, &headers, RECORDED_SESSION.to_string())
                },
            ),
        )
        .route(
            "/session/{id}",
            get(
                |State(replay): State<Replay>, headers: HeaderMap| async move {
                    replay_json(&replay, &headers, RECORDED_SESSION.to_string())
                },
            )
            .delete(
                |State(replay): State<Replay>, headers: HeaderMap| async move {
                    replay_json(&replay, &headers, "true".to_string())
                },
            ),
        )
        .route("/tui/show-toast", post(replay_show_toast))
        .route("/event", get(replay_events))
        .with_state(replay);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the replay server");
    let url = format!(
        "http://{}",
        listener.local_addr().expect("the replay server's address")
    );
    tokio::spawn(async move {
        axum::serve(listener, app)
            .await
            .expect("the replay server runs");
    });
    url
}

// --- The servers and the clients -------------------------------------------------------------------------

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Server {
    Opencode,
    Replay,
}

impl Server {
    const ALL: [Server; 2] = [Server::Opencode, Server::Replay];

    fn name(self) -> &'static str {
        match self {
            Server::Opencode => "OpenCode",
            Server::Replay => "replay",
        }
    }

    /// The prefix of its criterion groups' names.
    fn group_prefix(self) -> &'static str {
        match self {
            Server::Opencode => "",
            Server::Replay => "replay_",
        }
    }

    /// Iterations a contender runs before the other takes its turn in the comparison.
    fn block(self) -> usize {
        match self {
            Server::Opencode => 25,
            Server::Replay => 100,
        }
    }
}

/// A server and the Rust clients of it.
struct Target {
    url: String,
    password: String,
    ours: Client,
    raw: RawHttp,
}

impl Target {
    fn new(url: &str, password: &str) -> Target {
        Target {
            url: url.to_string(),
            password: password.to_string(),
            ours: Client::builder(url)
                .password(password)
                .build()
                .expect("a client"),
            raw: RawHttp::new(url, Some(password)),
        }
    }

    async fn session_crud(&self, contender: Contender) {
        match contender {
            Contender::Ours => {
                let session = self
                    .ours
                    .create_session(&CreateSession::new())
                    .await
                    .expect("create a session");
                black_box(
                    self.ours
                        .session(&session.id)
                        .await
                        .expect("get the session"),
                );
                assert!(
                    self.ours
                        .delete_session(&session.id)
                        .await
                        .expect("delete the session")
                );
            }
            Contender::RawReqwest => self.raw.session_crud().await,
        }
    }

    async fn open_events(&self, contender: Contender) -> Events {
        match contender {
            Contender::Ours => {
                let mut events = self.ours.events().await.expect("open the event stream");
                next_matching(&mut events, |payload| {
                    matches!(payload, EventPayload::ServerConnected)
                })
                .await;
                Events::Ours(events)
            }
            Contender::RawReqwest => Events::Raw(self.raw.open_events().await),
        }
    }

    async fn event_round_trip(&self, events: &mut Events) {
        match events {
            Events::Ours(events) => {
                let message = unique_message("ours");
                let toast = Toast::new(message.as_str(), ToastVariant::Info);
                assert!(self.ours.show_toast(&toast).await.expect("show a toast"));
                next_matching(events, |payload| match payload {
                    EventPayload::Other {
                        kind, properties, ..
                    } => kind == "tui.toast.show" && properties["message"] == message.as_str(),
                    _ => false,
                })
                .await;
            }
            Events::Raw(events) => self.raw.event_round_trip(events).await,
        }
    }
}

/// The servers and the clients that share them.
struct Fixture {
    // Fields drop in this order: the clients, then the OpenCode server (which kills its process group), then
    // the model, then the runtimes the model's and the replay server's tasks need until then.
    opencode: Target,
    replay: Target,
    server: OpencodeServer,
    _model: ScriptedModel,
    /// Where the clients run: one thread, like node's event loop.
    runtime: tokio::runtime::Runtime,
    /// Hosts the scripted model and the replay server, which must keep running outside the clients'
    /// `block_on`.
    _background: tokio::runtime::Runtime,
}

impl Fixture {
    fn start() -> Fixture {
        let background = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let (model, server, replay_url) = background.block_on(async {
            let model = ScriptedModel::start(Script::new())
                .await
                .expect("start the scripted model");
            let server = OpencodeServer::builder()
                .model(model.base_url())
                .start()
                .await
                .unwrap_or_else(|error| {
                    panic!(
                        "this bench needs the real OpenCode server and it did not start: {error} \
                         (ORCH_SKIP_OPENCODE=1 skips it)"
                    )
                });
            let password = server.password().expect("the testkit sets a password");
            let replay_url = start_replay(password).await;
            (model, server, replay_url)
        });
        eprintln!(
            "opencode_client bench: OpenCode at {} ({}), replay server at {replay_url}",
            server.url(),
            server.binary().display()
        );
        let password = server.password().expect("the testkit sets a password");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        Fixture {
            opencode: Target::new(server.url(), password),
            replay: Target::new(&replay_url, password),
            server,
            _model: model,
            runtime,
            _background: background,
        }
    }

    fn target(&self, server: Server) -> &Target {
        match server {
            Server::Opencode => &self.opencode,
            Server::Replay => &self.replay,
        }
    }

    /// Runs one operation, failing the bench if the server does not answer in time.
    async fn run(
        &self,
        server: Server,
        workload: Workload,
        contender: Contender,
        events: Option<&mut Events>,
    ) {
        let target = self.target(server);
        let operation = async {
            match (workload, events) {
                (Workload::SessionCrud, _) => target.session_crud(contender).await,
                (Workload::EventRoundTrip, Some(events)) => target.event_round_trip(events).await,
                (Workload::EventRoundTrip, None) => unreachable!("a round trip needs a stream"),
            }
        };
        tokio::time::timeout(OPERATION_LIMIT, operation)
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} by {} on {} took over {OPERATION_LIMIT:?}; OpenCode's log:\n{}",
                    workload.name(),
                    contender.name(),
                    server.name(),
                    self.server.log()
                )
            });
    }

    /// Opens the contender's event stream if the workload needs one.
    async fn events_for(
        &self,
        server: Server,
        workload: Workload,
        contender: Contender,
    ) -> Option<Events> {
        match workload {
            Workload::EventRoundTrip => Some(self.target(server).open_events(contender).await),
            Workload::SessionCrud => None,
        }
    }

    /// Criterion's routine: `iterations` operations, timed together, after opening a stream if needed.
    fn time(
        &self,
        server: Server,
        workload: Workload,
        contender: Contender,
        iterations: u64,
    ) -> Duration {
        self.runtime.block_on(async {
            let mut events = self.events_for(server, workload, contender).await;
            let start = Instant::now();
            for _ in 0..iterations {
                self.run(server, workload, contender, events.as_mut()).await;
            }
            start.elapsed()
        })
    }
}

fn bench_group(
    criterion: &mut Criterion,
    fixture: &OnceCell<Fixture>,
    server: Server,
    workload: Workload,
) {
    let mut group: BenchmarkGroup<'_, WallTime> = criterion.benchmark_group(format!(
        "opencode_client/{}{}",
        server.group_prefix(),
        workload.name()
    ));
    if server == Server::Opencode {
        // Milliseconds per operation: criterion's default linear sampling would run thousands.
        group.sampling_mode(SamplingMode::Flat);
        group.sample_size(20);
        group.warm_up_time(Duration::from_secs(2));
        group.measurement_time(Duration::from_secs(match workload {
            Workload::SessionCrud => 15,
            Workload::EventRoundTrip => 8,
        }));
    }
    for contender in Contender::ALL {
        group.bench_function(contender.name(), |bencher| {
            let fixture = fixture.get_or_init(Fixture::start);
            bencher.iter_custom(|iterations| fixture.time(server, workload, contender, iterations));
        });
    }
    group.finish();
}

// --- The comparison with node ----------------------------------------------------------------------------

/// One block of iterations of one contender, in microseconds.
#[derive(Debug, Clone, Default)]
struct Block {
    /// Each iteration's wall time.
    samples_us: Vec<f64>,
    /// CPU time over the block's timed loop.
    cpu_us: f64,
}

/// The blocks of one contender on one workload, in the order they ran: block `i` ran next to block `i` of
/// the other contender of the same language.
#[derive(Debug, Clone, Default)]
struct Figures {
    blocks: Vec<Block>,
}

/// The element at quantile `q` of `values` (nearest rank, as the node script computes it).
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((q * sorted.len() as f64) as usize).min(sorted.len() - 1);
    sorted[index]
}

impl Figures {
    fn samples(&self) -> Vec<f64> {
        self.blocks
            .iter()
            .flat_map(|block| block.samples_us.iter().copied())
            .collect()
    }

    fn is_empty(&self) -> bool {
        self.blocks.iter().all(|block| block.samples_us.is_empty())
    }

    fn quantile(&self, q: f64) -> f64 {
        quantile(&self.samples(), q)
    }

    #[allow(clippy::cast_precision_loss)]
    fn cpu_per_operation(&self) -> f64 {
        let cpu: f64 = self.blocks.iter().map(|block| block.cpu_us).sum();
        cpu / self.samples().len() as f64
    }
}

/// What a client adds to its language's raw baseline.
#[derive(Debug, Clone, Copy)]
struct Overhead {
    /// The median, over pairs of neighbouring blocks, of the difference of their medians, with the first and
    /// third quartiles of those differences: the server's drift cancels within a pair.
    wall: [f64; 3],
    /// CPU time per operation, client minus baseline.
    cpu: f64,
}

fn overhead(client: &Figures, raw: &Figures) -> Overhead {
    let differences: Vec<f64> = client
        .blocks
        .iter()
        .zip(&raw.blocks)
        .map(|(client, raw)| quantile(&client.samples_us, 0.5) - quantile(&raw.samples_us, 0.5))
        .collect();
    Overhead {
        wall: [
            quantile(&differences, 0.25),
            quantile(&differences, 0.5),
            quantile(&differences, 0.75),
        ],
        cpu: client.cpu_per_operation() - raw.cpu_per_operation(),
    }
}

/// The CPU time so far of the calling thread (user + system), in microseconds: on a current-thread runtime
/// that is all of the client's work, and none of the servers' in-process tasks.
fn cpu_time_us() -> f64 {
    use nix::sys::resource::{UsageWho, getrusage};
    #[cfg(target_os = "linux")]
    let who = UsageWho::RUSAGE_THREAD;
    // Elsewhere the whole process: the replay server's work is then counted too (it cancels in overheads).
    #[cfg(not(target_os = "linux"))]
    let who = UsageWho::RUSAGE_SELF;
    let usage = getrusage(who).expect("getrusage");
    let us = |time: nix::sys::time::TimeVal| {
        #[allow(clippy::cast_precision_loss)]
        let seconds = time.tv_sec() as f64;
        #[allow(clippy::cast_precision_loss)]
        let micros = time.tv_usec() as f64;
        seconds * 1e6 + micros
    };
    us(usage.user_time()) + us(usage.system_time())
}

/// How the comparison on one server is sized.
#[derive(Debug, Clone, Copy)]
struct Plan {
    /// Timed iterations per contender and workload, over all rounds.
    iterations: usize,
    /// Rounds of (Rust, node), each with `iterations / rounds`.
    rounds: usize,
    warmup: usize,
    block: usize,
}

impl Plan {
    fn per_round(self) -> usize {
        self.iterations.div_ceil(self.rounds)
    }
}

/// The Rust contenders on one workload, the way the node script runs its own: a warm-up each, then blocks
/// in turn, each iteration timed alone, CPU time summed over the timed loops.
fn rust_round(fixture: &Fixture, server: Server, workload: Workload, plan: Plan) -> [Figures; 2] {
    fixture.runtime.block_on(async {
        for contender in Contender::ALL {
            let mut events = fixture.events_for(server, workload, contender).await;
            for _ in 0..plan.warmup {
                fixture
                    .run(server, workload, contender, events.as_mut())
                    .await;
            }
        }
        let mut figures = [Figures::default(), Figures::default()];
        let mut done = 0;
        let mut round = 0;
        while done < plan.per_round() {
            let count = plan.block.min(plan.per_round() - done);
            let mut order = Contender::ALL;
            if round % 2 == 1 {
                order.reverse();
            }
            for contender in order {
                let mut events = fixture.events_for(server, workload, contender).await;
                let mut block = Block::default();
                let cpu_start = cpu_time_us();
                for _ in 0..count {
                    let start = Instant::now();
                    fixture
                        .run(server, workload, contender, events.as_mut())
                        .await;
                    block.samples_us.push(start.elapsed().as_secs_f64() * 1e6);
                }
                block.cpu_us = cpu_time_us() - cpu_start;
                figures[contender as usize].blocks.push(block);
            }
            done += count;
            round += 1;
        }
        figures
    })
}

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("js")
}

/// Makes sure `benches/js/node_modules` holds the SDK; says why not if it cannot.
fn prepare_node() -> Result<(), String> {
    let dir = js_dir();
    let probe = |program: &str| {
        Command::new(program)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|output| output.status.success())
    };
    if !probe("node") {
        return Err("node is not installed (or not on PATH)".to_string());
    }
    if dir
        .join("node_modules/@opencode-ai/sdk/package.json")
        .is_file()
    {
        return Ok(());
    }
    if !probe("npm") {
        return Err("npm is not installed, so @opencode-ai/sdk cannot be installed".to_string());
    }
    eprintln!("opencode_client bench: installing benches/js (npm ci)");
    let output = Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("npm ci could not run: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "npm ci in {} failed ({}): {}",
            dir.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// What the node script reports.
struct NodeRun {
    node_version: String,
    sdk_version: String,
    /// `[sdk, fetch]` per workload, in `Workload::ALL` order.
    figures: [[Figures; 2]; 2],
}

fn node_round(target: &Target, plan: Plan) -> Result<NodeRun, String> {
    let output = Command::new("node")
        .arg(js_dir().join("sdk_bench.mjs"))
        .args(["--url", &target.url])
        .args(["--password", &target.password])
        .args(["--iterations", &plan.per_round().to_string()])
        .args(["--warmup", &plan.warmup.to_string()])
        .args(["--block", &plan.block.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| format!("node could not run: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "sdk_bench.mjs failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|error| format!("sdk_bench.mjs printed something else than JSON: {error}"))?;
    let figures_of = |workload: Workload, contender: &str| -> Result<Figures, String> {
        let missing = || {
            format!(
                "sdk_bench.mjs reported no blocks for {contender} in {}",
                workload.name()
            )
        };
        let blocks = report["results"][workload.name()][contender]["blocks"]
            .as_array()
            .ok_or_else(missing)?
            .iter()
            .map(|block| Block {
                samples_us: block["samples_us"]
                    .as_array()
                    .map(|samples| {
                        samples
                            .iter()
                            .filter_map(serde_json::Value::as_f64)
                            .collect()
                    })
                    .unwrap_or_default(),
                cpu_us: block["cpu_us"].as_f64().unwrap_or(f64::NAN),
            })
            .collect();
        Ok(Figures { blocks })
    };
    Ok(NodeRun {
        node_version: report["node"].as_str().unwrap_or("?").to_string(),
        sdk_version: report["sdk_version"].as_str().unwrap_or("?").to_string(),
        figures: [
            [
                figures_of(Workload::SessionCrud, "sdk")?,
                figures_of(Workload::SessionCrud, "fetch")?,
            ],
            [
                figures_of(Workload::EventRoundTrip, "sdk")?,
                figures_of(Workload::EventRoundTrip, "fetch")?,
            ],
        ],
    })
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .filter(|&value| value > 0)
        .unwrap_or(default)
}

/// Runs the four contenders on every server and prints the tables.
fn compare(fixture: &Fixture, test_mode: bool) {
    let mut node_error = prepare_node().err();
    if let Some(reason) = &node_error {
        eprintln!("opencode_client bench: the JavaScript SDK is left out: {reason}");
    }
    for server in Server::ALL {
        let plan = if test_mode {
            Plan {
                iterations: 1,
                rounds: 1,
                warmup: 0,
                block: 1,
            }
        } else {
            Plan {
                iterations: match server {
                    Server::Opencode => env_usize("OPENCODE_BENCH_ITERATIONS", 400),
                    Server::Replay => env_usize("OPENCODE_BENCH_REPLAY_ITERATIONS", 4000),
                },
                rounds: env_usize("OPENCODE_BENCH_ROUNDS", 4),
                warmup: WARMUP,
                block: server.block(),
            }
        };
        // [workload][ours, raw reqwest, sdk, fetch]
        let mut figures: [[Figures; 4]; 2] = Default::default();
        let mut versions = None;
        for round in 0..plan.rounds {
            let mut run_node = |figures: &mut [[Figures; 4]; 2]| {
                if node_error.is_some() {
                    return;
                }
                match node_round(fixture.target(server), plan) {
                    Ok(run) => {
                        for (workload, [sdk, fetch]) in run.figures.into_iter().enumerate() {
                            figures[workload][2].blocks.extend(sdk.blocks);
                            figures[workload][3].blocks.extend(fetch.blocks);
                        }
                        versions = Some((run.node_version, run.sdk_version));
                    }
                    Err(reason) => {
                        eprintln!(
                            "opencode_client bench: the JavaScript SDK is left out: {reason}"
                        );
                        node_error = Some(reason);
                    }
                }
            };
            let node_first = round % 2 == 1;
            if node_first {
                run_node(&mut figures);
            }
            for (index, workload) in Workload::ALL.into_iter().enumerate() {
                let [ours, raw] = rust_round(fixture, server, workload, plan);
                figures[index][0].blocks.extend(ours.blocks);
                figures[index][1].blocks.extend(raw.blocks);
            }
            if !node_first {
                run_node(&mut figures);
            }
        }
        print_comparison(
            server,
            &figures,
            plan,
            versions.as_ref(),
            node_error.as_deref(),
        );
    }
}

fn print_comparison(
    server: Server,
    figures: &[[Figures; 4]; 2],
    plan: Plan,
    versions: Option<&(String, String)>,
    node_error: Option<&str>,
) {
    let names = [
        "opencode-client",
        "reqwest (raw)",
        "@opencode-ai/sdk",
        "fetch (raw)",
    ];
    println!();
    println!(
        "opencode_client comparison on the {} server: {} timed iterations per contender and workload in {} \
         round(s), blocks of {}; microseconds per operation",
        server.name(),
        plan.rounds * plan.per_round(),
        plan.rounds,
        plan.block
    );
    match (versions, node_error) {
        (_, Some(reason)) => println!("JavaScript SDK left out: {reason}"),
        (Some((node, sdk)), None) => println!("node {node}, @opencode-ai/sdk {sdk}"),
        (None, None) => {}
    }
    println!(
        "{:<17} {:<17} {:>10} {:>10} {:>10}",
        "workload", "contender", "median", "p90", "cpu/op"
    );
    for (workload, row) in Workload::ALL.into_iter().zip(figures) {
        for (name, figures) in names.iter().zip(row) {
            if figures.is_empty() {
                continue;
            }
            println!(
                "{:<17} {:<17} {:>10.1} {:>10.1} {:>10.1}",
                workload.name(),
                name,
                figures.quantile(0.5),
                figures.quantile(0.9),
                figures.cpu_per_operation()
            );
        }
    }
    println!(
        "overhead = client - raw baseline of its language; wall: median over neighbouring block pairs of the \
         difference of their medians [quartiles]; cpu: per operation"
    );
    for (workload, row) in Workload::ALL.into_iter().zip(figures) {
        let ours = overhead(&row[0], &row[1]);
        let [low, mid, high] = ours.wall;
        print!(
            "{:<17} ours: wall {mid:.1} [{low:.1}, {high:.1}], cpu {:.1}",
            workload.name(),
            ours.cpu
        );
        if row[2].is_empty() {
            println!();
            continue;
        }
        let sdk = overhead(&row[2], &row[3]);
        let [low, mid, high] = sdk.wall;
        println!(
            "; SDK: wall {mid:.1} [{low:.1}, {high:.1}], cpu {:.1}; ours / SDK: wall {:.2}, cpu {:.2}",
            sdk.cpu,
            ours.wall[1] / sdk.wall[1],
            ours.cpu / sdk.cpu
        );
    }
}

fn main() {
    if std::env::var("ORCH_SKIP_OPENCODE").as_deref() == Ok("1") {
        eprintln!(
            "ORCH_SKIP_OPENCODE=1: skipping the opencode_client bench, which needs the real server"
        );
        return;
    }
    let arguments: Vec<String> = std::env::args().collect();
    let flag = |name: &str| arguments.iter().any(|argument| argument == name);
    // As criterion decides: `cargo bench -- --test`, and `cargo test --benches` (which passes no `--bench`),
    // run each benchmark once.
    let test_mode = flag("--test") || !flag("--bench");
    let listing = flag("--list") || flag("--profile-time");

    let fixture = OnceCell::new();
    let mut criterion = Criterion::default().configure_from_args();
    for server in Server::ALL {
        for workload in Workload::ALL {
            bench_group(&mut criterion, &fixture, server, workload);
        }
    }
    if !listing {
        compare(fixture.get_or_init(Fixture::start), test_mode);
    }
    criterion.final_summary();
}
