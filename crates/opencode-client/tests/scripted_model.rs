//! `ScriptedModel` against a plain HTTP client: the OpenAI wire format, rules, faults, the log, shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use opencode_client::testkit::{
    Match, ModelRequest, Reply, Rule, STRUCTURED_OUTPUT_TOOL, Script, ScriptedModel, ToolCall,
    Usage,
};
use serde_json::{Value, json};

/// A body like OpenCode's: system prompt, a user message as content parts, a tool list.
fn request(user: &str) -> Value {
    json!({
        "model": "fake-model",
        "stream": true,
        "messages": [
            {"role": "system", "content": "You are OpenCode. AGENT: Worker"},
            {"role": "user", "content": [{"type": "text", "text": user}]},
        ],
        "tools": [
            {"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}},
            {"type": "function", "function": {"name": "write", "parameters": {"type": "object"}}},
        ],
    })
}

/// A follow-up after the model called `write`: the last message is the tool's result.
fn tool_callback(result: &str) -> Value {
    json!({
        "model": "fake-model",
        "stream": true,
        "messages": [
            {"role": "system", "content": "You are OpenCode."},
            {"role": "user", "content": "create hello.txt"},
            {"role": "assistant", "content": "", "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "write", "arguments": "{\"filePath\":\"/p/hello.txt\",\"content\":\"hi\"}"},
            }]},
            {"role": "tool", "tool_call_id": "call_1", "content": result},
        ],
        "tools": [{"type": "function", "function": {"name": "write"}}],
    })
}

async fn post(model: &ScriptedModel, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/chat/completions", model.base_url()))
        .json(body)
        .send()
        .await
        .expect("the model answers")
}

/// What a client read from a streamed completion.
#[derive(Debug, Default)]
struct Streamed {
    /// Every `data:` payload but `[DONE]`, parsed.
    chunks: Vec<Value>,
    /// Whether `data: [DONE]` arrived.
    done: bool,
    /// Whether the body broke off (the connection dropped before the stream ended).
    broken: bool,
}

impl Streamed {
    fn text(&self) -> String {
        self.chunks
            .iter()
            .filter_map(|chunk| {
                chunk
                    .pointer("/choices/0/delta/content")
                    .and_then(Value::as_str)
            })
            .collect()
    }

    /// The tool calls as `(id, name, arguments)`, assembled from their deltas by index.
    fn tool_calls(&self) -> Vec<(String, String, Value)> {
        let mut calls: Vec<(String, String, String)> = Vec::new();
        for chunk in &self.chunks {
            let Some(deltas) = chunk
                .pointer("/choices/0/delta/tool_calls")
                .and_then(Value::as_array)
            else {
                continue;
            };
            for delta in deltas {
                let index = delta["index"]
                    .as_u64()
                    .expect("every tool-call delta has an index")
                    as usize;
                if index == calls.len() {
                    assert_eq!(
                        delta["type"], "function",
                        "a call's first delta says its type"
                    );
                    calls.push((
                        delta["id"]
                            .as_str()
                            .expect("a call's first delta has its id")
                            .to_string(),
                        delta["function"]["name"]
                            .as_str()
                            .expect("a call's first delta has its name")
                            .to_string(),
                        String::new(),
                    ));
                }
                if let Some(piece) = delta.pointer("/function/arguments").and_then(Value::as_str) {
                    calls[index].2.push_str(piece);
                }
            }
        }
        calls
            .into_iter()
            .map(|(id, name, arguments)| {
                let arguments = serde_json::from_str(&arguments).expect("the arguments are JSON");
                (id, name, arguments)
            })
            .collect()
    }

    fn finish_reason(&self) -> Option<&str> {
        self.chunks.iter().find_map(|chunk| {
            chunk
                .pointer("/choices/0/finish_reason")
                .and_then(Value::as_str)
        })
    }
}

/// Reads a server-sent-event body to its end (or its break), checking each event's framing.
async fn read_stream(response: reqwest::Response) -> Streamed {
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut buffer = Vec::new();
    let mut streamed = Streamed::default();
    while let Some(bytes) = body.next().await {
        match bytes {
            Ok(bytes) => buffer.extend_from_slice(&bytes),
            Err(_) => {
                streamed.broken = true;
                break;
            }
        }
    }
    let text = String::from_utf8(buffer).expect("the stream is UTF-8");
    for event in text.split_terminator("\n\n") {
        let data = event
            .strip_prefix("data: ")
            .expect("every event is one data line");
        assert!(!streamed.done, "nothing follows [DONE]");
        if data == "[DONE]" {
            streamed.done = true;
        } else {
            streamed
                .chunks
                .push(serde_json::from_str(data).expect("every chunk is JSON"));
        }
    }
    streamed
}

#[tokio::test]
async fn text_streams_in_openai_chunks() {
    let text = "Hello from the scripted model, in several pieces: ünïcödé too.";
    let model = ScriptedModel::start(Script::new().fallback(Reply::text(text)))
        .await
        .unwrap();
    let streamed = read_stream(post(&model, &request("hi")).await).await;

    assert!(streamed.done && !streamed.broken);
    assert_eq!(streamed.text(), text);
    assert!(
        streamed.chunks.len() >= 4,
        "the text arrives in several chunks: {:?}",
        streamed.chunks
    );
    let id = &streamed.chunks[0]["id"];
    for chunk in &streamed.chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(
            chunk["model"], "fake-model",
            "the requested model is echoed"
        );
        assert_eq!(&chunk["id"], id, "one id for the whole completion");
        assert!(chunk["created"].is_u64());
    }
    assert_eq!(
        streamed.chunks[0]["choices"][0]["delta"]["role"],
        "assistant"
    );
    let last = streamed.chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "stop");
    let usage = &last["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() > 0);
    // Only the last chunk finishes.
    let finished = streamed
        .chunks
        .iter()
        .filter(|chunk| !chunk["choices"][0]["finish_reason"].is_null())
        .count();
    assert_eq!(finished, 1);
}

#[tokio::test]
async fn tool_calls_stream_with_names_ids_and_json_arguments() {
    let long = "x".repeat(2000);
    let script = Script::new().fallback(Reply::TextThenToolCalls(
        "Writing two files.".into(),
        vec![
            ToolCall::new("write", json!({"filePath": "/p/a.txt", "content": long})),
            ToolCall::new("bash", json!({"command": "ls -la", "description": "List"})),
        ],
    ));
    let model = ScriptedModel::start(script).await.unwrap();
    let first = read_stream(post(&model, &request("go")).await).await;
    let second = read_stream(post(&model, &request("go")).await).await;

    assert!(first.done);
    assert_eq!(first.text(), "Writing two files.");
    assert_eq!(first.finish_reason(), Some("tool_calls"));
    let calls = first.tool_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].1, "write");
    assert_eq!(
        calls[0].2,
        json!({"filePath": "/p/a.txt", "content": "x".repeat(2000)})
    );
    assert_eq!(calls[1].1, "bash");
    assert_eq!(
        calls[1].2,
        json!({"command": "ls -la", "description": "List"})
    );
    let argument_deltas = first
        .chunks
        .iter()
        .filter(|chunk| {
            chunk
                .pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .is_some()
        })
        .count();
    assert!(
        argument_deltas > 4,
        "arguments arrive in pieces like a real provider's"
    );
    // Call ids are `call_<n>` and never repeat, also across completions.
    let mut ids: Vec<String> = calls
        .iter()
        .chain(&second.tool_calls())
        .map(|call| call.0.clone())
        .collect();
    assert!(ids.iter().all(|id| id.starts_with("call_")), "{ids:?}");
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4);
}

#[tokio::test]
async fn a_tool_call_alone_has_no_content_delta() {
    let model = ScriptedModel::start(
        Script::new().fallback(Reply::tool("read", json!({"filePath": "/p/x"}))),
    )
    .await
    .unwrap();
    let streamed = read_stream(post(&model, &request("read it")).await).await;
    assert_eq!(
        streamed.chunks[0]["choices"][0]["delta"]["role"],
        "assistant"
    );
    assert!(
        streamed
            .chunks
            .iter()
            .all(|chunk| chunk.pointer("/choices/0/delta/content").is_none())
    );
    assert_eq!(streamed.tool_calls()[0].1, "read");
    assert_eq!(streamed.tool_calls()[0].2, json!({"filePath": "/p/x"}));
}

#[tokio::test]
async fn rules_answer_in_order_and_fall_through() {
    let script = Script::new()
        .rule(Rule::when(Match::LastIsToolResult).reply(Reply::text("after tool")))
        .rule(
            Rule::when(Match::ToolResultContains("never".into())).reply(Reply::text("unreachable")),
        )
        .rule(
            Rule::when(Match::All(vec![
                Match::SystemContains("AGENT: Worker".into()),
                Match::LastUserContains("build".into()),
            ]))
            .reply(Reply::text("worker builds")),
        )
        .rule(Rule::when(Match::HasTools(false)).reply(Reply::text("A title")))
        .rule(
            Rule::when(Match::Any(vec![
                Match::AnyUserContains("alpha".into()),
                Match::Not(Box::new(Match::Always)),
            ]))
            .reply(Reply::text("alpha seen")),
        )
        .rule(
            Rule::when(Match::Custom(Arc::new(|request: &ModelRequest| {
                request.assistant_turns() >= 1
            })))
            .reply(Reply::text("custom")),
        )
        .fallback(Reply::text("fallback"));
    let model = ScriptedModel::start(script).await.unwrap();
    let text = async |body: Value| read_stream(post(&model, &body).await).await.text();

    assert_eq!(
        text(tool_callback("Wrote file successfully.")).await,
        "after tool"
    );
    assert_eq!(text(request("please build it")).await, "worker builds");
    let mut no_tools = request("Generate a title");
    no_tools.as_object_mut().unwrap().remove("tools");
    assert_eq!(text(no_tools).await, "A title");
    let mut earlier_alpha = request("something else");
    earlier_alpha["messages"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"role": "user", "content": "alpha"}));
    assert_eq!(text(earlier_alpha).await, "alpha seen");
    let mut with_history = request("next");
    with_history["messages"]
        .as_array_mut()
        .unwrap()
        .insert(1, json!({"role": "assistant", "content": "earlier"}));
    assert_eq!(text(with_history).await, "custom");
    assert_eq!(text(request("nothing matches")).await, "fallback");
    assert_eq!(text(request("nothing matches")).await, "fallback");
}

#[tokio::test]
async fn replies_run_in_sequence_and_times_limits_a_rule() {
    let script = Script::new()
        .rule(
            Rule::when(Match::LastUserContains("seq".into())).replies(vec![
                Reply::text("one"),
                Reply::text("two"),
                Reply::text("three"),
            ]),
        )
        .rule(
            Rule::when(Match::LastUserContains("limited".into()))
                .replies(vec![Reply::text("first"), Reply::text("second")])
                .times(3),
        )
        .rule(
            Rule::when(Match::LastUserContains("zero".into()))
                .reply(Reply::text("never"))
                .times(0),
        )
        .rule(Rule::when(Match::Always).reply(Reply::text("later rule")));
    let model = ScriptedModel::start(script).await.unwrap();
    let text = async |user: &str| read_stream(post(&model, &request(user)).await).await.text();

    let sequence = [
        text("seq").await,
        text("seq").await,
        text("seq").await,
        text("seq").await,
        text("seq").await,
    ];
    assert_eq!(
        sequence,
        ["one", "two", "three", "three", "three"],
        "the last reply repeats"
    );
    let limited = [
        text("limited").await,
        text("limited").await,
        text("limited").await,
        text("limited").await,
    ];
    assert_eq!(limited, ["first", "second", "second", "later rule"]);
    assert_eq!(text("zero").await, "later rule");
}

#[tokio::test]
async fn a_rule_without_a_reply_answers_with_the_fallback() {
    let script = Script::new()
        .rule(Rule::when(Match::Always).times(1))
        .rule(Rule::when(Match::Always).reply(Reply::text("second rule")))
        .fallback(Reply::text("the fallback"));
    let model = ScriptedModel::start(script).await.unwrap();
    assert_eq!(
        read_stream(post(&model, &request("a")).await).await.text(),
        "the fallback"
    );
    assert_eq!(
        read_stream(post(&model, &request("a")).await).await.text(),
        "second rule"
    );
    let default = ScriptedModel::start(Script::new()).await.unwrap();
    assert_eq!(
        read_stream(post(&default, &request("a")).await)
            .await
            .text(),
        "OK"
    );
}

#[tokio::test]
async fn status_faults_return_the_status_and_body() {
    let script = Script::new()
        .rule(
            Rule::when(Match::Always)
                .reply(Reply::http_error(429, "slow down"))
                .times(1),
        )
        .rule(
            Rule::when(Match::Always)
                .reply(Reply::Status {
                    status: 500,
                    body: "boom".into(),
                })
                .times(1),
        );
    let model = ScriptedModel::start(script).await.unwrap();

    let limited = post(&model, &request("a")).await;
    assert_eq!(limited.status(), 429);
    let body: Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["message"], "slow down");
    let failed = post(&model, &request("b")).await;
    assert_eq!(failed.status(), 500);
    assert_eq!(failed.text().await.unwrap(), "boom");
    assert_eq!(
        read_stream(post(&model, &request("c")).await).await.text(),
        "OK"
    );
    assert_eq!(model.requests().len(), 3, "faulted requests are logged too");
}

#[tokio::test]
async fn cut_after_drops_the_connection_mid_stream() {
    let text = "This answer is long enough to need many chunks before it would finish.";
    let model = ScriptedModel::start(Script::new().fallback(Reply::text(text).cut_after(2)))
        .await
        .unwrap();
    let streamed = read_stream(post(&model, &request("a")).await).await;

    assert!(streamed.broken, "the body breaks off");
    assert!(!streamed.done, "no [DONE]");
    assert_eq!(
        streamed.chunks.len(),
        2,
        "exactly the scripted chunks arrive first"
    );
    assert!(streamed.finish_reason().is_none());
    assert!(text.starts_with(&streamed.text()) && streamed.text().len() < text.len());

    // Cutting after everything still never ends the stream cleanly.
    model.set_script(Script::new().fallback(Reply::text("short").cut_after(100)));
    let streamed = read_stream(post(&model, &request("a")).await).await;
    assert!(streamed.broken && streamed.done && streamed.text() == "short");
}

#[tokio::test]
async fn endless_streams_until_the_client_gives_up() {
    let model = ScriptedModel::start(Script::new().fallback(Reply::Endless))
        .await
        .unwrap();
    let response = post(&model, &request("a")).await;
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let gave_up = tokio::time::timeout(Duration::from_millis(650), async {
        while let Some(bytes) = body.next().await {
            received.extend_from_slice(&bytes.expect("the stream keeps going"));
        }
    })
    .await
    .is_err();
    assert!(gave_up, "the stream never ends by itself");
    drop(body);
    let text = String::from_utf8(received).unwrap();
    let events: Vec<&str> = text.split_terminator("\n\n").collect();
    assert!(events.len() >= 4, "empty deltas keep arriving: {events:?}");
    assert!(events[0].contains(r#""role":"assistant""#));
    assert!(
        events[1..]
            .iter()
            .all(|event| event.contains(r#""delta":{}"#))
    );
    assert!(!text.contains("[DONE]") && !text.contains("finish_reason\":\""));

    // The model is still responsive after the client went away.
    model.set_script(Script::new());
    assert_eq!(
        read_stream(post(&model, &request("b")).await).await.text(),
        "OK"
    );
}

#[tokio::test]
async fn delay_waits_before_answering_and_logs_at_once() {
    let model = ScriptedModel::start(
        Script::new().fallback(Reply::text("late").delayed(Duration::from_millis(400))),
    )
    .await
    .unwrap();
    let started = Instant::now();
    let answer = tokio::spawn({
        let url = format!("{}/chat/completions", model.base_url());
        async move {
            let response = reqwest::Client::new()
                .post(url)
                .json(&request("a"))
                .send()
                .await
                .unwrap();
            read_stream(response).await.text()
        }
    });
    let logged = model
        .wait_for_requests(1, Duration::from_secs(5))
        .await
        .expect("the request is logged");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "logged before the delay ends"
    );
    assert_eq!(logged.len(), 1);
    assert_eq!(answer.await.unwrap(), "late");
    assert!(started.elapsed() >= Duration::from_millis(400));
}

#[tokio::test]
async fn the_log_records_what_rules_look_at() {
    let model = ScriptedModel::start(Script::new()).await.unwrap();
    read_stream(post(&model, &request("Say hello please")).await).await;
    read_stream(post(&model, &tool_callback("Wrote file successfully.")).await).await;
    let mut two_systems = request("x");
    two_systems["messages"].as_array_mut().unwrap().insert(
        1,
        json!({"role": "system", "content": [{"type": "text", "text": "Second system"}]}),
    );
    read_stream(post(&model, &two_systems).await).await;

    let log = model.requests();
    assert_eq!(log.len(), 3);
    assert_eq!(log[0].model, "fake-model");
    assert!(log[0].stream);
    assert_eq!(log[0].system, "You are OpenCode. AGENT: Worker");
    assert_eq!(log[0].last_user, "Say hello please");
    assert_eq!(log[0].tools, ["bash", "write"]);
    assert_eq!(log[0].roles(), ["system", "user"]);
    assert!(!log[0].is_tool_callback());
    assert_eq!(log[1].roles(), ["system", "user", "assistant", "tool"]);
    assert!(log[1].is_tool_callback());
    assert_eq!(
        log[1].last_tool_result().as_deref(),
        Some("Wrote file successfully.")
    );
    assert_eq!(log[1].last_user, "create hello.txt");
    assert_eq!(log[1].assistant_turns(), 1);
    assert_eq!(
        log[2].system,
        "You are OpenCode. AGENT: Worker\nSecond system"
    );
    assert!(log[0].at <= log[1].at && log[1].at <= log[2].at);

    let models: Value = reqwest::get(format!("{}/models", model.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(models["object"], "list");
    assert_eq!(ids, [ScriptedModel::DEFAULT_MODEL_ID, "fake-model"]);
}

#[tokio::test]
async fn set_script_switches_behaviour_mid_run() {
    let model =
        ScriptedModel::start(Script::new().rule(
            Rule::when(Match::Always).replies(vec![Reply::text("old 1"), Reply::text("old 2")]),
        ))
        .await
        .unwrap();
    let text = async || read_stream(post(&model, &request("a")).await).await.text();
    assert_eq!(text().await, "old 1");
    model.set_script(
        Script::new().rule(
            Rule::when(Match::Always).replies(vec![Reply::text("new 1"), Reply::text("new 2")]),
        ),
    );
    assert_eq!(text().await, "new 1", "a new script's rules start unused");
    assert_eq!(text().await, "new 2");
    model.set_script(Script::new().fallback(Reply::http_error(503, "down")));
    assert_eq!(post(&model, &request("a")).await.status(), 503);
}

#[tokio::test]
async fn non_streaming_requests_get_a_whole_completion() {
    let script = Script::new()
        .rule(
            Rule::when(Match::LastUserContains("tool".into()))
                .reply(Reply::tool("bash", json!({"command": "ls"}))),
        )
        .fallback(Reply::text("plain answer"));
    let model = ScriptedModel::start(script).await.unwrap();
    let mut body = request("hi");
    body["stream"] = json!(false);

    let response = post(&model, &body).await;
    assert_eq!(response.headers()["content-type"], "application/json");
    let completion: Value = response.json().await.unwrap();
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(completion["model"], "fake-model");
    assert_eq!(completion["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "plain answer"
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert!(completion["usage"]["total_tokens"].as_u64().unwrap() > 0);

    body["messages"][1]["content"] = json!("use a tool");
    let completion: Value = post(&model, &body).await.json().await.unwrap();
    let call = &completion["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(completion["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(completion["choices"][0]["message"]["content"], Value::Null);
    assert_eq!(call["type"], "function");
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["function"]["name"], "bash");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"command": "ls"}));
    assert!(!model.requests()[0].stream);

    model.set_script(Script::new().fallback(Reply::text("cut").cut_after(1)));
    assert!(
        post(&model, &body).await.bytes().await.is_err(),
        "a cut body never completes"
    );
}

#[tokio::test]
async fn bad_bodies_are_refused() {
    let model = ScriptedModel::start(Script::new()).await.unwrap();
    let response = reqwest::Client::new()
        .post(format!("{}/chat/completions", model.base_url()))
        .body("not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_requests_are_answered_together() {
    let script = Script::new()
        .rule(
            Rule::when(Match::Always)
                .reply(Reply::text("limited").delayed(Duration::from_millis(300)))
                .times(5),
        )
        .fallback(Reply::text("echo").delayed(Duration::from_millis(300)));
    let model = Arc::new(ScriptedModel::start(script).await.unwrap());
    let client = reqwest::Client::new();
    let started = Instant::now();
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let client = client.clone();
            let url = format!("{}/chat/completions", model.base_url());
            tokio::spawn(async move {
                let response = client
                    .post(url)
                    .json(&request(&format!("request {n}")))
                    .send()
                    .await
                    .unwrap();
                read_stream(response).await
            })
        })
        .collect();
    let mut texts = Vec::new();
    for task in tasks {
        let streamed = task.await.unwrap();
        assert!(streamed.done);
        texts.push(streamed.text());
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the delays overlap: {:?}",
        started.elapsed()
    );
    assert_eq!(
        texts.iter().filter(|text| *text == "limited").count(),
        5,
        "times(5) is exact under contention"
    );
    assert_eq!(texts.iter().filter(|text| *text == "echo").count(), 15);
    let log = model.requests();
    assert_eq!(log.len(), 20);
    let mut users: Vec<String> = log
        .iter()
        .map(|request| request.last_user.clone())
        .collect();
    users.sort();
    users.dedup();
    assert_eq!(users.len(), 20);
}

#[tokio::test]
async fn dropping_the_model_ends_streams_and_frees_the_port() {
    let model = ScriptedModel::start(Script::new().fallback(Reply::Endless))
        .await
        .unwrap();
    let port = model.port();
    assert_eq!(model.base_url(), format!("http://127.0.0.1:{port}/v1"));
    let response = post(&model, &request("a")).await;
    let mut body = response.bytes_stream();
    body.next().await.unwrap().unwrap();

    drop(model);
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(
        ended.is_ok(),
        "an endless stream ends when the model is dropped"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            Err(_) => break,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Ok(_) => panic!("port {port} still accepts connections after the model was dropped"),
        }
    }
}

#[tokio::test]
async fn debug_output_is_readable() {
    let matcher = Match::All(vec![
        Match::Custom(Arc::new(|_: &ModelRequest| true)),
        Match::HasTools(true),
    ]);
    assert_eq!(format!("{matcher:?}"), "All([Custom, HasTools(true)])");
    let model = ScriptedModel::start(Script::new().rule(Rule::when(matcher)))
        .await
        .unwrap();
    let debug = format!("{model:?}");
    assert!(
        debug.contains(&model.base_url()) && debug.contains("requests: 0"),
        "{debug}"
    );
}

#[tokio::test]
async fn with_usage_reports_the_given_counts_in_the_last_chunk() {
    let usage = Usage::new(1234, 321).cached(200).reasoning(21);
    let script = Script::new()
        .rule(
            Rule::when(Match::LastUserContains("counted".into())).reply(
                // Nested in another wrapper, and around a tool call: the usage still rides on the last chunk.
                Reply::tool("write", json!({"filePath": "a", "content": "b"}))
                    .with_usage(usage)
                    .delayed(Duration::from_millis(10)),
            ),
        )
        .fallback(Reply::text("estimated"));
    let model = ScriptedModel::start(script).await.unwrap();
    let counted = read_stream(post(&model, &request("counted")).await).await;
    let last = counted.chunks.last().unwrap();
    assert_eq!(last["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        last["usage"],
        json!({
            "prompt_tokens": 1234,
            "completion_tokens": 321,
            "total_tokens": 1555,
            "prompt_tokens_details": {"cached_tokens": 200},
            "completion_tokens_details": {"reasoning_tokens": 21},
        })
    );
    let usage_chunks = counted
        .chunks
        .iter()
        .filter(|chunk| chunk.get("usage").is_some())
        .count();
    assert_eq!(usage_chunks, 1, "only the last chunk carries usage");
    // Without it, the estimate (which never matches those counts).
    let estimated = read_stream(post(&model, &request("other")).await).await;
    let usage = &estimated.chunks.last().unwrap()["usage"];
    assert_ne!(usage["prompt_tokens"], 1234);
    assert!(usage.get("prompt_tokens_details").is_none());

    // A non-streamed completion carries it too.
    let mut body = request("counted");
    body["stream"] = json!(false);
    let whole: Value = post(&model, &body).await.json().await.unwrap();
    assert_eq!(whole["usage"]["completion_tokens"], 321);
    assert_eq!(
        whole["usage"]["prompt_tokens_details"]["cached_tokens"],
        200
    );
}

#[tokio::test]
async fn the_log_keeps_the_usage_each_answer_reported() {
    let usage = Usage::new(900, 40).cached(100).reasoning(5);
    let script = Script::new()
        .rule(
            Rule::when(Match::LastUserContains("counted".into()))
                .reply(Reply::text("Counted.").with_usage(usage)),
        )
        .rule(
            Rule::when(Match::LastUserContains("cut".into())).reply(
                Reply::text("A long answer that is cut.")
                    .with_usage(usage)
                    .cut_after(1),
            ),
        )
        .rule(
            Rule::when(Match::LastUserContains("error".into()))
                .reply(Reply::http_error(500, "down")),
        )
        .fallback(Reply::text("estimated"));
    let model = ScriptedModel::start(script).await.unwrap();
    read_stream(post(&model, &request("counted")).await).await;
    read_stream(post(&model, &request("estimated please")).await).await;
    let _ = post(&model, &request("cut")).await.bytes().await;
    let _ = post(&model, &request("error")).await.bytes().await;
    let mut whole = request("counted whole");
    whole["stream"] = json!(false);
    let _ = post(&model, &whole).await.bytes().await;
    let log = model.requests();
    assert_eq!(
        log[0].usage,
        Some(usage),
        "the scripted usage, once its chunk was sent"
    );
    let estimate = log[1].usage.expect("an estimate is reported too");
    assert!(
        estimate.prompt_tokens > 0 && estimate.completion_tokens > 0,
        "{estimate:?}"
    );
    assert_eq!(log[2].usage, None, "a cut answer never reported its usage");
    assert_eq!(log[3].usage, None, "an HTTP error reports none");
    assert_eq!(log[4].usage, Some(usage), "a whole completion reports it");
    assert_eq!(usage.total_tokens(), 940);
    let recorded = usage.as_recorded();
    assert_eq!(
        (
            recorded.input,
            recorded.output,
            recorded.reasoning,
            recorded.cache.read
        ),
        (800, 35, 5, 100)
    );
}

#[tokio::test]
async fn structured_output_requests_are_matched_and_answered_with_the_tool_call() {
    let answer = json!({"tasks": ["a", "b"], "done": false});
    let script = Script::new()
        .rule(Rule::when(Match::AsksForStructuredOutput).reply(Reply::structured(answer.clone())))
        .fallback(Reply::text("plain"));
    let model = ScriptedModel::start(script).await.unwrap();
    let mut structured = request("plan it");
    structured["tools"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "function", "function": {"name": STRUCTURED_OUTPUT_TOOL, "parameters": {"type": "object"}}}));
    structured["tool_choice"] = json!("required");
    let streamed = read_stream(post(&model, &structured).await).await;
    let calls = streamed.tool_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, STRUCTURED_OUTPUT_TOOL);
    assert_eq!(calls[0].2, answer);
    assert_eq!(streamed.finish_reason(), Some("tool_calls"));
    let plain = read_stream(post(&model, &request("plan it")).await).await;
    assert_eq!(plain.text(), "plain");
    let requests = model.requests();
    assert!(requests[0].asks_for_structured_output());
    assert!(!requests[1].asks_for_structured_output());
    assert_eq!(
        format!("{:?}", Match::AsksForStructuredOutput),
        "AsksForStructuredOutput"
    );
}
