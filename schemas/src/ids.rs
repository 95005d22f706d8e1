//! Identifiers with their validation, so an invalid id cannot exist past the edge.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// Room ids are UUIDs.
    #[error("room id must be a UUID")]
    Room,
    /// User ids are 1–128 characters of `[A-Za-z0-9_.@-]`.
    #[error("user id must be 1-128 characters of [A-Za-z0-9_.@-]")]
    User,
    /// Message ids are positive decimal integers (the event's position in the log).
    #[error("message id must be a positive decimal integer")]
    Message,
}

/// A chat room, named by a random UUID so that ids reveal nothing and cannot be guessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(Uuid);

impl RoomId {
    /// A fresh random room id.
    pub fn random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The UUID behind the id, as stored in Cassandra.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl From<Uuid> for RoomId {
    fn from(id: Uuid) -> Self {
        Self(id)
    }
}

impl FromStr for RoomId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self).map_err(|_| IdError::Room)
    }
}

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

/// A user, as named by the `sub` claim of their token.
///
/// The character set keeps ids safe inside NATS subjects, Redis keys and CQL text. Its schema, in
/// the HTTP API's OpenAPI document, is that rule as a pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, pattern = "^[A-Za-z0-9_.@-]{1,128}$")]
pub struct UserId(String);

impl UserId {
    /// Longest accepted user id, in characters.
    pub const MAX_LEN: usize = 128;

    /// Validates `s` as a user id.
    pub fn parse(s: &str) -> Result<Self, IdError> {
        let valid_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-');
        if s.is_empty() || s.len() > Self::MAX_LEN || !s.chars().all(valid_char) {
            return Err(IdError::User);
        }
        Ok(Self(s.to_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UserId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A stored room event, named by its sequence number in the JetStream log.
///
/// Using the log position makes ids unique across all edge nodes without coordination and ordered
/// exactly like the room's log. In JSON it is a decimal string, so JavaScript clients never lose
/// precision; in MessagePack it is an integer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(u64);

impl MessageId {
    /// The id of the event stored at `sequence` in the log.
    pub fn from_sequence(sequence: u64) -> Result<Self, IdError> {
        if sequence == 0 {
            return Err(IdError::Message);
        }
        Ok(Self(sequence))
    }

    /// The log sequence this id names.
    pub fn sequence(&self) -> u64 {
        self.0
    }
}

impl FromStr for MessageId {
    type Err = IdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(IdError::Message);
        }
        s.parse::<u64>()
            .map_err(|_| IdError::Message)
            .and_then(Self::from_sequence)
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for MessageId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_u64(self.0)
        }
    }
}

impl<'de> Deserialize<'de> for MessageId {
    /// Accepts both forms whatever the format claims: serde buffers internally tagged enums in a
    /// way that hides whether the format is human-readable.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl serde::de::Visitor<'_> for Visitor {
            type Value = MessageId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a message id (positive integer or decimal string)")
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<MessageId, E> {
                MessageId::from_sequence(n).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<MessageId, E> {
                let n = u64::try_from(n).map_err(|_| E::custom(IdError::Message))?;
                self.visit_u64(n)
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<MessageId, E> {
                s.parse().map_err(E::custom)
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_ids_accept_the_documented_alphabet_only() {
        assert!(UserId::parse("alice.smith@didi-house_1").is_ok());
        assert_eq!(UserId::parse(""), Err(IdError::User));
        assert_eq!(UserId::parse("a b"), Err(IdError::User));
        assert_eq!(UserId::parse("a*b"), Err(IdError::User));
        assert_eq!(UserId::parse("é"), Err(IdError::User));
        assert!(UserId::parse(&"a".repeat(128)).is_ok());
        assert_eq!(UserId::parse(&"a".repeat(129)), Err(IdError::User));
    }

    #[test]
    fn message_ids_round_trip_as_strings_in_json() {
        let id = MessageId::from_sequence(9_007_199_254_740_993).expect("non-zero");
        let json = serde_json::to_string(&id).expect("serialize");
        assert_eq!(json, "\"9007199254740993\"");
        assert_eq!(serde_json::from_str::<MessageId>(&json).expect("parse"), id);
        assert_eq!("0".parse::<MessageId>(), Err(IdError::Message));
        assert_eq!("-1".parse::<MessageId>(), Err(IdError::Message));
        assert_eq!("+1".parse::<MessageId>(), Err(IdError::Message));
        assert_eq!(
            "99999999999999999999".parse::<MessageId>(),
            Err(IdError::Message)
        );
    }

    #[test]
    fn room_ids_are_uuids() {
        let id = RoomId::random();
        assert_eq!(id.to_string().parse::<RoomId>(), Ok(id));
        assert_eq!("not-a-uuid".parse::<RoomId>(), Err(IdError::Room));
    }
}
