//! What a device remembers of a sync refused for good (a token revoked, a team gone, a change
//! the server will never take): a client says it once on the next command, shows it on
//! request, and the next sync that goes through forgets it ([`super::sync_once`]).

use cairn_store::Replica;

/// The setting that holds the problem.
const PROBLEM: &str = "sync_problem";
/// Set once the problem was said by a command other than the ones that show it themselves.
const PROBLEM_TOLD: &str = "sync_problem_told";

/// Why this device can no longer sync, when its last sync was refused for good.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    /// What went wrong, as the client told its user.
    pub message: String,
    /// What to do about it, when the client said.
    pub hint: Option<String>,
    pub at_ms: i64,
}

/// Remembers `problem`, not yet told. Best effort: the error itself is what the caller reports.
pub fn remember(replica: &mut Replica, problem: &Problem) {
    if let Ok(text) = serde_json::to_string(problem) {
        let _ = replica.set_setting(PROBLEM, Some(&text));
        let _ = replica.set_setting(PROBLEM_TOLD, None);
    }
}

/// Why this device's last sync was refused for good, if it was.
pub fn problem(replica: &Replica) -> cairn_store::Result<Option<Problem>> {
    Ok(replica
        .setting(PROBLEM)?
        .and_then(|text| serde_json::from_str(&text).ok()))
}

/// Forgets the problem (a sync went through).
pub fn forget(replica: &mut Replica) -> cairn_store::Result<()> {
    if replica.setting(PROBLEM)?.is_some() {
        replica.set_setting(PROBLEM, None)?;
        replica.set_setting(PROBLEM_TOLD, None)?;
    }
    Ok(())
}

/// The problem when it has not been told yet, marking it told; `None` when there is none or
/// it was told. Best effort: a replica that cannot be read or written tells nothing.
pub fn tell_once(replica: &mut Replica) -> Option<Problem> {
    let Ok(Some(p)) = problem(replica) else {
        return None;
    };
    if !matches!(replica.setting(PROBLEM_TOLD), Ok(None)) {
        return None;
    }
    let _ = replica.set_setting(PROBLEM_TOLD, Some("1"));
    Some(p)
}
