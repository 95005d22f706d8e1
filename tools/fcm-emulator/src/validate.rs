//! Validation of a `messages:send` body, as strict as FCM's HTTP v1 API.
//!
//! Two passes, like Google's front end and FCM itself:
//! 1. the proto3 JSON shape: unknown field names anywhere in the typed part of the message are
//!    rejected ("Cannot find field"), scalar types are checked (a `data` value must be a string,
//!    a flag a boolean, a `ttl` a duration like `"3.5s"`, an enum one of its names). Field names
//!    are accepted in `snake_case` and in `lowerCamelCase`, and `null` means absent, as in proto3
//!    JSON. `apns.payload` and `webpush.notification` are free-form JSON objects.
//! 2. FCM's own rules: exactly one target (`token`, `topic`, `condition`), the registration-token
//!    format, reserved `data` keys, APNs `aps` types, analytics labels, and the size limit.
//!
//! The size limit is the emulator's approximation of FCM's 4 KB payload limit: the serialized
//! `message` object (as received, token included) must be at most [`MAX_MESSAGE_BYTES`] bytes.

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::errors::ApiError;

/// Largest accepted serialized `message`, in bytes.
pub const MAX_MESSAGE_BYTES: usize = 4096;
/// Shortest accepted registration token.
pub const MIN_TOKEN_LEN: usize = 32;
/// Longest accepted registration token.
pub const MAX_TOKEN_LEN: usize = 4096;
/// Keys a `data` map must not use.
pub const RESERVED_DATA_KEYS: [&str; 3] = ["from", "notification", "message_type"];
/// Prefixes a `data` key must not start with.
pub const RESERVED_DATA_KEY_PREFIXES: [&str; 2] = ["google", "gcm"];

/// Who a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One device's registration token.
    Token(String),
    /// A topic name (without `/topics/`).
    Topic(String),
    /// A topic condition expression.
    Condition(String),
}

/// A send request that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidSend {
    /// `validate_only`: check but do not deliver.
    pub validate_only: bool,
    /// The `message` object as received.
    pub message: Value,
    /// The message's target.
    pub target: Target,
}

/// The proto3 JSON type of a field.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Str,
    Bool,
    Int,
    Float,
    Duration,
    Timestamp,
    /// An enum: proto type name and value names.
    Enum(&'static str, &'static [&'static str]),
    StringMap,
    StringList,
    DurationList,
    /// A nested message: proto type name and fields.
    Object(&'static str, &'static [Field]),
    /// A `google.protobuf.Struct`: any JSON object.
    Struct,
}

#[derive(Debug, Clone, Copy)]
struct Field {
    name: &'static str,
    kind: Kind,
}

const fn field(name: &'static str, kind: Kind) -> Field {
    Field { name, kind }
}

const FCM_OPTIONS: &[Field] = &[field("analytics_label", Kind::Str)];
const APNS_FCM_OPTIONS: &[Field] = &[
    field("analytics_label", Kind::Str),
    field("image", Kind::Str),
];
const WEBPUSH_FCM_OPTIONS: &[Field] = &[
    field("link", Kind::Str),
    field("analytics_label", Kind::Str),
];
const NOTIFICATION: &[Field] = &[
    field("title", Kind::Str),
    field("body", Kind::Str),
    field("image", Kind::Str),
];
const COLOR: &[Field] = &[
    field("red", Kind::Float),
    field("green", Kind::Float),
    field("blue", Kind::Float),
    field("alpha", Kind::Float),
];
const LIGHT_SETTINGS: &[Field] = &[
    field("color", Kind::Object("google.type.Color", COLOR)),
    field("light_on_duration", Kind::Duration),
    field("light_off_duration", Kind::Duration),
];
const ANDROID_NOTIFICATION: &[Field] = &[
    field("title", Kind::Str),
    field("body", Kind::Str),
    field("icon", Kind::Str),
    field("color", Kind::Str),
    field("sound", Kind::Str),
    field("tag", Kind::Str),
    field("click_action", Kind::Str),
    field("body_loc_key", Kind::Str),
    field("body_loc_args", Kind::StringList),
    field("title_loc_key", Kind::Str),
    field("title_loc_args", Kind::StringList),
    field("channel_id", Kind::Str),
    field("ticker", Kind::Str),
    field("sticky", Kind::Bool),
    field("event_time", Kind::Timestamp),
    field("local_only", Kind::Bool),
    field(
        "notification_priority",
        Kind::Enum(
            "NotificationPriority",
            &[
                "PRIORITY_UNSPECIFIED",
                "PRIORITY_MIN",
                "PRIORITY_LOW",
                "PRIORITY_DEFAULT",
                "PRIORITY_HIGH",
                "PRIORITY_MAX",
            ],
        ),
    ),
    field("default_sound", Kind::Bool),
    field("default_vibrate_timings", Kind::Bool),
    field("default_light_settings", Kind::Bool),
    field("vibrate_timings", Kind::DurationList),
    field(
        "visibility",
        Kind::Enum(
            "AndroidNotification.Visibility",
            &["VISIBILITY_UNSPECIFIED", "PRIVATE", "PUBLIC", "SECRET"],
        ),
    ),
    field("notification_count", Kind::Int),
    field(
        "light_settings",
        Kind::Object("LightSettings", LIGHT_SETTINGS),
    ),
    field("image", Kind::Str),
    field("bypass_proxy_notification", Kind::Bool),
    field(
        "proxy",
        Kind::Enum(
            "AndroidNotification.Proxy",
            &["PROXY_UNSPECIFIED", "ALLOW", "DENY", "IF_PRIORITY_LOWERED"],
        ),
    ),
];
const ANDROID: &[Field] = &[
    field("collapse_key", Kind::Str),
    field(
        "priority",
        Kind::Enum("AndroidMessagePriority", &["NORMAL", "HIGH"]),
    ),
    field("ttl", Kind::Duration),
    field("restricted_package_name", Kind::Str),
    field("data", Kind::StringMap),
    field(
        "notification",
        Kind::Object("AndroidNotification", ANDROID_NOTIFICATION),
    ),
    field(
        "fcm_options",
        Kind::Object("AndroidFcmOptions", FCM_OPTIONS),
    ),
    field("direct_boot_ok", Kind::Bool),
];
const APNS: &[Field] = &[
    field("headers", Kind::StringMap),
    field("payload", Kind::Struct),
    field(
        "fcm_options",
        Kind::Object("ApnsFcmOptions", APNS_FCM_OPTIONS),
    ),
];
const WEBPUSH: &[Field] = &[
    field("headers", Kind::StringMap),
    field("data", Kind::StringMap),
    field("notification", Kind::Struct),
    field(
        "fcm_options",
        Kind::Object("WebpushFcmOptions", WEBPUSH_FCM_OPTIONS),
    ),
];
const MESSAGE: &[Field] = &[
    field("name", Kind::Str),
    field("data", Kind::StringMap),
    field("notification", Kind::Object("Notification", NOTIFICATION)),
    field("android", Kind::Object("AndroidConfig", ANDROID)),
    field("webpush", Kind::Object("WebpushConfig", WEBPUSH)),
    field("apns", Kind::Object("ApnsConfig", APNS)),
    field("fcm_options", Kind::Object("FcmOptions", FCM_OPTIONS)),
    field("token", Kind::Str),
    field("topic", Kind::Str),
    field("condition", Kind::Str),
];

/// Validates a `messages:send` request body.
pub fn validate_send(body: &Value) -> Result<ValidSend, ApiError> {
    let Value::Object(body) = body else {
        return Err(ApiError::invalid_argument(format!(
            "Invalid JSON payload received. Expected an object, got {}.",
            shown(body)
        )));
    };
    let mut validate_only = false;
    let mut message = None;
    for (key, value) in body {
        match key.as_str() {
            "validate_only" | "validateOnly" => match value {
                Value::Bool(flag) => validate_only = *flag,
                Value::Null => {}
                other => return Err(type_error("validate_only", "TYPE_BOOL", other)),
            },
            "message" => message = Some(value),
            _ => {
                let text = format!(
                    "Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
                );
                return Err(ApiError::invalid_field(key.clone(), text));
            }
        }
    }
    let message = match message {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(message) => message.clone(),
    };
    check_object(
        &message,
        "message",
        "type.googleapis.com/google.firebase.fcm.v1.Message",
        MESSAGE,
    )?;
    let target = check_target(&message)?;
    check_fcm_rules(&message)?;
    let size = serde_json::to_vec(&message)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > MAX_MESSAGE_BYTES {
        return Err(ApiError::invalid_argument("Message is too big"));
    }
    Ok(ValidSend {
        validate_only,
        message,
        target,
    })
}

/// Whether `token` has the shape of an FCM registration token: 32 to 4096 characters of
/// `[A-Za-z0-9_:-]`.
pub fn is_valid_registration_token(token: &str) -> bool {
    (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b':' | b'-'))
}

/// Whether `key` may be used in a `data` map.
pub fn is_allowed_data_key(key: &str) -> bool {
    !key.is_empty()
        && !RESERVED_DATA_KEYS.contains(&key)
        && !RESERVED_DATA_KEY_PREFIXES
            .iter()
            .any(|prefix| key.starts_with(prefix))
}

fn shown(value: &Value) -> String {
    let text = value.to_string();
    if text.len() > 80 {
        let mut end = 80;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text
    }
}

fn type_error(path: &str, type_name: &str, value: &Value) -> ApiError {
    ApiError::invalid_field(
        path,
        format!("Invalid value at '{path}' ({type_name}), {}", shown(value)),
    )
}

fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper = false;
    for c in name.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn check_object(
    value: &Value,
    path: &str,
    type_name: &str,
    fields: &[Field],
) -> Result<(), ApiError> {
    let Value::Object(object) = value else {
        return Err(type_error(path, type_name, value));
    };
    for (key, value) in object {
        let Some(field) = fields
            .iter()
            .find(|f| f.name == key || lower_camel(f.name) == *key)
        else {
            let text = format!(
                "Invalid JSON payload received. Unknown name \"{key}\" at '{path}': Cannot find field."
            );
            return Err(ApiError::invalid_field(path, text));
        };
        if value.is_null() {
            continue;
        }
        check_value(value, &format!("{path}.{}", field.name), field.kind)?;
    }
    Ok(())
}

fn check_value(value: &Value, path: &str, kind: Kind) -> Result<(), ApiError> {
    match kind {
        Kind::Str if value.is_string() => Ok(()),
        Kind::Str => Err(type_error(path, "TYPE_STRING", value)),
        Kind::Bool if value.is_boolean() => Ok(()),
        Kind::Bool => Err(type_error(path, "TYPE_BOOL", value)),
        Kind::Int if is_int32(value) => Ok(()),
        Kind::Int => Err(type_error(path, "TYPE_INT32", value)),
        Kind::Float if value.is_number() => Ok(()),
        Kind::Float => Err(type_error(path, "TYPE_FLOAT", value)),
        Kind::Duration if value.as_str().is_some_and(is_duration) => Ok(()),
        Kind::Duration => Err(type_error(
            path,
            "type.googleapis.com/google.protobuf.Duration",
            value,
        )),
        Kind::Timestamp
            if value
                .as_str()
                .is_some_and(|s| OffsetDateTime::parse(s, &Rfc3339).is_ok()) =>
        {
            Ok(())
        }
        Kind::Timestamp => Err(type_error(
            path,
            "type.googleapis.com/google.protobuf.Timestamp",
            value,
        )),
        Kind::Enum(name, values) => {
            let ok = match value {
                Value::String(s) => values.contains(&s.as_str()),
                Value::Number(n) => n
                    .as_u64()
                    .is_some_and(|i| usize::try_from(i).is_ok_and(|i| i < values.len())),
                _ => false,
            };
            if ok {
                Ok(())
            } else {
                Err(type_error(
                    path,
                    &format!("type.googleapis.com/google.firebase.fcm.v1.{name}"),
                    value,
                ))
            }
        }
        Kind::StringMap => {
            let Value::Object(map) = value else {
                return Err(type_error(path, "map<string, string>", value));
            };
            for (index, (_, entry)) in map.iter().enumerate() {
                if !entry.is_string() {
                    return Err(type_error(
                        &format!("{path}[{index}].value"),
                        "TYPE_STRING",
                        entry,
                    ));
                }
            }
            Ok(())
        }
        Kind::StringList | Kind::DurationList => {
            let Value::Array(items) = value else {
                return Err(type_error(path, "repeated", value));
            };
            let item_kind = if matches!(kind, Kind::StringList) {
                Kind::Str
            } else {
                Kind::Duration
            };
            for (index, item) in items.iter().enumerate() {
                check_value(item, &format!("{path}[{index}]"), item_kind)?;
            }
            Ok(())
        }
        Kind::Object(name, fields) => check_object(
            value,
            path,
            &format!("type.googleapis.com/google.firebase.fcm.v1.{name}"),
            fields,
        ),
        Kind::Struct if value.is_object() => Ok(()),
        Kind::Struct => Err(type_error(
            path,
            "type.googleapis.com/google.protobuf.Struct",
            value,
        )),
    }
}

fn is_int32(value: &Value) -> bool {
    match value {
        Value::Number(n) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        Value::String(s) => s.parse::<i32>().is_ok(),
        _ => false,
    }
}

/// A proto3 JSON duration: seconds with up to nine fractional digits and an `s` suffix.
fn is_duration(text: &str) -> bool {
    let Some(number) = text.strip_suffix('s') else {
        return false;
    };
    let number = number.strip_prefix('-').unwrap_or(number);
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.len() <= 9
        && fraction.bytes().all(|b| b.is_ascii_digit())
        && !(number.contains('.') && fraction.is_empty())
}

/// Looks a field up by its proto name or its lowerCamelCase JSON name.
fn get<'a>(object: &'a Value, name: &str) -> Option<&'a Value> {
    let object = object.as_object()?;
    object
        .get(name)
        .or_else(|| object.get(&lower_camel(name)))
        .filter(|v| !v.is_null())
}

fn get_str<'a>(object: &'a Value, name: &str) -> Option<&'a str> {
    get(object, name).and_then(Value::as_str)
}

fn check_target(message: &Value) -> Result<Target, ApiError> {
    let mut target = None;
    for name in ["token", "topic", "condition"] {
        let Some(value) = get_str(message, name) else {
            continue;
        };
        if target.is_some() {
            return Err(ApiError::invalid_field(
                "message",
                format!(
                    "Invalid value at 'message' (oneof), oneof field 'target' is already set. \
                     Cannot set '{name}'"
                ),
            ));
        }
        target = Some(match name {
            "token" => Target::Token(value.to_owned()),
            "topic" => Target::Topic(value.to_owned()),
            _ => Target::Condition(value.to_owned()),
        });
    }
    let target =
        target.ok_or_else(|| ApiError::invalid_argument("Recipient of the message is not set."))?;
    match &target {
        Target::Token(token) if !is_valid_registration_token(token) => {
            Err(ApiError::invalid_registration_token())
        }
        Target::Topic(topic) => {
            let name = topic.strip_prefix("/topics/").unwrap_or(topic);
            let ok = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b));
            if ok {
                Ok(Target::Topic(name.to_owned()))
            } else {
                Err(ApiError::invalid_field(
                    "message.topic",
                    format!("Invalid topic name \"{topic}\": it must match [a-zA-Z0-9-_.~%]+"),
                ))
            }
        }
        Target::Condition(condition) => {
            let topics = condition.matches("in topics").count();
            if condition.trim().is_empty() || topics == 0 || topics > 5 {
                Err(ApiError::invalid_field(
                    "message.condition",
                    "Invalid condition expression: it must name 1 to 5 topics, e.g. \
                     \"'a' in topics && 'b' in topics\"",
                ))
            } else {
                Ok(target)
            }
        }
        Target::Token(_) => Ok(target),
    }
}

fn check_data_keys(data: Option<&Value>, path: &str) -> Result<(), ApiError> {
    let Some(Value::Object(data)) = data else {
        return Ok(());
    };
    for key in data.keys() {
        if !is_allowed_data_key(key) {
            return Err(ApiError::invalid_field(
                path,
                format!("Invalid data payload key: {key}"),
            ));
        }
    }
    Ok(())
}

fn check_analytics_label(parent: Option<&Value>, path: &str) -> Result<(), ApiError> {
    let Some(label) = parent
        .and_then(|p| get(p, "fcm_options"))
        .and_then(|o| get_str(o, "analytics_label"))
    else {
        return Ok(());
    };
    let ok = (1..=50).contains(&label.len())
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~%".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid_field(
            format!("{path}.fcm_options.analytics_label"),
            "Analytics label must be 1 to 50 characters of [a-zA-Z0-9-_.~%]",
        ))
    }
}

fn check_fcm_rules(message: &Value) -> Result<(), ApiError> {
    check_data_keys(get(message, "data"), "message.data")?;
    check_analytics_label(Some(message), "message")?;

    let android = get(message, "android");
    check_data_keys(android.and_then(|a| get(a, "data")), "message.android.data")?;
    check_analytics_label(android, "message.android")?;
    if let Some(color) = android
        .and_then(|a| get(a, "notification"))
        .and_then(|n| get_str(n, "color"))
    {
        let hex = color.strip_prefix('#').unwrap_or("");
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::invalid_field(
                "message.android.notification.color",
                format!("Invalid color: \"{color}\", expected #rrggbb"),
            ));
        }
    }

    let apns = get(message, "apns");
    check_analytics_label(apns, "message.apns")?;
    if let Some(aps) = apns
        .and_then(|a| get(a, "payload"))
        .and_then(|p| p.get("aps"))
    {
        check_aps(aps)?;
    }

    let webpush = get(message, "webpush");
    check_analytics_label(webpush, "message.webpush")?;
    if let Some(link) = webpush
        .and_then(|w| get(w, "fcm_options"))
        .and_then(|o| get_str(o, "link"))
    {
        if !link.starts_with("https://") {
            return Err(ApiError::invalid_field(
                "message.webpush.fcm_options.link",
                "The link must be an HTTPS URL",
            ));
        }
    }
    Ok(())
}

fn check_aps(aps: &Value) -> Result<(), ApiError> {
    let path = "message.apns.payload.aps";
    let Value::Object(aps) = aps else {
        return Err(ApiError::invalid_field(
            path,
            format!(
                "Invalid APNs payload: aps must be an object, got {}",
                shown(aps)
            ),
        ));
    };
    if let Some(badge) = aps.get("badge") {
        if !(badge.is_i64() || badge.is_u64()) {
            return Err(ApiError::invalid_field(
                format!("{path}.badge"),
                format!(
                    "Invalid APNs payload: badge must be an integer, got {}",
                    shown(badge)
                ),
            ));
        }
    }
    if let Some(thread) = aps.get("thread-id") {
        if !thread.is_string() {
            return Err(ApiError::invalid_field(
                format!("{path}.thread-id"),
                format!(
                    "Invalid APNs payload: thread-id must be a string, got {}",
                    shown(thread)
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TOKEN: &str = "dGVzdC10b2tlbi0xMjM0NTY3ODkwMTIzNDU2Nzg5MA:APA91bH-test_token";

    fn error_message(body: Value) -> String {
        match validate_send(&body) {
            Ok(_) => "accepted".to_owned(),
            Err(e) => e.message,
        }
    }

    #[test]
    fn accepts_a_full_message() {
        let body = json!({
            "validate_only": false,
            "message": {
                "token": TOKEN,
                "data": {"room": "r1", "kind": "chat"},
                "notification": {"title": "Hi", "body": "there", "image": null},
                "android": {
                    "collapse_key": "room-r1",
                    "priority": "HIGH",
                    "ttl": "3.5s",
                    "notification": {"tag": "r1", "channelId": "chat", "notification_count": 3,
                                     "event_time": "2026-01-01T00:00:00Z",
                                     "vibrate_timings": ["0.5s", "1s"]},
                    "data": {"x": "y"}
                },
                "apns": {"headers": {"apns-priority": "10"},
                         "payload": {"aps": {"badge": 2, "thread-id": "r1", "sound": "default"}}},
                "webpush": {"headers": {"TTL": "60"}, "data": {"a": "b"},
                            "notification": {"title": "x", "actions": []},
                            "fcm_options": {"link": "https://example.com/r1"}},
                "fcm_options": {"analytics_label": "chat_push"}
            }
        });
        let valid = validate_send(&body).map_err(|e| e.message);
        assert_eq!(valid.map(|v| v.target), Ok(Target::Token(TOKEN.to_owned())));
    }

    #[test]
    fn rejects_unknown_fields_with_their_path() {
        assert_eq!(
            error_message(json!({"message": {"token": TOKEN, "x": 1}})),
            "Invalid JSON payload received. Unknown name \"x\" at 'message': Cannot find field."
        );
        assert_eq!(
            error_message(json!({"message": {"token": TOKEN, "android": {"notification": {"colour": "#ffffff"}}}})),
            "Invalid JSON payload received. Unknown name \"colour\" at 'message.android.notification': Cannot find field."
        );
        assert_eq!(
            error_message(json!({"msg": {}})),
            "Invalid JSON payload received. Unknown name \"msg\": Cannot find field."
        );
    }

    #[test]
    fn rejects_bad_types() {
        assert_eq!(
            error_message(json!({"message": {"token": TOKEN, "data": {"n": 1}}})),
            "Invalid value at 'message.data[0].value' (TYPE_STRING), 1"
        );
        assert!(error_message(
            json!({"message": {"token": TOKEN, "android": {"priority": "high"}}})
        )
        .starts_with("Invalid value at 'message.android.priority'"));
        assert!(
            error_message(json!({"message": {"token": TOKEN, "android": {"ttl": "3.5"}}}))
                .starts_with("Invalid value at 'message.android.ttl'")
        );
        assert!(error_message(
            json!({"message": {"token": TOKEN, "apns": {"payload": {"aps": {"badge": "1"}}}}})
        )
        .contains("badge must be an integer"));
        assert!(error_message(
            json!({"message": {"token": TOKEN, "apns": {"payload": {"aps": {"thread-id": 5}}}}})
        )
        .contains("thread-id must be a string"));
    }

    #[test]
    fn enforces_exactly_one_target() {
        assert_eq!(
            error_message(json!({"message": {}})),
            "Recipient of the message is not set."
        );
        assert!(
            error_message(json!({"message": {"token": TOKEN, "topic": "news"}}))
                .contains("oneof field 'target' is already set")
        );
        assert_eq!(
            error_message(json!({"message": {"topic": "/topics/news"}})),
            "accepted"
        );
        assert_eq!(
            error_message(json!({"message": {"condition": "'a' in topics && 'b' in topics"}})),
            "accepted"
        );
    }

    #[test]
    fn registration_token_format() {
        assert!(is_valid_registration_token(TOKEN));
        assert!(!is_valid_registration_token("short"));
        assert!(!is_valid_registration_token(&"a".repeat(4097)));
        assert!(is_valid_registration_token(&"a".repeat(4096)));
        assert!(!is_valid_registration_token(&format!("{TOKEN}/")));
        assert!(!is_valid_registration_token(&format!("{TOKEN} ")));
    }

    #[test]
    fn reserved_data_keys() {
        for key in [
            "from",
            "notification",
            "message_type",
            "google.x",
            "gcm.n.e",
            "googleX",
        ] {
            assert!(!is_allowed_data_key(key), "{key}");
            let message = error_message(json!({"message": {"token": TOKEN, "data": {key: "v"}}}));
            assert_eq!(message, format!("Invalid data payload key: {key}"));
        }
        assert!(is_allowed_data_key("fromage"));
        assert!(is_allowed_data_key("type"));
    }

    #[test]
    fn size_limit() {
        let filler = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(
            error_message(json!({"message": {"token": TOKEN, "data": {"f": filler}}})),
            "Message is too big"
        );
    }
}
