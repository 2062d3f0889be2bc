//! The routes and the pusher on in-memory adapters: who a connection belongs to comes from
//! the authorizer only, frames reach that user's sockets and no one else's (other users,
//! other tenants), counts are the store's, a gone socket is forgotten, a failed read is
//! redelivered.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use herald::domain::counters::UserKey;
use herald::domain::live::Connection;
use herald::domain::notification::{parse_notification, IdSource};
use herald::fake::fixtures::noon;
use herald::fake::{FixedClock, InMemoryConnections, InMemoryInbox, RecordingSockets};
use herald::ports::live::Connections;
use herald::ports::{CounterStore, UserWrites};
use herald::{TenantId, UserId};
use serde_json::{json, Value};

use crate::authorizer::ConnectionContext;
use crate::push::Pusher;
use crate::socket::{RouteContext, RouteEvent, RouteResponse, Socket};

fn user(tenant: &str, user: &str) -> UserKey {
    UserKey {
        tenant: TenantId::parse(tenant, "tenant").unwrap(),
        user: UserId::parse(user, "user").unwrap(),
    }
}

fn route(
    route_key: &str,
    connection: &str,
    who: Option<(&str, &str)>,
    body: Option<&str>,
) -> RouteEvent {
    RouteEvent {
        request_context: RouteContext {
            route_key: route_key.into(),
            connection_id: connection.into(),
            authorizer: who.map(|(tenant, user)| ConnectionContext {
                tenant: tenant.into(),
                user: user.into(),
            }),
        },
        body: body.map(str::to_owned),
        is_base64_encoded: false,
    }
}

fn frame(response: &RouteResponse) -> Value {
    serde_json::from_str(response.body.as_deref().expect("a frame")).unwrap()
}

#[tokio::test]
async fn connect_records_disconnect_forgets_and_frames_are_answered() {
    let connections = Arc::new(InMemoryConnections::default());
    let socket = Socket {
        connections: connections.clone(),
        clock: Arc::new(FixedClock(noon())),
    };
    let alice = user("t1", "alice");
    socket
        .handle(&route("$connect", "c1", Some(("t1", "alice")), None))
        .await
        .unwrap();
    let mine = connections.of_user(&alice).await.unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!((mine[0].id.as_str(), mine[0].connected_at), ("c1", noon()));

    let pong = socket
        .handle(&route(
            "$default",
            "c1",
            Some(("t1", "alice")),
            Some(r#"{"action":"ping"}"#),
        ))
        .await
        .unwrap();
    assert_eq!(frame(&pong), json!({"type": "pong"}));
    let unknown = socket
        .handle(&route(
            "$default",
            "c1",
            Some(("t1", "alice")),
            Some(r#"{"action":"subscribe","room":"x"}"#),
        ))
        .await
        .unwrap();
    let unknown = frame(&unknown);
    assert_eq!(unknown["type"], "error");
    assert_eq!(unknown["error"]["code"], "unknown_action");
    assert_eq!(unknown["error"]["field"], "action");
    let junk = socket
        .handle(&route(
            "$default",
            "c1",
            Some(("t1", "alice")),
            Some("not json"),
        ))
        .await
        .unwrap();
    assert_eq!(frame(&junk)["error"]["code"], "invalid_json");

    socket
        .handle(&route("$disconnect", "c1", Some(("t1", "alice")), None))
        .await
        .unwrap();
    assert!(connections.of_user(&alice).await.unwrap().is_empty());
}

/// A route that did not pass the authorizer (no context, or a context naming no valid user)
/// records nothing: who a connection is never comes from the client.
#[tokio::test]
async fn a_route_without_the_authorizers_context_records_nothing() {
    let connections = Arc::new(InMemoryConnections::default());
    let socket = Socket {
        connections: connections.clone(),
        clock: Arc::new(FixedClock(noon())),
    };
    assert!(socket
        .handle(&route("$connect", "c1", None, None))
        .await
        .is_err());
    assert!(socket
        .handle(&route("$connect", "c1", Some(("t1", "a#b")), None))
        .await
        .is_err());
    assert!(connections
        .by_user
        .lock()
        .unwrap()
        .values()
        .all(Vec::is_empty));
}

struct World {
    inbox: Arc<InMemoryInbox>,
    connections: Arc<InMemoryConnections>,
    sockets: Arc<RecordingSockets>,
    pusher: Pusher,
}

fn world() -> World {
    let inbox = Arc::new(InMemoryInbox::default());
    let connections = Arc::new(InMemoryConnections::default());
    let sockets = Arc::new(RecordingSockets::default());
    let pusher = Pusher {
        connections: connections.clone(),
        counters: inbox.clone(),
        sockets: sockets.clone(),
    };
    World {
        inbox,
        connections,
        sockets,
        pusher,
    }
}

async fn connect(w: &World, id: &str, who: &UserKey) {
    w.connections
        .add(&Connection {
            id: id.into(),
            user: who.clone(),
            connected_at: noon(),
        })
        .await
        .unwrap();
}

async fn commit(w: &World, who: &UserKey, id: &str, room: &str) {
    let item = json!({"id": id, "user_id": who.user.as_str(), "room_id": room, "title": "Hi", "body": "there", "channels": ["inbox"]});
    let n = parse_notification(&item, 0, &who.tenant, IdSource::Generate, noon()).unwrap();
    w.inbox
        .commit(&[UserWrites {
            user: who.clone(),
            messages: vec![n],
        }])
        .await
        .unwrap();
}

/// A stream batch as Lambda hands it: each (user, sk, event, new image) a record.
fn stream(records: &[(&UserKey, &str, &str, Value)]) -> Event {
    let records: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, (who, sk, event, new))| {
            let pk = format!("T#{}#U#{}", who.tenant, who.user);
            json!({
                "eventID": i.to_string(), "eventName": event, "eventSource": "aws:dynamodb",
                "eventVersion": "1.1", "awsRegion": "us-east-1",
                "dynamodb": {
                    "ApproximateCreationDateTime": 1_765_000_000,
                    "Keys": {"pk": {"S": pk}, "sk": {"S": sk}},
                    "NewImage": new, "OldImage": {},
                    "SequenceNumber": (100 + i).to_string(), "SizeBytes": 10,
                    "StreamViewType": "NEW_AND_OLD_IMAGES"
                }
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn message_image(id: &str, room: &str) -> Value {
    json!({"id": {"S": id}, "room_id": {"S": room}, "title": {"S": "Hi"}, "body": {"S": "there"},
        "created_at": {"S": "2026-12-06T12:00:00Z"}, "stamp": {"N": "1"}})
}

#[tokio::test]
async fn a_commit_reaches_the_users_sockets_only_with_the_stores_counts() {
    let w = world();
    let (alice, bob, other_alice) = (user("t1", "alice"), user("t1", "bob"), user("t2", "alice"));
    connect(&w, "phone", &alice).await;
    connect(&w, "laptop", &alice).await;
    connect(&w, "bob", &bob).await;
    connect(&w, "t2-alice", &other_alice).await;
    commit(&w, &alice, "n1", "general").await;
    commit(&w, &alice, "n2", "billing").await;

    let (pushed, response) = w
        .pusher
        .handle(&stream(&[
            (&alice, "M#01A", "INSERT", message_image("n1", "general")),
            (&alice, "R#general", "INSERT", json!({})),
            (&alice, "TOTAL", "MODIFY", json!({})),
            (&alice, "M#01B", "INSERT", message_image("n2", "billing")),
            (&alice, "I#n2", "INSERT", json!({})),
        ]))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((pushed.users, pushed.frames), (1, 2), "{pushed:?}");
    for socket in ["phone", "laptop"] {
        let frames = w.sockets.frames(socket);
        assert_eq!(frames.len(), 1, "one frame for the batch on {socket}");
        let update = &frames[0];
        let counts = w.inbox.snapshot(&alice);
        assert_eq!(update["type"], "update");
        assert_eq!(update["version"], counts.total.version);
        assert_eq!(update["total"], 2);
        assert_eq!(update["rooms"], json!({"general": 1, "billing": 1}));
        assert_eq!(update["unseen"]["total"], 2);
        let ids: Vec<&Value> = update["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| &c["message"]["id"])
            .collect();
        assert_eq!(ids, [&json!("n1"), &json!("n2")], "in commit order");
    }
    // Bob, and the alice of another tenant, hear nothing of this alice.
    assert!(w.sockets.frames("bob").is_empty());
    assert!(w.sockets.frames("t2-alice").is_empty());
}

#[tokio::test]
async fn a_gone_socket_is_forgotten_and_a_failing_one_loses_only_that_frame() {
    let w = world();
    let alice = user("t1", "alice");
    connect(&w, "closed", &alice).await;
    connect(&w, "throttled", &alice).await;
    connect(&w, "open", &alice).await;
    w.sockets.gone.lock().unwrap().insert("closed".into());
    w.sockets.failing.lock().unwrap().insert("throttled".into());
    commit(&w, &alice, "n1", "general").await;
    let (pushed, response) = w
        .pusher
        .handle(&stream(&[(&alice, "TOTAL", "MODIFY", json!({}))]))
        .await;
    assert_eq!((pushed.frames, pushed.gone, pushed.failed), (1, 1, 1));
    assert!(
        response.batch_item_failures.is_empty(),
        "a lost frame is not retried"
    );
    let left: Vec<String> = w
        .connections
        .of_user(&alice)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(left, ["throttled", "open"]);
    assert_eq!(w.sockets.frames("open")[0]["total"], 1);
}

#[tokio::test]
async fn a_user_without_connections_costs_no_counter_read() {
    let w = world();
    let alice = user("t1", "alice");
    commit(&w, &alice, "n1", "general").await;
    let before = w.inbox.calls.load(std::sync::atomic::Ordering::Relaxed);
    let (pushed, _) = w
        .pusher
        .handle(&stream(&[(
            &alice,
            "M#01A",
            "INSERT",
            message_image("n1", "general"),
        )]))
        .await;
    assert_eq!((pushed.users, pushed.frames), (1, 0));
    assert_eq!(
        w.inbox.calls.load(std::sync::atomic::Ordering::Relaxed),
        before
    );
}

/// Connections that cannot be read: the batch is redelivered from that user's first record
/// (the stream retries from the lowest failed sequence number), and users before it are
/// served.
#[tokio::test]
async fn a_failed_read_asks_for_redelivery_from_the_users_first_record() {
    struct Broken;
    #[async_trait::async_trait]
    impl Connections for Broken {
        async fn add(&self, _: &Connection) -> Result<(), herald::StoreError> {
            Ok(())
        }
        async fn remove(&self, _: &UserKey, _: &str) -> Result<(), herald::StoreError> {
            Ok(())
        }
        async fn of_user(&self, user: &UserKey) -> Result<Vec<Connection>, herald::StoreError> {
            if user.user.as_str() == "bob" {
                Err(herald::StoreError::Transient(
                    "ProvisionedThroughputExceeded".into(),
                ))
            } else {
                Ok(Vec::new())
            }
        }
    }
    let w = world();
    let pusher = Pusher {
        connections: Arc::new(Broken),
        counters: w.inbox.clone(),
        sockets: w.sockets.clone(),
    };
    let (alice, bob) = (user("t1", "alice"), user("t1", "bob"));
    let (_, response) = pusher
        .handle(&stream(&[
            (&alice, "TOTAL", "MODIFY", json!({})),
            (&bob, "TOTAL", "MODIFY", json!({})),
            (&bob, "R#general", "MODIFY", json!({})),
        ]))
        .await;
    let failed: Vec<Option<String>> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    assert_eq!(failed, [Some("101".to_owned())]);
}
