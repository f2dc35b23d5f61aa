//! Event streams recorded from the real server (`tests/fixtures/*.sse`, written by `tests/record.rs`) decode
//! without loss: every event decodes, typed events agree with the JSON they came from, events this client
//! does not model come back exactly as sent, and the result does not depend on how the bytes were chunked.
//! Message bodies recorded the same way (`tests/fixtures/*.json`) decode into what they say: usage, cost,
//! structured output, and the errors of a structured prompt answered in text and of an abort.

use std::path::PathBuf;

use opencode_client::{
    AssistantMessage, Event, EventPayload, Message, MessageWithParts, Part, SseDecoder, ToolState,
};
use serde_json::Value;

const FIXTURES: [&str; 4] = [
    "text-answer",
    "tool-round-trip",
    "permission",
    "model-error",
];

fn read(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(format!("{name}.sse"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()))
}

/// The `data:` fields of a recording, decoded in chunks of `chunk` bytes.
fn data_fields(bytes: &[u8], chunk: usize) -> Vec<String> {
    let mut decoder = SseDecoder::new();
    bytes
        .chunks(chunk)
        .flat_map(|piece| decoder.push(piece))
        .map(|message| message.data)
        .collect()
}

fn events(name: &str) -> Vec<(Value, Event)> {
    data_fields(&read(name), 4096)
        .into_iter()
        .map(|data| {
            let json: Value = serde_json::from_str(&data)
                .unwrap_or_else(|error| panic!("{name}: {error}: {data}"));
            let event =
                Event::from_json(&data).unwrap_or_else(|error| panic!("{name}: {error}: {data}"));
            (json, event)
        })
        .collect()
}

#[test]
fn every_recorded_event_decodes_and_agrees_with_its_json() {
    for name in FIXTURES {
        let events = events(name);
        assert!(
            events.len() > 5,
            "{name} holds a real stream ({} events)",
            events.len()
        );
        for (json, event) in &events {
            assert_eq!(
                event.kind(),
                json["type"],
                "{name}: the event keeps its type"
            );
            assert_eq!(
                event.id.as_deref(),
                json["id"].as_str(),
                "{name}: and its id"
            );
            let properties = &json["properties"];
            if let Some(session) = properties["sessionID"].as_str() {
                assert_eq!(event.session_id(), Some(session), "{name}: {json}");
            }
            match &event.payload {
                EventPayload::Other {
                    properties: kept, ..
                } => {
                    assert_eq!(
                        kept, properties,
                        "{name}: an event this client does not model is kept whole"
                    );
                    assert_eq!(
                        &event.to_json(),
                        json,
                        "{name}: and re-encodes to what was sent"
                    );
                }
                EventPayload::MessagePartDelta { delta, .. } => {
                    assert_eq!(delta, &properties["delta"])
                }
                EventPayload::SessionStatus { status, .. } => {
                    assert_eq!(
                        serde_json::to_value(status).unwrap()["type"],
                        properties["status"]["type"]
                    );
                }
                _ => {}
            }
        }
        // The modelled events are decoded as such, not left as `Other`.
        for (json, event) in &events {
            let modelled = [
                "session.created",
                "session.updated",
                "session.status",
                "session.idle",
                "message.updated",
                "message.part.updated",
                "message.part.delta",
                "permission.asked",
                "server.connected",
            ];
            if modelled.contains(&json["type"].as_str().unwrap_or("")) {
                assert!(
                    !matches!(event.payload, EventPayload::Other { .. }),
                    "{name}: a {} event decodes to its variant: {json}",
                    json["type"]
                );
            }
        }
    }
}

#[test]
fn decoding_does_not_depend_on_chunking() {
    for name in FIXTURES {
        let bytes = read(name);
        let whole = data_fields(&bytes, bytes.len());
        for chunk in [1, 2, 3, 7, 64, 1000] {
            assert_eq!(
                data_fields(&bytes, chunk),
                whole,
                "{name} in chunks of {chunk}"
            );
        }
    }
}

#[test]
fn the_scenarios_are_in_their_recordings() {
    let text = events("text-answer");
    let streamed: String = text
        .iter()
        .filter_map(|(_, event)| match &event.payload {
            EventPayload::MessagePartDelta { field, delta, .. } if field == "text" => {
                Some(delta.as_str())
            }
            _ => None,
        })
        .collect();
    assert_eq!(streamed, "A scripted answer, streamed in pieces.");

    let tool = events("tool-round-trip");
    assert!(tool.iter().any(|(_, event)| matches!(
        &event.payload,
        EventPayload::MessagePartUpdated { part: Part::Tool(part), .. }
            if part.tool == "write" && matches!(part.state, ToolState::Completed { .. })
    )));

    let permission = events("permission");
    assert!(permission.iter().any(|(_, event)| matches!(&event.payload, EventPayload::PermissionAsked(request) if request.permission == "bash")));
    assert!(
        permission
            .iter()
            .any(|(_, event)| matches!(&event.payload, EventPayload::PermissionReplied { .. }))
    );

    let failed = events("model-error");
    assert!(failed.iter().any(|(_, event)| matches!(
        &event.payload,
        EventPayload::SessionError { error: Some(error), .. } if error.message().is_some()
    )));
}

fn read_json(name: &str) -> (Value, Vec<u8>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(format!("{name}.json"));
    let bytes =
        std::fs::read(&path).unwrap_or_else(|error| panic!("read {}: {error}", path.display()));
    (serde_json::from_slice(&bytes).unwrap(), bytes)
}

fn answer_of(message: &MessageWithParts) -> &AssistantMessage {
    match &message.info {
        Message::Assistant(answer) => answer,
        other => panic!("an assistant message: {other:?}"),
    }
}

#[test]
fn recorded_usage_and_cost_decode_as_sent() {
    let (json, bytes) = read_json("answer-usage");
    let message: MessageWithParts = serde_json::from_slice(&bytes).unwrap();
    let answer = answer_of(&message);
    let tokens = &json["info"]["tokens"];
    assert_eq!(answer.tokens.input, tokens["input"].as_u64().unwrap());
    assert_eq!(answer.tokens.output, tokens["output"].as_u64().unwrap());
    assert_eq!(
        answer.tokens.reasoning,
        tokens["reasoning"].as_u64().unwrap()
    );
    assert_eq!(
        answer.tokens.cache.read,
        tokens["cache"]["read"].as_u64().unwrap()
    );
    assert_eq!(
        answer.tokens.cache.write,
        tokens["cache"]["write"].as_u64().unwrap()
    );
    assert_eq!(answer.tokens.total, tokens["total"].as_u64());
    assert!(answer.tokens.sum() > 0, "the recording carries usage");
    assert_eq!(answer.cost, json["info"]["cost"].as_f64().unwrap());
    assert!(answer.cost > 0.0, "the recording was made with a price");
    // The step-finish part repeats the usage; it is kept whole.
    assert!(
        message
            .parts
            .iter()
            .any(|part| matches!(part, Part::StepFinish(step) if step.reason == "stop"))
    );
}

#[test]
fn a_recorded_structured_answer_holds_the_output_and_is_final() {
    let (json, bytes) = read_json("answer-structured");
    let message: MessageWithParts = serde_json::from_slice(&bytes).unwrap();
    let answer = answer_of(&message);
    assert_eq!(
        answer.structured.as_ref(),
        Some(&json["info"]["structured"])
    );
    assert!(
        answer
            .structured
            .as_ref()
            .is_some_and(|value| value.is_object())
    );
    assert_eq!(answer.finish.as_deref(), Some("tool-calls"));
    assert!(answer.is_final() && answer.error.is_none());
    assert!(message.parts.iter().any(|part| matches!(
        part,
        Part::Tool(tool) if tool.tool == "StructuredOutput" && matches!(tool.state, ToolState::Completed { .. })
    )));
}

#[test]
fn a_recorded_text_answer_to_a_structured_prompt_is_a_structured_output_error() {
    let (_, bytes) = read_json("answer-structured-text");
    let message: MessageWithParts = serde_json::from_slice(&bytes).unwrap();
    let answer = answer_of(&message);
    let error = answer.error.as_ref().expect("an error");
    assert!(error.is_structured_output(), "{error:?}");
    assert!(!error.is_aborted() && !error.is_output_length());
    assert_eq!(answer.structured, None);
    assert!(answer.is_final() && !answer.was_aborted() && !answer.was_cut_off());
    assert!(
        !message.text().is_empty(),
        "the text the model gave is kept"
    );
}

#[test]
fn a_recorded_abort_while_a_tool_ran_is_an_aborted_answer() {
    let (json, bytes) = read_json("messages-aborted");
    let messages: Vec<MessageWithParts> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(messages.len(), json.as_array().unwrap().len());
    let answer = messages
        .iter()
        .rev()
        .find_map(|message| match &message.info {
            Message::Assistant(answer) => Some(answer),
            _ => None,
        })
        .expect("an assistant message");
    let error = answer.error.as_ref().expect("an error");
    assert!(error.is_aborted(), "{error:?}");
    assert!(answer.was_aborted() && answer.is_final() && !answer.was_cut_off());
    assert_eq!(answer.finish, None);
}
