//! The one table of herald's functions and queues: `cargo xtask template` writes their log
//! groups, alarms, queue pairs, the CodeDeploy role's lists and the dashboard's per-function
//! and per-queue metrics into `template.yaml` from it. A new function or queue starts here.

/// One Lambda function of the template (`<logical>Function`).
pub struct Function {
    /// The logical id's stem: `Ingest` names `IngestFunction`, `IngestLogGroup`,
    /// `IngestFunctionErrorsAlarm`, …
    pub logical: &'static str,
    /// Its name in logs, alarms and the dashboard (the log group is `<stack>-<name>`).
    pub name: &'static str,
}

/// One queue of the template with its dead-letter queue (`<logical>Queue`, `<logical>DLQ`).
pub struct Queue {
    pub logical: &'static str,
    /// Its name on the dashboard.
    pub label: &'static str,
    /// Why the queue exists, written above it (empty: nothing).
    pub comment: &'static [&'static str],
    /// Seconds; six times its consumer's timeout, as AWS recommends for event sources.
    pub visibility_timeout: u32,
    /// Seconds its oldest message may wait before the age alarm fires.
    pub age_alarm_seconds: u32,
    /// What a message in its DLQ means, for the DLQ alarm.
    pub dead_letter: &'static str,
}

pub const FUNCTIONS: &[Function] = &[
    Function {
        logical: "Ingest",
        name: "ingest",
    },
    Function {
        logical: "InboxWriter",
        name: "inbox-writer",
    },
    Function {
        logical: "MarketingWriter",
        name: "marketing-writer",
    },
    Function {
        logical: "Campaigns",
        name: "campaigns",
    },
    Function {
        logical: "Deliver",
        name: "deliver",
    },
    Function {
        logical: "DeliverSms",
        name: "deliver-sms",
    },
    Function {
        logical: "DeliverPush",
        name: "deliver-push",
    },
    Function {
        logical: "InboxApi",
        name: "inbox-api",
    },
    Function {
        logical: "Reconcile",
        name: "reconcile",
    },
    Function {
        logical: "ChangeLog",
        name: "change-log",
    },
    Function {
        logical: "Feedback",
        name: "feedback",
    },
    Function {
        logical: "LiveAuthorizer",
        name: "live-authorizer",
    },
    Function {
        logical: "LiveSocket",
        name: "live-socket",
    },
    Function {
        logical: "LivePush",
        name: "live-push",
    },
];

const DELIVERIES: &str = "Deliveries were dead-lettered; read the herald-reason attribute.";

pub const QUEUES: &[Queue] = &[
    Queue {
        logical: "Notifications",
        label: "notifications",
        comment: &[],
        visibility_timeout: 180,
        age_alarm_seconds: 600,
        dead_letter: "Notifications were dead-lettered; read the herald-reason attribute.",
    },
    Queue {
        logical: "Marketing",
        label: "marketing",
        comment: &[
            "Campaign notifications: the same consumer code as NotificationsQueue, on a queue and with a",
            "concurrency of their own (fairness: a million-user burst never delays a password reset).",
        ],
        visibility_timeout: 180,
        age_alarm_seconds: 1800,
        dead_letter: "Campaign notifications were dead-lettered; read the herald-reason attribute.",
    },
    Queue {
        logical: "Campaign",
        label: "campaign",
        comment: &["Campaign work: starts (from the schedules), pages of the fan-out, releases of held users."],
        visibility_timeout: 540,
        age_alarm_seconds: 1800,
        dead_letter: "Campaign pages or starts were dead-lettered; read the herald-reason attribute.",
    },
    Queue {
        logical: "Delivery",
        label: "delivery",
        comment: &[],
        visibility_timeout: 180,
        age_alarm_seconds: 1800,
        dead_letter: DELIVERIES,
    },
    Queue {
        logical: "Sms",
        label: "sms",
        comment: &[],
        visibility_timeout: 180,
        age_alarm_seconds: 1800,
        dead_letter: DELIVERIES,
    },
    Queue {
        logical: "Push",
        label: "push",
        comment: &[],
        visibility_timeout: 180,
        age_alarm_seconds: 1800,
        dead_letter: DELIVERIES,
    },
    Queue {
        logical: "Feedback",
        label: "feedback",
        comment: &[
            "SES events and SMS replies, from FeedbackTopic.",
        ],
        visibility_timeout: 180,
        age_alarm_seconds: 1800,
        dead_letter: "Provider feedback was dead-lettered (not an SES event or SMS reply); read herald-reason.",
    },
];
