//! Feeds every file in events/ to its function's handler in-process, against a fresh stack,
//! in the order a user's session would produce them, and checks the answer and the effect
//! (`testkit::fixtures`). The SAM check runs the same files through `sam local invoke` with
//! the same expectations, so the fixtures cannot rot.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;

use aws_lambda_events::event::sqs::SqsEvent;
use herald::consumer::handle_sqs_event;
use serde_json::Value;
use testkit::fixtures::{read, Answer, Progress, ORDER};
use testkit::harness::test_stack;
use testkit::runner::LocalApp;
use tower::ServiceExt;

async fn invoke(app: &LocalApp, name: &str, function: &str) -> Answer {
    let text = read(name).unwrap();
    let router = match function {
        "IngestFunction" => Some(ingest::app(app.ingest.clone())),
        "InboxApiFunction" => Some(inbox_api::app(
            app.inbox_api.clone(),
            app.campaign_api.clone(),
        )),
        _ => None,
    };
    if let Some(router) = router {
        let request =
            lambda_http::request::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        let response = router.oneshot(request).await.unwrap();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        return Answer::Http {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        };
    }
    match function {
        "LiveAuthorizerFunction" => {
            let request = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let authorizer = app.live.authorizer();
            return match authorizer.authorize(&request).await {
                Ok(policy) => {
                    Answer::from_lambda_response(&serde_json::to_value(policy).unwrap()).unwrap()
                }
                Err(e) => Answer::Refused {
                    message: e.to_string(),
                },
            };
        }
        "LiveSocketFunction" => {
            let event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            let response = app.live.socket().handle(&event).await.unwrap();
            return Answer::from_lambda_response(&serde_json::to_value(response).unwrap()).unwrap();
        }
        "LivePushFunction" => {
            let event = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
            // Nothing is posted in this fixture: no endpoint is reached.
            let pusher = app.live_pusher("http://127.0.0.1:9").unwrap();
            let (_, response) = pusher.handle(&event).await;
            return Answer::Batch {
                failures: response
                    .batch_item_failures
                    .into_iter()
                    .filter_map(|f| f.item_identifier)
                    .collect(),
            };
        }
        _ => {}
    }
    let event: SqsEvent = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let response = match function {
        "InboxWriterFunction" => {
            handle_sqs_event(app.writer.as_ref(), &app.notifications, event).await
        }
        "DeliverFunction" => handle_sqs_event(app.deliverer.as_ref(), &app.delivery, event).await,
        "DeliverSmsFunction" => {
            handle_sqs_event(app.sms_deliverer.as_ref(), &app.sms_delivery, event).await
        }
        "DeliverPushFunction" => {
            handle_sqs_event(app.push_deliverer.as_ref(), &app.push_delivery, event).await
        }
        "FeedbackFunction" => {
            handle_sqs_event(app.feedback.as_ref(), &app.feedback_queue, event).await
        }
        "CampaignsFunction" => {
            handle_sqs_event(app.campaigns.as_ref(), &app.campaign_queue, event).await
        }
        other => panic!("{name}: no handler for {other}"),
    };
    Answer::Batch {
        failures: response
            .batch_item_failures
            .into_iter()
            .map(|f| f.item_identifier)
            .collect(),
    }
}

#[test]
fn every_file_in_events_is_covered() {
    let mut files: Vec<String> = std::fs::read_dir(testkit::workspace_root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        // Lambda events; events/pinpoint-export.ndjson is a sample export (tests/pinpoint.rs).
        .filter(|name| name.ends_with(".json"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = ORDER.iter().map(|(f, _)| f.to_string()).collect();
    listed.sort();
    assert_eq!(files, listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fixture_runs_through_its_handler() {
    let stack = test_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let mut progress = Progress::default();
    for (name, function) in ORDER {
        // The inbox-writer fixture runs twice: a redelivered batch must change nothing.
        let runs = if function == "InboxWriterFunction" {
            2
        } else {
            1
        };
        for _ in 0..runs {
            progress.before(&stack, name).unwrap();
            let answer = invoke(&app, name, function).await;
            progress
                .check(&stack, name, &answer)
                .await
                .unwrap_or_else(|e| panic!("{e:#}"));
        }
    }
}
