//! The replica's file: made whole or not at all, private to its owner, opened and migrated.
//!
//! No link is followed: the replica is opened with `SQLITE_OPEN_NOFOLLOW` (SQLite's own files
//! beside it, `-wal`, `-shm` and `-journal`, are opened with `O_NOFOLLOW` by SQLite itself),
//! and each of them is looked at without following links (`lstat`) before anything opens or
//! tightens it: a link or anything but a plain file is refused untouched, and permissions are
//! tightened through a descriptor opened with `O_NOFOLLOW` (`fchmod`), never by path.

use std::path::{Path, PathBuf};

use cairn_core::ids::TEAM_DOC;
use cairn_core::team;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Transaction, TransactionBehavior};

use crate::docs::load_doc;
use crate::doctor::reindex_all;
use crate::{Error, NewTeam, Peek, Replica, Result, SCHEMA_VERSION, index, schema, set_meta};

impl Replica {
    /// Creates a new replica at `path` holding a new team; fails if one exists.
    pub fn create(path: &Path, new: &NewTeam) -> Result<Replica> {
        Self::create_with(path, |tx| {
            set_meta(tx, "team_id", &new.team_id)?;
            set_meta(tx, "me", &new.member_id)?;
            Self::change_in(tx, TEAM_DOC, &new.member_id, |doc| {
                team::init(
                    doc,
                    &new.team_name,
                    &new.tz,
                    &new.member_name,
                    &new.handle,
                    &new.member_id,
                    new.at_ms,
                )
            })?;
            Ok(())
        })
    }

    /// Creates a replica at `path` whose first transaction is `fill`; fails if one exists.
    pub(crate) fn create_with(
        path: &Path,
        fill: impl FnOnce(&Transaction<'_>) -> Result<()>,
    ) -> Result<Replica> {
        if path.exists() || sidecar(path, "-wal").exists() {
            return Err(Error::Exists(path.to_owned()));
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.exists()
        {
            // The home holds the device token: only its owner may look inside.
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(dir).map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                detail: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        // Build the whole replica under a name of its own, then link it into place, so a crash
        // during `init` never leaves a half-made replica behind and two `init`s at once cannot
        // overwrite each other (linking fails when the target exists).
        let tmp = sidecar(path, &format!(".creating-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let built = (|| {
            // Made 0600 before SQLite opens it (SQLite gives its -wal and -shm files the same
            // mode): the replica holds the device token.
            private_file(&tmp).map_err(|e| Error::Corrupt {
                path: path.to_owned(),
                detail: format!("cannot create {}: {e}", tmp.display()),
            })?;
            let conn = Connection::open_with_flags(&tmp, OpenFlags::default() | NOFOLLOW)?;
            let mut replica = Replica {
                conn,
                path: path.to_owned(),
                wal: false,
                checkpointer: None,
            };
            replica.configure()?;
            replica.migrate()?;
            let tx = replica
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?;
            fill(&tx)?;
            tx.commit()?;
            replica
                .conn
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
            Ok::<_, Error>(())
        })();
        let linked = built.and_then(|()| {
            std::fs::hard_link(&tmp, path).map_err(|e| {
                if e.kind() == std::io::ErrorKind::AlreadyExists {
                    Error::Exists(path.to_owned())
                } else {
                    Error::Corrupt {
                        path: path.to_owned(),
                        detail: format!("cannot put the new replica in place: {e}"),
                    }
                }
            })
        });
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(sidecar(&tmp, suffix));
        }
        linked?;
        Replica::open(path)
    }

    /// Which team the replica at `path` holds, read without opening it for work (no migration,
    /// no write): for a home that holds several teams to tell them apart.
    pub fn peek(path: &Path) -> Result<Peek> {
        if !path.exists() {
            return Err(Error::Missing(path.to_owned()));
        }
        for suffix in SIDECARS {
            plain(&sidecar(path, suffix))?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let meta = |key: &str| -> Result<Option<String>> {
            Ok(conn
                .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
                .optional()?)
        };
        let Some(team_id) = meta("team_id")? else {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                detail: "it names no team".to_owned(),
            });
        };
        Ok(Peek {
            team_id,
            team_name: meta("team_name")?.unwrap_or_default(),
            server_url: meta("server_url")?,
        })
    }

    /// Opens an existing replica, migrating an older schema forward.
    pub fn open(path: &Path) -> Result<Replica> {
        if !path.exists() {
            return Err(Error::Missing(path.to_owned()));
        }
        // Only a file that is not a database, or a damaged one, is "corrupt"; permissions, a full
        // disk or an I/O error are reported as they are, so nobody replaces a good replica.
        let corrupt = |e: rusqlite::Error| match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
                Error::Corrupt {
                    path: path.to_owned(),
                    detail: e.to_string(),
                }
            }
            _ => Error::from(e),
        };
        // Replicas made before they were private become so now; a link is refused untouched.
        for suffix in SIDECARS {
            let file = sidecar(path, suffix);
            if plain(&file)?.is_some_and(|mode| mode & 0o077 != 0) {
                tighten(&file);
            }
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | NOFOLLOW;
        let conn = Connection::open_with_flags(path, flags).map_err(corrupt)?;
        let mut replica = Replica {
            conn,
            path: path.to_owned(),
            wal: false,
            checkpointer: None,
        };
        replica.configure().map_err(|e| match e {
            Error::Sqlite(e) => corrupt(e),
            other => other,
        })?;
        let version: i64 = replica
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(corrupt)?;
        if version > SCHEMA_VERSION {
            return Err(Error::TooNew {
                path: path.to_owned(),
                found: version,
                known: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                detail: "not a cairn replica".to_owned(),
            });
        }
        if version < SCHEMA_VERSION {
            replica.migrate()?;
        }
        let me: Option<String> = replica
            .conn
            .query_row("SELECT value FROM meta WHERE key = 'me'", [], |r| r.get(0))
            .optional()
            .map_err(corrupt)?;
        if me.is_none() {
            return Err(Error::Corrupt {
                path: path.to_owned(),
                detail: "it names no member".to_owned(),
            });
        }
        Ok(replica)
    }

    fn configure(&mut self) -> Result<()> {
        self.conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // WAL keeps readers and the writer apart; NORMAL sync in WAL mode never corrupts, and a
        // power loss can cost only the last transactions.
        // A file system without shared memory keeps the rollback journal: just as safe.
        let mode: String = self
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        self.wal = mode.eq_ignore_ascii_case("wal");
        self.conn.execute_batch("PRAGMA synchronous = NORMAL;")?;
        Ok(())
    }

    fn migrate(&mut self) -> Result<()> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        // A catch-up in bulk cut between pages by an older cairn lifted indexes and triggers of
        // its own schema: they come back, as that cairn would have put them, before the schema
        // moves on (the catch-up then goes on page by page).
        if (1..SCHEMA_VERSION).contains(&version) {
            crate::sync::end_bulk(&tx)?;
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        // Schema 4 keys events by id and author, schema 12 the non-negotiable an act honours
        // (which an older cairn's index left out of the acts newer ones wrote): the whole
        // index is made again.
        if (1..12).contains(&version) {
            reindex_all(&tx)?;
        }
        // Schemas 3, 5, 8 and 11 index more of the team document (rules and challenges;
        // members who left or were merged; placeholders and their arrival; who may be named in
        // chat): fill them from it.
        if (1..11).contains(&version) {
            let has_team: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM docs WHERE id = ?1)",
                [TEAM_DOC],
                |r| r.get(0),
            )?;
            if has_team {
                let doc = load_doc(&tx, TEAM_DOC)?;
                index::reindex_team(&tx, &doc)?;
            }
        }
        // Schema 9 reads a retraction as no edit: the journals holding one that the index took
        // for an edit are read again (only those: a few documents, not the whole history).
        if (1..9).contains(&version) {
            let docs: Vec<String> = tx
                .prepare(
                    "SELECT DISTINCT doc FROM events WHERE retracted = 1 AND edited_ms IS NOT NULL",
                )?
                .query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            for doc_id in docs {
                let doc = load_doc(&tx, &doc_id)?;
                index::reindex_doc(&tx, &doc_id, &doc)?;
            }
        }
        schema::pause_in_migration();
        tx.commit()?;
        Ok(())
    }
}

/// Creates an empty file only its owner can read and write.
fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path).map(drop)
}

/// SQLite's flag that refuses a database path that is a symbolic link.
const NOFOLLOW: OpenFlags = OpenFlags::SQLITE_OPEN_NOFOLLOW;

/// The replica and the files SQLite keeps beside it.
const SIDECARS: [&str; 4] = ["", "-wal", "-shm", "-journal"];

/// The permission bits of the file at `path` when it is a plain file (`None` when there is no
/// file), read without following a link; a link or anything else is an error.
fn plain(path: &Path) -> Result<Option<u32>> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        // (Opening it says what is wrong.)
        Err(_) => return Ok(Some(0)),
    };
    let what = if meta.file_type().is_symlink() {
        "a symbolic link"
    } else if !meta.is_file() {
        "not a plain file"
    } else {
        #[cfg(unix)]
        return Ok(Some(std::os::unix::fs::PermissionsExt::mode(
            &meta.permissions(),
        )));
        #[cfg(not(unix))]
        return Ok(Some(0));
    };
    Err(Error::NotAFile {
        path: path.to_owned(),
        what,
    })
}

/// Takes group and other permissions off the plain file at `path`, through a descriptor that
/// follows no link (`fchmod`): a link put there meanwhile is never followed.
fn tighten(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let Ok(file) = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(path)
        else {
            return;
        };
        if let Ok(meta) = file.metadata()
            && meta.is_file()
        {
            let mode = meta.permissions().mode();
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700));
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// `path` with `suffix` added to its file name (`replica.sqlite3-wal`).
fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
