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
    let copied_ms = replica.copied_ms()?;
    let text = match copied_ms {
        Some(ms) => format!(
            "{text}\ncopy      found {} to be a copy of another replica (a home copied, a backup \
             restored): it writes under a fresh actor since, and nothing was lost",
            cairn_core::feed::ago(ctx.now_ms(), ms)
        ),
        None => text,
    };
    ctx.out.say(
        text,
        json!({
            "copied_ms": copied_ms,
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
    let written_by_a_copy = match &checked {
        Ok((_, head)) if *head > cursor => copied(replica, &client, cursor)?,
        _ => 0,
    };
    Ok(match checked {
        Ok((info, head)) if written_by_a_copy > 0 => {
            let n = written_by_a_copy;
            let e = CliError::new(format!(
                "this replica was copied or restored from a backup: the server holds {} that \
                 another copy wrote as this device",
                count(n as u64, "change", "changes")
            ))
            .hint(
                "run `cairn sync`: it brings them, writes this copy's unsent changes again under \
                 a fresh actor, and nothing is lost",
            )
            .kind(crate::error::Kind::Failure);
            ServerCheck {
                line: format!(
                    "{} reachable (protocol {}); {}",
                    remote.url, info.protocol, e.message
                ),
                json: json!({
                    "url": remote.url, "reachable": true, "protocol": info.protocol,
                    "server_version": info.server_version, "head": head, "copied": n,
                }),
                error: Some(e),
            }
        }
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

/// How many changes of the first page after `cursor` another copy of this replica wrote (with
/// this device's actors); nothing is applied. A page that cannot be had counts none.
fn copied(replica: &cairn_store::Replica, client: &Client, cursor: u64) -> Result<usize> {
    let req = cairn_protocol::SyncRequest {
        cursor,
        max_pull: Some(1000),
        ..cairn_protocol::SyncRequest::default()
    };
    let Ok((page, _, _)) = client.sync(&req) else {
        return Ok(0);
    };
    let changes: Vec<(String, Vec<u8>)> = page
        .pulled
        .into_iter()
        .filter(|p| p.withdrawn.is_empty())
        .map(|p| (p.doc, p.change.0))
        .collect();
    Ok(replica.written_by_a_copy(&changes)?)
}
