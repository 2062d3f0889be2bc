//! A local stack: the template's tables, queues (with DLQs), topics and email identities,
//! created in the emulator under a name prefix so every test and dev session is isolated.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, TimeToLiveSpecification,
};
use aws_sdk_sqs::types::QueueAttributeName;
use herald::config::Vars;
use serde_json::json;
use serde_norway::Value;

use crate::emulator::{ACCOUNT, REGION};
use crate::template::{resolve, scalar, Intrinsic, Template};

/// What one template resource became locally.
#[derive(Debug, Clone, Default)]
pub struct Physical {
    /// Table / queue / topic name, or the email address of an identity.
    pub name: String,
    /// What `!Ref` gives: table name, queue URL, topic ARN, identity.
    pub reference: String,
    pub arn: String,
}

/// An SQS event source mapping as the template declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsEventSource {
    /// `BatchSize`; `None`: AWS's default, 10.
    pub batch_size: Option<usize>,
    /// `MaximumBatchingWindowInSeconds` (0 when absent).
    pub batching_window: Duration,
    /// `ScalingConfig.MaximumConcurrency`; `None`: no cap of the mapping's own.
    pub max_concurrency: Option<usize>,
}

pub struct Stack {
    pub prefix: String,
    pub endpoint: String,
    pub sdk: aws_config::SdkConfig,
    pub template: Template,
    pub parameters: BTreeMap<String, String>,
    pub resources: BTreeMap<String, Physical>,
    /// Tables with a stream: logical id → the stream's ARN (`!GetAtt X.StreamArn`).
    pub streams: BTreeMap<String, String>,
}

/// The name prefix of the stack `cargo xtask dev` provisions (`herald-NotificationsQueue`, …).
pub const DEV_PREFIX: &str = "herald";

/// Variables that name the stack's Cognito user pool, which the local stack does not make.
pub const COGNITO_VARS: &[&str] = &[
    "CONSOLE_AUTH_DOMAIN",
    "CONSOLE_CLIENT_ID",
    "OPERATOR_GROUP",
    "STACK_OPERATOR_GROUP",
];

impl Stack {
    /// Creates every resource of `template` in the emulator at `endpoint`, names prefixed.
    /// `overrides` replace parameter defaults (like `--parameter-overrides`).
    pub async fn provision(
        endpoint: &str,
        prefix: &str,
        template: Template,
        overrides: &[(&str, &str)],
    ) -> Result<Stack> {
        let mut parameters = template.parameter_defaults();
        for (k, v) in overrides {
            parameters.insert((*k).to_owned(), (*v).to_owned());
        }
        let mut stack = Stack {
            prefix: prefix.to_owned(),
            endpoint: endpoint.to_owned(),
            sdk: crate::emulator::sdk_config(endpoint).await,
            template,
            parameters,
            resources: BTreeMap::new(),
            streams: BTreeMap::new(),
        };
        stack.create_tables().await?;
        stack.create_queues().await?;
        stack.create_topics().await?;
        stack.create_identities().await?;
        stack.create_secrets().await?;
        stack.create_subscriptions().await?;
        stack.create_configuration_sets().await?;
        stack.create_buckets().await?;
        stack.create_schedule_groups().await?;
        stack.create_platform_applications().await?;
        stack.name_roles();
        stack.name_apis();
        Ok(stack)
    }

    fn physical_name(&self, logical_id: &str) -> String {
        format!("{}-{logical_id}", self.prefix)
    }

    /// Resolves `!Ref` / `!GetAtt` against this stack.
    pub fn lookup(&self, i: &Intrinsic) -> Option<String> {
        match i {
            Intrinsic::Ref(name) => match name.as_str() {
                "AWS::Region" => Some(REGION.into()),
                "AWS::AccountId" => Some(ACCOUNT.into()),
                "AWS::Partition" => Some("aws".into()),
                "AWS::URLSuffix" => Some("amazonaws.com".into()),
                _ => self
                    .parameters
                    .get(name)
                    .or_else(|| self.resources.get(name).map(|r| &r.reference))
                    .cloned(),
            },
            Intrinsic::GetAtt(res, att) => {
                let r = self.resources.get(res)?;
                match att.as_str() {
                    "Arn" => Some(r.arn.clone()),
                    "QueueName" | "TopicName" => Some(r.name.clone()),
                    "QueueUrl" => Some(r.reference.clone()),
                    "StreamArn" => self.streams.get(res).cloned(),
                    _ => None,
                }
            }
        }
    }

    /// A property that must have a value.
    fn resolve(&self, v: &Value) -> Result<String> {
        resolve(&self.template, v, &|i| self.lookup(i))?
            .ok_or_else(|| anyhow!("{v:?} resolves to no value"))
    }

    /// The environment the template gives a function, resolved to local resources (but
    /// [`COGNITO_VARS`]).
    pub fn function_vars(&self, logical_id: &str) -> Result<Vars> {
        let mut vars = BTreeMap::new();
        for (k, v) in self.template.function_env(logical_id)? {
            // The local stack signs in with its own issuer, not a Cognito user pool: the
            // console takes a local token, and no group grants scopes.
            if COGNITO_VARS.contains(&k.as_str()) {
                continue;
            }
            // AWS::NoValue drops the variable, as CloudFormation does.
            let value = resolve(&self.template, &v, &|i| self.lookup(i))
                .with_context(|| format!("{logical_id}: {k}"))?;
            if let Some(value) = value {
                vars.insert(k, value);
            }
        }
        // The emulator (moto) has no SES SendBulkEmail: campaign email goes out one by one
        // here; the bulk path is tested against a stubbed SDK client instead.
        if vars.contains_key("SES_BULK_EMAIL") {
            vars.insert("SES_BULK_EMAIL".into(), "false".into());
        }
        Ok(Vars(vars.into_iter().collect()))
    }

    /// The `BatchSize` of the function's SQS event source, as deployed (parameters resolved);
    /// `None` when it has no SQS event or names no size (AWS's default is 10).
    pub fn sqs_batch_size(&self, logical_id: &str) -> Result<Option<usize>> {
        Ok(self
            .sqs_event_source(logical_id)?
            .and_then(|e| e.batch_size))
    }

    /// The function's SQS event source as deployed (parameters resolved), if it has one.
    pub fn sqs_event_source(&self, logical_id: &str) -> Result<Option<SqsEventSource>> {
        if let Some(event) = self.event_of_type(logical_id, "SQS")? {
            let props = event.get("Properties");
            let number = |name: &str, value: Option<&Value>| -> Result<Option<u64>> {
                value
                    .map(|v| {
                        let text = self.resolve(v)?;
                        text.parse::<u64>()
                            .with_context(|| format!("{logical_id}'s {name} {text:?}"))
                    })
                    .transpose()
            };
            let get = |name: &str| props.and_then(|p| p.get(name));
            return Ok(Some(SqsEventSource {
                batch_size: number("BatchSize", get("BatchSize"))?.map(|n| n as usize),
                batching_window: Duration::from_secs(
                    number(
                        "MaximumBatchingWindowInSeconds",
                        get("MaximumBatchingWindowInSeconds"),
                    )?
                    .unwrap_or(0),
                ),
                max_concurrency: number(
                    "MaximumConcurrency",
                    get("ScalingConfig").and_then(|c| c.get("MaximumConcurrency")),
                )?
                .map(|n| n as usize),
            }));
        }
        Ok(None)
    }

    /// The function's DynamoDB stream event source: the table it reads (logical id) and how.
    pub fn stream_event_source(
        &self,
        logical_id: &str,
    ) -> Result<Option<(String, crate::live::StreamEventSource)>> {
        if let Some(event) = self.event_of_type(logical_id, "DynamoDB")? {
            let props = event.get("Properties");
            let get = |name: &str| props.and_then(|p| p.get(name));
            let table = match get("Stream").map(crate::template::intrinsic) {
                Some(Some(Intrinsic::GetAtt(table, attribute))) if attribute == "StreamArn" => {
                    table
                }
                other => {
                    anyhow::bail!("{logical_id}'s stream {other:?} is not a table's StreamArn")
                }
            };
            let number = |name: &str, default: u64| -> Result<u64> {
                get(name)
                    .map(|v| {
                        let text = self.resolve(v)?;
                        text.parse::<u64>()
                            .with_context(|| format!("{logical_id}'s {name} {text:?}"))
                    })
                    .transpose()
                    .map(|n| n.unwrap_or(default))
            };
            let filters = seq(get("FilterCriteria").and_then(|f| f.get("Filters")))
                .iter()
                .map(|f| {
                    let pattern = str_of(f, "Pattern");
                    serde_json::from_str(&pattern)
                        .with_context(|| format!("{logical_id}'s filter {pattern:?}"))
                })
                .collect::<Result<Vec<_>>>()?;
            return Ok(Some((
                table,
                crate::live::StreamEventSource {
                    batch_size: number("BatchSize", 100)? as i32,
                    maximum_retry_attempts: number("MaximumRetryAttempts", 3)? as u32,
                    // No filter: every record.
                    filters: if filters.is_empty() {
                        vec![json!({})]
                    } else {
                        filters
                    },
                },
            )));
        }
        Ok(None)
    }

    /// The function's first event source of `kind` (`SQS`, `DynamoDB`).
    fn event_of_type(&self, logical_id: &str, kind: &str) -> Result<Option<&Value>> {
        let events = self
            .function(logical_id)?
            .get("Properties")
            .and_then(|p| p.get("Events"))
            .and_then(Value::as_mapping);
        Ok(events
            .into_iter()
            .flatten()
            .map(|(_, e)| e)
            .find(|e| e.get("Type").and_then(Value::as_str) == Some(kind)))
    }

    /// The function's `Timeout` (its own, else the template's Globals, else Lambda's 3 s).
    pub fn function_timeout(&self, logical_id: &str) -> Result<Duration> {
        let own = self
            .function(logical_id)?
            .get("Properties")
            .and_then(|p| p.get("Timeout"));
        let global = self
            .template
            .doc
            .get("Globals")
            .and_then(|g| g.get("Function"))
            .and_then(|f| f.get("Timeout"));
        match own.or(global) {
            Some(v) => {
                let text = self.resolve(v)?;
                Ok(Duration::from_secs(text.parse().with_context(|| {
                    format!("{logical_id}'s Timeout {text:?}")
                })?))
            }
            None => Ok(Duration::from_secs(3)),
        }
    }

    fn function(&self, logical_id: &str) -> Result<&Value> {
        self.template
            .doc
            .get("Resources")
            .and_then(|r| r.get(logical_id))
            .with_context(|| format!("no {logical_id} in the template"))
    }

    /// `--env-vars` file content for `sam local invoke`: every function's variables, pointed
    /// at this stack's emulator (the template declares AWS_ENDPOINT_URL for this).
    pub fn sam_env_json(&self) -> Result<serde_json::Value> {
        let mut out = serde_json::Map::new();
        for f in self.template.functions()? {
            let mut vars: BTreeMap<String, String> =
                self.function_vars(&f.logical_id)?.0.into_iter().collect();
            vars.insert("AWS_ENDPOINT_URL".into(), self.endpoint.clone());
            out.insert(f.logical_id, json!(vars));
        }
        Ok(serde_json::Value::Object(out))
    }

    /// KEY=VALUE lines for `cargo lambda watch --env-file`: every function's variables (they
    /// agree where they overlap) plus the endpoint, region and dummy credentials.
    pub fn dotenv(&self) -> Result<String> {
        let mut vars: BTreeMap<String, String> = BTreeMap::new();
        for f in self.template.functions()? {
            vars.extend(self.function_vars(&f.logical_id)?.0);
        }
        vars.insert("AWS_ENDPOINT_URL".into(), self.endpoint.clone());
        vars.insert("AWS_REGION".into(), REGION.into());
        vars.insert("AWS_ACCESS_KEY_ID".into(), "test".into());
        vars.insert("AWS_SECRET_ACCESS_KEY".into(), "test".into());
        Ok(vars
            .into_iter()
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect())
    }

    pub fn resource(&self, logical_id: &str) -> Result<&Physical> {
        self.resources
            .get(logical_id)
            .ok_or_else(|| anyhow!("no local resource {logical_id}"))
    }

    async fn create_tables(&mut self) -> Result<()> {
        let ddb = aws_sdk_dynamodb::Client::new(&self.sdk);
        for (id, props) in self.template.resources_of("AWS::DynamoDB::Table") {
            let name = self.physical_name(&id);
            let key_schema = |v: Option<&Value>| -> Result<Vec<KeySchemaElement>> {
                seq(v)
                    .iter()
                    .map(|k| {
                        let kind = if str_of(k, "KeyType") == "HASH" {
                            KeyType::Hash
                        } else {
                            KeyType::Range
                        };
                        Ok(KeySchemaElement::builder()
                            .attribute_name(str_of(k, "AttributeName"))
                            .key_type(kind)
                            .build()?)
                    })
                    .collect()
            };
            let mut create = ddb
                .create_table()
                .table_name(&name)
                .billing_mode(BillingMode::PayPerRequest)
                .set_key_schema(Some(key_schema(props.get("KeySchema"))?));
            for a in &seq(props.get("AttributeDefinitions")) {
                let kind = match str_of(a, "AttributeType").as_str() {
                    "N" => ScalarAttributeType::N,
                    "B" => ScalarAttributeType::B,
                    _ => ScalarAttributeType::S,
                };
                create = create.attribute_definitions(
                    AttributeDefinition::builder()
                        .attribute_name(str_of(a, "AttributeName"))
                        .attribute_type(kind)
                        .build()?,
                );
            }
            for index in &seq(props.get("LocalSecondaryIndexes")) {
                create = create.local_secondary_indexes(
                    LocalSecondaryIndex::builder()
                        .index_name(str_of(index, "IndexName"))
                        .set_key_schema(Some(key_schema(index.get("KeySchema"))?))
                        .projection(projection(index.get("Projection")))
                        .build()?,
                );
            }
            for index in &seq(props.get("GlobalSecondaryIndexes")) {
                create = create.global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(str_of(index, "IndexName"))
                        .set_key_schema(Some(key_schema(index.get("KeySchema"))?))
                        .projection(projection(index.get("Projection")))
                        .build()?,
                );
            }
            if let Some(stream) = props.get("StreamSpecification") {
                let view = str_of(stream, "StreamViewType");
                create = create.stream_specification(
                    aws_sdk_dynamodb::types::StreamSpecification::builder()
                        .stream_enabled(true)
                        .stream_view_type(aws_sdk_dynamodb::types::StreamViewType::from(
                            view.as_str(),
                        ))
                        .build()?,
                );
            }
            let created = create
                .send()
                .await
                .with_context(|| format!("creating table {name}"))?;
            if let Some(arn) = created
                .table_description()
                .and_then(|t| t.latest_stream_arn())
            {
                self.streams.insert(id.clone(), arn.to_owned());
            }
            if let Some(ttl) = props.get("TimeToLiveSpecification") {
                let spec = TimeToLiveSpecification::builder()
                    .attribute_name(str_of(ttl, "AttributeName"))
                    .enabled(true)
                    .build()?;
                ddb.update_time_to_live()
                    .table_name(&name)
                    .time_to_live_specification(spec)
                    .send()
                    .await?;
            }
            let arn = format!("arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}");
            self.resources.insert(
                id,
                Physical {
                    reference: name.clone(),
                    name,
                    arn,
                },
            );
        }
        Ok(())
    }

    async fn create_buckets(&mut self) -> Result<()> {
        let s3 = herald::aws::s3::client(&self.sdk);
        for (id, _) in self.template.resources_of("AWS::S3::Bucket") {
            // Bucket names are lowercase.
            let name = self.physical_name(&id).to_lowercase();
            s3.create_bucket()
                .bucket(&name)
                .send()
                .await
                .with_context(|| format!("creating bucket {name}"))?;
            let arn = format!("arn:aws:s3:::{name}");
            self.resources.insert(
                id,
                Physical {
                    reference: name.clone(),
                    name,
                    arn,
                },
            );
        }
        Ok(())
    }

    /// SNS platform applications are not CloudFormation resources: a deployed stack takes
    /// their ARNs as parameters (`ApnsApplicationArn`, …). Locally, one application per
    /// platform with dummy credentials, unless the parameter was given.
    async fn create_platform_applications(&mut self) -> Result<()> {
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        for (parameter, platform, credential) in [
            ("ApnsApplicationArn", "APNS", "PlatformCredential"),
            (
                "ApnsSandboxApplicationArn",
                "APNS_SANDBOX",
                "PlatformCredential",
            ),
            ("FcmApplicationArn", "GCM", "PlatformCredential"),
        ] {
            let given = self
                .parameters
                .get(parameter)
                .is_some_and(|v| !v.is_empty());
            if given || !self.parameters.contains_key(parameter) {
                continue;
            }
            let name = format!("{}-{}", self.prefix, platform.to_lowercase());
            let out = sns
                .create_platform_application()
                .name(&name)
                .platform(platform)
                .attributes(credential, "local-dummy-credential")
                .attributes("PlatformPrincipal", "local-dummy-principal")
                .send()
                .await
                .with_context(|| format!("creating the {platform} platform application"))?;
            self.parameters.insert(
                parameter.to_owned(),
                out.platform_application_arn()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        Ok(())
    }

    async fn create_schedule_groups(&mut self) -> Result<()> {
        let scheduler = aws_sdk_scheduler::Client::new(&self.sdk);
        for (id, _) in self.template.resources_of("AWS::Scheduler::ScheduleGroup") {
            let name = self.physical_name(&id);
            let arn = scheduler
                .create_schedule_group()
                .name(&name)
                .send()
                .await
                .with_context(|| format!("creating schedule group {name}"))?
                .schedule_group_arn;
            self.resources.insert(
                id,
                Physical {
                    reference: name.clone(),
                    name,
                    arn,
                },
            );
        }
        Ok(())
    }

    /// Roles are not enforced by the emulator; their ARNs are what functions are told.
    fn name_roles(&mut self) {
        for (id, _) in self.template.resources_of("AWS::IAM::Role") {
            let name = self.physical_name(&id);
            let arn = format!("arn:aws:iam::{ACCOUNT}:role/{name}");
            self.resources.insert(
                id,
                Physical {
                    reference: name.clone(),
                    name,
                    arn,
                },
            );
        }
    }

    async fn create_queues(&mut self) -> Result<()> {
        let sqs = aws_sdk_sqs::Client::new(&self.sdk);
        // Dead-letter queues first: the others' redrive policies point at them.
        let mut queues = self.template.resources_of("AWS::SQS::Queue");
        queues.sort_by_key(|(_, p)| p.get("RedrivePolicy").is_some());
        for (id, props) in queues {
            let name = self.physical_name(&id);
            let mut create = sqs.create_queue().queue_name(&name);
            for (key, attr) in [
                ("VisibilityTimeout", QueueAttributeName::VisibilityTimeout),
                (
                    "MessageRetentionPeriod",
                    QueueAttributeName::MessageRetentionPeriod,
                ),
                ("DelaySeconds", QueueAttributeName::DelaySeconds),
            ] {
                if let Some(v) = props.get(key) {
                    create = create.attributes(attr, self.resolve(v)?);
                }
            }
            if let Some(redrive) = props.get("RedrivePolicy") {
                let target = self.resolve(
                    redrive
                        .get("deadLetterTargetArn")
                        .ok_or_else(|| anyhow!("{id}: no DLQ"))?,
                )?;
                let max: u32 = self
                    .resolve(redrive.get("maxReceiveCount").unwrap_or(&Value::from(5)))?
                    .parse()?;
                let policy = json!({"deadLetterTargetArn": target, "maxReceiveCount": max});
                create = create.attributes(QueueAttributeName::RedrivePolicy, policy.to_string());
            }
            let url = create
                .send()
                .await
                .with_context(|| format!("creating queue {name}"))?
                .queue_url
                .unwrap_or_default();
            let arn = format!("arn:aws:sqs:{REGION}:{ACCOUNT}:{name}");
            self.resources.insert(
                id,
                Physical {
                    name,
                    reference: url,
                    arn,
                },
            );
        }
        Ok(())
    }

    async fn create_topics(&mut self) -> Result<()> {
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        for (id, _) in self.template.resources_of("AWS::SNS::Topic") {
            let name = self.physical_name(&id);
            let arn = sns
                .create_topic()
                .name(&name)
                .send()
                .await?
                .topic_arn
                .unwrap_or_default();
            self.resources.insert(
                id,
                Physical {
                    name,
                    reference: arn.clone(),
                    arn,
                },
            );
        }
        Ok(())
    }

    async fn create_identities(&mut self) -> Result<()> {
        let ses = aws_sdk_sesv2::Client::new(&self.sdk);
        for (id, props) in self.template.resources_of("AWS::SES::EmailIdentity") {
            let identity = self.resolve(
                props
                    .get("EmailIdentity")
                    .ok_or_else(|| anyhow!("{id}: no EmailIdentity"))?,
            )?;
            // Identities are account-wide, not prefixed: creating one twice is fine.
            let _ = ses
                .create_email_identity()
                .email_identity(&identity)
                .send()
                .await;
            let arn = format!("arn:aws:ses:{REGION}:{ACCOUNT}:identity/{identity}");
            self.resources.insert(
                id,
                Physical {
                    name: identity.clone(),
                    reference: identity,
                    arn,
                },
            );
        }
        Ok(())
    }
}

impl Stack {
    /// Secrets with a generated value, as `GenerateSecretString` makes them.
    async fn create_secrets(&mut self) -> Result<()> {
        use rand::distr::{Alphanumeric, SampleString};
        let client = aws_sdk_secretsmanager::Client::new(&self.sdk);
        for (id, _) in self.template.resources_of("AWS::SecretsManager::Secret") {
            let name = self.physical_name(&id);
            let value = Alphanumeric.sample_string(&mut rand::rng(), 64);
            let arn = client
                .create_secret()
                .name(&name)
                .secret_string(value)
                .send()
                .await
                .with_context(|| format!("creating secret {name}"))?
                .arn
                .unwrap_or_default();
            self.resources.insert(
                id,
                Physical {
                    name,
                    reference: arn.clone(),
                    arn,
                },
            );
        }
        Ok(())
    }

    /// SNS → SQS subscriptions (raw message delivery as the template says), so what is
    /// published to a topic reaches its queue as on AWS.
    async fn create_subscriptions(&mut self) -> Result<()> {
        let sns = aws_sdk_sns::Client::new(&self.sdk);
        for (id, props) in self.template.resources_of("AWS::SNS::Subscription") {
            let topic = self.resolve(
                props
                    .get("TopicArn")
                    .ok_or_else(|| anyhow!("{id}: TopicArn"))?,
            )?;
            let endpoint = self.resolve(
                props
                    .get("Endpoint")
                    .ok_or_else(|| anyhow!("{id}: Endpoint"))?,
            )?;
            let raw = props
                .get("RawMessageDelivery")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let arn = sns
                .subscribe()
                .topic_arn(&topic)
                .protocol(str_of(&props, "Protocol"))
                .endpoint(&endpoint)
                .attributes("RawMessageDelivery", raw.to_string())
                .send()
                .await
                .with_context(|| format!("subscribing {endpoint} to {topic}"))?
                .subscription_arn
                .unwrap_or_default();
            self.resources.insert(
                id.clone(),
                Physical {
                    name: id,
                    reference: arn.clone(),
                    arn,
                },
            );
        }
        Ok(())
    }

    /// SES configuration sets (their event destinations are AWS-side wiring the emulator
    /// does not run: locally, publish events to the topic yourself).
    async fn create_configuration_sets(&mut self) -> Result<()> {
        let ses = aws_sdk_sesv2::Client::new(&self.sdk);
        for (id, _) in self.template.resources_of("AWS::SES::ConfigurationSet") {
            let name = self.physical_name(&id);
            ses.create_configuration_set()
                .configuration_set_name(&name)
                .send()
                .await
                .with_context(|| format!("creating configuration set {name}"))?;
            self.resources.insert(
                id,
                Physical {
                    reference: name.clone(),
                    arn: format!("arn:aws:ses:{REGION}:{ACCOUNT}:configuration-set/{name}"),
                    name,
                },
            );
        }
        Ok(())
    }

    /// HTTP and WebSocket APIs are served by the local runner, and the local issuer stands in
    /// for the user pool: their ids are placeholders (functions that build URLs from them get
    /// the runner's instead).
    fn name_apis(&mut self) {
        let apis = self
            .template
            .resources_of("AWS::Serverless::HttpApi")
            .into_iter()
            .chain(self.template.resources_of("AWS::ApiGatewayV2::Api"))
            // The local issuer stands in for the user pool: its ids are placeholders too.
            .chain(self.template.resources_of("AWS::Cognito::UserPool"))
            .chain(self.template.resources_of("AWS::Cognito::UserPoolClient"));
        for (id, _) in apis {
            let name = self.physical_name(&id);
            self.resources.insert(
                id,
                Physical {
                    reference: name.clone(),
                    arn: String::new(),
                    name,
                },
            );
        }
    }
}

/// An index's projection as the template declares it (ALL when it says nothing).
fn projection(spec: Option<&Value>) -> Projection {
    let kind = match spec.map(|p| str_of(p, "ProjectionType")).as_deref() {
        Some("KEYS_ONLY") => ProjectionType::KeysOnly,
        Some("INCLUDE") => ProjectionType::Include,
        _ => ProjectionType::All,
    };
    let attributes = seq(spec.and_then(|p| p.get("NonKeyAttributes")))
        .iter()
        .filter_map(scalar)
        .collect::<Vec<_>>();
    Projection::builder()
        .projection_type(kind)
        .set_non_key_attributes((!attributes.is_empty()).then_some(attributes))
        .build()
}

fn seq(v: Option<&Value>) -> Vec<Value> {
    v.and_then(Value::as_sequence).cloned().unwrap_or_default()
}

fn str_of(v: &Value, key: &str) -> String {
    v.get(key).and_then(scalar).unwrap_or_default()
}
