//! The server's log as JSON lines (`serve --log-format json`), for a log shipper.
//!
//! Each event is one JSON object on one line: `time` (RFC 3339, UTC), `level`, `target`,
//! `message`, then the fields of the spans it happened in (outermost first: `team`, `device`,
//! `org` of a sync) and its own fields (`client`, `method`, `route`, `status`, `error`, ...), the
//! event's winning over a span's of the same name. Every value, and so every untrusted string
//! (a path, a header's value, a reason quoting what a client sent), is a JSON value escaped by
//! serde_json: no client can start a line or a field of its own. A field logged with `?` (Rust's
//! `Debug`, as the text format does to escape what it shows) is a string here, unquoted again.
//!
//! ```no_run
//! tracing_subscriber::fmt()
//!     .fmt_fields(cairn_server::logs::JsonFields)
//!     .event_format(cairn_server::logs::JsonLines)
//!     .init();
//! ```

use std::fmt;

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// Formats events as JSON lines.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonLines;

/// Keeps spans' fields as a JSON object, for [`JsonLines`] to merge into each line.
#[derive(Clone, Copy, Debug, Default)]
pub struct JsonFields;

/// Collects fields into a JSON object.
struct Collect<'a>(&'a mut Map<String, Value>);

impl Visit for Collect<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().to_owned(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0
            .insert(field.name().to_owned(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let text = format!("{value:?}");
        let text = undebug(&text).unwrap_or(text);
        self.0.insert(field.name().to_owned(), text.into());
    }
}

/// The string a `Debug` rendering of a string stands for (`"a\"b\n"` -> `a"b` and a newline);
/// `None` when `text` is not one.
fn undebug(text: &str) -> Option<String> {
    let inner = text.strip_prefix('"')?.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return None,
            '\\' => out.push(match chars.next()? {
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                '0' => '\0',
                '\\' => '\\',
                '"' => '"',
                '\'' => '\'',
                'u' => {
                    if chars.next()? != '{' {
                        return None;
                    }
                    let hex: String = chars.by_ref().take_while(|&c| c != '}').collect();
                    char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?
                }
                _ => return None,
            }),
            c => out.push(c),
        }
    }
    Some(out)
}

fn fields_of(fields: impl RecordFields, into: &mut Map<String, Value>) {
    fields.record(&mut Collect(into));
}

impl<'writer> FormatFields<'writer> for JsonFields {
    fn format_fields<R: RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> fmt::Result {
        let mut map = Map::new();
        fields_of(fields, &mut map);
        let text = serde_json::to_string(&map).map_err(|_| fmt::Error)?;
        writer.write_str(&text)
    }

    fn add_fields(
        &self,
        current: &'writer mut FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> fmt::Result {
        let mut map: Map<String, Value> = serde_json::from_str(&current.fields).unwrap_or_default();
        fields_of(fields, &mut map);
        current.fields = serde_json::to_string(&map).map_err(|_| fmt::Error)?;
        Ok(())
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert("time".into(), jiff::Timestamp::now().to_string().into());
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let mut own = Map::new();
        fields_of(event, &mut own);
        line.insert(
            "message".into(),
            own.shift_remove("message").unwrap_or_else(|| "".into()),
        );
        if let Some(scope) = ctx.event_scope() {
            let mut names = Vec::new();
            for span in scope.from_root() {
                names.push(span.name());
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>() {
                    // Spans formatted by another formatter than JsonFields are skipped.
                    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(&fields.fields) {
                        line.extend(map);
                    }
                }
            }
            if !names.is_empty() {
                line.insert("span".into(), names.join(":").into());
            }
        }
        line.extend(own);
        let text = serde_json::to_string(&line).map_err(|_| fmt::Error)?;
        writeln!(writer, "{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn logged(f: impl FnOnce()) -> String {
        let buffer = Buffer::default();
        let out = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .fmt_fields(JsonFields)
            .event_format(JsonLines)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn hostile_text_stays_one_line_of_valid_json() {
        let hostile = "/v1/x\"}\n{\"level\":\"ERROR\"\r\t\u{1b}[31m\u{0}\u{7f}\\ \u{2028}é";
        let text = logged(|| {
            let span = tracing::info_span!("sync", team = tracing::field::Empty);
            span.record("team", "t1");
            let _in = span.enter();
            tracing::info!(client = %"10.0.0.1", route = "other", path = ?hostile,
                error = ?hostile, status = 404u16, "request refused");
        });
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(v["path"], hostile, "{text}");
        assert_eq!(v["error"], hostile);
        assert_eq!(v["client"], "10.0.0.1");
        assert_eq!(v["route"], "other");
        assert_eq!(v["status"], 404);
        assert_eq!(v["team"], "t1");
        assert_eq!(v["span"], "sync");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["message"], "request refused");
        assert!(!lines[0].contains('\u{1b}') && !lines[0].contains('\r'));
    }

    #[test]
    fn debug_strings_are_unquoted_and_other_debug_values_kept() {
        assert_eq!(
            undebug(r#""a\"b\n\u{1b}""#).as_deref(),
            Some("a\"b\n\u{1b}")
        );
        assert_eq!(undebug("Meta"), None);
        assert_eq!(undebug(r#""a"b""#), None);
        assert_eq!(undebug(r#""\u{110000}""#), None);
        assert_eq!(undebug(r#""""#).as_deref(), Some(""));
    }
}
