//! `cairn export`: every event, for a spreadsheet or a backup.

use serde_json::Value;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::render::event_json;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Csv,
}

/// Export every event (reactions and retracted ones included) to standard output.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The format.
    #[arg(long, short, value_enum, default_value_t = Format::Json)]
    format: Format,
}

const CSV_COLUMNS: [&str; 14] = [
    "id",
    "kind",
    "author",
    "at",
    "tz",
    "date",
    "late",
    "pillar",
    "text",
    "why",
    "to",
    "target",
    "emoji",
    "retracted",
];

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let replica = ctx.open()?;
    let team = replica.team()?;
    match args.format {
        Format::Json => {
            let mut all = Vec::new();
            replica.for_each_event(|e| {
                all.push(event_json(&e, &team));
                Ok(())
            })?;
            ctx.out.json(&Value::Array(all))
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(ctx.out.raw());
            let csv_err = |e: csv::Error| match e.into_kind() {
                csv::ErrorKind::Io(io) => CliError::from(io),
                other => CliError::new(format!("csv: {other:?}")),
            };
            w.write_record(CSV_COLUMNS).map_err(csv_err)?;
            let mut failed = None;
            replica.for_each_event(|e| {
                let v = event_json(&e, &team);
                let cell = |k: &str| match &v[k] {
                    Value::Null => String::new(),
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a
                        .iter()
                        .filter_map(|x| x.as_str())
                        .collect::<Vec<_>>()
                        .join(";"),
                    other => other.to_string(),
                };
                if failed.is_none()
                    && let Err(e) = w.write_record(CSV_COLUMNS.iter().map(|k| cell(k)))
                {
                    failed = Some(e);
                }
                Ok(())
            })?;
            if let Some(e) = failed {
                return Err(csv_err(e));
            }
            w.flush()?;
            Ok(())
        }
    }
}
