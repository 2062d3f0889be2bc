//! Checks on template.yaml that cfn-lint and `sam validate` do not make: the wiring herald
//! relies on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_norway::Value;
use testkit::template::{intrinsic, Intrinsic, Template};

#[test]
fn every_sqs_event_reports_batch_item_failures() {
    let template = Template::project().unwrap();
    let mut sqs_events = 0;
    for f in template.functions().unwrap() {
        let events = f
            .properties
            .get("Events")
            .and_then(Value::as_mapping)
            .cloned()
            .unwrap_or_default();
        for (name, event) in events {
            if event.get("Type").and_then(Value::as_str) != Some("SQS") {
                continue;
            }
            sqs_events += 1;
            let props = event.get("Properties").unwrap();
            let types: Vec<&str> = props
                .get("FunctionResponseTypes")
                .and_then(Value::as_sequence)
                .map(|s| s.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            assert_eq!(
                types,
                ["ReportBatchItemFailures"],
                "{}.{name:?}",
                f.logical_id
            );
            assert!(
                props
                    .get("ScalingConfig")
                    .and_then(|s| s.get("MaximumConcurrency"))
                    .is_some(),
                "{}: MaximumConcurrency is the rate knob",
                f.logical_id
            );
        }
    }
    assert!(sqs_events >= 2, "inbox-writer and deliver consume queues");
}

/// A batch of email jobs is what one `SendBulkEmail` takes: a campaign's batch goes out in
/// one call per template.
#[test]
fn the_email_batch_is_one_bulk_sends_recipients() {
    let template = Template::project().unwrap();
    let deliver = template
        .functions()
        .unwrap()
        .into_iter()
        .find(|f| f.logical_id == "DeliverFunction")
        .unwrap();
    let batch = deliver.properties["Events"]["Deliveries"]["Properties"]["BatchSize"]
        .as_u64()
        .unwrap();
    assert_eq!(batch as usize, herald::ports::MAX_BULK_RECIPIENTS);
}

#[test]
fn every_queue_is_a_dlq_or_has_one() {
    let template = Template::project().unwrap();
    let queues = template.resources_of("AWS::SQS::Queue");
    let mut dlqs: Vec<String> = queues
        .iter()
        .filter_map(|(_, p)| {
            match intrinsic(p.get("RedrivePolicy")?.get("deadLetterTargetArn")?)? {
                Intrinsic::GetAtt(q, att) if att == "Arn" => Some(q),
                _ => None,
            }
        })
        .collect();
    assert!(!dlqs.is_empty());
    // Scheduler's dead-letter queue is named by its schedules (made at runtime), which the
    // functions make from their `SCHEDULE_DLQ_ARN`.
    for function in template.functions().unwrap() {
        for (name, value) in template.function_env(&function.logical_id).unwrap() {
            if let (true, Some(Intrinsic::GetAtt(q, att))) =
                (name.ends_with("DLQ_ARN"), intrinsic(&value))
            {
                if att == "Arn" {
                    dlqs.push(q);
                }
            }
        }
    }
    assert!(dlqs.iter().any(|q| q == "ScheduleDLQ"), "{dlqs:?}");
    for (id, props) in &queues {
        let redrive = props.get("RedrivePolicy");
        assert!(
            redrive.is_some() || dlqs.contains(id),
            "{id} has no DLQ and is none"
        );
        if let Some(r) = redrive {
            assert!(r.get("maxReceiveCount").is_some(), "{id}: maxReceiveCount");
            let visibility = props
                .get("VisibilityTimeout")
                .and_then(Value::as_u64)
                .unwrap_or(30);
            let timeout = template.doc["Globals"]["Function"]["Timeout"]
                .as_u64()
                .unwrap();
            assert!(
                visibility >= 6 * timeout,
                "{id}: visibility must cover retries of a {timeout} s function"
            );
        }
    }
}

/// The binaries a function crate builds: `(name, source)` of its package (src/main.rs) and
/// of each `[[bin]]` target.
fn crate_binaries(dir: &std::path::Path) -> Vec<(String, std::path::PathBuf)> {
    let text = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let value = |line: &str, key: &str| {
        let rest = line
            .trim()
            .strip_prefix(key)?
            .trim_start()
            .strip_prefix('=')?;
        Some(rest.trim().trim_matches('"').to_owned())
    };
    let (mut section, mut binaries, mut name) = (String::new(), Vec::new(), None);
    for line in text.lines() {
        if line.starts_with('[') {
            section = line.trim().to_owned();
            continue;
        }
        match section.as_str() {
            "[package]" => {
                if let Some(package) = value(line, "name") {
                    if dir.join("src/main.rs").exists() {
                        binaries.push((package, dir.join("src/main.rs")));
                    }
                }
            }
            "[[bin]]" => {
                if let Some(bin) = value(line, "name") {
                    name = Some(bin);
                } else if let (Some(path), Some(bin)) = (value(line, "path"), name.take()) {
                    binaries.push((bin, dir.join(path)));
                }
            }
            _ => {}
        }
    }
    binaries
}

/// The pusher's event filter lets through exactly the items it reads (and no removal): the
/// template and `PUSHED_SORT_KEYS` say the same.
#[test]
fn the_pushers_stream_filter_is_the_items_it_reads() {
    let template = Template::project().unwrap();
    let pusher = template
        .functions()
        .unwrap()
        .into_iter()
        .find(|f| f.logical_id == "LivePushFunction")
        .unwrap();
    let event = &pusher.properties["Events"]["InboxChanges"]["Properties"];
    assert_eq!(
        intrinsic(&event["Stream"]),
        Some(Intrinsic::GetAtt("InboxTable".into(), "StreamArn".into()))
    );
    let pattern: serde_json::Value = serde_json::from_str(
        event["FilterCriteria"]["Filters"][0]["Pattern"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        pattern["eventName"],
        serde_json::json!(["INSERT", "MODIFY"])
    );
    let wanted: Vec<serde_json::Value> = herald::aws::dynamodb::stream::PUSHED_SORT_KEYS
        .iter()
        .map(|key| match key.strip_suffix('#') {
            Some(_) => serde_json::json!({ "prefix": key }),
            None => serde_json::json!(key),
        })
        .collect();
    assert_eq!(
        pattern["dynamodb"]["Keys"]["sk"]["S"],
        serde_json::json!(wanted)
    );
}

#[test]
fn every_function_binary_exists_in_the_workspace() {
    let root = testkit::workspace_root();
    let template = Template::project().unwrap();
    let functions = template.functions().unwrap();
    let mut binaries = std::collections::BTreeMap::new();
    let mut crates = Vec::new();
    for entry in std::fs::read_dir(root.join("functions")).unwrap() {
        let dir = entry.unwrap().path();
        let built = crate_binaries(&dir);
        assert!(!built.is_empty(), "{} builds no binary", dir.display());
        crates.push((
            dir,
            built.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        ));
        binaries.extend(built);
    }
    // One binary may serve several functions (deliver: one per provider's queue).
    let deployed: std::collections::BTreeSet<&str> =
        functions.iter().map(|f| f.binary.as_str()).collect();
    for (dir, built) in &crates {
        for binary in built {
            assert!(
                deployed.contains(binary.as_str()),
                "{}'s binary {binary} is deployed by no function",
                dir.display()
            );
        }
    }
    for f in &functions {
        let source = binaries
            .get(&f.binary)
            .unwrap_or_else(|| panic!("{}: no crate builds {}", f.logical_id, f.binary));
        assert!(source.exists(), "{}: {}", f.logical_id, source.display());
        assert_eq!(
            f.properties.get("CodeUri").and_then(Value::as_str),
            Some("."),
            "{}: builds from the workspace",
            f.logical_id
        );
    }
}

#[test]
fn every_function_environment_resolves_and_names_real_resources() {
    let template = Template::project().unwrap();
    let resources: Vec<String> = template
        .doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .unwrap()
        .keys()
        .filter_map(|k| k.as_str().map(String::from))
        .collect();
    let params = template.parameter_defaults();
    // Resolve every variable; a reference to a name the template lacks fails the lookup.
    let lookup = |i: &Intrinsic| match i {
        Intrinsic::Ref(r) if r.starts_with("AWS::") => Some(String::new()),
        Intrinsic::Ref(r) => params
            .get(r)
            .cloned()
            .or_else(|| resources.contains(r).then(|| format!("ref:{r}"))),
        Intrinsic::GetAtt(r, att) => resources.contains(r).then(|| format!("{r}.{att}")),
    };
    for f in template.functions().unwrap() {
        for (name, value) in template.function_env(&f.logical_id).unwrap() {
            let resolved = testkit::template::resolve(&template, &value, &lookup);
            assert!(resolved.is_ok(), "{}: {name}: {resolved:?}", f.logical_id);
        }
    }
    // Deployed with defaults, no function is pointed at an emulator.
    let defaults = |i: &Intrinsic| match i {
        Intrinsic::Ref(r) => params.get(r).cloned(),
        _ => None,
    };
    let endpoint = template.function_env("IngestFunction").unwrap()["AWS_ENDPOINT_URL"].clone();
    assert_eq!(
        testkit::template::resolve(&template, &endpoint, &defaults).unwrap(),
        None
    );
}

/// Every IAM statement in the template (roles' inline policies), as (resource, statement).
fn iam_statements(template: &Template) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (id, props) in template.resources_of("AWS::IAM::Role") {
        for policy in props["Policies"].as_sequence().cloned().unwrap_or_default() {
            for statement in policy["PolicyDocument"]["Statement"]
                .as_sequence()
                .cloned()
                .unwrap_or_default()
            {
                // `!If [UseKmsKey, statement, NoValue]`: check the statement it can be.
                let statement = match &statement {
                    Value::Tagged(t) => t.value.as_sequence().unwrap()[1].clone(),
                    other => other.clone(),
                };
                out.push((id.clone(), statement));
            }
        }
    }
    out
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Sequence(items) => items.iter().flat_map(strings).collect(),
        _ => Vec::new(),
    }
}

#[test]
fn iam_is_least_privilege_with_named_exceptions_only() {
    let template = Template::project().unwrap();
    // AWS accepts nothing narrower than "*" for these (template comments say why).
    let allowed_star = [
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "sns:Publish",
        "cloudwatch:DescribeAlarms",
        "dynamodb:ListStreams",
    ];
    let statements = iam_statements(&template);
    assert!(statements.len() >= 20, "{statements:?}");
    for (role, statement) in &statements {
        let actions = strings(&statement["Action"]);
        assert!(!actions.is_empty(), "{role}: {statement:?}");
        for action in &actions {
            assert!(!action.contains('*'), "{role}: wildcard action {action}");
        }
        if strings(&statement["Resource"]).iter().any(|r| r == "*") {
            for action in &actions {
                assert!(
                    allowed_star.contains(&action.as_str()),
                    "{role}: {action} on \"*\""
                );
            }
        }
    }
    // Functions bring their own role, so SAM attaches no managed policy with "*" in it.
    for f in template.functions().unwrap() {
        assert!(
            f.properties.get("Role").is_some(),
            "{} has no own role",
            f.logical_id
        );
        assert!(f.properties.get("Policies").is_none(), "{}", f.logical_id);
    }
}

#[test]
fn every_alarm_notifies_the_topic_and_every_log_group_expires() {
    let template = Template::project().unwrap();
    let alarms = template.resources_of("AWS::CloudWatch::Alarm");
    assert!(alarms.len() >= 20, "{} alarms", alarms.len());
    for (id, props) in &alarms {
        for key in ["AlarmActions", "OKActions"] {
            let actions = props[key]
                .as_sequence()
                .unwrap_or_else(|| panic!("{id}: no {key}"));
            assert!(
                actions
                    .iter()
                    .any(|a| intrinsic(a) == Some(Intrinsic::Ref("AlarmTopic".into()))),
                "{id}: {key}"
            );
        }
    }
    // One log group a function, and each API's access log (HTTP, and the live feed's).
    let groups = template.resources_of("AWS::Logs::LogGroup");
    assert_eq!(groups.len(), template.functions().unwrap().len() + 2);
    for access in ["ApiAccessLogGroup", "LiveAccessLogGroup"] {
        assert!(
            groups.iter().any(|(id, _)| id.as_str() == access),
            "{access}"
        );
    }
    // The live feed's stage logs to its group when the account allows it (LiveAccessLog).
    let stages = template.resources_of("AWS::ApiGatewayV2::Stage");
    let (_, stage) = stages.first().unwrap();
    let access_log = serde_norway::to_string(&stage["AccessLogSettings"]).unwrap();
    assert!(
        access_log.contains("UseLiveAccessLog") && access_log.contains("LiveAccessLogGroup"),
        "{access_log}"
    );
    for (id, props) in &groups {
        assert!(props.get("RetentionInDays").is_some(), "{id}");
    }
    let api = template.resources_of("AWS::Serverless::HttpApi");
    let (_, api) = api.first().unwrap();
    assert_eq!(
        intrinsic(&api["AccessLogSettings"]["DestinationArn"]),
        Some(Intrinsic::GetAtt("ApiAccessLogGroup".into(), "Arn".into())),
        "the HTTP API logs each request to ApiAccessLogGroup"
    );
    for f in template.functions().unwrap() {
        let group = &f.properties["LoggingConfig"]["LogGroup"];
        assert!(
            intrinsic(group).is_some(),
            "{}: its own log group",
            f.logical_id
        );
        let alarms = &f.properties["DeploymentPreference"]["Alarms"];
        assert!(
            alarms.as_sequence().is_some_and(|a| !a.is_empty()),
            "{}: a deployment rolls back on an alarm",
            f.logical_id
        );
    }
}

#[test]
fn tables_and_queues_are_encrypted_and_tables_protected() {
    let template = Template::project().unwrap();
    for (id, props) in template.resources_of("AWS::DynamoDB::Table") {
        assert_eq!(
            props["SSESpecification"]["SSEEnabled"],
            Value::Bool(true),
            "{id}"
        );
        assert_eq!(
            props["DeletionProtectionEnabled"],
            Value::Bool(true),
            "{id}"
        );
        assert_eq!(
            props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"],
            Value::Bool(true),
            "{id}"
        );
    }
    for (id, props) in template.resources_of("AWS::SQS::Queue") {
        assert!(props.get("KmsMasterKeyId").is_some(), "{id}");
        assert!(props.get("SqsManagedSseEnabled").is_some(), "{id}");
    }
}

/// herald metrics the dashboard and alarms name must be ones the code emits, or the widget
/// stays empty and the alarm never fires.
#[test]
fn dashboard_and_alarms_name_only_metrics_the_code_emits() {
    let root = testkit::workspace_root();
    let mut code = String::new();
    for dir in ["functions", "shared/src"] {
        for path in rust_files(&root.join(dir)) {
            code.push_str(&std::fs::read_to_string(path).unwrap());
        }
    }
    let template = Template::project().unwrap();
    let mut named = std::collections::BTreeSet::new();
    for (_, props) in template.resources_of("AWS::CloudWatch::Alarm") {
        if props["Namespace"] == "herald" {
            named.insert(props["MetricName"].as_str().unwrap().to_owned());
        }
    }
    let (_, dashboard) = template
        .resources_of("AWS::CloudWatch::Dashboard")
        .pop()
        .expect("a dashboard");
    let Value::Tagged(body) = &dashboard["DashboardBody"] else {
        panic!("DashboardBody is !Sub");
    };
    let body: serde_json::Value =
        serde_json::from_str(body.value.as_str().unwrap()).expect("the dashboard is JSON");
    let widgets = body["widgets"].as_array().unwrap();
    assert!(widgets.len() >= 14, "{} widgets", widgets.len());
    for widget in widgets {
        for metric in widget["properties"]["metrics"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if metric[0] == "herald" {
                named.insert(metric[1].as_str().unwrap().to_owned());
            }
        }
    }
    for metric in [
        "IngestToCommit",
        "IngestToSend",
        "DeliveriesSent",
        "TransactionRetries",
    ] {
        assert!(named.contains(metric), "{metric} is on the dashboard");
    }
    for metric in &named {
        assert!(
            code.contains(&format!("\"{metric}\"")),
            "{metric} is shown or alarmed on but no function emits it"
        );
    }
}

fn rust_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// `${Function.Arn}:*` of a `!Sub` (short or long form): the function it names.
fn sub_function_arn(v: &Value) -> Option<String> {
    let text = match v {
        Value::Tagged(t) if t.tag.to_string().trim_start_matches('!') == "Sub" => t.value.as_str(),
        Value::Mapping(m) if m.len() == 1 => m.get("Fn::Sub").and_then(Value::as_str),
        _ => None,
    }?;
    let function = text.strip_prefix("${")?.strip_suffix(".Arn}:*")?;
    Some(function.to_owned())
}

/// CodeDeploy updates each function's `live` alias: a function with a deployment
/// preference (its own or the Globals') that the role does not cover fails every stack
/// update after the first with AccessDenied on its alias.
#[test]
fn codedeploy_role_covers_every_function_with_a_deployment_preference() {
    let template = Template::project().unwrap();
    let global = &template.doc["Globals"]["Function"]["DeploymentPreference"];
    let role = match intrinsic(&global["Role"]) {
        Some(Intrinsic::GetAtt(role, att)) if att == "Arn" => role,
        other => panic!("Globals: DeploymentPreference.Role is {other:?}"),
    };
    let deployed: Vec<String> = template
        .functions()
        .unwrap()
        .into_iter()
        .filter(|f| {
            let own = &f.properties["DeploymentPreference"];
            let preference = !own.is_null() || !global.is_null();
            preference && own["Enabled"] != Value::Bool(false)
        })
        .map(|f| f.logical_id)
        .collect();
    assert!(deployed.len() >= 10, "{deployed:?}");
    let statements: Vec<Value> = iam_statements(&template)
        .into_iter()
        .filter(|(id, _)| *id == role)
        .map(|(_, s)| s)
        .collect();
    for action in [
        "lambda:GetAlias",
        "lambda:UpdateAlias",
        "lambda:InvokeFunction",
    ] {
        let covered: Vec<String> = statements
            .iter()
            .filter(|s| strings(&s["Action"]).iter().any(|a| a == action))
            .flat_map(|s| match &s["Resource"] {
                Value::Sequence(items) => items.clone(),
                one => vec![one.clone()],
            })
            .filter_map(|r| sub_function_arn(&r))
            .collect();
        for function in &deployed {
            assert!(
                covered.contains(function),
                "{role}: {action} does not cover {function}'s aliases"
            );
        }
    }
}

/// The topics whose policy lets `service` publish to them (from this account).
fn topics_publishable_by(template: &Template, service: &str) -> Vec<String> {
    let mut topics = Vec::new();
    for (id, props) in template.resources_of("AWS::SNS::TopicPolicy") {
        let policy_topics: Vec<String> = props["Topics"]
            .as_sequence()
            .unwrap_or_else(|| panic!("{id}: Topics"))
            .iter()
            .filter_map(|t| match intrinsic(t) {
                Some(Intrinsic::Ref(topic)) => Some(topic),
                _ => None,
            })
            .collect();
        for statement in props["PolicyDocument"]["Statement"]
            .as_sequence()
            .cloned()
            .unwrap_or_default()
        {
            if statement["Effect"] != "Allow"
                || !strings(&statement["Principal"]["Service"]).contains(&service.to_owned())
                || !strings(&statement["Action"]).contains(&"sns:Publish".to_owned())
            {
                continue;
            }
            assert!(
                statement["Condition"]["StringEquals"]
                    .get("AWS:SourceAccount")
                    .or_else(|| statement["Condition"]["StringEquals"].get("aws:SourceAccount"))
                    .and_then(intrinsic)
                    == Some(Intrinsic::Ref("AWS::AccountId".into())),
                "{id}: {service} may publish only from this account"
            );
            if let Some(Intrinsic::Ref(topic)) = intrinsic(&statement["Resource"]) {
                if policy_topics.contains(&topic) {
                    topics.push(topic);
                }
            }
        }
    }
    topics
}

/// SES events and inbound SMS (AWS End User Messaging SMS two-way, which publishes as
/// `sms-voice.amazonaws.com`) both reach the feedback function: a topic they may publish
/// to, subscribed (raw) by the feedback queue, which lets that topic send and which the
/// feedback function consumes. The SMS topic is an output, to set as the phone number's
/// two-way destination.
#[test]
fn ses_events_and_sms_replies_can_reach_the_feedback_queue() {
    let template = Template::project().unwrap();
    let feedback_queue = "FeedbackQueue";
    let subscriptions = template.resources_of("AWS::SNS::Subscription");
    let queue_policies = template.resources_of("AWS::SQS::QueuePolicy");
    for service in ["ses.amazonaws.com", "sms-voice.amazonaws.com"] {
        let topics = topics_publishable_by(&template, service);
        assert!(!topics.is_empty(), "no topic lets {service} publish");
        for topic in &topics {
            assert!(
                subscriptions.iter().any(|(_, s)| {
                    intrinsic(&s["TopicArn"]) == Some(Intrinsic::Ref(topic.clone()))
                        && s["Protocol"] == "sqs"
                        && intrinsic(&s["Endpoint"])
                            == Some(Intrinsic::GetAtt(feedback_queue.into(), "Arn".into()))
                        && s["RawMessageDelivery"] == Value::Bool(true)
                }),
                "{service}: {topic} has no raw subscription of {feedback_queue}"
            );
            assert!(
                queue_policies.iter().any(|(_, p)| {
                    p["Queues"].as_sequence().is_some_and(|q| {
                        q.iter()
                            .any(|q| intrinsic(q) == Some(Intrinsic::Ref(feedback_queue.into())))
                    }) && p["PolicyDocument"]["Statement"]
                        .as_sequence()
                        .into_iter()
                        .flatten()
                        .any(|s| {
                            strings(&s["Principal"]["Service"])
                                .contains(&"sns.amazonaws.com".into())
                                && strings(&s["Action"]).contains(&"sqs:SendMessage".into())
                                && intrinsic(&s["Condition"]["ArnEquals"]["aws:SourceArn"])
                                    == Some(Intrinsic::Ref(topic.clone()))
                        })
                }),
                "{service}: {feedback_queue}'s policy does not let {topic} send"
            );
        }
        if service == "sms-voice.amazonaws.com" {
            let outputs = template.doc["Outputs"].as_mapping().unwrap();
            assert!(
                outputs.values().any(|o| topics
                    .iter()
                    .any(|t| intrinsic(&o["Value"]) == Some(Intrinsic::Ref(t.clone())))),
                "no output names the topic to set as the number's two-way destination"
            );
        }
    }
    let consumer = template
        .functions()
        .unwrap()
        .into_iter()
        .find(|f| f.logical_id == "FeedbackFunction")
        .unwrap();
    let events = consumer.properties["Events"].as_mapping().unwrap();
    assert!(
        events.values().any(|e| e["Type"] == "SQS"
            && intrinsic(&e["Properties"]["Queue"])
                == Some(Intrinsic::GetAtt(feedback_queue.into(), "Arn".into()))),
        "FeedbackFunction consumes {feedback_queue}"
    );
}

/// The resources `v` names: `Ref`, `GetAtt` and `Sub`'s `${X}` / `${X.Attr}`, in either
/// form, in every branch of an `If` (a cycle through either branch is refused on deploy).
fn named_resources(v: &Value, out: &mut Vec<String>) {
    let from_sub = |text: &str, out: &mut Vec<String>| {
        for part in text.split("${").skip(1) {
            if let Some(name) = part.split('}').next() {
                if !name.starts_with('!') {
                    out.push(name.split('.').next().unwrap_or(name).to_owned());
                }
            }
        }
    };
    match v {
        Value::Tagged(tagged) => {
            let tag = tagged.tag.to_string();
            match (tag.trim_start_matches('!'), &tagged.value) {
                ("Ref" | "GetAtt", Value::String(target)) => {
                    out.push(target.split('.').next().unwrap_or(target).to_owned())
                }
                ("GetAtt", Value::Sequence(seq)) => {
                    out.extend(seq.first().and_then(Value::as_str).map(str::to_owned))
                }
                ("Sub", Value::String(text)) => from_sub(text, out),
                ("Sub", Value::Sequence(seq)) => {
                    if let Some(text) = seq.first().and_then(Value::as_str) {
                        from_sub(text, out);
                    }
                    for rest in seq.iter().skip(1) {
                        named_resources(rest, out);
                    }
                }
                (_, inner) => named_resources(inner, out),
            }
        }
        Value::Mapping(m) => {
            for (key, value) in m {
                match (key.as_str(), value) {
                    (Some("Ref"), Value::String(target)) => out.push(target.clone()),
                    (Some("Fn::GetAtt"), _) => match value {
                        Value::String(s) => out.push(s.split('.').next().unwrap_or(s).to_owned()),
                        Value::Sequence(seq) => {
                            out.extend(seq.first().and_then(Value::as_str).map(str::to_owned))
                        }
                        _ => {}
                    },
                    (Some("Fn::Sub"), Value::String(text)) => from_sub(text, out),
                    _ => named_resources(value, out),
                }
            }
        }
        Value::Sequence(seq) => seq.iter().for_each(|item| named_resources(item, out)),
        _ => {}
    }
}

/// The dependency graph of the template's resources as SAM's transform leaves them: what a
/// resource references or `DependsOn`. A function's `DeploymentPreference` and `Events`
/// become resources of their own (a deployment group, event source mappings, permissions),
/// except that an `HttpApi` event puts the function into its API's definition: the API
/// depends on the function.
fn dependencies(template: &Template) -> std::collections::BTreeMap<String, Vec<String>> {
    let resources = template.doc["Resources"].as_mapping().unwrap();
    let names: std::collections::BTreeSet<String> = resources
        .keys()
        .filter_map(|k| k.as_str().map(str::to_owned))
        .collect();
    let mut graph: std::collections::BTreeMap<String, Vec<String>> =
        std::collections::BTreeMap::new();
    for (name, resource) in resources {
        let name = name.as_str().unwrap().to_owned();
        let mut named = Vec::new();
        if let Some(properties) = resource.get("Properties") {
            if resource.get("Type").and_then(Value::as_str) == Some("AWS::Serverless::Function") {
                for (key, value) in properties.as_mapping().unwrap() {
                    match key.as_str() {
                        Some("DeploymentPreference") => {}
                        Some("Events") => {
                            for event in value.as_mapping().into_iter().flat_map(|m| m.values()) {
                                if event.get("Type").and_then(Value::as_str) == Some("HttpApi") {
                                    let mut apis = Vec::new();
                                    named_resources(&event["Properties"]["ApiId"], &mut apis);
                                    for api in apis {
                                        graph.entry(api).or_default().push(name.clone());
                                    }
                                }
                            }
                        }
                        _ => named_resources(value, &mut named),
                    }
                }
            } else {
                named_resources(properties, &mut named);
            }
        }
        match resource.get("DependsOn") {
            Some(Value::String(one)) => named.push(one.clone()),
            Some(Value::Sequence(many)) => {
                named.extend(many.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        }
        graph.entry(name).or_default().extend(named);
    }
    for (name, named) in graph.iter_mut() {
        named.retain(|n| names.contains(n) && n != name);
        named.sort();
        named.dedup();
    }
    graph
}

/// CloudFormation refuses a template whose resources depend on each other in a circle
/// (cfn-lint does not see one through the HTTP API's authorizer): the console's Cognito
/// client, say, naming the API's URL while the API's authorizer names the client.
#[test]
fn no_resource_depends_on_itself_through_others() {
    let graph = dependencies(&Template::project().unwrap());
    assert!(graph.len() > 50, "{} resources", graph.len());
    assert_eq!(testkit::graph::find_circle(&graph), None);
    // The check sees one where there is one.
    let mut circular = graph.clone();
    circular
        .get_mut("ServiceClient")
        .unwrap()
        .push("HeraldApi".into());
    assert!(testkit::graph::find_circle(&circular).is_some());
}
