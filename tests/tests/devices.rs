//! Push devices on the emulator: an app registers its token (a real SNS platform endpoint is
//! made on the stack's application), the same token again is the same endpoint, a disabled
//! endpoint is enabled again by a new registration, a push reaches the device (the outbox
//! shows it), a token the provider refuses leaves the registry (and comes back, enabled and
//! no longer suppressed, when the app registers again), and a Pinpoint export's device tokens
//! become devices.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use testkit::harness::{call, eventually, test_stack};
use testkit::runner::LocalApp;
use tokio_util::sync::CancellationToken;

async fn endpoint_enabled(sns: &aws_sdk_sns::Client, arn: &str) -> bool {
    let attributes = sns
        .get_endpoint_attributes()
        .endpoint_arn(arn)
        .send()
        .await
        .unwrap();
    attributes
        .attributes()
        .and_then(|a| a.get("Enabled"))
        .is_some_and(|v| v == "true")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registered_token_gets_its_push_and_a_dead_one_leaves() {
    let stack = test_stack(&[]).await.unwrap();
    let app = Arc::new(LocalApp::new(&stack).unwrap());
    let router = app.router();
    let service = app.service_token("t1");
    let phone_app = app.user_token("t1", "u1");
    let sns = aws_sdk_sns::Client::new(&stack.sdk);

    let (status, first) = call(
        &router,
        "PUT",
        "/v1/users/u1/devices/fcm-tok-1",
        Some(&phone_app),
        Some(json!({"platform": "fcm", "app": "com.example"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{first}");
    let endpoint = first["device"]["endpoint_arn"].as_str().unwrap().to_owned();
    assert!(endpoint_enabled(&sns, &endpoint).await, "a real endpoint");

    // SNS disabled it (the provider refused the token once): a new registration enables it.
    sns.set_endpoint_attributes()
        .endpoint_arn(&endpoint)
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();
    let (status, again) = call(
        &router,
        "PUT",
        "/v1/users/u1/devices/fcm-tok-1",
        Some(&phone_app),
        Some(json!({"platform": "fcm"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["device"]["endpoint_arn"],
        endpoint.as_str(),
        "the same endpoint"
    );
    assert!(endpoint_enabled(&sns, &endpoint).await, "enabled again");

    // A push to the user reaches the device.
    let shutdown = CancellationToken::new();
    let workers = app.spawn_workers(1, 1, &shutdown);
    let push = |id: &str| {
        json!({"notifications": [{"id": id, "user_id": "u1", "room_id": "r1", "title": "Ping",
            "body": "To your phone", "channels": ["push"]}]})
    };
    let (status, _) = call(
        &router,
        "POST",
        "/v1/notifications",
        Some(&service),
        Some(push("p1")),
    )
    .await
    .unwrap();
    assert_eq!(status, 202);
    let outbox = testkit::outbox::Source::of(&stack).unwrap();
    let filter = testkit::outbox::Filter {
        user: Some("u1".into()),
        tenant: Some("t1".into()),
        limit: None,
    };
    let sent = eventually(
        Duration::from_secs(20),
        "the push in the outbox",
        || async {
            let sent = outbox.read(&filter).await?;
            Ok((!sent.is_empty()).then_some(sent))
        },
    )
    .await
    .unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].to, endpoint);
    assert_eq!(sent[0].notification_id, "p1");
    assert_eq!(sent[0].text, "Ping: To your phone");

    // The provider refuses the token for good: the device leaves, nothing is retried.
    sns.set_endpoint_attributes()
        .endpoint_arn(&endpoint)
        .attributes("Enabled", "false")
        .send()
        .await
        .unwrap();
    call(
        &router,
        "POST",
        "/v1/notifications",
        Some(&service),
        Some(push("p2")),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(20),
        "the dead device removed",
        || async {
            let (_, listed) = call(
                &router,
                "GET",
                "/v1/users/u1/devices",
                Some(&phone_app),
                None,
            )
            .await?;
            Ok((listed["devices"] == json!([])).then_some(()))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        outbox.read(&filter).await.unwrap().len(),
        1,
        "p2 went nowhere"
    );

    // The app comes back with a valid token: registered again, the endpoint is enabled and
    // no longer suppressed, and the next push reaches it.
    let (status, back) = call(
        &router,
        "PUT",
        "/v1/users/u1/devices/fcm-tok-1",
        Some(&phone_app),
        Some(json!({"platform": "fcm"})),
    )
    .await
    .unwrap();
    assert_eq!(status, 201, "{back}");
    assert_eq!(back["device"]["endpoint_arn"], endpoint.as_str());
    assert!(endpoint_enabled(&sns, &endpoint).await);
    call(
        &router,
        "POST",
        "/v1/notifications",
        Some(&service),
        Some(push("p3")),
    )
    .await
    .unwrap();
    let sent = eventually(
        Duration::from_secs(20),
        "the push after coming back",
        || async {
            let sent = outbox.read(&filter).await?;
            Ok((sent.len() == 2).then_some(sent))
        },
    )
    .await
    .unwrap();
    assert_eq!(sent[0].notification_id, "p3", "{sent:?}");
    shutdown.cancel();
    for w in workers {
        w.await.unwrap();
    }

    // A Pinpoint export's device tokens become their users' devices.
    let export = [
        r#"{"ChannelType":"APNS","Address":"a1b2c3d4","User":{"UserId":"pp-user"}}"#,
        r#"{"ChannelType":"GCM","Address":"fcm:pp-token","User":{"UserId":"pp-user"},"Demographic":{"Timezone":"Europe/Paris"}}"#,
        r#"{"ChannelType":"BAIDU","Address":"baidu-token","User":{"UserId":"pp-user"}}"#,
    ]
    .join("\n");
    let response = tower::ServiceExt::oneshot(
        router.clone(),
        axum::http::Request::builder()
            .method("POST")
            .uri("/v1/contacts/import")
            .header("authorization", format!("Bearer {service}"))
            .body(axum::body::Body::from(export))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["devices"], 2, "{body}");
    assert_eq!(
        body["skipped"].as_array().unwrap().len(),
        1,
        "BAIDU: {body}"
    );
    let (_, devices) = call(
        &router,
        "GET",
        "/v1/users/pp-user/devices",
        Some(&service),
        None,
    )
    .await
    .unwrap();
    let platforms: Vec<&str> = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms.len(), 2, "{devices}");
    assert!(
        platforms.contains(&"apns") && platforms.contains(&"fcm"),
        "{devices}"
    );
}
