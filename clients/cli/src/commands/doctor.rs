//! `cairn doctor`: check the replica and its index.

use serde_json::json;

use crate::context::Ctx;
use crate::error::{CliError, Result};
use crate::output::{GOOD, count, paint};
use crate::remote::Client;
use std::time::Duration;

/// Check the replica: where it is, what it holds, and whether the index matches the documents.
///
/// Also lists what this replica set aside (changes from the server that do not apply) and what
/// withdrawal notices removed or were refused.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Rebuild the index from the documents first.
    #[arg(long)]
    reindex: bool,
    /// Repair documents that cannot be loaded (a snapshot an older cairn took from a server,
    /// too costly to load or damaged): what cannot load is set aside, each document is rebuilt
    /// from the rest with your unsent changes, and the next `cairn sync` brings again what went.
    #[arg(long)]
    repair: bool,
}

/// Set-aside changes and withdrawals shown in text (`--json` lists every one).
const SHOWN: usize = 5;

pub fn run(args: Args, ctx: &mut Ctx) -> Result<()> {
    let mut replica = ctx.open()?;
    let repaired = if args.repair {
        Some(replica.repair(ctx.now_ms())?)
    } else {
        None
    };
    if args.reindex {
        replica.rebuild_index()?;
    }
    let stats = replica.stats()?;
    let problems = replica.verify_index()?;
    let ok = problems.is_empty();
    let unloadable = problems.iter().any(|p| p.contains("cannot be loaded"));
    let emptied = problems.iter().any(|p| p.contains("names no team"));
    let waiting = replica.waiting_changes()?;
    let (aside_n, aside_bytes) = replica.set_aside_count()?;
    let aside = replica.set_aside(SHOWN)?;
    let (withdrawals, withdrawals_n) = replica.withdrawals(SHOWN)?;
    let cursor = replica.cursor()?;
    let server = check_server(&replica, cursor)?;
    let mut aside_text = format!(
        "{} that {} not apply",
        count(aside_n, "change", "changes"),
        if aside_n == 1 { "does" } else { "do" }
    );
    if aside_n > 0 {
        aside_text.push_str(&format!(" ({})", super::sync::size(aside_bytes as usize)));
    }
    for a in &aside {
        aside_text.push_str(&format!(
            "\n          {} in {}: {}",
            a.hash.get(..12).unwrap_or(&a.hash),
            a.doc,
            a.reason
        ));
    }
    if aside_n > SHOWN as u64 {
        aside_text.push_str(&format!(
            "\n          and {} more (--json lists all)",
            aside_n - SHOWN as u64
        ));
    }
    let mut withdrawn_text = count(withdrawals_n, "notice", "notices");
    for w in &withdrawals {
        let when = cairn_core::feed::ago(ctx.now_ms(), w.at_ms);
        let line = match &w.held {
            Some(held) => format!("{when}, {}: held back, it would have removed {held}", w.doc),
            None => {
                let mut line = format!(
                    "{when}, {}: {} left",
                    w.doc,
                    count(w.dropped as u64, "change", "changes")
                );
                if w.redone > 0 {
                    line.push_str(&format!(
                        "; {} of yours written again",
                        count(w.redone as u64, "change", "changes")
                    ));
                }
                if w.refused > 0 {
                    line.push_str(&format!(
                        "; {} of yours never acknowledged, kept",
                        count(w.refused as u64, "change", "changes")
                    ));
                }
                line
            }
        };
        withdrawn_text.push_str(&format!("\n          {line}"));
        for what in &w.what {
            withdrawn_text.push_str(&format!("\n            {what}"));
        }
    }
    if withdrawals_n > SHOWN as u64 {
        withdrawn_text.push_str(&format!(
            "\n          and {} more (--json lists all)",
            withdrawals_n - SHOWN as u64
        ));
    }
    let repair_text = repaired.as_ref().map(|r| {
        if r.docs.is_empty() && r.forgotten == 0 {
            "nothing to repair".to_owned()
        } else {
            let mut t = format!(
                "rebuilt {}, {} set aside",
                count(r.docs.len() as u64, "document", "documents"),
                count(r.set_aside as u64, "piece", "pieces")
            );
            for (doc, why) in &r.docs {
                t.push_str(&format!("\n          {doc}: {why}"));
            }
            if r.forgotten > 0 {
                t.push_str(&format!(
                    "\n          forgot {} that had emptied the team",
                    count(r.forgotten as u64, "withdrawn change", "withdrawn changes")
                ));
            }
            if r.refetch {
                t.push_str("\n          run `cairn sync`: it brings again what went");
            }
            t
        }
    });
    let mut text = format!(
        "replica   {}\nschema    {}\ndocuments {} ({})\nevents    {}\noutbox    {}\nwaiting   {} for what they depend on\nset aside {aside_text}\nwithdrawn {withdrawn_text}\ncursor    {cursor}\nserver    {}\nindex     {}",
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
    if let Some(r) = &repair_text {
        text = format!("{text}\nrepair    {r}");
    }
    let copied_ms = replica.copied_ms()?;
    let text = match copied_ms {
        Some(ms) => format!(
            "{text}\ncopy      found {} to be a copy of another replica (a home copied, a backup \
             restored): it writes under a fresh actor since, and nothing was lost",
            cairn_core::feed::ago(ctx.now_ms(), ms)
        ),
        None => text,
    };
    let head = json!({
        "copied_ms": copied_ms,
        "replica": replica.path(),
        "schema": cairn_store::SCHEMA_VERSION,
        "documents": stats.docs,
        "chunks": stats.chunks,
        "events": stats.events,
        "outbox": stats.outbox,
        "waiting": waiting,
        "set_aside_count": aside_n,
        "set_aside_bytes": aside_bytes,
        "withdrawals": replica.withdrawals(usize::MAX)?.0.iter().map(|w| json!({
            "doc": w.doc, "at_ms": w.at_ms, "named": w.named, "dropped": w.dropped,
            "refused": w.refused, "redone": w.redone, "held": w.held, "what": w.what,
        })).collect::<Vec<_>>(),
        "repaired": repaired.as_ref().map(|r| json!({
            "docs": r.docs.iter().map(|(d, why)| json!({"doc": d, "why": why})).collect::<Vec<_>>(),
            "set_aside": r.set_aside, "forgotten": r.forgotten, "refetch": r.refetch,
        })),
        "cursor": cursor,
        "server": server.json,
        "index_ok": ok,
        "problems": problems,
    });
    if ctx.out.json {
        stream_json(ctx, &replica, head)?;
    } else {
        ctx.out.line(text)?;
    }
    if !ok {
        let hint = if unloadable || emptied {
            "run `cairn doctor --repair` to set aside what cannot load and rebuild from the rest"
        } else {
            "run `cairn doctor --reindex` to rebuild it"
        };
        let message = if unloadable {
            "a document cannot be loaded"
        } else {
            "the index differs from the documents"
        };
        return Err(CliError::new(message)
            .hint(hint)
            .kind(crate::error::Kind::Replica));
    }
    match server.error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Writes `head` as one JSON object with every change set aside after its fields, a batch of
/// rows at a time: memory stays bounded however many there are.
fn stream_json(
    ctx: &mut Ctx,
    replica: &cairn_store::Replica,
    head: serde_json::Value,
) -> Result<()> {
    use std::io::Write as _;
    let serde_json::Value::Object(fields) = head else {
        unreachable!("the head is an object")
    };
    let mut out = ctx.out.raw();
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    buf.extend_from_slice(b"{\n");
    for (key, value) in &fields {
        buf.extend_from_slice(b"  ");
        serde_json::to_writer(&mut buf, key).map_err(std::io::Error::from)?;
        buf.extend_from_slice(b": ");
        serde_json::to_writer(&mut buf, value).map_err(std::io::Error::from)?;
        buf.extend_from_slice(b",\n");
    }
    buf.extend_from_slice(b"  \"set_aside\": [");
    let mut first = true;
    replica.each_set_aside(|a| -> Result<()> {
        buf.extend_from_slice(if first { b"\n    " } else { b",\n    " });
        first = false;
        let row = json!({
            "hash": a.hash, "doc": a.doc, "reason": a.reason, "at_ms": a.at_ms,
        });
        serde_json::to_writer(&mut buf, &row).map_err(std::io::Error::from)?;
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)?;
            buf.clear();
        }
        Ok(())
    })?;
    buf.extend_from_slice(if first { b"]\n}\n" } else { b"\n  ]\n}\n" });
    out.write_all(&buf)?;
    out.flush()?;
    Ok(())
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
    let client = crate::remote::client(
        &remote.url,
        Some(remote.token.clone()),
        Duration::from_secs(10),
    );
    let checked = client
        .info()
        .and_then(|info| Ok((info, client.check_token(cursor)?)))
        .map_err(CliError::from);
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
