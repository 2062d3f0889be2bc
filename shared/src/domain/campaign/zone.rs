//! Wall-clock times in time zones: when a `local_time` campaign reaches each recipient.

use jiff::{civil, tz::TimeZone, Timestamp};

/// The instant `wall` is reached in the zone furthest ahead (UTC+14).
pub fn earliest_instant(wall: civil::DateTime) -> Timestamp {
    fixed_instant(wall, 14)
}

/// The instant `wall` is reached in the zone furthest behind (UTC-12).
pub fn latest_instant(wall: civil::DateTime) -> Timestamp {
    fixed_instant(wall, -12)
}

fn fixed_instant(wall: civil::DateTime, hours: i8) -> Timestamp {
    let zone = TimeZone::fixed(jiff::tz::offset(hours));
    zone.to_ambiguous_timestamp(wall)
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

/// When `wall` is reached in `zone` (an IANA name; unknown names fall back to `fallback`).
/// A wall time skipped by a DST change is sent at the same distance after the gap, and one
/// that happens twice at its first occurrence (jiff's "compatible" rule, as RFC 5545).
pub fn local_instant(wall: civil::DateTime, zone: Option<&str>, fallback: &str) -> Timestamp {
    let tz = zone
        .and_then(|z| TimeZone::get(z).ok())
        .or_else(|| TimeZone::get(fallback).ok())
        .unwrap_or(TimeZone::UTC);
    tz.to_ambiguous_timestamp(wall)
        .compatible()
        .unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {

    use super::*;

    #[test]
    fn local_instants_across_a_dst_change_in_three_zones() {
        // Europe switches to summer time on 2026-03-29 at 01:00 UTC; New York already did on
        // 2026-03-08; Tokyo has no DST.
        let wall: civil::DateTime = "2026-03-29T09:00:00".parse().unwrap();
        let at = |zone| local_instant(wall, Some(zone), "UTC").to_string();
        assert_eq!(at("Europe/Berlin"), "2026-03-29T07:00:00Z", "CEST, UTC+2");
        assert_eq!(at("America/New_York"), "2026-03-29T13:00:00Z", "EDT, UTC-4");
        assert_eq!(at("Asia/Tokyo"), "2026-03-29T00:00:00Z", "JST, UTC+9");
        // The day before, Berlin was still on UTC+1.
        let before: civil::DateTime = "2026-03-28T09:00:00".parse().unwrap();
        assert_eq!(
            local_instant(before, Some("Europe/Berlin"), "UTC").to_string(),
            "2026-03-28T08:00:00Z"
        );
        // 02:30 does not exist in Berlin that night: sent at 03:30 CEST.
        let gap: civil::DateTime = "2026-03-29T02:30:00".parse().unwrap();
        assert_eq!(
            local_instant(gap, Some("Europe/Berlin"), "UTC").to_string(),
            "2026-03-29T01:30:00Z"
        );
        // 02:30 happens twice on 2026-10-25: the first one.
        let fold: civil::DateTime = "2026-10-25T02:30:00".parse().unwrap();
        assert_eq!(
            local_instant(fold, Some("Europe/Berlin"), "UTC").to_string(),
            "2026-10-25T00:30:00Z"
        );
        // Unknown or missing zones use the campaign's.
        assert_eq!(
            local_instant(wall, None, "Asia/Tokyo"),
            local_instant(wall, Some("Nowhere/Else"), "Asia/Tokyo")
        );
    }
}
