//! The live feed on the emulator, as a browser uses it: a WebSocket to the local gateway
//! (the authorizer, the routes and the pusher are the Lambdas' code), a notification through
//! the API, and the frame that follows from the inbox table's stream; a read, a bad token,
//! an unknown action, and users and tenants kept apart.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use testkit::auth::TokenSpec;
use testkit::harness::{http, test_stack};
use testkit::runner::LocalApp;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The stack served on a free port, its queue workers and the pusher running.
struct Served {
    stack: testkit::stack::Stack,
    app: std::sync::Arc<LocalApp>,
    url: String,
    shutdown: CancellationToken,
}

async fn serve() -> Served {
    let stack = test_stack(&[]).await.unwrap();
    let app = std::sync::Arc::new(LocalApp::new(&stack).unwrap());
    let shutdown = CancellationToken::new();
    let _workers = app.spawn_workers(1, 1, &shutdown);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (served, stop) = (app.clone(), shutdown.clone());
    tokio::spawn(async move { served.serve(listener, stop).await });
    Served {
        stack,
        app,
        url,
        shutdown,
    }
}

async fn connect(
    served: &Served,
    token: &str,
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let ws = served.url.replacen("http://", "ws://", 1);
    tokio_tungstenite::connect_async(format!("{ws}/live?token={token}"))
        .await
        .map(|(socket, _)| socket)
}

/// The next text frame, parsed; None when none comes within `wait` (a bound on the test's
/// run, not a claim about speed).
async fn next_frame(socket: &mut Socket, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => return Some(serde_json::from_str(&text).unwrap()),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// Frames until one satisfies `wanted` (earlier updates may carry part of the changes).
async fn frame_where(socket: &mut Socket, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let frame = next_frame(socket, Duration::from_secs(30))
            .await
            .expect("a frame within 30 s");
        if wanted(&frame) {
            return frame;
        }
    }
}

async fn notify(served: &Served, tenant: &str, user: &str, room: &str, id: &str) {
    let service = served.app.service_token(tenant);
    let (status, body) = http(
        "POST",
        &format!("{}/v1/notifications", served.url),
        Some(&service),
        Some(json!({"notifications": [{"id": id, "user_id": user, "room_id": room, "title": "Hi", "body": "there", "channels": ["inbox"]}]})),
    )
    .await
    .unwrap();
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_notification_and_a_read_reach_the_users_socket_with_the_apis_counts() {
    let served = serve().await;
    let token = served.app.user_token("t1", "alice");
    let mut alice = connect(&served, &token).await.unwrap();
    let mut bob = connect(&served, &served.app.user_token("t1", "bob"))
        .await
        .unwrap();
    let mut other_tenant = connect(&served, &served.app.user_token("t2", "alice"))
        .await
        .unwrap();

    // The heartbeat is answered; anything else is an error frame naming the field.
    alice
        .send(Message::Text(r#"{"action":"ping"}"#.into()))
        .await
        .unwrap();
    assert_eq!(
        next_frame(&mut alice, Duration::from_secs(10)).await,
        Some(json!({"type": "pong"}))
    );
    alice
        .send(Message::Text(r#"{"action":"subscribe"}"#.into()))
        .await
        .unwrap();
    let error = next_frame(&mut alice, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(
        (error["type"].as_str(), error["error"]["field"].as_str()),
        (Some("error"), Some("action"))
    );

    notify(&served, "t1", "alice", "general", "n1").await;
    let update = frame_where(&mut alice, |f| {
        f["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["message"]["id"] == "n1"))
    })
    .await;
    assert_eq!(update["type"], "update");
    assert_eq!(
        (
            update["total"].as_u64(),
            update["rooms"]["general"].as_u64()
        ),
        (Some(1), Some(1))
    );
    // The frame's counts and version are what the API answers.
    let (_, unread) = http(
        "GET",
        &format!("{}/v1/users/alice/unread", served.url),
        Some(&token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        (unread["total"].clone(), unread["version"].clone()),
        (update["total"].clone(), update["version"].clone())
    );

    let (status, _) = http(
        "POST",
        &format!("{}/v1/users/alice/rooms/general/read", served.url),
        Some(&token),
        None,
    )
    .await
    .unwrap();
    assert_eq!(status, 200);
    let read = frame_where(&mut alice, |f| {
        f["changes"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["kind"] == "read"))
    })
    .await;
    assert_eq!(read["total"], 0);
    assert!(
        read["version"].as_u64() > update["version"].as_u64(),
        "versions grow"
    );
    assert_eq!(
        read["changes"],
        json!([{"kind": "read", "room": "general"}])
    );

    // Bob, and alice of another tenant, heard nothing of this alice.
    assert_eq!(next_frame(&mut bob, Duration::from_millis(500)).await, None);
    assert_eq!(
        next_frame(&mut other_tenant, Duration::from_millis(500)).await,
        None
    );
    // Their own notification reaches them, and not her.
    notify(&served, "t2", "alice", "general", "n2").await;
    let theirs = frame_where(&mut other_tenant, |f| f["type"] == "update").await;
    assert_eq!(theirs["changes"][0]["message"]["id"], "n2");
    assert_eq!(
        next_frame(&mut alice, Duration::from_millis(500)).await,
        None
    );
    served.shutdown.cancel();
}

#[tokio::test]
async fn a_bad_or_expired_token_opens_no_socket() {
    let served = serve().await;
    let issuer = &served.app.issuer;
    let expired = issuer.sign(&TokenSpec {
        expires_in: -3600,
        ..issuer.user("t1", "alice")
    });
    let foreign = testkit::auth::LocalIssuer::generate().unwrap();
    let unknown_key = foreign.sign(&foreign.user("t1", "alice"));
    let tampered = testkit::auth::tampered(&served.app.user_token("t1", "alice"));
    for (what, token) in [
        ("expired", expired),
        ("another key", unknown_key),
        ("tampered", tampered),
        ("junk", "x".into()),
        ("none", String::new()),
    ] {
        match connect(&served, &token).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403, "{what}")
            }
            other => panic!("{what}: {:?}", other.map(|_| "a socket opened")),
        }
    }
    assert_eq!(served.app.live.open_connections(), 0);
    served.shutdown.cancel();
}

/// A socket closed by its client runs `$disconnect`: the pusher then finds no connection
/// for the user (and a record left behind would be answered 410 and forgotten).
#[tokio::test]
async fn a_closed_socket_is_forgotten() {
    let served = serve().await;
    use herald::ports::live::Connections;
    let connections = herald::aws::connections::DynamoConnections::new(
        aws_sdk_dynamodb::Client::new(&served.stack.sdk),
        &served.stack.resource("ConnectionsTable").unwrap().name,
    );
    let alice = herald::UserKey {
        tenant: herald::TenantId::parse("t1", "t").unwrap(),
        user: herald::UserId::parse("alice", "u").unwrap(),
    };
    let mut socket = connect(&served, &served.app.user_token("t1", "alice"))
        .await
        .unwrap();
    assert_eq!(
        connections.of_user(&alice).await.unwrap().len(),
        1,
        "$connect recorded it"
    );
    socket.close(None).await.unwrap();
    testkit::harness::eventually(
        Duration::from_secs(10),
        "$disconnect to forget it",
        || async { Ok(connections.of_user(&alice).await?.is_empty().then_some(())) },
    )
    .await
    .unwrap();
    assert_eq!(served.app.live.open_connections(), 0);
    served.shutdown.cancel();
}

/// The authorizer as deployed: it fetches the issuer's JWKS over HTTP (here the local API's
/// `/.well-known/jwks.json`), then allows the user's own token with its tenant and user as
/// the connection's context, and refuses a service's token, one of another issuer, and none.
#[tokio::test]
async fn the_authorizer_fetches_the_issuers_keys_and_allows_users_only() {
    let served = serve().await;
    let authorizer = live::authorizer::Authorizer::from_config(&live::AuthorizerConfig {
        jwks_url: Some(format!("{}/.well-known/jwks.json", served.url)),
        issuer: testkit::auth::LOCAL_ISSUER.into(),
        audiences: vec![testkit::auth::LOCAL_AUDIENCE.into()],
        auth: herald::auth::AuthSettings::from_vars(&herald::config::Vars::from([(
            "DEFAULT_TENANT",
            "default",
        )]))
        .unwrap(),
    });
    let request = |token: &str| {
        serde_json::from_value::<
            aws_lambda_events::event::apigw::ApiGatewayCustomAuthorizerRequestTypeRequest,
        >(json!({
            "type": "REQUEST",
            "methodArn": "arn:aws:execute-api:us-east-1:123456789012:abc/live/$connect",
            "queryStringParameters": {"token": token},
            "requestContext": {"routeKey": "$connect", "eventType": "CONNECT"},
        }))
        .unwrap()
    };
    let allowed = authorizer
        .authorize(&request(&served.app.user_token("t1", "alice")))
        .await
        .unwrap();
    let context = allowed.allowed().unwrap();
    assert_eq!(
        (context.tenant.as_str(), context.user.as_str()),
        ("t1", "alice")
    );
    assert_eq!(allowed.policy_document["Statement"][0]["Effect"], "Allow");
    assert_eq!(
        allowed.policy_document["Statement"][0]["Resource"],
        "arn:aws:execute-api:us-east-1:123456789012:abc/live/$connect"
    );
    let issuer = &served.app.issuer;
    let elsewhere = issuer.sign(&TokenSpec {
        issuer: "https://evil.example".into(),
        ..issuer.user("t1", "alice")
    });
    // Without JWKS_URL the keys are found by OIDC discovery, as API Gateway finds them.
    use live::jwks::KeySource;
    let discovered = live::jwks::HttpKeySource::discovered(&format!("{}/", served.url))
        .fetch()
        .await
        .unwrap();
    assert_eq!(discovered.keys.len(), served.app.issuer.jwks().keys.len());
    for (what, token) in [
        ("a service's", served.app.service_token("t1")),
        ("another issuer's", elsewhere),
        ("no", String::new()),
    ] {
        // Denied, not failed: a refusal is the authorizer's answer (API Gateway: 403).
        let denied = authorizer.authorize(&request(&token)).await.unwrap();
        assert!(denied.allowed().is_none(), "{what} token");
        assert_eq!(
            denied.policy_document["Statement"][0]["Effect"], "Deny",
            "{what} token"
        );
    }
    served.shutdown.cancel();
}

/// The emulator's stream is DynamoDB's: a commit records one INSERT per item it creates
/// (moto recorded an update that creates its item twice), and a redelivered commit, its
/// transaction cancelled by the duplicate, records nothing.
#[tokio::test]
async fn the_emulators_stream_records_each_write_once_and_no_cancelled_one() {
    let stack = test_stack(&[]).await.unwrap();
    let table = &stack.resource("InboxTable").unwrap().name;
    let inbox = herald::aws::dynamodb::DynamoInbox::new(
        aws_sdk_dynamodb::Client::new(&stack.sdk),
        table,
        30,
    );
    let tenant = herald::TenantId::parse("t1", "t").unwrap();
    let item = json!({"id": "n1", "user_id": "alice", "room_id": "general", "title": "Hi", "body": "there", "channels": ["inbox"]});
    let n = herald::domain::notification::parse_notification(
        &item,
        0,
        &tenant,
        herald::domain::notification::IdSource::Generate,
        jiff::Timestamp::now(),
    )
    .unwrap();
    let policy = Default::default();
    herald::domain::counters::commit::apply_to_counters(&inbox, vec![(0, n.clone())], &policy)
        .await;
    // Redelivered: the message's Put is a duplicate, so the transaction is cancelled.
    herald::domain::counters::commit::apply_to_counters(&inbox, vec![(0, n)], &policy).await;

    let streams = aws_sdk_dynamodbstreams::Client::new(&stack.sdk);
    let arn = &stack.streams["InboxTable"];
    let shard = streams
        .describe_stream()
        .stream_arn(arn)
        .send()
        .await
        .unwrap()
        .stream_description
        .unwrap()
        .shards
        .unwrap()[0]
        .shard_id
        .clone()
        .unwrap();
    let iterator = streams
        .get_shard_iterator()
        .stream_arn(arn)
        .shard_id(shard)
        .shard_iterator_type(aws_sdk_dynamodbstreams::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap()
        .shard_iterator
        .unwrap();
    let records = streams
        .get_records()
        .shard_iterator(iterator)
        .send()
        .await
        .unwrap()
        .records
        .unwrap_or_default();
    let written: Vec<(String, String)> = records
        .iter()
        .map(|r| {
            let keys = r.dynamodb().unwrap().keys.as_ref().unwrap();
            let sk = keys["sk"].as_s().unwrap();
            let kind = sk.split('#').next().unwrap().to_owned();
            (r.event_name().unwrap().as_str().to_owned(), kind)
        })
        .collect();
    // The message, its client id's idempotency record, its room, TOTAL; nothing more.
    let expected: Vec<(String, String)> = [
        ("INSERT", "M"),
        ("INSERT", "I"),
        ("INSERT", "R"),
        ("INSERT", "TOTAL"),
    ]
    .iter()
    .map(|(e, k)| ((*e).to_owned(), (*k).to_owned()))
    .collect();
    assert_eq!(written, expected);
}
