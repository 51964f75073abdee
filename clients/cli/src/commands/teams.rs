//! `cairn team list` and `cairn team switch`: the teams one home holds.

use serde_json::json;

use crate::context::Ctx;
use crate::error::Result;
use crate::output::{BOLD, DIM, paint};

/// Lists the home's teams, the one commands act on marked.
pub fn list(ctx: &mut Ctx) -> Result<()> {
    let teams = crate::home::list(&ctx.home)?;
    let current = ctx.replica_path().ok();
    let mut lines = Vec::new();
    let mut rows = Vec::new();
    for t in &teams {
        let here = current.as_ref() == Some(&t.path);
        let name = if t.name.is_empty() {
            "(not synced yet)".to_owned()
        } else {
            t.name.clone()
        };
        let server = t
            .server
            .as_deref()
            .unwrap_or("no server: on this device only");
        lines.push(format!(
            "{} {}  {}  {}",
            if here { "*" } else { " " },
            if here {
                paint(BOLD, &name)
            } else {
                name.clone()
            },
            paint(DIM, &t.id),
            paint(DIM, server)
        ));
        rows.push(json!({
            "name": t.name, "id": t.id, "server": t.server, "current": here,
            "replica": t.path,
        }));
    }
    if teams.is_empty() {
        lines.push("no team here yet: `cairn init --team NAME --name YOUR_NAME` starts one, `cairn join URL --invite CODE --name YOUR_NAME` joins one".to_owned());
    }
    ctx.out.say(lines.join("\n"), json!(rows))
}

/// Makes the team `wanted` names the home's default.
pub fn switch(ctx: &mut Ctx, wanted: &str) -> Result<()> {
    let path = crate::home::select(&ctx.home, Some(wanted))?;
    let peek = cairn_store::Replica::peek(&path)?;
    ctx.config.set("team", Some(&peek.team_id))?;
    let name = if peek.team_name.is_empty() {
        peek.team_id.clone()
    } else {
        peek.team_name.clone()
    };
    ctx.out.say(
        format!("commands act on {} from now on", paint(BOLD, &name)),
        json!({ "team": peek.team_name, "id": peek.team_id }),
    )
}
