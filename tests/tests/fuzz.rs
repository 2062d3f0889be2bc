//! Seeded fuzzing of every route against the emulator: 10,000 generated bad requests (each
//! with at least one defect: its token, a path id, its query or its body) through the local
//! runner's router. None may be a 5xx, every answer is a 4xx `{"error": {"code", "message"}}`,
//! and afterwards the tables and the queue hold nothing. `HERALD_FUZZ_SEED` and
//! `HERALD_FUZZ_REQUESTS` vary the run; a failure prints the seed and the request.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use herald::auth::Scope;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use testkit::auth::{tampered, LocalIssuer, TokenSpec};
use testkit::contract::{operations, Operation};
use testkit::harness::{queue_depth, test_stack};
use testkit::runner::LocalApp;
use tower::ServiceExt;

const TENANT: &str = "fuzz";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_bad_requests_get_json_4xx_and_store_nothing() {
    let seed: u64 = env_or("HERALD_FUZZ_SEED", 20_261_130);
    let count: usize = env_or("HERALD_FUZZ_REQUESTS", 10_000);
    let stack = test_stack(&[]).await.unwrap();
    let app = LocalApp::new(&stack).unwrap();
    let router = app.router();
    // The console's page takes nothing a request could get wrong.
    let operations: Vec<Operation> = operations()
        .unwrap()
        .into_iter()
        .filter(|op| op.path != "/console")
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let tokens = Tokens::new(&app.issuer);

    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for n in 0..count {
        let op = &operations[rng.random_range(0..operations.len())];
        let request = bad_request(&mut rng, op, &tokens);
        let described = format!(
            "seed {seed}, request {n}: {} {} token={:?} body={:?}",
            request.method,
            clip(&request.uri),
            request.token.as_deref().map(clip),
            request
                .body
                .as_deref()
                .map(|b| clip(&String::from_utf8_lossy(b)))
        );
        let mut builder = axum::http::Request::builder()
            .method(request.method.as_str())
            .uri(&request.uri);
        if let Some(token) = &request.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        let Ok(http_request) = builder.body(axum::body::Body::from(
            request.body.clone().unwrap_or_default(),
        )) else {
            continue; // not even a valid HTTP request: no client could send it
        };
        let response = router.clone().oneshot(http_request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
            .await
            .unwrap();
        let answer: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        assert!(
            (400..500).contains(&status),
            "{described}\n→ {status} {}",
            String::from_utf8_lossy(&bytes)
        );
        assert!(
            answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
            "{described}\n→ {status} is not {{\"error\": {{…}}}}: {}",
            String::from_utf8_lossy(&bytes)
        );
        *statuses.entry(status).or_default() += 1;
    }
    eprintln!("fuzz: {count} requests, seed {seed}, statuses {statuses:?}");
    assert!(
        statuses.len() >= 3,
        "the defects reach several checks: {statuses:?}"
    );

    let ddb = aws_sdk_dynamodb::Client::new(&stack.sdk);
    for table in ["InboxTable", "DirectoryTable"] {
        let name = &stack.resource(table).unwrap().reference;
        let items = ddb.scan().table_name(name).send().await.unwrap().count();
        assert_eq!(
            items, 0,
            "{table} holds {items} items after bad requests only"
        );
    }
    assert_eq!(queue_depth(&stack, "NotificationsQueue").await.unwrap(), 0);
}

struct BadRequest {
    method: String,
    uri: String,
    token: Option<String>,
    body: Option<Vec<u8>>,
}

/// Tokens of every kind, signed once.
struct Tokens {
    /// A genuine unsubscribe token of tenant fuzz, user u1 (the fuzz bends it).
    link: String,
    service: String,
    user: String,
    other_user: String,
    bad: Vec<String>,
    without: Vec<(Scope, String)>,
}

impl Tokens {
    fn new(issuer: &LocalIssuer) -> Self {
        let service = issuer.service(TENANT);
        let sign = |spec: TokenSpec| issuer.sign(&spec);
        let valid = sign(service.clone());
        let signer =
            herald::domain::unsubscribe::LinkSigner::new(&herald::fake::StaticKeys::default().0)
                .unwrap();
        Self {
            link: signer.token(
                &herald::TenantId::parse(TENANT, "t").unwrap(),
                &herald::UserId::parse("u1", "u").unwrap(),
                herald::domain::notification::Category::Marketing,
            ),
            user: sign(issuer.user(TENANT, "u1")),
            other_user: sign(issuer.user(TENANT, "someone-else")),
            bad: vec![
                "".into(),
                "garbage".into(),
                "a.b.c".into(),
                tampered(&valid),
                sign(TokenSpec {
                    expires_in: -60 * 60 * 24,
                    ..service.clone()
                }),
                sign(TokenSpec {
                    issuer: "https://evil.example".into(),
                    ..service.clone()
                }),
                sign(TokenSpec {
                    audience: "other".into(),
                    ..service.clone()
                }),
                sign(TokenSpec {
                    tenant: None,
                    ..service.clone()
                }),
                sign(TokenSpec {
                    tenant: Some("bad tenant".into()),
                    ..service.clone()
                }),
                sign(issuer.user(TENANT, "someone-else")),
                // Signed by a key the authorizer does not trust.
                LocalIssuer::generate().unwrap().sign(&service),
            ],
            without: Scope::ALL
                .iter()
                .map(|scope| {
                    let scopes = Scope::ALL
                        .iter()
                        .filter(|s| *s != scope)
                        .map(|s| s.as_str().to_owned())
                        .collect();
                    (
                        *scope,
                        sign(TokenSpec {
                            scopes,
                            ..service.clone()
                        }),
                    )
                })
                .collect(),
            service: valid,
        }
    }
}

fn bad_request(rng: &mut StdRng, op: &Operation, tokens: &Tokens) -> BadRequest {
    if op.path == "/console/{file}" {
        // The console's files: a name it does not have, or a path.
        let names = [
            "secrets.txt",
            "..%2F..%2Fetc%2Fpasswd",
            "app.js.map",
            ".env",
            "APP.JS",
        ];
        return BadRequest {
            method: op.method.clone(),
            uri: format!("/console/{}", names[rng.random_range(0..names.len())]),
            token: rng.random_bool(0.5).then(|| tokens.service.clone()),
            body: None,
        };
    }
    if op.path == "/v1/audiences" {
        // An audience file takes any bytes: the defect is the token, the name or emptiness.
        let file = b"user_id\nu1\n".to_vec();
        return match rng.random_range(0..3) {
            0 => BadRequest {
                method: op.method.clone(),
                uri: op.path.clone(),
                token: rng
                    .random_bool(0.5)
                    .then(|| tokens.bad[rng.random_range(0..tokens.bad.len())].clone()),
                body: Some(file),
            },
            1 => BadRequest {
                method: op.method.clone(),
                uri: format!(
                    "{}?name={}",
                    op.path,
                    [
                        "..%2Fother%2Fx.csv",
                        "a%20b.csv",
                        ".hidden",
                        "",
                        &"n".repeat(101)
                    ][rng.random_range(0..5)]
                ),
                token: Some(tokens.service.clone()),
                body: Some(file),
            },
            _ => BadRequest {
                method: op.method.clone(),
                uri: op.path.clone(),
                token: Some(tokens.service.clone()),
                body: None,
            },
        };
    }
    if op.public {
        // The unsubscribe link: its token is its credential, so the defect is in the token.
        return BadRequest {
            method: op.method.clone(),
            uri: format!("{}{}", op.path, bad_link(rng, &tokens.link)),
            token: rng.random_bool(0.5).then(|| tokens.service.clone()),
            body: rng
                .random_bool(0.5)
                .then(|| b"List-Unsubscribe=One-Click".to_vec()),
        };
    }
    let has_body = matches!(op.method.as_str(), "POST" | "PUT" | "PATCH")
        && op.path != "/v1/users/{user}/read-all"
        && op.path != "/v1/users/{user}/seen-all"
        && !op.path.ends_with("/read");
    let has_ids = op.path.contains('{');
    let is_messages = op.path.ends_with("/messages");
    // Which defects this request carries: at least one, among those the route can have.
    let mut kinds = vec!["token"];
    if has_ids {
        kinds.push("id");
    }
    if has_body {
        kinds.push("body");
        kinds.push("body");
    }
    if is_messages {
        kinds.push("query");
    }
    let defect = kinds[rng.random_range(0..kinds.len())];

    let token = match defect {
        "token" => {
            let pick = rng.random_range(0..tokens.bad.len() + 2);
            if pick == tokens.bad.len() {
                None
            } else if pick == tokens.bad.len() + 1 {
                // A valid token without the scope this route needs.
                let needed = op.service_scopes.first().cloned().unwrap_or_default();
                let (_, token) = tokens
                    .without
                    .iter()
                    .find(|(s, _)| s.as_str() == needed)
                    .unwrap_or(&tokens.without[0]);
                if op.user_token {
                    // …and not this user's own token either.
                    Some(tokens.other_user.clone())
                } else {
                    Some(token.clone())
                }
            } else {
                Some(tokens.bad[pick].clone())
            }
        }
        _ if op.user_token && rng.random_bool(0.3) => Some(tokens.user.clone()),
        _ => Some(tokens.service.clone()),
    };
    let mut path = op.path.clone();
    let mut first = true;
    for (param, good) in [("{user}", "u1"), ("{room}", "r1"), ("{id}", "n1")] {
        if path.contains(param) {
            // With an id defect, the route's first id is always bad, the others sometimes.
            let value = if defect == "id" && (std::mem::take(&mut first) || rng.random_bool(0.5)) {
                bad_id(rng)
            } else {
                good.to_owned()
            };
            path = path.replace(param, &value);
        }
    }
    let query = if defect == "query" {
        bad_query(rng)
    } else if is_messages && rng.random_bool(0.3) {
        "?limit=5".to_owned()
    } else {
        String::new()
    };
    let body = if defect == "body" {
        Some(bad_body(rng, &op.path))
    } else if has_body {
        // A body the route would take: the defect is elsewhere.
        Some(good_body(&op.path).to_string().into_bytes())
    } else if rng.random_bool(0.2) {
        Some(random_bytes(rng, 64))
    } else {
        None
    };
    BadRequest {
        method: op.method.clone(),
        uri: format!("{path}{query}"),
        token,
        body,
    }
}

fn good_body(path: &str) -> Value {
    if path == "/v1/notifications" {
        json!({"notifications": [{"user_id": "u1", "room_id": "r1", "title": "t", "body": "b", "channels": ["inbox"]}]})
    } else {
        json!({"email": "u1@example.com"})
    }
}

fn bad_id(rng: &mut StdRng) -> String {
    let ids = [
        "a%20b".to_owned(),
        "a%23b".to_owned(),
        "%00".to_owned(),
        "%FF%FE".to_owned(),
        "%E2%98%83".to_owned(),
        "x".repeat(129),
        "x".repeat(2_000),
        "a%2Fb".to_owned(),
        "'%3B--".to_owned(),
        "%25".to_owned(),
        "T%23t%23U%23u".to_owned(),
    ];
    ids[rng.random_range(0..ids.len())].clone()
}

/// A query with no valid unsubscribe token: none, garbage, or a real link (signed with
/// another secret than the stack's) bent.
fn bad_link(rng: &mut StdRng, link: &str) -> String {
    let links = [
        String::new(),
        "?token=".to_owned(),
        "?token=garbage".to_owned(),
        format!("?token={link}"),
        format!("?token={}", link.replace("fuzz", "other")),
        format!("?token={}", link.replace("marketing", "transactional")),
        format!("?token={}x", link),
        format!("?token={}", "v1~".repeat(200)),
        "?token=%FF".to_owned(),
        format!("?tok={link}"),
    ];
    links[rng.random_range(0..links.len())].clone()
}

fn bad_query(rng: &mut StdRng) -> String {
    let queries = [
        "?limit=0".to_owned(),
        "?limit=-1".to_owned(),
        "?limit=101".to_owned(),
        "?limit=abc".to_owned(),
        "?limit=99999999999999999999".to_owned(),
        "?cursor=nope".to_owned(),
        format!("?cursor={}", "A".repeat(3_000)),
        "?cursor=%FF".to_owned(),
        "?room=a%20b".to_owned(),
        format!("?room={}", "r".repeat(200)),
        "?limit=%".to_owned(),
        "?cursor=eyJwayI6eyJTIjoiVCN4In19".to_owned(),
    ];
    queries[rng.random_range(0..queries.len())].clone()
}

fn bad_body(rng: &mut StdRng, path: &str) -> Vec<u8> {
    let long = "x".repeat(rng.random_range(200..120_000));
    let common = [
        Value::Null,
        json!([]),
        json!([1, 2]),
        json!("text"),
        json!(42),
        json!(true),
    ];
    if rng.random_bool(0.15) {
        return random_bytes(rng, 300);
    }
    if rng.random_bool(0.1) {
        // Deeply nested: parsers must refuse or bound it, never overflow.
        let depth = rng.random_range(100..5_000);
        return format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    }
    if rng.random_bool(0.2) {
        return common[rng.random_range(0..common.len())]
            .to_string()
            .into_bytes();
    }
    let value = if path == "/v1/notifications" {
        let item = bad_notification(rng, &long);
        match rng.random_range(0..5) {
            0 => json!({"notifications": []}),
            1 => json!({"notifications": vec![item; 501]}),
            2 => json!({"notes": [item]}),
            3 => json!({"notifications": item}),
            _ => json!({"notifications": [item, bad_notification(rng, &long)]}),
        }
    } else {
        let cases = [
            json!({"email": 5}),
            json!({"email": "not-an-address"}),
            json!({"email": format!("a@{long}.com")}),
            json!({"phone": "555"}),
            json!({"phone": long}),
            json!({"push": "arn"}),
            json!({"push": vec!["arn:aws:sns:us-east-1:1:endpoint/GCM/a/b"; 21]}),
            json!({"push": [format!("arn:aws:sns:x:1:endpoint/{long}")]}),
            json!({"locale": long}),
            json!({"locale": "english please"}),
            json!({"timezone": long}),
            json!({"timezone": "Mars/Olympus"}),
            json!({"preferences": long}),
            json!({"preferences": {"channels": {"fax": true}}}),
            json!({"preferences": {"marketing": "no"}}),
            json!({"quiet_hours": {"start": "25:00", "end": "07:00"}}),
            json!({"quiet_hours": [1]}),
            json!({"emial": "a@b.co"}),
            json!({ long.clone(): 1 }),
        ];
        cases[rng.random_range(0..cases.len())].clone()
    };
    value.to_string().into_bytes()
}

fn bad_notification(rng: &mut StdRng, long: &str) -> Value {
    let base =
        json!({"user_id": "u1", "room_id": "r1", "title": "t", "body": "b", "channels": ["inbox"]});
    let defects: [(&str, Value); 14] = [
        ("user_id", json!("u 1")),
        ("user_id", json!(long)),
        ("user_id", json!(7)),
        ("room_id", Value::Null),
        ("title", json!(long)),
        ("body", json!("b".repeat(4_001))),
        ("channels", json!([])),
        ("channels", json!(["fax"])),
        ("channels", json!("inbox")),
        ("category", json!("spam")),
        ("data", json!({"blob": "d".repeat(9_000)})),
        ("data", json!("not an object")),
        ("id", json!("id with spaces")),
        ("surprise", json!(1)),
    ];
    let (field, value) = defects[rng.random_range(0..defects.len())].clone();
    let mut item = base;
    if value.is_null() {
        item.as_object_mut().unwrap().remove(field);
    } else {
        item[field] = value;
    }
    if rng.random_bool(0.05) {
        return json!("not an object");
    }
    item
}

fn random_bytes(rng: &mut StdRng, max: usize) -> Vec<u8> {
    let len = rng.random_range(1..max);
    (0..len).map(|_| rng.random()).collect()
}

fn clip(text: &str) -> String {
    text.chars().take(120).collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
