//! `cairn doctor`: check the replica and its index.

use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{GOOD, paint};

/// Check the replica: where it is, what it holds, and whether the index matches the documents.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rebuild the index from the documents first.
    #[arg(long)]
    reindex: bool,
}

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    if args.reindex {
        replica.rebuild_index()?;
    }
    let stats = replica.stats()?;
    let problems = replica.verify_index()?;
    let ok = problems.is_empty();
    let text = format!(
        "replica   {}\nschema    {}\ndocuments {} ({} chunks)\nevents    {}\noutbox    {} changes\nindex     {}",
        replica.path().display(),
        cairn_store::SCHEMA_VERSION,
        stats.docs,
        stats.chunks,
        stats.events,
        stats.outbox,
        if ok {
            paint(GOOD, "in step with the documents")
        } else {
            problems.join("; ")
        },
    );
    ctx.out.say(
        text,
        json!({
            "replica": replica.path(),
            "schema": cairn_store::SCHEMA_VERSION,
            "documents": stats.docs,
            "chunks": stats.chunks,
            "events": stats.events,
            "outbox": stats.outbox,
            "index_ok": ok,
            "problems": problems,
        }),
    )?;
    if ok {
        Ok(())
    } else {
        Err(CliError::new("the index differs from the documents")
            .hint("run `cairn doctor --reindex` to rebuild it")
            .code(crate::error::code::REPLICA))
    }
}
