//! Fault injection in the local stack (`local/emulator/moto_server.py`, point 7): a share of
//! herald's own calls answered as AWS answers under load (throttling of DynamoDB, SQS, SES
//! and SNS; DynamoDB writes that meet another transaction), off until rates are set.
//! `cargo xtask dev --chaos` and the chaos tests set them. `scheduler=R` is the runner's:
//! a share R of schedule firings delivers twice, and each fires up to a minute late.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

/// The kinds of fault the emulator injects, each with a rate from 0 to 1.
pub const KINDS: [&str; 5] = ["dynamodb", "sqs", "ses", "sns", "conflict"];

/// How late a schedule fires at most, with `scheduler` chaos (EventBridge Scheduler's
/// flexible window is off, but AWS still says "within a minute").
pub const SCHEDULE_LATE_BY: std::time::Duration = std::time::Duration::from_secs(60);

/// Rates by kind, and a seed for repeatable draws.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Chaos {
    #[serde(flatten)]
    pub rates: BTreeMap<String, f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Share of schedule firings that deliver twice (the local runner's, not the emulator's).
    #[serde(skip)]
    pub scheduler: f64,
}

impl Chaos {
    /// What `cargo xtask dev --chaos` injects when no rates are given: enough to meet every
    /// fault within a minute of use, few enough that the SDK's own retries absorb most.
    pub fn default_rates() -> Self {
        Self::parse("dynamodb=0.05,sqs=0.05,ses=0.1,sns=0.1,conflict=0.05,scheduler=0.2")
            .unwrap_or_default()
    }

    /// `kind=rate,…` (`seed=N` too), e.g. `dynamodb=0.1,conflict=0.2`.
    pub fn parse(spec: &str) -> Result<Self> {
        let mut chaos = Chaos::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (kind, value) = part
                .split_once('=')
                .with_context(|| format!("{part:?}: write kind=rate"))?;
            if kind == "seed" {
                chaos.seed = Some(value.parse().with_context(|| format!("seed {value:?}"))?);
                continue;
            }
            let rate: f64 = value
                .parse()
                .with_context(|| format!("{kind}: {value:?} is not a number"))?;
            if !(KINDS.contains(&kind) || kind == "scheduler") || !(0.0..=1.0).contains(&rate) {
                bail!(
                    "{part:?}: kinds are {}, scheduler; rates from 0 to 1",
                    KINDS.join(", ")
                );
            }
            if kind == "scheduler" {
                chaos.scheduler = rate;
            } else {
                chaos.rates.insert(kind.to_owned(), rate);
            }
        }
        Ok(chaos)
    }
}

/// Sets the emulator's rates (all zero: off).
pub fn set(endpoint: &str, chaos: &Chaos) -> Result<()> {
    ureq::post(&format!("{endpoint}/herald/chaos"))
        .send_json(serde_json::to_value(chaos)?)
        .with_context(|| format!("setting chaos on {endpoint}"))?;
    Ok(())
}

/// How many faults of each kind the emulator injected so far.
pub fn injected(endpoint: &str) -> Result<BTreeMap<String, u64>> {
    let answer: serde_json::Value = ureq::get(&format!("{endpoint}/herald/chaos"))
        .call()?
        .into_json()?;
    Ok(serde_json::from_value(answer["injected"].clone())?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_spec_names_kinds_and_rates() {
        let chaos = Chaos::parse("dynamodb=0.2, conflict=1,seed=7").unwrap();
        assert_eq!(chaos.rates["dynamodb"], 0.2);
        assert_eq!(chaos.seed, Some(7));
        assert_eq!(
            serde_json::to_value(&chaos).unwrap(),
            serde_json::json!({"dynamodb": 0.2, "conflict": 1.0, "seed": 7})
        );
        for bad in ["dynamo=0.1", "ses=2", "sns", "sqs=x"] {
            assert!(Chaos::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Chaos::default_rates().rates.len(), KINDS.len());
        assert_eq!(Chaos::parse("scheduler=0.5").unwrap().scheduler, 0.5);
        assert_eq!(
            serde_json::to_value(Chaos::parse("scheduler=0.5").unwrap()).unwrap(),
            serde_json::json!({}),
            "the emulator never sees the runner's kind"
        );
    }
}
