//! Audience files of campaigns: what their first record says (a CSV with a `user_id` column,
//! or a plain list of ids), and reading users from a byte range of one, so that the fan-out
//! never holds a whole file and every cursor lands on a record boundary. CSVs are read with
//! the `csv` crate: quoted fields (commas, quotes and line breaks inside), a UTF-8 byte
//! order mark. Also where a tenant's files may be, how long the bucket keeps them, and why a
//! pinned file can no longer be read. No AWS here.

use std::borrow::Cow;

use csv::{ByteRecord, ReaderBuilder};
use jiff::{SignedDuration, Timestamp};

use super::PAGE_USERS;
use crate::domain::ids::{TenantId, UserId};
use crate::error::FieldError;

/// The UTF-8 byte order mark ("CSV UTF-8" files from Excel start with one).
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// A CSV record longer than this (its first byte to its end) is not an audience row: a
/// quote that never closes, or closes lines later, joined lines into it. Its first line is
/// counted invalid and reading resumes on the line after it.
pub const MAX_RECORD: usize = 64 * 1024;

/// What an audience file's first line says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudienceFile {
    /// The CSV `user_id` column; `None`: a plain list of ids.
    pub column: Option<usize>,
    pub size: u64,
    /// The version read: a campaign pins it, and every later read asks for this one
    /// (`If-Match`), so a file replaced mid-campaign is never read from a stale cursor.
    pub etag: Option<String>,
    /// When it was uploaded: the bucket's lifecycle rule deletes it `retention` days on.
    /// `None`: unknown (counted as now).
    pub modified: Option<Timestamp>,
    /// Its users, estimated from the lines of its leading bytes (see `estimate_users`).
    pub users_estimate: u64,
}

/// How many days the AudienceBucket keeps a file after its upload, unless
/// `AUDIENCE_RETENTION_DAYS` says otherwise (the template sets it from the same parameter
/// as the bucket's lifecycle rule).
pub const DEFAULT_RETENTION_DAYS: u32 = 30;
/// A campaign must have read its whole file this long before the file expires.
pub const RETENTION_MARGIN: SignedDuration = SignedDuration::from_hours(24);
/// How long an unpaced page takes at most, for the estimate of a fan-out's duration.
const UNPACED_PAGE: SignedDuration = SignedDuration::from_secs(2);

/// The lines of a file of `size` bytes whose first bytes are `leading`: exact when they are
/// the whole file, else their lines per byte over the size (a partial last line counts).
pub fn estimate_users(leading: &[u8], size: u64) -> u64 {
    if leading.is_empty() {
        return 0;
    }
    let breaks = leading.iter().filter(|b| **b == b'\n').count() as u64;
    let lines = breaks + u64::from(!leading.ends_with(b"\n"));
    let sampled = leading.len() as u64;
    if sampled >= size {
        return lines;
    }
    (u128::from(size) * u128::from(lines)).div_ceil(u128::from(sampled)) as u64
}

/// How long a fan-out of `users` takes: at `rate` per second, or unpaced a page of
/// `PAGE_USERS` every `UNPACED_PAGE`.
pub fn fanout_estimate(users: u64, rate: Option<u32>) -> SignedDuration {
    let seconds = match rate {
        Some(rate) => users.div_ceil(u64::from(rate.max(1))),
        None => users.div_ceil(PAGE_USERS as u64) * UNPACED_PAGE.as_secs() as u64,
    };
    SignedDuration::from_secs(i64::try_from(seconds).unwrap_or(i64::MAX))
}

/// A campaign whose fan-out starts at `start` must have read its file `RETENTION_MARGIN`
/// before the bucket deletes it (`retention_days` after its upload), else it would fail
/// mid-way: refused up front, naming `send_at`.
pub fn check_audience_retention(
    file: &AudienceFile,
    start: Timestamp,
    rate: Option<u32>,
    retention_days: u32,
    now: Timestamp,
) -> Result<(), FieldError> {
    let uploaded = file.modified.unwrap_or(now);
    let reading = fanout_estimate(file.users_estimate, rate);
    let expires = uploaded.checked_add(SignedDuration::from_hours(24 * i64::from(retention_days)));
    let done = start
        .checked_add(reading)
        .and_then(|t| t.checked_add(RETENTION_MARGIN));
    match (expires, done) {
        (Ok(expires), Ok(done)) if done <= expires => Ok(()),
        (expires, _) => {
            let expires = expires.map_or_else(|_| "never".to_owned(), |t| format!("{t:.0}"));
            Err(FieldError::new(
                "beyond_retention",
                "send_at",
                format!(
                    "the audience file expires at {expires} ({retention_days} days after its upload at {uploaded:.0}); \
                     this campaign would still be reading it then (it starts at {start:.0}, and about {} users take about {} h{}, \
                     plus a day's margin): send it earlier, raise rate_per_second, or upload the file again",
                    file.users_estimate,
                    (reading.as_secs().max(0) as u64).div_ceil(3600),
                    rate.map_or_else(String::new, |r| format!(" at {r}/s")),
                ),
            ))
        }
    }
}

/// Why a campaign's audience file can no longer be read as the campaign pinned it. Retrying
/// does not help: the campaign fails with this as its reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudienceUnreadable {
    #[error("the audience file {uri} no longer exists (deleted, or expired by the AudienceBucket's lifecycle rule)")]
    Gone { uri: String },
    #[error("the audience file {uri} changed after the campaign was created (it was pinned to ETag {etag}); upload the new audience and create a new campaign")]
    Changed { uri: String, etag: String },
    #[error("reading the audience file {uri} is denied (S3 403): check the campaigns role and the bucket's key")]
    Denied { uri: String },
    #[error("the audience file {uri} has a line at byte {offset} longer than {max} bytes")]
    LineTooLong { uri: String, offset: u64, max: u64 },
}

impl AudienceUnreadable {
    /// What an S3 answer's HTTP status means for a pinned read of `uri` (`etag`: the pin);
    /// `None`: an error worth retrying (or a bug), not a reason to fail the campaign.
    pub fn from_status(status: u16, uri: &str, etag: Option<&str>) -> Option<Self> {
        let uri = uri.to_owned();
        match status {
            404 => Some(Self::Gone { uri }),
            412 => Some(Self::Changed {
                uri,
                etag: etag.unwrap_or_default().to_owned(),
            }),
            403 => Some(Self::Denied { uri }),
            _ => None,
        }
    }

    /// A short name: the `reason` dimension of the `CampaignsFailed` metric.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Gone { .. } => "gone",
            Self::Changed { .. } => "changed",
            Self::Denied { .. } => "denied",
            Self::LineTooLong { .. } => "line_too_long",
        }
    }
}

/// Users read from an audience file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AudienceRead {
    pub users: Vec<UserId>,
    /// (byte offset of the line, why) of lines that are not a user id.
    pub invalid: Vec<(u64, String)>,
    pub next: u64,
    pub end: bool,
}

/// A tenant's audience files live under its own prefix, `<tenant>/`: a campaign may use no
/// other key, so a tenant never reaches another's users. `.` and `..` segments are refused
/// too (S3 keeps them literally, but not every path handling on the way does). The error
/// names `audience.s3`.
pub fn check_audience_key(tenant: &TenantId, key: &str) -> Result<(), FieldError> {
    let inside = key
        .strip_prefix(tenant.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| {
            !rest.is_empty() && !rest.split('/').any(|segment| matches!(segment, "." | ".."))
        });
    if inside {
        return Ok(());
    }
    Err(FieldError::new(
        "invalid_value",
        "audience.s3",
        format!(
            "audience files of tenant {tenant} must be under its prefix: s3://<AudienceBucket>/{tenant}/<file> (got the key {key:?})"
        ),
    ))
}

/// Bytes of a byte order mark at the start of `buf`, when `buf` starts the file.
fn bom_len(buf: &[u8], start: u64) -> usize {
    if start == 0 && buf.starts_with(BOM) {
        BOM.len()
    } else {
        0
    }
}

fn csv_reader(data: &[u8]) -> csv::Reader<&[u8]> {
    ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(data)
}

/// What an audience file's leading bytes say: its first record is a CSV header naming
/// `user_id` (that column), or the first id of a plain list (`None`). A byte order mark is
/// not part of the header.
pub fn audience_header(leading: &[u8]) -> Option<usize> {
    let data = &leading[bom_len(leading, 0)..];
    let mut record = ByteRecord::new();
    match csv_reader(data).read_byte_record(&mut record) {
        Ok(true) => record
            .iter()
            .position(|f| f.trim_ascii().eq_ignore_ascii_case(b"user_id")),
        _ => None,
    }
}

/// One line of a plain list: a user id. Blank lines are `Ok(None)`.
pub fn audience_line(line: &str) -> Result<Option<UserId>, String> {
    let id = line.trim();
    if id.is_empty() {
        return Ok(None);
    }
    UserId::parse(id, "user_id")
        .map(Some)
        .map_err(|e| e.message)
}

/// The user id in `column` of one CSV record.
fn csv_user(record: &ByteRecord, column: usize) -> Result<UserId, String> {
    let field = record
        .get(column)
        .ok_or_else(|| format!("no column {column} (the record has {})", record.len()))?;
    let field = std::str::from_utf8(field.trim_ascii()).map_err(|_| "not UTF-8".to_owned())?;
    if field.is_empty() {
        return Err(format!("column {column} (user_id) is empty"));
    }
    UserId::parse(field, "user_id").map_err(|e| e.message)
}

/// Reads up to `max` users from `buf`, which holds the file from byte `start` on (`at_eof`:
/// through its end). Only whole records are taken: `next` is where the first record not
/// taken starts, so a later read from `next` sees exactly the rest. A byte order mark at
/// byte 0 is skipped, and so is a CSV's header (the file's first record).
pub fn read_audience(
    buf: &[u8],
    start: u64,
    at_eof: bool,
    column: Option<usize>,
    max: usize,
) -> AudienceRead {
    match column {
        None => read_lines(buf, start, at_eof, max),
        Some(column) => read_csv(buf, start, at_eof, column, max),
    }
}

/// A plain list: one id a line.
fn read_lines(buf: &[u8], start: u64, at_eof: bool, max: usize) -> AudienceRead {
    let mut offset = bom_len(buf, start);
    let mut read = AudienceRead {
        next: start,
        ..AudienceRead::default()
    };
    while read.users.len() < max && offset < buf.len() {
        let rest = &buf[offset..];
        let (line, consumed) = match rest.iter().position(|b| *b == b'\n') {
            Some(end) => (&rest[..end], end + 1),
            None if at_eof => (rest, rest.len()),
            None => break,
        };
        let line_start = start + offset as u64;
        offset += consumed;
        read.next = start + offset as u64;
        match std::str::from_utf8(line)
            .map_err(|_| "not UTF-8".to_owned())
            .and_then(audience_line)
        {
            Ok(Some(user)) => read.users.push(user),
            Ok(None) => {}
            Err(why) => read.invalid.push((line_start, why)),
        }
    }
    read.end = at_eof && offset >= buf.len();
    read
}

/// A CSV: one record at a time, a record taken only once its end is seen (at the end of the
/// file, a record whose quote never closed is invalid). Whether a record is taken depends
/// only on its own bytes and the `MAX_RECORD` after its start, never on where a window ends:
/// reading a file in one piece or in ranges takes the same records.
fn read_csv(buf: &[u8], start: u64, at_eof: bool, column: usize, max: usize) -> AudienceRead {
    // At the end of the file, two line breaks more: a last record without one still ends
    // before the data does, and a record that reaches the end of the data is one whose
    // quote never closed.
    let data: Cow<[u8]> = if at_eof {
        let mut owned = Vec::with_capacity(buf.len() + 2);
        owned.extend_from_slice(buf);
        owned.extend_from_slice(b"\n\n");
        Cow::Owned(owned)
    } else {
        Cow::Borrowed(buf)
    };
    // The file's first record is its header (after a byte order mark).
    let header = (start == 0).then(|| bom_len(buf, 0));
    let mut read = AudienceRead {
        next: start,
        ..AudienceRead::default()
    };
    // Where the next record starts: everything before is taken (or skipped).
    let mut pos = bom_len(buf, start);
    let mut record = ByteRecord::new();
    'readers: while read.users.len() < max && pos < buf.len() {
        // A fresh reader from `pos`: a record boundary, or the line after a bad record.
        let base = pos;
        let mut reader = csv_reader(&data[base..]);
        while read.users.len() < max {
            let from = base + reader.position().byte() as usize;
            let more = reader.read_byte_record(&mut record);
            let to = base + reader.position().byte() as usize;
            // Blank lines before a record are skipped by the reader, not part of it.
            let first = from
                + data[from..to]
                    .iter()
                    .take_while(|b| matches!(b, b'\r' | b'\n'))
                    .count();
            if matches!(more, Ok(false)) || first >= buf.len() {
                // Nothing but blank lines left (and the two added at the end).
                pos = to.min(buf.len());
                break 'readers;
            }
            let complete = more.is_ok() && to < data.len();
            let too_long = to - first > MAX_RECORD;
            if !complete && !at_eof && !too_long {
                break 'readers; // its end is beyond this window: the next read starts here
            }
            if complete && !too_long {
                pos = to.min(buf.len());
                if header == Some(from) {
                    continue;
                }
                match csv_user(&record, column) {
                    Ok(user) => read.users.push(user),
                    Err(why) => read.invalid.push((start + first as u64, why)),
                }
                continue;
            }
            // A quote that never closes, or a record past MAX_RECORD: its first line is
            // invalid, and a new reader starts on the line after it.
            let Some(line_end) = data[first..]
                .iter()
                .position(|b| matches!(b, b'\n' | b'\r'))
            else {
                break 'readers; // not even its first line is here: a wider window is
            };
            let why = if too_long {
                format!("a record longer than {MAX_RECORD} bytes (a quote left open?)")
            } else {
                "a quoted field that never closes".to_owned()
            };
            read.invalid.push((start + first as u64, why));
            pos = (first + line_end + 1).min(buf.len());
            continue 'readers;
        }
    }
    // A byte order mark alone is not progress: the next read starts at the file's start.
    if pos > bom_len(buf, start) {
        read.next = start + pos as u64;
    }
    read.end = at_eof && pos >= buf.len();
    read
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(read: &AudienceRead) -> Vec<&str> {
        read.users.iter().map(UserId::as_str).collect()
    }

    #[test]
    fn audience_keys_are_under_the_tenants_prefix() {
        let acme = TenantId::parse("acme", "tenant").unwrap();
        for ok in [
            "acme/users.csv",
            "acme/2026/winter/users.txt",
            "acme/.hidden",
        ] {
            assert!(check_audience_key(&acme, ok).is_ok(), "{ok}");
        }
        for bad in [
            "users.csv",
            "acme",
            "acme/",
            "acme.eu/users.csv",
            "acmeusers.csv",
            "other/users.csv",
            "other/acme/users.csv",
            "acme/../other/users.csv",
            "acme/./users.csv",
            "/acme/users.csv",
        ] {
            let err = check_audience_key(&acme, bad).unwrap_err();
            assert_eq!(err.field.as_deref(), Some("audience.s3"), "{bad}");
        }
    }

    #[test]
    fn estimates_count_the_leading_lines_over_the_size() {
        assert_eq!(estimate_users(b"", 0), 0);
        assert_eq!(estimate_users(b"a\nb\nc", 5), 3, "the whole file: exact");
        assert_eq!(estimate_users(b"a\nb\n", 4_000), 2_000);
        assert_eq!(
            estimate_users(b"user_id\nab", 1_000),
            200,
            "a partial line counts"
        );
        assert_eq!(
            fanout_estimate(1_000, Some(10)),
            SignedDuration::from_secs(100)
        );
        assert_eq!(fanout_estimate(1_001, None), SignedDuration::from_secs(6));
    }

    #[test]
    fn a_campaign_must_read_its_file_a_day_before_the_bucket_deletes_it() {
        let now: Timestamp = "2026-03-01T00:00:00Z".parse().unwrap();
        let day = SignedDuration::from_hours(24);
        let file = AudienceFile {
            modified: Some(now - day * 2), // uploaded two days ago
            users_estimate: 1_000,
            ..AudienceFile::default()
        };
        let check = |start: Timestamp, rate| check_audience_retention(&file, start, rate, 30, now);
        // Expires in 28 days: a campaign then has to be done on day 27.
        assert!(check(now, None).is_ok());
        assert!(check(now + day * 26, None).is_ok());
        let err = check(now + day * 27, None).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("send_at"));
        assert!(
            err.message.contains("2026-03-29T00:00:00Z"),
            "{}",
            err.message
        );
        // A slow rate counts: 1,000 users at 1 a second take 17 minutes; 3 million, 35 days.
        assert!(check(now + day * 26, Some(1)).is_ok());
        let big = AudienceFile {
            users_estimate: 3_000_000,
            ..file.clone()
        };
        let err = check_audience_retention(&big, now, Some(1), 30, now).unwrap_err();
        assert!(err.message.contains("at 1/s"), "{}", err.message);
        assert!(check_audience_retention(&big, now, Some(100), 30, now).is_ok());
        // An unknown upload time counts as now; a longer retention leaves longer.
        let unknown = AudienceFile {
            modified: None,
            ..file.clone()
        };
        assert!(check_audience_retention(&unknown, now + day * 28, None, 30, now).is_ok());
        assert!(check(now + day * 27, None).is_err());
        assert!(check_audience_retention(&file, now + day * 27, None, 90, now).is_ok());
    }

    #[test]
    fn s3_answers_that_fail_a_campaign() {
        let uri = "s3://b/acme/u.csv";
        let reason = |status| {
            AudienceUnreadable::from_status(status, uri, Some("\"e1\"")).map(|u| u.reason())
        };
        assert_eq!(reason(404), Some("gone"));
        assert_eq!(reason(412), Some("changed"));
        assert_eq!(reason(403), Some("denied"));
        for retried in [400, 416, 429, 500, 503] {
            assert_eq!(reason(retried), None, "{retried}");
        }
        let changed = AudienceUnreadable::from_status(412, uri, Some("\"e1\"")).unwrap();
        assert!(changed
            .to_string()
            .contains("changed after the campaign was created"));
    }

    fn whole(file: &[u8]) -> AudienceRead {
        read_audience(file, 0, true, audience_header(file), usize::MAX)
    }

    #[test]
    fn plain_lists_and_csv_headers() {
        assert_eq!(audience_header(b"user_id"), Some(0));
        assert_eq!(
            audience_header(b"email,\"user_id\",name\r\nx,alice,y\n"),
            Some(1)
        );
        assert_eq!(audience_header(b"alice\nuser_id\n"), None);
        assert_eq!(audience_line("alice\r").unwrap().unwrap().as_str(), "alice");
        assert_eq!(audience_line("  ").unwrap(), None);
        assert!(audience_line("bad id").is_err());
        let read = whole(b"alice\n\nbad id\r\nbob");
        assert_eq!(ids(&read), ["alice", "bob"]);
        assert_eq!(read.invalid.len(), 1);
        assert_eq!(read.invalid[0].0, 7, "the bad line's offset");
        assert!(read.end);
        let read = whole(b"email,user_id,name\na@x,bob,B\nonly-one\n");
        assert_eq!(ids(&read), ["bob"]);
        assert_eq!(read.invalid.len(), 1, "a row without the column is invalid");
    }

    #[test]
    fn a_byte_order_mark_does_not_hide_the_header() {
        // Excel's "CSV UTF-8": a BOM, then the header.
        let file = b"\xEF\xBB\xBFuser_id,email\r\nalice,a@x\r\nbob,b@x\r\n";
        assert_eq!(audience_header(file), Some(0));
        let read = whole(file);
        assert_eq!(ids(&read), ["alice", "bob"]);
        assert!(read.invalid.is_empty(), "{:?}", read.invalid);
        // A plain list with a BOM: its first id is an id.
        let read = whole(b"\xEF\xBB\xBFalice\nbob\n");
        assert_eq!(ids(&read), ["alice", "bob"]);
        assert!(read.invalid.is_empty(), "{:?}", read.invalid);
    }

    #[test]
    fn quoted_fields_keep_their_commas_and_quotes() {
        let file = b"name,user_id,note\n\"Doe, Jane\",jane,\"said \"\"hi, there\"\"\"\n\"Roe, Rick\",\" rick \",x\n";
        let read = whole(file);
        assert_eq!(ids(&read), ["jane", "rick"]);
        assert!(read.invalid.is_empty(), "{:?}", read.invalid);
    }

    #[test]
    fn a_quoted_field_may_span_lines() {
        let file = b"user_id,address\nann,\"1 Main St\nSpringfield\"\nbob,x\n";
        let read = whole(file);
        assert_eq!(ids(&read), ["ann", "bob"]);
        assert!(read.invalid.is_empty(), "{:?}", read.invalid);
    }

    #[test]
    fn a_line_of_garbage_is_invalid_and_the_rest_is_read() {
        // An opening quote that never closes would swallow the rest of the file; split at its
        // comma, the line would reach mallory.
        let file = b"email,user_id\na@x,alice\n\"~garbage\x01,mallory\nc@x,carol\n,\nd@x,dave\n";
        let read = whole(file);
        assert_eq!(ids(&read), ["alice", "carol", "dave"]);
        let offsets: Vec<u64> = read.invalid.iter().map(|(o, _)| *o).collect();
        assert_eq!(offsets, [24, 53], "the garbage line and the empty row");
        assert!(read.end);
    }

    #[test]
    fn an_overlong_record_is_invalid_from_its_first_line() {
        let mut file = b"user_id,note\nann,\"".to_vec();
        file.extend(std::iter::repeat_n(b'x', 40_000));
        file.extend(b"\nbob,y\n");
        file.extend(std::iter::repeat_n(b'x', 40_000));
        file.extend(b"\"\ncarol,z\n");
        let read = whole(&file);
        // The open quote joins ann's line to carol's (over 64 KiB): ann's line is invalid,
        // bob's line is read afresh, the closing quote's line is garbage.
        assert_eq!(ids(&read), ["bob", "carol"]);
        assert_eq!(read.invalid.len(), 2, "{:?}", read.invalid);
        assert_eq!(read.invalid[0].0, 13);
    }

    /// Reads `file` a window and a few users at a time, as the S3 adapter does.
    fn in_pieces(file: &[u8], window: usize, max: usize) -> (Vec<String>, Vec<u64>) {
        let column = audience_header(file);
        let (mut users, mut invalid, mut cursor) = (Vec::new(), Vec::new(), 0u64);
        let mut width = window;
        loop {
            let from = cursor as usize;
            let to = (from + width).min(file.len());
            let part = read_audience(&file[from..to], cursor, to == file.len(), column, max);
            users.extend(part.users.iter().map(|u| u.as_str().to_owned()));
            invalid.extend(part.invalid.iter().map(|(o, _)| *o));
            if part.end {
                return (users, invalid);
            }
            if part.next == cursor {
                width *= 2;
            } else {
                width = window;
            }
            cursor = part.next;
        }
    }

    #[test]
    fn ranges_and_pages_read_what_one_read_does() {
        let mut file = b"\xEF\xBB\xBFname,user_id\r\n".to_vec();
        for i in 0..300 {
            match i % 7 {
                0 => file.extend(format!("\"Doe, {i}\",u{i}\r\n").bytes()),
                1 => file.extend(format!("\"line\nbreak {i}\",u{i}\n").bytes()),
                2 => file.extend(format!("bad,not an id {i}\n").bytes()),
                3 => file.extend(b"\n\n"),
                4 => file.extend(format!("\"q\"\"uote\",u{i}\r").bytes()),
                _ => file.extend(format!("plain,u{i}\n").bytes()),
            }
        }
        file.extend(b"\"never closed,u999\nlast,u1000");
        let all = whole(&file);
        let expected: Vec<String> = all.users.iter().map(|u| u.as_str().to_owned()).collect();
        let expected_invalid: Vec<u64> = all.invalid.iter().map(|(o, _)| *o).collect();
        assert!(expected.len() > 150 && expected.contains(&"u1000".to_owned()));
        for (window, max) in [(16, 1), (37, 3), (64, 500), (101, 7), (4096, 50)] {
            assert_eq!(
                in_pieces(&file, window, max),
                (expected.clone(), expected_invalid.clone()),
                "window {window}, {max} users a read"
            );
        }
    }
}
