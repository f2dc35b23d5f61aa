//! `--otlp`: a mission's spans reach an OTLP/HTTP receiver started here (an axum server taking
//! `POST /v1/traces` with protobuf, decoded by hand below), as one trace: the mission with its id, its
//! stages, the task with its id and the mission's, its attempt and its turns with their usage. Needs the
//! `otel` feature (`cargo test -p orchestrator --features otel --test otlp`) and the real OpenCode
//! (`ORCH_SKIP_OPENCODE=1` skips it).

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::{ProcessTag, binary, one_task, show, wait_with_limit};
use opencode_client::testkit::{Reply, Rule, Usage};
use orchestrator::cli::demo::agent;
use orchestrator::domain::prompts::Role;

/// The bodies of the export requests the receiver got.
#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<Vec<u8>>>>);

/// Starts an OTLP/HTTP receiver on a free port; returns its base URL.
async fn receiver(received: Received) -> String {
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(
            |axum::extract::State(received): axum::extract::State<Received>,
             headers: HeaderMap,
             body: axum::body::Bytes| async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|value| value.to_str().ok())
                    .unwrap_or_default();
                if content_type != "application/x-protobuf" {
                    return (StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
                }
                received.0.lock().unwrap().push(body.to_vec());
                // An empty ExportTraceServiceResponse: everything accepted.
                (StatusCode::OK, Vec::new())
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app.with_state(received))
            .await
            .unwrap();
    });
    url
}

/// A protobuf field's value, by wire type.
#[derive(Debug, Clone, Copy)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    /// Skipped: no field the test reads has this type.
    Fixed32,
}

fn varint(bytes: &mut &[u8]) -> u64 {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = bytes.split_first().expect("a varint");
        *bytes = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return value;
        }
    }
    panic!("a varint longer than 10 bytes")
}

/// The fields of a protobuf message, in order.
fn fields(mut bytes: &[u8]) -> Vec<(u64, Wire<'_>)> {
    let mut fields = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        let value = match key & 7 {
            0 => Wire::Varint(varint(&mut bytes)),
            1 => {
                let (value, rest) = bytes.split_at(8);
                bytes = rest;
                Wire::Fixed64(u64::from_le_bytes(value.try_into().unwrap()))
            }
            2 => {
                let len = usize::try_from(varint(&mut bytes)).unwrap();
                let (value, rest) = bytes.split_at(len);
                bytes = rest;
                Wire::Bytes(value)
            }
            5 => {
                bytes = &bytes[4..];
                Wire::Fixed32
            }
            other => panic!("wire type {other} is not in OTLP"),
        };
        fields.push((key >> 3, value));
    }
    fields
}

/// The length-delimited fields numbered `number`.
fn messages(bytes: &[u8], number: u64) -> impl Iterator<Item = &[u8]> {
    fields(bytes)
        .into_iter()
        .filter_map(move |(field, value)| match value {
            Wire::Bytes(bytes) if field == number => Some(bytes),
            _ => None,
        })
}

/// An attribute's value (`AnyValue`), as far as the spans use them.
#[derive(Debug, Clone, PartialEq)]
enum Value {
    String(String),
    Bool(bool),
    Int(i64),
    Double(f64),
    Other,
}

impl Value {
    fn int(&self) -> i64 {
        match self {
            Value::Int(value) => *value,
            other => panic!("not an integer: {other:?}"),
        }
    }
}

/// One exported span.
#[derive(Debug, Clone)]
struct Span {
    trace: Vec<u8>,
    id: Vec<u8>,
    parent: Vec<u8>,
    name: String,
    attributes: BTreeMap<String, Value>,
}

impl Span {
    fn string(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(Value::String(value)) => Some(value),
            _ => None,
        }
    }
}

/// `KeyValue { string key = 1; AnyValue value = 2; }`, `AnyValue { oneof: string 1, bool 2, int64 3,
/// double 4, … }`.
fn attribute(bytes: &[u8]) -> (String, Value) {
    let mut key = String::new();
    let mut value = Value::Other;
    for (field, wire) in fields(bytes) {
        match (field, wire) {
            (1, Wire::Bytes(text)) => key = String::from_utf8(text.to_vec()).unwrap(),
            (2, Wire::Bytes(any)) => {
                for (field, wire) in fields(any) {
                    value = match (field, wire) {
                        (1, Wire::Bytes(text)) => {
                            Value::String(String::from_utf8(text.to_vec()).unwrap())
                        }
                        (2, Wire::Varint(flag)) => Value::Bool(flag != 0),
                        (3, Wire::Varint(int)) => Value::Int(int as i64),
                        (4, Wire::Fixed64(bits)) => Value::Double(f64::from_bits(bits)),
                        _ => Value::Other,
                    };
                }
            }
            _ => {}
        }
    }
    (key, value)
}

/// The spans of an `ExportTraceServiceRequest` (`resource_spans = 1` → `scope_spans = 2` → `spans = 2`;
/// a span's `trace_id = 1`, `span_id = 2`, `parent_span_id = 4`, `name = 5`, `attributes = 9`), and the
/// resources' attributes.
fn spans(request: &[u8]) -> (Vec<Span>, BTreeMap<String, Value>) {
    let mut spans = Vec::new();
    let mut resource = BTreeMap::new();
    for resource_spans in messages(request, 1) {
        for attributes in messages(resource_spans, 1) {
            resource.extend(messages(attributes, 1).map(attribute));
        }
        for scope_spans in messages(resource_spans, 2) {
            for span in messages(scope_spans, 2) {
                let mut decoded = Span {
                    trace: Vec::new(),
                    id: Vec::new(),
                    parent: Vec::new(),
                    name: String::new(),
                    attributes: BTreeMap::new(),
                };
                for (field, wire) in fields(span) {
                    match (field, wire) {
                        (1, Wire::Bytes(bytes)) => decoded.trace = bytes.to_vec(),
                        (2, Wire::Bytes(bytes)) => decoded.id = bytes.to_vec(),
                        (4, Wire::Bytes(bytes)) => decoded.parent = bytes.to_vec(),
                        (5, Wire::Bytes(bytes)) => {
                            decoded.name = String::from_utf8(bytes.to_vec()).unwrap();
                        }
                        (9, Wire::Bytes(bytes)) => {
                            let (key, value) = attribute(bytes);
                            decoded.attributes.insert(key, value);
                        }
                        _ => {}
                    }
                }
                spans.push(decoded);
            }
        }
    }
    (spans, resource)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_otlp_receiver_with_mission_and_task_ids() {
    // The Commander reports its usage: its turn's span carries exactly these counts.
    let commander = Rule::when(agent(Role::Commander))
        .reply(Reply::text("Brief.").with_usage(Usage::new(1000, 300)));
    let Some(rig) = common::rig(|_| one_task(commander)).await else {
        return;
    };
    let received = Received::default();
    let collector = receiver(received.clone()).await;
    let server = &rig.demo.server;
    let tag = ProcessTag::new();
    let mut command = Command::new(binary());
    command
        .args(["task", "--url", server.url(), "--project"])
        .arg(&rig.project)
        .args(["--check", "true", "--otlp", &collector, "Write one file"])
        .env("OPENCODE_SERVER_PASSWORD", server.password().unwrap_or(""))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tag.apply(&mut command);
    let (output, took) = wait_with_limit(command.spawn().unwrap(), Duration::from_secs(300));
    eprintln!("took {took:?}; {}", show(&output));
    assert_eq!(output.status.code(), Some(0), "{}", show(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("exporting traces to {collector}/v1/traces")),
        "{stderr}"
    );
    let ids = orchestrator::adapters::journal::mission_ids(&rig.project);
    let [mission_id] = ids.as_slice() else {
        panic!("one mission expected: {ids:?}")
    };

    // Everything was sent before the orchestrator exited.
    let bodies = received.0.lock().unwrap().clone();
    assert!(!bodies.is_empty(), "no export request reached the receiver");
    let mut all = Vec::new();
    for body in &bodies {
        let (spans, resource) = spans(body);
        assert_eq!(
            resource.get("service.name"),
            Some(&Value::String("orchestrator".to_string())),
            "{resource:?}"
        );
        all.extend(spans);
    }
    let names: Vec<&str> = all.iter().map(|span| span.name.as_str()).collect();
    eprintln!("{} spans: {names:?}", all.len());
    let by_id = |id: &[u8]| all.iter().find(|span| span.id == id);
    let named = |name: &'static str| all.iter().filter(move |span| span.name == name);

    let missions: Vec<&Span> = named("mission").collect();
    let [mission] = missions.as_slice() else {
        panic!("one mission span expected: {names:?}")
    };
    assert_eq!(mission.string("mission.id"), Some(mission_id.as_str()));
    assert_eq!(mission.string("status"), Some("completed"), "{mission:?}");
    assert_eq!(mission.attributes["tasks.done"].int(), 1, "{mission:?}");
    assert!(mission.attributes["tokens"].int() >= 1300, "{mission:?}");
    assert!(mission.parent.is_empty(), "the mission is the trace's root");

    let stages: Vec<&str> = named("stage")
        .inspect(|stage| assert_eq!(stage.parent, mission.id, "{stage:?}"))
        .filter_map(|stage| stage.string("stage"))
        .collect();
    assert_eq!(stages, ["command", "plan", "work"]);

    let tasks: Vec<&Span> = named("task").collect();
    let [task] = tasks.as_slice() else {
        panic!("one task span expected: {names:?}")
    };
    assert_eq!(task.string("task.id"), Some("T1.1"), "{task:?}");
    assert_eq!(task.string("mission.id"), Some(mission_id.as_str()));
    assert_eq!(task.string("status"), Some("done"), "{task:?}");
    let stage = by_id(&task.parent).expect("the task's parent was exported");
    assert_eq!(stage.string("stage"), Some("work"), "{stage:?}");

    let attempts: Vec<&Span> = named("attempt")
        .filter(|attempt| attempt.parent == task.id)
        .collect();
    assert_eq!(attempts.len(), 1, "{names:?}");
    assert_eq!(attempts[0].string("task.id"), Some("T1.1"));

    let turns: Vec<&Span> = named("turn").collect();
    let worker = turns
        .iter()
        .find(|turn| turn.string("role") == Some("Worker"))
        .expect("a Worker turn");
    assert_eq!(worker.parent, attempts[0].id, "{worker:?}");
    assert_eq!(worker.string("task.id"), Some("T1.1"));
    assert_eq!(worker.string("finish"), Some("answered"), "{worker:?}");
    assert!(
        worker
            .string("session")
            .is_some_and(|session| session.starts_with("ses"))
    );
    assert!(
        turns
            .iter()
            .any(|turn| turn.string("role") == Some("Reviewer") && turn.parent == attempts[0].id)
    );
    let commander = turns
        .iter()
        .find(|turn| turn.string("role") == Some("Commander"))
        .expect("a Commander turn");
    assert_eq!(
        by_id(&commander.parent).and_then(|stage| stage.string("stage")),
        Some("command")
    );
    assert_eq!(
        commander.attributes["tokens.input"].int(),
        1000,
        "{commander:?}"
    );
    assert_eq!(
        commander.attributes["tokens.output"].int(),
        300,
        "{commander:?}"
    );
    assert_eq!(commander.attributes["tokens"].int(), 1300, "{commander:?}");

    // One trace.
    assert!(all.iter().all(|span| span.trace == mission.trace));

    // The log has a line per turn and one for the mission's end.
    let log = std::fs::read_to_string(orchestrator::cli::logging::log_path(&rig.project)).unwrap();
    assert!(
        log.lines().any(|line| line.contains("turn ended")
            && line.contains("session=\"ses")
            && line.contains("finish=\"answered\"")
            && line.contains("tokens=")
            && line.contains("took_ms=")),
        "{log}"
    );
    assert!(
        log.lines().any(|line| line.contains("mission ended")
            && line.contains(&format!("mission.id={mission_id}"))),
        "{log}"
    );
    let left = tag.wait_gone(Duration::from_secs(5));
    assert!(left.is_empty(), "processes left running: {left:?}");
}
