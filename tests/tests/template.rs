//! Checks on template.yaml that cfn-lint and `sam validate` do not make: the wiring herald
//! relies on.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use serde_yaml::Value;
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

#[test]
fn every_queue_is_a_dlq_or_has_one() {
    let template = Template::project().unwrap();
    let queues = template.resources_of("AWS::SQS::Queue");
    let dlqs: Vec<String> = queues
        .iter()
        .filter_map(|(_, p)| {
            match intrinsic(p.get("RedrivePolicy")?.get("deadLetterTargetArn")?)? {
                Intrinsic::GetAtt(q, att) if att == "Arn" => Some(q),
                _ => None,
            }
        })
        .collect();
    assert!(!dlqs.is_empty());
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

#[test]
fn every_function_binary_exists_in_the_workspace() {
    let root = testkit::workspace_root();
    let template = Template::project().unwrap();
    let functions = template.functions().unwrap();
    assert_eq!(
        functions.len(),
        std::fs::read_dir(root.join("functions")).unwrap().count(),
        "one function crate each"
    );
    for f in functions {
        let manifest = root.join("functions").join(&f.binary).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|_| panic!("{}: no {}", f.logical_id, manifest.display()));
        assert!(
            text.contains(&format!("name = \"{}\"", f.binary)),
            "{} names its package {}",
            manifest.display(),
            f.binary
        );
        assert!(manifest.with_file_name("src").join("main.rs").exists());
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
