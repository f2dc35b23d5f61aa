//! Records the real server's event stream into `tests/fixtures/*.sse`, which `tests/fixtures.rs` decodes.
//! Run by hand when the pinned OpenCode version changes:
//!
//! ```sh
//! cargo test -p opencode-client --features testkit --test record -- --ignored --test-threads=1
//! ```
//!
//! Each scenario captures the raw bytes of `GET /event` while a scripted model drives one session: a text
//! answer, a tool round trip (the `write` tool), a permission asked and answered, and a model that fails with
//! HTTP 500. The `answer-*.json` and `messages-*.json` fixtures are message bodies as the server sent them: a
//! structured answer, a text answer to a structured prompt, an answer with usage and a price, and a session
//! aborted while a tool ran.

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use opencode_client::testkit::{
    Match, ModelPrice, OpencodeServer, Reply, Rule, Script, ScriptedModel, Usage,
};
use opencode_client::{CreateSession, EventPayload, Part, PermissionReply, Prompt, ToolState};
use serde_json::{Value, json};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(format!("{name}.sse"))
}

/// Captures the raw event stream while `scenario` runs, until the session is idle, then writes the fixture.
async fn record(
    name: &str,
    script: Script,
    config: Option<serde_json::Value>,
    prompt: &str,
    answer_permissions: bool,
) {
    let model = ScriptedModel::start(script).await.unwrap();
    let mut builder = OpencodeServer::builder().model(model.base_url());
    if let Some(config) = config {
        builder = builder.config(config);
    }
    let server = builder.start().await.unwrap();
    let client = server.client();
    // The raw bytes, read beside the typed stream that decides when to stop.
    let raw = reqwest::Client::new()
        .get(format!("{}/event", server.url()))
        .basic_auth("opencode", server.password())
        .send()
        .await
        .unwrap();
    let mut raw_body = raw.bytes_stream();
    let mut typed = client.events().await.unwrap();
    let session = client
        .create_session(&CreateSession::new().title(name))
        .await
        .unwrap();
    client
        .prompt_async(&session.id, &Prompt::text(prompt))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let item = tokio::time::timeout_at(deadline, typed.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let opencode_client::StreamItem::Event(event) = item {
            match &event.payload {
                EventPayload::PermissionAsked(request) if answer_permissions => {
                    client
                        .reply_permission(&request.id, PermissionReply::Once, None)
                        .await
                        .unwrap();
                }
                EventPayload::SessionIdle { session_id } if *session_id == session.id => break,
                _ => {}
            }
        }
    }
    // Let the last events reach the raw stream too.
    let mut bytes = Vec::new();
    let settle = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(Ok(chunk))) = tokio::time::timeout_at(settle, raw_body.next()).await {
        bytes.extend_from_slice(&chunk);
    }
    // Paths of the scratch project would differ on every run: replace them.
    let text = String::from_utf8(bytes).unwrap().replace(
        &server.project_dir().to_string_lossy().to_string(),
        "/project",
    );
    std::fs::write(fixture(name), text).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records fixtures from the real server; run by hand"]
async fn record_text_answer() {
    record(
        "text-answer",
        Script::new().fallback(Reply::text("A scripted answer, streamed in pieces.")),
        None,
        "Say something",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records fixtures from the real server; run by hand"]
async fn record_tool_round_trip() {
    let script = Script::new()
        .rule(Rule::when(Match::LastIsToolResult).reply(Reply::text("Written.")))
        .fallback(Reply::tool(
            "write",
            json!({ "filePath": "notes.txt", "content": "recorded by a tool call\n" }),
        ));
    record("tool-round-trip", script, None, "Write notes.txt", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records fixtures from the real server; run by hand"]
async fn record_permission() {
    let script = Script::new()
        .rule(Rule::when(Match::LastIsToolResult).reply(Reply::text("Ran it.")))
        .fallback(Reply::tool(
            "bash",
            json!({ "command": "echo recorded", "description": "Echo" }),
        ));
    record(
        "permission",
        script,
        Some(json!({ "permission": { "bash": "ask" } })),
        "Run echo",
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records fixtures from the real server; run by hand"]
async fn record_model_error() {
    let script = Script::new().fallback(Reply::Status {
        status: 500,
        body: r#"{"error":{"message":"scripted failure"}}"#.into(),
    });
    record("model-error", script, None, "This will fail", false).await;
}

fn json_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(format!("{name}.json"))
}

/// Writes a JSON body as a fixture, with the scratch project's path replaced.
fn write_json(name: &str, server: &OpencodeServer, body: &[u8]) {
    let value: Value = serde_json::from_slice(body).unwrap();
    let text = serde_json::to_string_pretty(&value).unwrap().replace(
        &server.project_dir().to_string_lossy().to_string(),
        "/project",
    );
    std::fs::write(json_fixture(name), text + "\n").unwrap();
}

/// Sends `prompt` (raw JSON) synchronously in a fresh session and records the server's answer as it came.
async fn record_answer(name: &str, script: Script, price: Option<ModelPrice>, prompt: Value) {
    let model = ScriptedModel::start(script).await.unwrap();
    let mut builder = OpencodeServer::builder().model(model.base_url());
    if let Some(price) = price {
        builder = builder.model_price(price);
    }
    let server = builder.start().await.unwrap();
    let session = server
        .client()
        .create_session(&CreateSession::new().title(name))
        .await
        .unwrap();
    let body = reqwest::Client::new()
        .post(format!("{}/session/{}/message", server.url(), session.id))
        .basic_auth("opencode", server.password())
        .json(&prompt)
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_json(name, &server, &body);
}

fn plan_schema() -> Value {
    json!({"type": "object", "properties": {"tasks": {"type": "array", "items": {"type": "string"}}}, "required": ["tasks"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records fixtures from the real server; run by hand"]
async fn record_structured_answer() {
    let script = Script::new()
        .rule(Rule::when(Match::HasTools(false)).reply(Reply::text("A title")))
        .fallback(Reply::structured(json!({"tasks": ["parse", "test"]})));
    let prompt = json!({
        "parts": [{"type": "text", "text": "Plan it"}],
        "format": {"type": "json_schema", "schema": plan_schema()},
    });
    record_answer("answer-structured", script, None, prompt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records fixtures from the real server; run by hand"]
async fn record_structured_text_answer() {
    let script = Script::new()
        .rule(Rule::when(Match::HasTools(false)).reply(Reply::text("A title")))
        .fallback(Reply::text("A plan in prose."));
    let prompt = json!({
        "parts": [{"type": "text", "text": "Plan it"}],
        "format": {"type": "json_schema", "schema": plan_schema(), "retryCount": 2},
    });
    record_answer("answer-structured-text", script, None, prompt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records fixtures from the real server; run by hand"]
async fn record_usage_answer() {
    let script = Script::new()
        .rule(Rule::when(Match::HasTools(false)).reply(Reply::text("A title")))
        .fallback(
            Reply::text("Counted.").with_usage(Usage::new(1000, 300).cached(200).reasoning(50)),
        );
    let prompt = json!({"parts": [{"type": "text", "text": "Count"}]});
    let price = ModelPrice::new(3.0, 15.0).cache(0.3, 3.75);
    record_answer("answer-usage", script, Some(price), prompt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "records fixtures from the real server; run by hand"]
async fn record_aborted_messages() {
    let script = Script::new()
        .rule(Rule::when(Match::HasTools(false)).reply(Reply::text("A title")))
        .fallback(Reply::tool(
            "bash",
            json!({"command": "sleep 60", "description": "Wait"}),
        ));
    let model = ScriptedModel::start(script).await.unwrap();
    let server = OpencodeServer::builder()
        .model(model.base_url())
        .start()
        .await
        .unwrap();
    let client = server.client();
    let session = client
        .create_session(&CreateSession::new().title("aborted"))
        .await
        .unwrap();
    let mut events = client.events().await.unwrap();
    client
        .prompt_async(&session.id, &Prompt::text("Wait a minute"))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    let mut aborted = false;
    loop {
        let item = tokio::time::timeout_at(deadline, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let opencode_client::StreamItem::Event(event) = item else {
            continue;
        };
        match &event.payload {
            EventPayload::MessagePartUpdated {
                part: Part::Tool(tool),
                ..
            } if !aborted && matches!(tool.state, ToolState::Running { .. }) => {
                client.abort(&session.id).await.unwrap();
                aborted = true;
            }
            EventPayload::SessionIdle { session_id } if *session_id == session.id => break,
            _ => {}
        }
    }
    let body = reqwest::Client::new()
        .get(format!("{}/session/{}/message", server.url(), session.id))
        .basic_auth("opencode", server.password())
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    write_json("messages-aborted", &server, &body);
}
