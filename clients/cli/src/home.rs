//! A home and the teams it holds, each in a replica of its own.
//!
//! The first team lives where every cairn before several teams kept it, `replica.sqlite3` at
//! the top of the home, so a home of an older cairn is a home with one team. Each team started
//! or joined after it lives in `teams/<team id>/replica.sqlite3`. A command acts on one team:
//! the one `--team` (or `CAIRN_TEAM`, or the config's `team`) names, else the first team (the
//! only one, in most homes).
//! Naming a team by its id, or the default kept as an id, finds its replica without reading any
//! other: what a command costs never grows with the number of teams.
//!
//! The organisation a team belongs to keeps a replica of its own in `orgs/<org id>/` (see
//! `cairn_client::sync::org`), synced with the team's and shared by the home's teams of that
//! organisation; it is no team of the home, and no command here lists it as one.
//!
//! A home is its user's alone: one that another user owns, or that others may write to (group
//! or other write permission), is refused before anything in it is read ([`check`]), since
//! whoever can write it can swap the replica, the settings (which name a pager to run) or the
//! lock for their own, or for links to files of this user's. The few stats that takes are all
//! it costs. No file in it is opened through a symbolic link (see `cairn_store`'s `file` and
//! [`open_lock`]).

use std::path::{Path, PathBuf};

use cairn_store::{Peek, Replica};

use crate::error::{CliError, Kind, Result};

/// The file name of a replica.
pub const REPLICA_FILE: &str = "replica.sqlite3";
/// The folder of the teams after the first.
pub const TEAMS_DIR: &str = "teams";

/// A team a home holds.
#[derive(Clone, Debug)]
pub struct Team {
    pub path: PathBuf,
    pub id: String,
    /// Empty for a team joined whose document has not arrived yet.
    pub name: String,
    pub server: Option<String>,
}

/// The replica at the top of the home: its first team's.
pub fn top(home: &Path) -> PathBuf {
    home.join(REPLICA_FILE)
}

/// The replica of the team with id `id` after the first.
fn in_teams(home: &Path, id: &str) -> PathBuf {
    home.join(TEAMS_DIR).join(id).join(REPLICA_FILE)
}

/// The ids of the teams in `teams/` that hold a replica, in order.
fn team_dirs(home: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(home.join(TEAMS_DIR)) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| in_teams(home, id).exists())
        .collect();
    ids.sort();
    ids
}

/// Every team of the home, the first one first (each replica's header is read).
pub fn list(home: &Path) -> Result<Vec<Team>> {
    let mut paths = Vec::new();
    if top(home).exists() {
        paths.push(top(home));
    }
    paths.extend(team_dirs(home).iter().map(|id| in_teams(home, id)));
    let mut teams = Vec::with_capacity(paths.len());
    for path in paths {
        // One replica that cannot be read does not hide the others: it is listed by its folder,
        // and opening it says what is wrong.
        let team = match Replica::peek(&path) {
            Ok(Peek {
                team_id,
                team_name,
                server_url,
            }) => Team {
                path,
                id: team_id,
                name: team_name,
                server: server_url,
            },
            Err(_) => Team {
                id: path
                    .parent()
                    .filter(|p| *p != home)
                    .and_then(|p| p.file_name())
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
                path,
                name: String::new(),
                server: None,
            },
        };
        teams.push(team);
    }
    Ok(teams)
}

/// The replica of the team `wanted` names (its id, its name, or its name's first letters
/// when no other team's starts so), else of the home's only team. A home with no team yet gives
/// the top replica's path (opening it then says there is none).
pub fn select(home: &Path, wanted: Option<&str>) -> Result<PathBuf> {
    let top = top(home);
    let Some(wanted) = wanted.map(str::trim).filter(|w| !w.is_empty()) else {
        if top.exists() || !home.join(TEAMS_DIR).exists() {
            return Ok(top);
        }
        return match team_dirs(home).as_slice() {
            [] => Ok(top),
            [one] => Ok(in_teams(home, one)),
            _ => Err(several(home)?),
        };
    };
    // An id finds its folder, or the top replica, without reading any other.
    if is_plain_id(wanted) {
        let p = in_teams(home, wanted);
        if p.exists() {
            return Ok(p);
        }
        if top.exists() && Replica::peek(&top).is_ok_and(|p| p.team_id == wanted) {
            return Ok(top);
        }
    }
    let teams = list(home)?;
    let key = cairn_core::ids::handle_key(wanted);
    let tiers: [&dyn Fn(&Team) -> bool; 3] = [
        &|t| t.id == wanted || t.name == wanted,
        &|t| cairn_core::ids::handle_key(&t.name) == key,
        &|t| !key.is_empty() && cairn_core::ids::handle_key(&t.name).starts_with(&key),
    ];
    for matches in tiers {
        let found: Vec<&Team> = teams.iter().filter(|t| matches(t)).collect();
        match found.as_slice() {
            [one] => return Ok(one.path.clone()),
            [] => {}
            many => {
                let names: Vec<String> = many.iter().map(|t| described(t)).collect();
                return Err(CliError::new(format!(
                    "`{wanted}` names {} teams of this home: {}",
                    many.len(),
                    names.join(", ")
                ))
                .hint("name it by its id (`cairn team list` shows them)"));
            }
        }
    }
    let err = CliError::new(format!("this home holds no team `{wanted}`"));
    Err(if teams.is_empty() {
        err.hint("start one with `cairn init --team NAME --name YOUR_NAME`, or join one with `cairn join URL --invite CODE --name YOUR_NAME`")
    } else {
        let names: Vec<String> = teams.iter().map(described).collect();
        err.hint(format!(
            "it holds {}; `cairn team list` shows them",
            names.join(", ")
        ))
    })
}

/// Whether `text` could be a team's id (and a folder's name): letters and digits only.
fn is_plain_id(text: &str) -> bool {
    !text.is_empty() && text.len() <= 64 && text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// A team as a list names it: its name and id.
fn described(t: &Team) -> String {
    if t.name.is_empty() {
        format!("a team not synced yet ({})", t.id)
    } else {
        format!("{} ({})", t.name, t.id)
    }
}

/// The error of a home with several teams and none named.
fn several(home: &Path) -> Result<CliError> {
    let teams = list(home)?;
    let names: Vec<String> = teams.iter().map(described).collect();
    Ok(CliError::new(format!(
        "this home holds {} teams and none is the default: {}",
        teams.len(),
        names.join(", ")
    ))
    .hint("pick one for this command with --team NAME, or for every command with `cairn team switch NAME`"))
}

/// Where a new team's replica goes: the top of a home that holds none yet, else its own folder.
pub fn new_team_path(home: &Path, id: &str) -> Result<PathBuf> {
    // (An id a server sent becomes a folder's name: nothing but letters and digits.)
    if !is_plain_id(id) {
        return Err(CliError::new(format!(
            "the server named the team `{}`, which is no team id",
            crate::remote::printable(id)
        ))
        .hint("is this address a cairn-server? nothing was written here")
        .kind(crate::error::Kind::Failure));
    }
    if !top(home).exists() && team_dirs(home).is_empty() {
        return Ok(top(home));
    }
    if list(home)?.iter().any(|t| t.id == id) {
        return Err(CliError::new("this home already holds that team")
            .hint("`cairn team list` shows the teams here; `cairn sync` brings what is new"));
    }
    Ok(in_teams(home, id))
}

/// The lock that keeps two syncs of one replica from running at once, beside it.
pub fn sync_lock(replica: &Path) -> PathBuf {
    replica.with_file_name("sync.lock")
}

/// Refuses the home `home` when it exists and another user owns it or others may write to it;
/// a home that does not exist yet is made private to its user when it is made.
pub fn check(home: &Path) -> Result<()> {
    check_dir(home, home)
}

/// Checks each folder from the home down to the one holding `replica` (`teams/`, `teams/ID/`),
/// as [`check`] checks the home.
pub fn check_within(home: &Path, replica: &Path) -> Result<()> {
    let Some(dir) = replica.parent() else {
        return Ok(());
    };
    for d in dir
        .ancestors()
        .take_while(|d| *d != home && d.starts_with(home))
    {
        check_dir(home, d)?;
    }
    Ok(())
}

fn check_dir(home: &Path, dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(dir) else {
            return Ok(());
        };
        let me = rustix::process::geteuid().as_raw();
        let what = if dir == home {
            "the home"
        } else {
            "the folder"
        };
        if meta.uid() != me {
            return Err(CliError::new(format!(
                "{what} {} belongs to another user (uid {}): cairn works only in a home of your own",
                dir.display(),
                meta.uid()
            ))
            .hint("point CAIRN_HOME (or --home) at a directory of your own; cairn makes it if it does not exist")
            .kind(Kind::Failure));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(CliError::new(format!(
                "{what} {} can be written by other users (mode {:o}): they could swap its files for their own",
                dir.display(),
                meta.mode() & 0o7777
            ))
            .hint(format!(
                "make it yours alone with `chmod 700 {}`, and remove what in it you did not put there",
                dir.display()
            ))
            .kind(Kind::Failure));
        }
    }
    #[cfg(not(unix))]
    let _ = (home, dir);
    Ok(())
}

/// Opens (or makes, private) the sync lock at `path` without following a link. `Ok(None)` when
/// it cannot be opened for another reason (a read-only home syncs anyway: the replica has its
/// own guard); a link or anything but a plain file is refused, untouched.
pub fn open_lock(path: &Path) -> Result<Option<std::fs::File>> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        options.mode(0o600).custom_flags(flags.bits() as i32);
    }
    let refused = |what: &str| {
        CliError::new(format!(
            "{} is {what}, where cairn keeps its sync lock",
            path.display()
        ))
        .hint("cairn follows no link in its home: if you did not make it, remove it and see who else can write to the home")
        .kind(Kind::Failure)
    };
    match options.open(path) {
        Ok(file) if file.metadata().is_ok_and(|m| m.is_file()) => Ok(Some(file)),
        Ok(_) => Err(refused("not a plain file")),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => {
            Err(refused("a symbolic link"))
        }
        Err(_) => Ok(None),
    }
}
