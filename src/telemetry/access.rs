//! The access log: one line per request, written straight into a buffer of
//! the worker thread's own and handed to the log writer, in exactly the
//! shape the `tracing` formatter gives every other event (timestamp, level,
//! message, fields, target; JSON or text).
//!
//! Going through `tracing` cost about a tenth of a proxied request's CPU:
//! the dispatch, a field visitor and a string per field, a JSON map built
//! field by field. The line's fields are known, so they are written in one
//! pass, and JSON strings are escaped by `serde_json` as before.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::Duration;

use tracing_appender::non_blocking::NonBlocking;

/// The event every access line stands for (level INFO).
pub const TARGET: &str = "tollgate::access";

/// One request, as its access line tells it.
pub struct Line<'a> {
    pub method: &'a http::Method,
    /// The path, without the query.
    pub path: &'a str,
    pub status: u16,
    pub took: Duration,
    /// The user (`sub`), `-` for none.
    pub user: &'a str,
    pub outcome: &'a str,
    pub request_id: &'a str,
    pub trace_id: Option<&'a str>,
}

struct Sink {
    writer: NonBlocking,
    json: bool,
}

/// Set by [`install`] when the log is set up, unset when `[log] level` is
/// above `info` (access lines are then not written).
static SINK: OnceLock<Option<Sink>> = OnceLock::new();

thread_local! {
    static BUF: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(512));
    /// The second last written, and its `YYYY-MM-DDTHH:MM:SS.`.
    static SECOND: RefCell<(u64, [u8; 20])> = const { RefCell::new((u64::MAX, [0; 20])) };
}

/// Access lines go to `writer` (the log's own), when `level` shows `info`.
pub fn install(writer: NonBlocking, json: bool, level: &str) {
    let on = matches!(level, "trace" | "debug" | "info");
    let _ = SINK.set(on.then_some(Sink { writer, json }));
}

/// Writes `line`. Without [`install`] (a library user, tests in process)
/// it is an ordinary `tracing` event.
pub fn write(line: &Line<'_>) {
    match SINK.get() {
        Some(Some(sink)) => BUF.with_borrow_mut(|buf| {
            buf.clear();
            if sink.json {
                json(buf, line);
            } else {
                text(buf, line);
            }
            // The writer queues the line for its thread; it fails only
            // once that thread is gone (exit).
            let _ = sink.writer.clone().write_all(buf);
        }),
        Some(None) => {}
        None => event(line),
    }
}

/// Microseconds as milliseconds: 33.98, not 33.979639999999996.
fn millis(took: Duration) -> f64 {
    took.as_micros() as f64 / 1000.0
}

/// Now, as `tracing-subscriber` writes it: RFC 3339 in UTC with
/// microseconds, `2026-12-06T22:36:42.229291Z`. The date and time of day
/// are worked out once a second.
fn timestamp(buf: &mut Vec<u8>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    SECOND.with_borrow_mut(|(second, prefix)| {
        if *second != now.as_secs() {
            *second = now.as_secs();
            *prefix = date_time(now.as_secs());
        }
        buf.extend_from_slice(prefix);
    });
    let _ = write!(buf, "{:06}Z", now.subsec_micros());
}

/// `YYYY-MM-DDTHH:MM:SS.` for seconds since 1970 in UTC (the proleptic
/// Gregorian calendar, days to civil date as in Howard Hinnant's
/// `civil_from_days`).
fn date_time(secs: u64) -> [u8; 20] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    let mut out = [0u8; 20];
    let text = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    out.copy_from_slice(&text.as_bytes()[..20]);
    out
}

/// A JSON string (quoted and escaped) or number.
fn value(buf: &mut Vec<u8>, v: &(impl serde::Serialize + ?Sized)) {
    let _ = serde_json::to_writer(&mut *buf, v);
}

/// `tracing-subscriber`'s JSON event with flattened fields.
fn json(buf: &mut Vec<u8>, l: &Line<'_>) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(buf);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"message\":\"request\",\"method\":");
    value(buf, l.method.as_str());
    buf.extend_from_slice(b",\"path\":");
    value(buf, l.path);
    let _ = write!(buf, ",\"status\":{},\"duration_ms\":", l.status);
    value(buf, &millis(l.took));
    buf.extend_from_slice(b",\"user\":");
    value(buf, l.user);
    buf.extend_from_slice(b",\"outcome\":");
    value(buf, l.outcome);
    buf.extend_from_slice(b",\"request_id\":");
    value(buf, l.request_id);
    if let Some(t) = l.trace_id {
        buf.extend_from_slice(b",\"trace_id\":");
        value(buf, t);
    }
    buf.extend_from_slice(b",\"target\":\"tollgate::access\"}\n");
}

/// `tracing-subscriber`'s full text format without colours: `Display`
/// fields bare, strings quoted as `Debug` has them. The path is bare too,
/// but anything in it other than printable ASCII is escaped (`\u{85}`): a
/// request target may carry UTF-8 line and paragraph separators, which
/// would otherwise start a line of their own in a terminal or a log viewer.
fn text(buf: &mut Vec<u8>, l: &Line<'_>) {
    timestamp(buf);
    let _ = write!(
        buf,
        "  INFO tollgate::access: request method={} path={} status={} duration_ms={:?} user={:?} outcome={:?} request_id={}",
        l.method,
        Printable(l.path),
        l.status,
        millis(l.took),
        l.user,
        l.outcome,
        l.request_id,
    );
    if let Some(t) = l.trace_id {
        let _ = write!(buf, " trace_id={t:?}");
    }
    buf.push(b'\n');
}

/// Printable ASCII as is, anything else as `\u{…}`.
struct Printable<'a>(&'a str);

impl std::fmt::Display for Printable<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for c in self.0.chars() {
            if c.is_ascii_graphic() {
                f.write_char(c)?;
            } else {
                write!(f, "{}", c.escape_unicode())?;
            }
        }
        Ok(())
    }
}

/// The same line as a `tracing` event.
fn event(l: &Line<'_>) {
    tracing::info!(
        target: "tollgate::access",
        method = %l.method,
        path = %l.path,
        status = l.status,
        duration_ms = millis(l.took),
        user = l.user,
        outcome = l.outcome,
        request_id = %l.request_id,
        trace_id = l.trace_id,
        "request"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_those_tracing_writes() {
        assert_eq!(&date_time(0), b"1970-01-01T00:00:00.");
        assert_eq!(&date_time(951_782_400), b"2000-02-29T00:00:00.");
        assert_eq!(&date_time(1_798_761_599), b"2026-12-31T23:59:59.");
        assert_eq!(&date_time(4_107_542_400), b"2100-03-01T00:00:00.");
        // Against tracing-subscriber's own formatter, retried should the
        // second turn between the two readings.
        use tracing_subscriber::fmt::{format::Writer, time::FormatTime};
        for _ in 0..3 {
            let mut theirs = String::new();
            let _ = tracing_subscriber::fmt::time::SystemTime
                .format_time(&mut Writer::new(&mut theirs));
            let mut ours = Vec::new();
            timestamp(&mut ours);
            if theirs.as_bytes()[..20] == ours[..20] {
                assert_eq!((ours.len(), ours.last()), (27, Some(&b'Z')));
                return;
            }
        }
        panic!("timestamps differ from tracing-subscriber's");
    }

    fn line<'a>(method: &'a http::Method, path: &'a str, user: &'a str) -> Line<'a> {
        Line {
            method,
            path,
            status: 200,
            took: Duration::from_micros(33_980),
            user,
            outcome: "proxied",
            request_id: "abc-1",
            trace_id: None,
        }
    }

    /// The JSON line parses, has every field, and escapes what it must.
    #[test]
    fn json_lines_have_the_fields_escaped() {
        let mut buf = Vec::new();
        let m = http::Method::GET;
        json(&mut buf, &line(&m, "/a\"b\\c", "us\"er\n"));
        assert_eq!(buf.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&buf).expect("one JSON object");
        assert_eq!(v["path"], "/a\"b\\c");
        assert_eq!(v["user"], "us\"er\n");
        assert_eq!(v["duration_ms"], 33.98);
        assert_eq!(v["status"], 200);
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request");
        assert_eq!(v["target"], TARGET);
        assert!(v.get("trace_id").is_none());
        let ts = v["timestamp"].as_str().expect("timestamp");
        assert!(ts.ends_with('Z') && ts.len() == 27, "{ts}");
    }

    #[test]
    fn text_lines_escape_separators_in_the_path() {
        let mut buf = Vec::new();
        let m = http::Method::GET;
        text(&mut buf, &line(&m, "/a\u{2028}b\u{85}c d", "-"));
        let s = String::from_utf8(buf).expect("utf8");
        assert!(
            s.contains("path=/a\\u{2028}b\\u{85}c\\u{20}d status"),
            "{s}"
        );
        assert_eq!(s.lines().count(), 1);
    }

    #[test]
    fn text_lines_quote_strings_as_tracing_does() {
        let mut buf = Vec::new();
        let m = http::Method::POST;
        let mut l = line(&m, "/p", "u\"1");
        l.trace_id = Some("0af7");
        text(&mut buf, &l);
        let s = String::from_utf8(buf).expect("utf8");
        assert!(
            s.ends_with(
                "  INFO tollgate::access: request method=POST path=/p status=200 duration_ms=33.98 user=\"u\\\"1\" outcome=\"proxied\" request_id=abc-1 trace_id=\"0af7\"\n"
            ),
            "{s}"
        );
    }
}
