//! Times travel between layers as `jiff::Timestamp`; they become strings only at the wire
//! (queue messages, stored JSON, API answers), in the formats herald has always written:
//! RFC 3339 UTC with milliseconds (`millis`), or without a fraction when there is none
//! (`compact`: instants clients gave, and minute-rounded release instants). These modules
//! are the serde side of both; any RFC 3339 time reads back.

use jiff::Timestamp;
use serde::{Deserialize, Deserializer, Serializer};

/// Whether `name` is a time zone of the bundled tz database, spelled exactly as it spells
/// it (openapi.yaml's `TimeZone` enum is this list; `tests/tests/api_constraints.rs` checks).
pub fn is_time_zone(name: &str) -> bool {
    static NAMES: std::sync::OnceLock<std::collections::HashSet<String>> =
        std::sync::OnceLock::new();
    NAMES
        .get_or_init(|| time_zones().into_iter().collect())
        .contains(name)
}

/// `name` as the tz database spells it, when it names one of its zones in any case
/// (`america/new_york` is `America/New_York`): for zones stored or imported before names had
/// to be exact.
pub fn canonical_time_zone(name: &str) -> Option<String> {
    if is_time_zone(name) {
        return Some(name.to_owned());
    }
    let canonical = jiff::tz::TimeZoneDatabase::bundled()
        .get(name)
        .ok()?
        .iana_name()?
        .to_owned();
    is_time_zone(&canonical).then_some(canonical)
}

/// The zone names of the tz database built into herald, sorted. The bundled copy, not the
/// machine's `/usr/share/zoneinfo`: the list is the same wherever herald runs.
pub fn time_zones() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::TimeZoneDatabase::bundled()
        .available()
        .map(|name| name.as_str().to_owned())
        .collect();
    names.sort();
    names
}

/// `2026-03-01T12:00:00.000Z`.
pub fn millis(at: Timestamp) -> String {
    format!("{at:.3}")
}

/// `2026-03-01T12:00:00Z`, or with milliseconds when it has a fraction.
pub fn compact(at: Timestamp) -> String {
    if at.subsec_nanosecond() == 0 {
        format!("{at:.0}")
    } else {
        millis(at)
    }
}

/// `at` cut to whole `unit`s (what formatting to that precision keeps).
pub fn truncated(at: Timestamp, unit: jiff::Unit) -> Timestamp {
    at.round(
        jiff::TimestampRound::new()
            .smallest(unit)
            .mode(jiff::RoundMode::Trunc),
    )
    .unwrap_or(at)
}

fn parse<E: serde::de::Error>(text: &str) -> Result<Timestamp, E> {
    text.parse()
        .map_err(|e| E::custom(format!("{text:?} is not an RFC 3339 time: {e}")))
}

/// `#[serde(with = "time::as_millis")]`.
pub mod as_millis {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&millis(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        parse(&String::deserialize(d)?)
    }
}

/// `#[serde(default, with = "time::as_millis_option")]`.
pub mod as_millis_option {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Option<Timestamp>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_some(&millis(*at)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Timestamp>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| parse(&text))
            .transpose()
    }
}

/// `#[serde(with = "time::as_compact")]`.
pub mod as_compact {
    use super::*;

    pub fn serialize<S: Serializer>(at: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&compact(*at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        parse(&String::deserialize(d)?)
    }
}

/// `#[serde(default, with = "time::as_compact_vec")]`.
pub mod as_compact_vec {
    use super::*;

    pub fn serialize<S: Serializer>(at: &[Timestamp], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(at.iter().map(|t| compact(*t)))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Timestamp>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|text| parse(text))
            .collect()
    }
}

/// `#[serde(with = "time::as_civil")]`: a wall-clock time, `2026-03-29T09:00:00`.
pub mod as_civil {
    use jiff::civil::DateTime;

    use super::*;

    pub fn serialize<S: Serializer>(wall: &DateTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&wall.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(|e| {
            serde::de::Error::custom(format!("{text:?} is not a wall-clock time: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Times {
        #[serde(with = "as_millis")]
        created_at: Timestamp,
        #[serde(default, with = "as_millis_option")]
        started_at: Option<Timestamp>,
        #[serde(with = "as_compact")]
        send_at: Timestamp,
        #[serde(default, with = "as_compact_vec")]
        releases: Vec<Timestamp>,
    }

    /// What was written before times were typed reads back, and writes back the same.
    #[test]
    fn times_keep_their_wire_format() {
        let json = r#"{"created_at":"2026-03-01T12:00:00.250Z","started_at":null,"send_at":"2026-03-02T09:00:00Z","releases":["2026-03-02T18:00:00Z"]}"#;
        let times: Times = serde_json::from_str(json).unwrap();
        assert_eq!(serde_json::to_string(&times).unwrap(), json);
        let whole: Timestamp = "2026-03-01T12:00:00Z".parse().unwrap();
        assert_eq!(millis(whole), "2026-03-01T12:00:00.000Z");
        assert_eq!(compact(whole), "2026-03-01T12:00:00Z");
        let offset: Times = serde_json::from_str(
            r#"{"created_at":"2026-03-01T13:00:00+01:00","send_at":"2026-03-02T09:00:00.5Z"}"#,
        )
        .unwrap();
        assert_eq!(offset.created_at, whole, "any RFC 3339 reads");
        assert_eq!(compact(offset.send_at), "2026-03-02T09:00:00.500Z");
        assert!(serde_json::from_str::<Times>(r#"{"created_at":"yesterday"}"#).is_err());
    }
}
