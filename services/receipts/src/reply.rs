//! Decoding what the read-state scripts answer (`apply.lua`, `load.lua`), apart from Redis I/O.

use chat_schemas::UserId;
use redis::Value;

use crate::room_counts::{Change, Member, Position, RoomCounts};
use crate::state::ReadStateError;

/// Which outcome an applied event has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Clients hear nothing.
    Nothing,
    /// A CHAT.
    Chat,
    /// INVITE, room creation, DELETE.
    Shown,
    /// A LEAVE.
    Leave,
    /// A first presence.
    Info,
    /// A last presence ended.
    Out,
}

/// One event as `apply.lua` applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Its outcome.
    pub kind: Kind,
    /// The room's previous published sequence.
    pub previous: u64,
    /// The room's CHAT count after it.
    pub chats: u64,
    /// `unreadCount` (CHAT) or `readCount` (INFO, LEAVE); 0 otherwise.
    pub count: u64,
    /// The newest message an INFO read.
    pub last_read: Option<u64>,
    /// After a CHAT: every member's `mentionCount` that is not 0.
    pub mentions: Vec<(UserId, u64)>,
    /// What it did to members.
    pub changes: Vec<Change>,
}

/// A room as `load.lua` read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// Its members now.
    pub counts: RoomCounts,
    /// Outcomes applied and not yet published, by sequence.
    pub recorded: Vec<(u64, Applied)>,
}

fn bad(what: impl Into<String>) -> ReadStateError {
    ReadStateError::Answer(what.into())
}

/// A string or a number as text.
fn text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A whole number, or `None` for anything else ('' included).
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Int(n) => u64::try_from(*n).ok(),
        other => text(other)?.parse().ok(),
    }
}

/// A member's state as five strings give it: '' is "not a member".
fn member(position: &str, base: &str) -> Result<Option<Member>, ReadStateError> {
    if position.is_empty() {
        return Ok(None);
    }
    let position = Position::parse(position).ok_or_else(|| bad(format!("position {position}")))?;
    let base = base.parse().map_err(|_| bad(format!("base {base}")))?;
    Ok(Some(Member { position, base }))
}

/// Decodes what `apply.lua` answers for a run of one room's events: one reply per event.
pub fn applied_run(reply: Value) -> Result<Vec<Applied>, ReadStateError> {
    let Value::Array(items) = reply else {
        return Err(bad("not an array"));
    };
    if items.first().and_then(text).as_deref() == Some("fenced") {
        return Err(ReadStateError::Fenced);
    }
    items.into_iter().map(applied).collect()
}

/// Decodes one event's reply of `apply.lua`.
pub fn applied(reply: Value) -> Result<Applied, ReadStateError> {
    let Value::Array(items) = reply else {
        return Err(bad("not an array"));
    };
    let kind = match items.first().and_then(text).as_deref() {
        Some("fenced") => return Err(ReadStateError::Fenced),
        Some("none") => Kind::Nothing,
        Some("chat") => Kind::Chat,
        Some("shown") => Kind::Shown,
        Some("leave") => Kind::Leave,
        Some("info") => Kind::Info,
        Some("out") => Kind::Out,
        other => return Err(bad(format!("kind {other:?}"))),
    };
    if kind == Kind::Nothing {
        return Ok(Applied {
            kind,
            previous: 0,
            chats: 0,
            count: 0,
            last_read: None,
            mentions: Vec::new(),
            changes: Vec::new(),
        });
    }
    let at = |i: usize| items.get(i).ok_or_else(|| bad("reply too short"));
    let previous = number(at(1)?).ok_or_else(|| bad("previous"))?;
    let chats = number(at(2)?).ok_or_else(|| bad("chats"))?;
    let count = number(at(3)?).unwrap_or(0);
    let last_read = number(at(4)?);
    let mentions = match kind {
        Kind::Chat => mention_counts(&text(at(4)?).unwrap_or_default())?,
        _ => Vec::new(),
    };
    let rest = items.get(5..).unwrap_or_default();
    if rest.len() % 5 != 0 {
        return Err(bad("changes come in fives"));
    }
    let mut changes = Vec::with_capacity(rest.len() / 5);
    for change in rest.chunks(5) {
        let field = |i: usize| text(&change[i]).ok_or_else(|| bad("change field"));
        let user = UserId::parse(&field(0)?).map_err(|e| bad(e.to_string()))?;
        changes.push(Change {
            user,
            before: member(&field(1)?, &field(2)?)?,
            after: member(&field(3)?, &field(4)?)?,
        });
    }
    Ok(Applied {
        kind,
        previous,
        chats,
        count,
        last_read,
        mentions,
        changes,
    })
}

/// `"user count user count ..."` as `apply.lua` lists mention counts ('' for none), in user
/// order (Redis lists them in no particular one).
fn mention_counts(listed: &str) -> Result<Vec<(UserId, u64)>, ReadStateError> {
    let words: Vec<&str> = listed.split_whitespace().collect();
    if words.len() % 2 != 0 {
        return Err(bad("mention counts come in pairs"));
    }
    let mut counts = words
        .chunks(2)
        .map(|pair| {
            let user = UserId::parse(pair[0]).map_err(|e| bad(e.to_string()))?;
            let count = pair[1]
                .parse()
                .map_err(|_| bad(format!("mention count {}", pair[1])))?;
            Ok((user, count))
        })
        .collect::<Result<Vec<_>, ReadStateError>>()?;
    counts.sort();
    Ok(counts)
}

/// Decodes one reply of `load.lua`.
pub fn loaded(reply: Value) -> Result<Loaded, ReadStateError> {
    let Value::Array(items) = reply else {
        return Err(bad("not an array"));
    };
    match items.first().and_then(text).as_deref() {
        Some("fenced") => return Err(ReadStateError::Fenced),
        Some("room") => {}
        other => return Err(bad(format!("load answered {other:?}"))),
    }
    let list = |i: usize| match items.get(i) {
        Some(Value::Array(values)) => Ok(values.as_slice()),
        _ => Err(bad("load: missing list")),
    };
    let chats = items.get(1).and_then(number).ok_or_else(|| bad("chats"))?;
    let counter = |i: usize, what: &str| items.get(i).and_then(number).ok_or_else(|| bad(what));
    let mut mentions = std::collections::HashMap::new();
    for pair in list(7)?.chunks(2) {
        let (Some(user), Some(count)) = (pair.first().and_then(text), pair.get(1).and_then(number))
        else {
            return Err(bad("load: mention pair"));
        };
        mentions.insert(UserId::parse(&user).map_err(|e| bad(e.to_string()))?, count);
    }
    let mut counts = RoomCounts {
        chats,
        applied: counter(5, "applied")?,
        shown: counter(6, "shown")?,
        mentions: Some(mentions),
        ..RoomCounts::default()
    };
    let bases: std::collections::HashMap<String, String> = list(3)?
        .chunks(2)
        .filter_map(|pair| Some((text(pair.first()?)?, text(pair.get(1)?)?)))
        .collect();
    for pair in list(2)?.chunks(2) {
        let (Some(user), Some(position)) =
            (pair.first().and_then(text), pair.get(1).and_then(text))
        else {
            return Err(bad("load: position pair"));
        };
        let base = bases.get(&user).map_or("0", String::as_str);
        if let Some(state) = member(&position, base)? {
            let user = UserId::parse(&user).map_err(|e| bad(e.to_string()))?;
            counts.members.insert(user, state);
        }
    }
    let mut recorded = Vec::new();
    for pair in list(4)?.chunks(2) {
        let seq = pair
            .first()
            .and_then(number)
            .ok_or_else(|| bad("load: sequence"))?;
        let outcome = pair.get(1).cloned().ok_or_else(|| bad("load: outcome"))?;
        recorded.push((seq, applied(outcome)?));
    }
    Ok(Loaded { counts, recorded })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn a_fenced_write_is_an_error_and_changes_decode_in_fives() {
        assert!(matches!(
            applied(Value::Array(vec![s("fenced")])),
            Err(ReadStateError::Fenced)
        ));
        let leave = applied(Value::Array(vec![
            s("leave"),
            Value::Int(7),
            Value::Int(4),
            Value::Int(3),
            s(""),
            s("bob"),
            s("5"),
            s("1"),
            s(""),
            s(""),
        ]))
        .expect("decodes");
        assert_eq!(
            (leave.kind, leave.previous, leave.count),
            (Kind::Leave, 7, 3)
        );
        assert_eq!(leave.last_read, None);
        assert_eq!(
            leave.changes[0].before,
            Some(Member {
                position: Position::ReadUpTo(5),
                base: 1
            })
        );
        assert_eq!(leave.changes[0].after, None);
        assert!(applied(Value::Array(vec![
            s("out"),
            Value::Int(1),
            Value::Int(0),
            s(""),
            s(""),
            s("bob"),
        ]))
        .is_err());
    }

    #[test]
    fn a_run_has_one_reply_per_event_unless_fenced() {
        assert!(matches!(
            applied_run(Value::Array(vec![s("fenced")])),
            Err(ReadStateError::Fenced)
        ));
        let run = applied_run(Value::Array(vec![
            Value::Array(vec![s("none")]),
            Value::Array(vec![
                s("chat"),
                Value::Int(3),
                Value::Int(2),
                Value::Int(1),
                s(""),
            ]),
        ]))
        .expect("decodes");
        assert_eq!(
            run.iter().map(|a| a.kind).collect::<Vec<_>>(),
            [Kind::Nothing, Kind::Chat]
        );
        assert_eq!((run[1].previous, run[1].chats, run[1].count), (3, 2, 1));
    }

    #[test]
    fn a_loaded_room_has_its_members_and_recorded_outcomes() {
        let loaded = loaded(Value::Array(vec![
            s("room"),
            Value::Int(5),
            Value::Array(vec![s("ann"), s("3"), s("bob"), s("inf")]),
            Value::Array(vec![s("ann"), s("2"), s("bob"), s("5")]),
            Value::Array(vec![
                Value::Int(9),
                Value::Array(vec![s("out"), Value::Int(8), Value::Int(5), s(""), s("")]),
            ]),
            Value::Int(9),
            Value::Int(9),
            Value::Array(vec![s("ann"), s("2")]),
        ]))
        .expect("decodes");
        assert_eq!(loaded.counts.chats, 5);
        let mut counts = loaded.counts.unread_counts();
        counts.sort();
        let user = |u: &str| UserId::parse(u).expect("valid");
        assert_eq!(counts, [(user("ann"), 3), (user("bob"), 0)]);
        assert_eq!((loaded.counts.applied, loaded.counts.shown), (9, 9));
        assert_eq!(
            loaded.counts.mentions,
            Some([(user("ann"), 2)].into_iter().collect())
        );
        assert_eq!(loaded.recorded[0].0, 9);
        assert_eq!(loaded.recorded[0].1.kind, Kind::Out);
    }
}
