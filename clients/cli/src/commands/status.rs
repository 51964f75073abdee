//! `cairn status`: the server, the last sync and what waits to go.

use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{DIM, count, paint};

/// Show the team's server, when this device last synced and what waits to be sent.
///
/// Reads only this device: it works offline. `cairn doctor` also asks the server.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub fn run(_args: Args, ctx: &mut Ctx) -> Result<()> {
    let replica = ctx.open()?;
    let remote = replica.remote()?;
    let (waiting, waiting_bytes) = replica.outbox_size()?;
    let last = replica.last_sync_ms()?;
    let cursor = replica.cursor()?;
    let ago = last.map(|ms| cairn_core::feed::ago(ctx.now_ms(), ms));
    let text = match &remote {
        None => format!(
            "server    none: this team lives only here\nwaiting   {}\n{}",
            count(waiting as u64, "change", "changes"),
            paint(
                DIM,
                "bring it to a server with `cairn publish URL --invite CODE`"
            )
        ),
        Some(r) => format!(
            "server    {}\ndevice    {}\nlast sync {}\ncursor    {cursor}\nwaiting   {} ({})",
            r.url,
            r.device_id,
            ago.as_deref().unwrap_or("never"),
            count(waiting as u64, "change", "changes"),
            super::sync::size(waiting_bytes as usize),
        ),
    };
    // The team's organisation, as the last sync left it (read from this replica only).
    let org = cairn_client::sync::org::state(&replica)?;
    let mut text = text;
    if let Some(o) = &org.org {
        text.push_str(&format!(
            "\norg       {}{}, last sync {}",
            o.name,
            if o.steward {
                " (you are a steward)"
            } else {
                ""
            },
            org.synced_ms
                .map(|ms| cairn_core::feed::ago(ctx.now_ms(), ms))
                .as_deref()
                .unwrap_or("never"),
        ));
    }
    if let Some(s) = &org.stopped {
        text.push_str(&format!(
            "\n{}",
            paint(
                DIM,
                format!(
                    "          stopped syncing the organisation `{}` ({}): {}",
                    s.name,
                    cairn_core::feed::ago(ctx.now_ms(), s.at_ms),
                    s.why
                )
            )
        ));
    }
    let problem = super::sync::problem(&replica)?;
    let text = match &problem {
        None => text,
        Some(p) => format!(
            "{text}\nproblem   {} ({})\n{}",
            p.message,
            cairn_core::feed::ago(ctx.now_ms(), p.at_ms),
            p.hint
                .as_deref()
                .map(|h| paint(DIM, format!("          {h}")))
                .unwrap_or_default()
        )
        .trim_end()
        .to_owned(),
    };
    ctx.out.say(
        text,
        json!({
            "problem": problem,
            "server": remote.as_ref().map(|r| &r.url),
            "device_id": remote.as_ref().map(|r| &r.device_id),
            "last_sync_ms": last,
            "cursor": cursor,
            "waiting": waiting,
            "waiting_bytes": waiting_bytes,
            "org": org.org.as_ref().map(|o| json!({
                "id": o.id,
                "name": o.name,
                "steward": o.steward,
                "last_sync_ms": org.synced_ms,
            })),
            "org_stopped": org.stopped.as_ref().map(|s| json!({
                "id": s.id,
                "name": s.name,
                "why": s.why,
                "at_ms": s.at_ms,
            })),
        }),
    )
}
