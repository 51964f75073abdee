//! What the replica-file tests share: a team started on this device.

use cairn_store::{NewTeam, Replica};

pub const ANA: &str = "anaanaanaana";
pub const BEN: &str = "benbenbenben";

/// A team in `tz` started in `dir` by Ana at `at_ms`, with Ben added by name then.
pub fn team(dir: &std::path::Path, tz: &str, at_ms: i64) -> Replica {
    let mut replica = Replica::create(
        &dir.join("replica.sqlite3"),
        &NewTeam {
            team_id: "otterotterotterot".into(),
            team_name: "Otters".into(),
            tz: tz.into(),
            member_id: ANA.into(),
            member_name: "Ana".into(),
            handle: "ana".into(),
            at_ms,
        },
    )
    .expect("a new replica");
    replica
        .change_team(ANA, |doc, state| {
            cairn_core::team::add_member(doc, state, BEN, "Ben", Some("ben"), at_ms)
        })
        .expect("Ben added");
    replica
}
