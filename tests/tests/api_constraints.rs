//! openapi.yaml and the server state each field's constraint once each, and this test holds
//! the two to each other: every pattern and length the spec states is the constant the
//! server's check is documented by, and the check accepts exactly the strings the pattern
//! and lengths accept (thousands of seeded strings per field: random ones, and valid ones
//! with a character inserted, replaced or removed). The time zone enum is the tz database
//! the server checks zones against.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use herald::domain::campaign::{CampaignRequest, SEND_AT_PATTERN};
use herald::domain::contact::{
    Contact, CLOCK_PATTERN, EMAIL_PATTERN, ENDPOINT_ARN_PATTERN, LOCALE_PATTERN, MAX_ARN_LEN,
    MAX_EMAIL_CHARS, MAX_LOCALE_LEN, PHONE_PATTERN,
};
use herald::domain::device::{
    check_token, Registration, MAX_APP_LEN, MAX_TOKEN_LEN, NO_CONTROL_PATTERN, TOKEN_PATTERN,
};
use herald::domain::ids::{check_id, ID_PATTERN, MAX_ID_LEN};
use herald::domain::notification::{check_text, MAX_BODY_CHARS, MAX_TITLE_CHARS, NONBLANK_PATTERN};
use herald::domain::suppression::{
    parse_address, parse_note, ADDRESS_PATTERN, MAX_ADDRESS_LEN, MAX_NOTE_LEN,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

fn spec() -> Value {
    let text = std::fs::read_to_string(testkit::workspace_root().join("openapi.yaml")).unwrap();
    let yaml: serde_norway::Value = serde_norway::from_str(&text).unwrap();
    serde_json::to_value(yaml).unwrap()
}

/// The schema at `pointer`, through one `$ref` or `allOf: [$ref]`.
fn schema(spec: &Value, pointer: &str) -> Value {
    let mut node = spec
        .pointer(pointer)
        .unwrap_or_else(|| panic!("openapi.yaml has no {pointer}"))
        .clone();
    if let Some(inner) = node.pointer("/allOf/0/$ref").cloned() {
        node = inner_ref(spec, &inner);
    } else if let Some(inner) = node.get("$ref").cloned() {
        node = inner_ref(spec, &inner);
    }
    node
}

fn inner_ref(spec: &Value, reference: &Value) -> Value {
    let pointer = reference.as_str().unwrap().trim_start_matches('#');
    schema(spec, pointer)
}

/// One field: where the spec states it, what the server documents, and the server's check.
struct Field {
    pointer: &'static str,
    pattern: &'static str,
    min_length: usize,
    max_length: usize,
    valid_examples: &'static [&'static str],
    /// The spec also states `format: date-time` (for the values that are not "now"): a
    /// calendar date and time, as RFC 3339 defines them.
    date_time: bool,
    accepts: fn(&str) -> bool,
}

fn campaign_with_send_at(send_at: &str) -> bool {
    let body = json!({
        "name": "n", "title": "t", "body": "b", "channels": ["inbox"],
        "audience": {"users": ["u1"]}, "send_at": send_at,
    });
    // Before any time the pattern allows: "in the past" is the one check of send_at a schema
    // cannot state, so it is left out here.
    let long_ago = jiff::Timestamp::MIN
        .checked_add(jiff::SignedDuration::from_hours(48))
        .unwrap();
    CampaignRequest::parse(&body, long_ago).is_ok()
}

fn contact_with(field: &str, value: &str) -> bool {
    let mut body = serde_json::Map::new();
    body.insert(field.to_owned(), json!(value));
    Contact::parse(&Value::Object(body)).is_ok()
}

fn fields() -> Vec<Field> {
    vec![
        Field {
            pointer: "/components/schemas/Id",
            pattern: ID_PATTERN,
            min_length: 1,
            max_length: MAX_ID_LEN,
            valid_examples: &["u1", "acme.user:42@x-y_z"],
            date_time: false,
            accepts: |s| check_id(s, "id").is_ok(),
        },
        Field {
            pointer: "/components/schemas/Title",
            pattern: NONBLANK_PATTERN,
            min_length: 1,
            max_length: MAX_TITLE_CHARS,
            valid_examples: &["Hi", " Your order shipped "],
            date_time: false,
            accepts: |s| check_text(s, "title", MAX_TITLE_CHARS).is_ok(),
        },
        Field {
            pointer: "/components/schemas/Body",
            pattern: NONBLANK_PATTERN,
            min_length: 1,
            max_length: MAX_BODY_CHARS,
            valid_examples: &["Everything 30% off", "\u{3000}x"],
            date_time: false,
            accepts: |s| check_text(s, "body", MAX_BODY_CHARS).is_ok(),
        },
        Field {
            pointer: "/components/schemas/Email",
            pattern: EMAIL_PATTERN,
            min_length: 0,
            max_length: MAX_EMAIL_CHARS,
            valid_examples: &["u1@example.com", "a.b+c@mail.example.co.uk"],
            date_time: false,
            accepts: |s| contact_with("email", s),
        },
        Field {
            pointer: "/components/schemas/Phone",
            pattern: PHONE_PATTERN,
            min_length: 0,
            max_length: usize::MAX,
            valid_examples: &["+15555550100", "+4915112345678"],
            date_time: false,
            accepts: |s| contact_with("phone", s),
        },
        Field {
            pointer: "/components/schemas/Locale",
            pattern: LOCALE_PATTERN,
            min_length: 0,
            max_length: MAX_LOCALE_LEN,
            valid_examples: &["en", "en-US", "zh-Hant-TW", "de_DE"],
            date_time: false,
            accepts: |s| contact_with("locale", s),
        },
        Field {
            pointer: "/components/schemas/EndpointArn",
            pattern: ENDPOINT_ARN_PATTERN,
            min_length: 0,
            max_length: MAX_ARN_LEN,
            valid_examples: &["arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/1f2e"],
            date_time: false,
            accepts: |s| Contact::parse(&json!({ "push": [s] })).is_ok(),
        },
        Field {
            pointer: "/components/schemas/Clock",
            pattern: CLOCK_PATTERN,
            min_length: 0,
            max_length: usize::MAX,
            valid_examples: &["22:00", "07:30", "00:00", "23:59"],
            date_time: false,
            accepts: |s| {
                Contact::parse(&json!({"quiet_hours": {"start": s, "end": "07:00"}})).is_ok()
            },
        },
        Field {
            pointer: "/components/schemas/Address",
            pattern: ADDRESS_PATTERN,
            min_length: 1,
            max_length: MAX_ADDRESS_LEN,
            valid_examples: &["u1@example.com", "+15555550100"],
            date_time: false,
            accepts: |s| parse_address(s, "address").is_ok(),
        },
        Field {
            pointer: "/components/parameters/DeviceToken/schema",
            pattern: TOKEN_PATTERN,
            min_length: 1,
            max_length: MAX_TOKEN_LEN,
            valid_examples: &["fcm-token:APA91b_x.y", "0123456789abcdef"],
            date_time: false,
            accepts: |s| check_token(s, "token").is_ok(),
        },
        Field {
            pointer: "/paths/~1v1~1users~1{user}~1devices~1{token}/put/requestBody/content/application~1json/schema/properties/app",
            pattern: NO_CONTROL_PATTERN,
            min_length: 1,
            max_length: MAX_APP_LEN,
            valid_examples: &["com.example.app", "Beispiel App ü"],
            date_time: false,
            accepts: |s| Registration::parse(&json!({"platform": "fcm", "app": s})).is_ok(),
        },
        Field {
            pointer: "/paths/~1v1~1suppressions/delete/parameters/1/schema",
            pattern: NO_CONTROL_PATTERN,
            min_length: 0,
            max_length: MAX_NOTE_LEN,
            valid_examples: &["asked by support #12", "  "],
            date_time: false,
            accepts: |s| parse_note(Some(s), "note").is_ok(),
        },
        Field {
            pointer: "/paths/~1v1~1campaigns/post/requestBody/content/application~1json/schema/properties/send_at",
            pattern: SEND_AT_PATTERN,
            min_length: 0,
            max_length: usize::MAX,
            valid_examples: &["now", "2026-12-01T09:00:00+01:00", "2027-01-31T23:59:59.123456789Z"],
            date_time: true,
            accepts: campaign_with_send_at,
        },
        Field {
            pointer: "/components/parameters/IfMatch/schema",
            pattern: inbox_api::contacts::IF_MATCH_PATTERN,
            min_length: 0,
            max_length: usize::MAX,
            valid_examples: &["\"3\"", "W/\"12\"", "7"],
            date_time: false,
            accepts: |s| inbox_api::contacts::parse_etag(s).is_some(),
        },
    ]
}

#[test]
fn the_spec_states_the_servers_patterns_and_lengths() {
    let spec = spec();
    for field in fields() {
        let schema = schema(&spec, field.pointer);
        assert_eq!(
            schema["pattern"].as_str(),
            Some(field.pattern),
            "{}: the pattern differs from the server's",
            field.pointer
        );
        let stated = |key: &str| schema[key].as_u64().map(|n| n as usize);
        assert_eq!(
            stated("minLength").unwrap_or(0),
            field.min_length,
            "{}: minLength",
            field.pointer
        );
        assert_eq!(
            stated("maxLength").unwrap_or(usize::MAX),
            field.max_length,
            "{}: maxLength",
            field.pointer
        );
    }
}

/// Characters near every boundary the checks draw: the id and token alphabets, white space
/// (Unicode's, and U+FEFF, which is not), controls, non-ASCII letters, astral characters.
const ALPHABET: &[char] = &[
    'a',
    'Z',
    '0',
    '9',
    '.',
    '_',
    ':',
    '@',
    '-',
    '+',
    '~',
    '/',
    '"',
    ',',
    '<',
    '>',
    '!',
    'W',
    'T',
    ' ',
    '\t',
    '\n',
    '\u{b}',
    '\u{c}',
    '\r',
    '\u{85}',
    '\u{a0}',
    '\u{1680}',
    '\u{2000}',
    '\u{200a}',
    '\u{2028}',
    '\u{202f}',
    '\u{3000}',
    '\u{feff}',
    '\u{0}',
    '\u{1f}',
    '\u{7f}',
    '\u{9f}',
    'é',
    'ß',
    '中',
    '😀',
    '\u{10ffff}',
    'Z',
    'z',
    'e',
    'n',
];

fn random_string(rng: &mut StdRng, max: usize) -> String {
    let len = rng.random_range(0..=max);
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

/// A valid example with one character inserted, replaced or removed, or grown to a length
/// at the field's bound.
fn mutated(rng: &mut StdRng, example: &str, max_length: usize) -> String {
    let mut chars: Vec<char> = example.chars().collect();
    let c = ALPHABET[rng.random_range(0..ALPHABET.len())];
    match rng.random_range(0..4) {
        0 => chars.insert(rng.random_range(0..=chars.len()), c),
        1 if !chars.is_empty() => {
            let i = rng.random_range(0..chars.len());
            chars[i] = c;
        }
        2 if !chars.is_empty() => {
            chars.remove(rng.random_range(0..chars.len()));
        }
        _ if max_length < 5_000 => {
            let target = max_length + rng.random_range(0..=1);
            while chars.len() < target {
                chars.push(*chars.last().unwrap_or(&'a'));
            }
        }
        _ => chars.push(c),
    }
    chars.into_iter().collect()
}

#[test]
fn each_check_accepts_exactly_what_the_spec_allows() {
    let mut rng = StdRng::seed_from_u64(20261206);
    for field in fields() {
        let pattern = regex::Regex::new(field.pattern).unwrap();
        let spec_allows = |s: &str| {
            let n = s.chars().count();
            let calendar = !field.date_time || s == "now" || s.parse::<jiff::Timestamp>().is_ok();
            pattern.is_match(s) && n >= field.min_length && n <= field.max_length && calendar
        };
        let mut cases: Vec<String> = field.valid_examples.iter().map(|s| s.to_string()).collect();
        for example in field.valid_examples {
            assert!(
                spec_allows(example) && (field.accepts)(example),
                "{}: the example {example:?} should be valid",
                field.pointer
            );
        }
        for _ in 0..1_500 {
            cases.push(random_string(&mut rng, 24));
            let example = field.valid_examples[rng.random_range(0..field.valid_examples.len())];
            cases.push(mutated(&mut rng, example, field.max_length));
        }
        for case in cases {
            assert_eq!(
                spec_allows(&case),
                (field.accepts)(&case),
                "{}: openapi.yaml {} {case:?}, the server {}",
                field.pointer,
                if spec_allows(&case) {
                    "allows"
                } else {
                    "forbids"
                },
                if (field.accepts)(&case) {
                    "accepts it"
                } else {
                    "refuses it"
                },
            );
        }
    }
}

#[test]
fn the_time_zone_enum_is_the_servers_tz_database() {
    let spec = spec();
    let stated: Vec<String> = spec
        .pointer("/components/schemas/TimeZone/enum")
        .and_then(Value::as_array)
        .unwrap()
        .iter()
        .map(|z| z.as_str().unwrap().to_owned())
        .collect();
    let database = herald::domain::time::time_zones();
    assert!(
        stated == database,
        "openapi.yaml's TimeZone enum should be the tz database herald bundles; as YAML:\n      enum: [{}]",
        database.join(", ")
    );
    // And the server takes exactly those names, as spelled.
    assert!(contact_with("timezone", "Europe/Berlin"));
    assert!(!contact_with("timezone", "europe/berlin"));
    assert!(!contact_with("timezone", "Mars/Olympus_Mons"));
    // A zone stored (or imported) in another case is spelled as the database spells it.
    assert_eq!(
        herald::domain::time::canonical_time_zone("america/new_york").as_deref(),
        Some("America/New_York")
    );
    assert_eq!(
        herald::domain::time::canonical_time_zone("Mars/Olympus_Mons"),
        None
    );
    let stored = Contact {
        timezone: Some("europe/berlin".into()),
        ..Contact::default()
    };
    let patched = Contact::apply(Some(&stored), &json!({"locale": "de"}), true, true).unwrap();
    assert_eq!(patched.timezone.as_deref(), Some("Europe/Berlin"));
}
