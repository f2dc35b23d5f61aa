//! Event streams recorded from the real server (`tests/fixtures/*.sse`, written by `tests/record.rs`) decode
//! without loss: every event decodes, typed events agree with the JSON they came from, events this client
//! does not model come back exactly as sent, and the result does not depend on how the bytes were chunked.

use std::path::PathBuf;

use opencode_client::{Event, EventPayload, Part, SseDecoder, ToolState};
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
