//! Events are read for years after they are written: prove old shapes decode and new fields and
//! types do not break old readers.

use chat_schemas::{decode, encode, ChatEvent, Envelope, MessageId, RoomId, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A CHAT envelope as a first writer might have shaped it: no `client_message_id`.
#[derive(Serialize)]
struct OldEnvelope {
    v: u16,
    event_id: Uuid,
    room_id: RoomId,
    actor: UserId,
    at: i64,
    event: OldChat,
}

#[derive(Serialize)]
struct OldChat {
    #[serde(rename = "type")]
    kind: &'static str,
    content: String,
}

/// The same envelope written by a future version with fields this build does not know.
#[derive(Serialize)]
struct FutureEnvelope {
    v: u16,
    event_id: Uuid,
    room_id: RoomId,
    actor: UserId,
    at: i64,
    region: &'static str,
    event: FutureChat,
}

#[derive(Serialize)]
struct FutureChat {
    #[serde(rename = "type")]
    kind: &'static str,
    content: String,
    client_message_id: Option<String>,
    thread_id: u64,
    language: &'static str,
}

fn alice() -> UserId {
    UserId::parse("alice").expect("valid user id")
}

#[test]
fn an_event_written_by_an_older_shape_still_decodes() {
    let room = RoomId::random();
    let old = OldEnvelope {
        v: 1,
        event_id: Uuid::new_v4(),
        room_id: room,
        actor: alice(),
        at: 1_700_000_000_000,
        event: OldChat {
            kind: "CHAT",
            content: "hello".into(),
        },
    };
    let bytes = rmp_serde::to_vec_named(&old).expect("encode old shape");
    let decoded = decode(&bytes).expect("old shape decodes");
    assert_eq!(decoded.room_id, room);
    assert_eq!(decoded.at.millis(), 1_700_000_000_000);
    assert_eq!(
        decoded.event,
        ChatEvent::Chat {
            content: "hello".into(),
            client_message_id: None,
            reply_to: None,
            mentions: Vec::new(),
        }
    );
}

#[test]
fn unknown_fields_are_ignored() {
    let future = FutureEnvelope {
        v: 2,
        event_id: Uuid::new_v4(),
        room_id: RoomId::random(),
        actor: alice(),
        at: 1,
        region: "kr",
        event: FutureChat {
            kind: "CHAT",
            content: "hi".into(),
            client_message_id: Some("c-1".into()),
            thread_id: 7,
            language: "ko",
        },
    };
    let bytes = rmp_serde::to_vec_named(&future).expect("encode future shape");
    let decoded = decode(&bytes).expect("future shape decodes");
    assert_eq!(decoded.v, 2);
    assert_eq!(
        decoded.event,
        ChatEvent::Chat {
            content: "hi".into(),
            client_message_id: Some("c-1".into()),
            reply_to: None,
            mentions: Vec::new(),
        }
    );
}

#[test]
fn an_unknown_event_type_decodes_as_unknown() {
    #[derive(Serialize)]
    struct Poll {
        #[serde(rename = "type")]
        kind: &'static str,
        question: &'static str,
    }
    #[derive(Serialize)]
    struct Env {
        v: u16,
        event_id: Uuid,
        room_id: RoomId,
        actor: UserId,
        at: i64,
        event: Poll,
    }
    let bytes = rmp_serde::to_vec_named(&Env {
        v: 3,
        event_id: Uuid::new_v4(),
        room_id: RoomId::random(),
        actor: alice(),
        at: 1,
        event: Poll {
            kind: "POLL",
            question: "7시?",
        },
    })
    .expect("encode");
    assert_eq!(decode(&bytes).expect("decodes").event, ChatEvent::Unknown);
}

#[test]
fn every_event_type_round_trips() {
    let room = RoomId::random();
    let bob = UserId::parse("bob").expect("valid");
    let message = MessageId::from_sequence(42).expect("non-zero");
    let events = vec![
        ChatEvent::RoomCreated {
            kind: chat_schemas::RoomKind::Group,
            name: Some("Housemates".into()),
            members: vec![alice(), bob.clone()],
        },
        ChatEvent::Chat {
            content: "안녕".into(),
            client_message_id: Some("c".into()),
            reply_to: None,
            mentions: Vec::new(),
        },
        ChatEvent::Chat {
            content: "응".into(),
            client_message_id: None,
            reply_to: Some(chat_schemas::Quote::new(message, alice(), "안녕")),
            mentions: vec![alice()],
        },
        ChatEvent::Reaction {
            target_id: message,
            user_id: bob.clone(),
            emoji: "👍".into(),
            added: true,
        },
        ChatEvent::Edit {
            target_id: message,
            content: "안녕하세요".into(),
        },
        ChatEvent::Info {
            user_id: bob.clone(),
            read_count: 3,
            last_read_message_id: Some(message),
            edge: None,
        },
        ChatEvent::Out {
            user_id: bob.clone(),
            edge: None,
        },
        ChatEvent::Invite {
            user_ids: vec![bob.clone()],
        },
        ChatEvent::Leave {
            user_id: bob,
            read_count: 2,
        },
        ChatEvent::Delete {
            message_ids: vec![message],
        },
    ];
    for event in events {
        let envelope = Envelope::new(room, alice(), event);
        let bytes = encode(&envelope).expect("encode");
        assert_eq!(decode(&bytes).expect("decode"), envelope);
    }
}

#[test]
fn a_payload_with_an_invalid_user_id_is_rejected() {
    #[derive(Deserialize, Serialize)]
    struct Raw {
        v: u16,
        event_id: Uuid,
        room_id: RoomId,
        actor: String,
        at: i64,
        event: OldChatOwned,
    }
    #[derive(Deserialize, Serialize)]
    struct OldChatOwned {
        #[serde(rename = "type")]
        kind: String,
        content: String,
    }
    let bytes = rmp_serde::to_vec_named(&Raw {
        v: 1,
        event_id: Uuid::new_v4(),
        room_id: RoomId::random(),
        actor: "not valid!".into(),
        at: 1,
        event: OldChatOwned {
            kind: "CHAT".into(),
            content: "x".into(),
        },
    })
    .expect("encode");
    assert!(decode(&bytes).is_err());
}
