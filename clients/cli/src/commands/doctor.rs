//! `cairn doctor`: check the replica and its index.

use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{GOOD, count, paint};
use crate::remote::Client;
use std::time::Duration;

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
    let waiting = replica.waiting_changes()?;
    let aside = replica.set_aside()?;
    let cursor = replica.cursor()?;
    let server = check_server(&replica, cursor)?;
    let mut aside_text = format!(
        "{} that {} not apply",
        count(aside.len() as u64, "change", "changes"),
        if aside.len() == 1 { "does" } else { "do" }
    );
    for a in aside.iter().take(5) {
        aside_text.push_str(&format!(
            "\n          {} in {}: {}",
            &a.hash[..12],
            a.doc,
            a.reason
        ));
    }
    if aside.len() > 5 {
        aside_text.push_str(&format!(
            "\n          and {} more (--json lists all)",
            aside.len() - 5
        ));
    }
    let text = format!(
        "replica   {}\nschema    {}\ndocuments {} ({})\nevents    {}\noutbox    {}\nwaiting   {} for what they depend on\nset aside {aside_text}\ncursor    {cursor}\nserver    {}\nindex     {}",
        replica.path().display(),
        cairn_store::SCHEMA_VERSION,
        stats.docs,
        count(stats.chunks as u64, "chunk", "chunks"),
        stats.events,
        count(stats.outbox as u64, "change", "changes"),
        count(waiting as u64, "change", "changes"),
        server.line,
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
            "waiting": waiting,
            "set_aside": aside.iter().map(|a| json!({
                "hash": a.hash, "doc": a.doc, "reason": a.reason, "at_ms": a.at_ms,
            })).collect::<Vec<_>>(),
            "cursor": cursor,
            "server": server.json,
            "index_ok": ok,
            "problems": problems,
        }),
    )?;
    if !ok {
        return Err(CliError::new("the index differs from the documents")
            .hint("run `cairn doctor --reindex` to rebuild it")
            .kind(crate::error::Kind::Replica));
    }
    match server.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

struct ServerCheck {
    line: String,
    json: serde_json::Value,
    error: Option<CliError>,
}

/// Asks the server (if any) for its protocol, then checks this device's token with a sync that
/// moves nothing.
fn check_server(replica: &cairn_store::Replica, cursor: u64) -> Result<ServerCheck> {
    let Some(remote) = replica.remote()? else {
        return Ok(ServerCheck {
            line: "none (this team lives only here)".into(),
            json: serde_json::Value::Null,
            error: None,
        });
    };
    let client = Client::new(
        &remote.url,
        Some(remote.token.clone()),
        Duration::from_secs(10),
    );
    let checked = client
        .info()
        .and_then(|info| Ok((info, client.check_token(cursor)?)));
    Ok(match checked {
        Ok((info, head)) => ServerCheck {
            line: format!(
                "{} {} (protocol {}, cairn-server {}; {} to pull)",
                remote.url,
                paint(GOOD, "reachable"),
                info.protocol,
                crate::remote::printable(&info.server_version),
                count(head.saturating_sub(cursor), "change", "changes")
            ),
            json: json!({
                "url": remote.url, "reachable": true, "protocol": info.protocol,
                "server_version": info.server_version, "head": head,
            }),
            error: None,
        },
        Err(e) => ServerCheck {
            line: format!("{}: {}", remote.url, e.message),
            json: json!({ "url": remote.url, "reachable": false, "error": &e.message }),
            error: Some(e),
        },
    })
}
