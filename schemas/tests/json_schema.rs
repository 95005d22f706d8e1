//! `schemas/events.schema.json` is the contract of the log for consumers written without these
//! Rust types (analytics in Python, say): prove it describes exactly what the types encode, no
//! more and no less, so that neither can change without the other.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chat_schemas::{encode, ChatEvent, Envelope, MessageId, Quote, RoomId, RoomKind, UserId};
use serde_json::{Map, Value};

/// The schema as committed.
fn schema() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/events.schema.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

fn validator() -> jsonschema::Validator {
    jsonschema::validator_for(&schema()).unwrap_or_else(|e| panic!("invalid JSON Schema: {e}"))
}

fn user(id: &str) -> UserId {
    UserId::parse(id).expect("valid user id")
}

fn message(sequence: u64) -> MessageId {
    MessageId::from_sequence(sequence).expect("valid message id")
}

/// Whether the samples cover `event`'s type. The match has no wildcard on purpose: a new event
/// type does not compile here until it has samples below and a definition in the schema.
fn has_samples(event: &ChatEvent) -> bool {
    match event {
        ChatEvent::RoomCreated { .. }
        | ChatEvent::Chat { .. }
        | ChatEvent::Info { .. }
        | ChatEvent::Out { .. }
        | ChatEvent::Invite { .. }
        | ChatEvent::Leave { .. }
        | ChatEvent::Delete { .. }
        | ChatEvent::Reaction { .. }
        | ChatEvent::Edit { .. } => true,
        ChatEvent::Unknown => false,
    }
}

/// Every event type, each optional field both absent and present.
fn samples() -> Vec<Envelope> {
    let room = RoomId::random();
    let alice = user("alice.kim@didi-house");
    let events = vec![
        ChatEvent::RoomCreated {
            kind: RoomKind::Direct,
            name: None,
            members: vec![alice.clone(), user("bob")],
        },
        ChatEvent::RoomCreated {
            kind: RoomKind::Group,
            name: Some("3층 공용 주방".into()),
            members: vec![alice.clone()],
        },
        ChatEvent::Chat {
            content: "안녕하세요 👋".into(),
            client_message_id: None,
            reply_to: None,
            mentions: Vec::new(),
        },
        ChatEvent::Chat {
            content: "hello".into(),
            client_message_id: Some("c-1".into()),
            reply_to: None,
            mentions: Vec::new(),
        },
        ChatEvent::Info {
            user_id: alice.clone(),
            read_count: 0,
            last_read_message_id: None,
            edge: None,
        },
        ChatEvent::Info {
            user_id: alice.clone(),
            read_count: 3,
            last_read_message_id: Some(message(42)),
            edge: Some("edge-1".into()),
        },
        ChatEvent::Out {
            user_id: alice.clone(),
            edge: None,
        },
        ChatEvent::Out {
            user_id: alice.clone(),
            edge: Some("edge-1".into()),
        },
        ChatEvent::Invite {
            user_ids: vec![user("carol"), user("dave")],
        },
        ChatEvent::Leave {
            user_id: alice.clone(),
            read_count: 0,
        },
        ChatEvent::Delete {
            message_ids: vec![message(7)],
        },
        ChatEvent::Chat {
            content: "네, 7시에 봬요".into(),
            client_message_id: Some("c-2".into()),
            reply_to: Some(Quote::new(message(3), user("bob"), "오늘 저녁 같이 해요")),
            mentions: vec![user("bob"), user("carol")],
        },
        ChatEvent::Reaction {
            target_id: message(3),
            user_id: alice.clone(),
            emoji: "👍🏽".into(),
            added: true,
        },
        ChatEvent::Reaction {
            target_id: message(3),
            user_id: alice.clone(),
            emoji: "❤️".into(),
            added: false,
        },
        ChatEvent::Edit {
            target_id: message(4),
            content: "고쳤어요".into(),
        },
    ];
    events
        .into_iter()
        .map(|event| Envelope::new(room, alice.clone(), event))
        .collect()
}

/// An encoded envelope in the schema's data model: MessagePack as JSON, bin as base64.
fn as_json(envelope: &Envelope) -> Value {
    let bytes = encode(envelope).expect("encodes");
    let value = rmpv::decode::read_value(&mut bytes.as_slice()).expect("one MessagePack value");
    to_json(value)
}

fn to_json(value: rmpv::Value) -> Value {
    match value {
        rmpv::Value::Nil => Value::Null,
        rmpv::Value::Boolean(b) => Value::Bool(b),
        rmpv::Value::Integer(n) => match (n.as_u64(), n.as_i64()) {
            (Some(n), _) => Value::from(n),
            (None, Some(n)) => Value::from(n),
            (None, None) => unreachable!("a MessagePack integer is a u64 or an i64"),
        },
        rmpv::Value::F32(f) => Value::from(f64::from(f)),
        rmpv::Value::F64(f) => Value::from(f),
        rmpv::Value::String(s) => Value::String(s.into_str().expect("UTF-8 string")),
        rmpv::Value::Binary(b) => Value::String(STANDARD.encode(b)),
        rmpv::Value::Array(items) => Value::Array(items.into_iter().map(to_json).collect()),
        rmpv::Value::Map(entries) => Value::Object(
            entries
                .into_iter()
                .map(|(k, v)| (k.as_str().expect("string keys").to_owned(), to_json(v)))
                .collect(),
        ),
        rmpv::Value::Ext(kind, _) => panic!("events use no MessagePack extension (got {kind})"),
    }
}

/// The property names a schema object lists.
fn property_names(definition: &Value) -> Vec<String> {
    let mut names: Vec<String> = definition["properties"]
        .as_object()
        .expect("properties")
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

fn key_names(object: &Map<String, Value>) -> Vec<String> {
    let mut names: Vec<String> = object.keys().cloned().collect();
    names.sort();
    names
}

#[test]
fn every_encoded_event_matches_the_schema() {
    let validator = validator();
    for envelope in samples() {
        assert!(has_samples(&envelope.event));
        let json = as_json(&envelope);
        let errors: Vec<String> = validator
            .iter_errors(&json)
            .map(|e| e.to_string())
            .collect();
        assert!(errors.is_empty(), "{json} does not match: {errors:?}");
    }
}

#[test]
fn the_schema_lists_exactly_the_fields_and_types_that_are_encoded() {
    let schema = schema();
    let mut encoded_types = Vec::new();
    for envelope in samples() {
        let json = as_json(&envelope);
        let object = json.as_object().expect("an envelope is a map");
        assert_eq!(
            key_names(object),
            property_names(&schema),
            "envelope fields"
        );

        let event = object["event"].as_object().expect("the event is a map");
        let kind = event["type"].as_str().expect("a type").to_owned();
        let definition = &schema["$defs"][&kind];
        assert!(definition.is_object(), "no definition of {kind}");
        assert_eq!(
            key_names(event),
            property_names(definition),
            "{kind} fields"
        );
        assert_eq!(
            key_names(event),
            {
                let mut required: Vec<String> = definition["required"]
                    .as_array()
                    .expect("required")
                    .iter()
                    .map(|v| v.as_str().expect("name").to_owned())
                    .collect();
                required.sort();
                required
            },
            "every field of {kind} is always written, so every one is required"
        );
        encoded_types.push(kind);
    }
    encoded_types.sort();
    encoded_types.dedup();

    let mut schema_types: Vec<String> = schema["properties"]["event"]["oneOf"]
        .as_array()
        .expect("oneOf")
        .iter()
        .map(|r| {
            let reference = r["$ref"].as_str().expect("$ref");
            reference.trim_start_matches("#/$defs/").to_owned()
        })
        .collect();
    schema_types.sort();
    assert_eq!(encoded_types, schema_types, "event types");
}

/// Removes `field` from the object `json`.
fn remove(json: &mut Value, field: &str) {
    json.as_object_mut().expect("an object").remove(field);
}

#[test]
fn the_schema_rejects_events_the_types_would_not_decode() {
    let validator = validator();
    let valid = as_json(&samples()[3]);
    let broken = |edit: &dyn Fn(&mut Value)| {
        let mut json = valid.clone();
        edit(&mut json);
        json
    };
    let cases = [
        (
            "no content",
            broken(&|j| remove(&mut j["event"], "content")),
        ),
        (
            "unknown type",
            broken(&|j| j["event"]["type"] = "SHOUT".into()),
        ),
        (
            "room id as text",
            broken(&|j| j["room_id"] = "a-room".into()),
        ),
        ("time as text", broken(&|j| j["at"] = "now".into())),
        ("bad actor", broken(&|j| j["actor"] = "no spaces".into())),
        ("no event id", broken(&|j| remove(j, "event_id"))),
    ];
    assert!(validator.is_valid(&valid));
    for (what, json) in cases {
        assert!(!validator.is_valid(&json), "{what} passed: {json}");
    }
}
