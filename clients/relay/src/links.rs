//! Chat users linked to cairn members: each link is a device of that member that the relay
//! holds, with a replica of its own under the relay's home (`links/<id>/replica.sqlite3`).
//!
//! The table (`links.sqlite3` in the home, readable by its owner alone) maps a chat user
//! (platform, workspace or team id, user id) to the member and device the link made, and keeps
//! the user's platform username as it was last seen (Mattermost mentions name users by it).
//! Nobody is ever found by a display name.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, Result};

/// The chat platforms whose slash commands the relay answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Platform {
    Slack,
    Mattermost,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Slack => "slack",
            Platform::Mattermost => "mattermost",
        }
    }

    /// The platform named `text` (`slack`, `mattermost`).
    pub fn parse(text: &str) -> Option<Platform> {
        match text {
            "slack" => Some(Platform::Slack),
            "mattermost" => Some(Platform::Mattermost),
            _ => None,
        }
    }
}

/// A chat user, as the platform identifies them.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ChatUser {
    pub platform: Platform,
    /// The Slack workspace's or Mattermost team's id.
    pub workspace: String,
    /// The platform's id of the user (`U0123ABC`).
    pub user: String,
}

/// A chat user linked to a member's device held by the relay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The link's id: names its directory under `links/`.
    pub id: String,
    pub chat: ChatUser,
    /// The user's platform username when last seen (never a display name).
    pub username: String,
    /// The cairn member the device belongs to.
    pub member: String,
    /// The device's id on the server.
    pub device: String,
    pub created_ms: i64,
}

/// The table of links, in the relay's home.
#[derive(Debug)]
pub struct Links {
    conn: Connection,
    home: PathBuf,
}

/// The links table's file in a home.
pub fn links_path(home: &Path) -> PathBuf {
    home.join("links.sqlite3")
}

/// Creates `dir` (and its parents) readable by its owner alone.
pub fn private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|e| Error::Io {
        what: format!("cannot create {}", dir.display()),
        source: e,
    })
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS link (
    id TEXT PRIMARY KEY,
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    user TEXT NOT NULL,
    username TEXT NOT NULL,
    member TEXT NOT NULL,
    device TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    UNIQUE (platform, workspace, user)
);
CREATE INDEX IF NOT EXISTS link_username ON link (platform, workspace, username);
";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(Link, String)> {
    let platform: String = r.get(1)?;
    Ok((
        Link {
            id: r.get(0)?,
            chat: ChatUser {
                platform: Platform::Slack,
                workspace: r.get(2)?,
                user: r.get(3)?,
            },
            username: r.get(4)?,
            member: r.get(5)?,
            device: r.get(6)?,
            created_ms: r.get(7)?,
        },
        platform,
    ))
}

const COLUMNS: &str = "id, platform, workspace, user, username, member, device, created_ms";

impl Links {
    /// Opens (creating) the links table of the relay's `home`.
    pub fn open(home: &Path) -> Result<Links> {
        private_dir(home)?;
        let path = links_path(home);
        // It says which chat user is which member: readable by its owner alone.
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(|e| Error::Io {
                    what: format!("cannot create {}", path.display()),
                    source: e,
                })?;
        }
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Links {
            conn,
            home: home.to_owned(),
        })
    }

    /// Where the replica of link `id` lives.
    pub fn replica_path(&self, id: &str) -> PathBuf {
        self.home.join("links").join(id).join("replica.sqlite3")
    }

    /// A fresh link id, with its directory created (0700).
    pub fn new_dir(&self) -> Result<String> {
        let bytes: [u8; 8] = cairn_client::write::random_bytes()
            .map_err(|e| Error::Queue(format!("no link id: {e}")))?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        private_dir(&self.home.join("links").join(&id))?;
        Ok(id)
    }

    /// Removes link `id`'s directory and what is in it.
    pub fn remove_dir(&self, id: &str) -> Result<()> {
        // An id is hex, never a path: checked so a bad row cannot reach outside `links/`.
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Queue(format!("{id:?} is not a link id")));
        }
        let dir = self.home.join("links").join(id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::Io {
                what: format!("cannot remove {}", dir.display()),
                source: e,
            }),
        }
    }

    fn one(&self, sql: &str, args: impl rusqlite::Params) -> Result<Option<Link>> {
        let found = self.conn.query_row(sql, args, row).optional()?;
        Ok(found.and_then(|(mut link, platform)| {
            link.chat.platform = Platform::parse(&platform)?;
            Some(link)
        }))
    }

    /// The link of chat user `chat`.
    pub fn by_user(&self, chat: &ChatUser) -> Result<Option<Link>> {
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM link WHERE platform = ?1 AND workspace = ?2 AND user = ?3"
            ),
            params![chat.platform.as_str(), chat.workspace, chat.user],
        )
    }

    /// The link of the user whose platform username in `workspace` is `username` (as last
    /// seen; case-insensitive, as both platforms treat them).
    pub fn by_username(
        &self,
        platform: Platform,
        workspace: &str,
        username: &str,
    ) -> Result<Option<Link>> {
        self.one(
            &format!(
                "SELECT {COLUMNS} FROM link WHERE platform = ?1 AND workspace = ?2 \
                 AND username = ?3 COLLATE NOCASE AND username <> '' \
                 ORDER BY created_ms DESC LIMIT 1"
            ),
            params![platform.as_str(), workspace, username],
        )
    }

    /// Every link.
    pub fn all(&self) -> Result<Vec<Link>> {
        let mut st = self
            .conn
            .prepare(&format!("SELECT {COLUMNS} FROM link ORDER BY created_ms"))?;
        let rows = st.query_map([], row)?;
        let mut out = Vec::new();
        for r in rows {
            let (mut link, platform) = r?;
            if let Some(p) = Platform::parse(&platform) {
                link.chat.platform = p;
                out.push(link);
            }
        }
        Ok(out)
    }

    /// Records `link`. A username another link of the same workspace had is taken from it
    /// (usernames are unique on a platform at any one time: the older one is stale).
    pub fn add(&mut self, link: &Link) -> Result<()> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE link SET username = '' WHERE platform = ?1 AND workspace = ?2 \
             AND username = ?3 COLLATE NOCASE",
            params![
                link.chat.platform.as_str(),
                link.chat.workspace,
                link.username
            ],
        )?;
        tx.execute(
            &format!("INSERT INTO link ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
            params![
                link.id,
                link.chat.platform.as_str(),
                link.chat.workspace,
                link.chat.user,
                link.username,
                link.member,
                link.device,
                link.created_ms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records that `chat` is called `username` now (they typed a command under it).
    pub fn seen_as(&mut self, chat: &ChatUser, username: &str) -> Result<()> {
        if username.is_empty() {
            return Ok(());
        }
        let tx = self.conn.transaction()?;
        tx.execute(
            "UPDATE link SET username = '' WHERE platform = ?1 AND workspace = ?2 \
             AND username = ?3 COLLATE NOCASE AND user <> ?4",
            params![chat.platform.as_str(), chat.workspace, username, chat.user],
        )?;
        tx.execute(
            "UPDATE link SET username = ?4 WHERE platform = ?1 AND workspace = ?2 AND user = ?3",
            params![chat.platform.as_str(), chat.workspace, chat.user, username],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Removes the link of `chat`; returns it.
    pub fn remove(&mut self, chat: &ChatUser) -> Result<Option<Link>> {
        let Some(link) = self.by_user(chat)? else {
            return Ok(None);
        };
        self.conn
            .execute("DELETE FROM link WHERE id = ?1", params![link.id])?;
        Ok(Some(link))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(id: &str, user: &str, username: &str, at: i64) -> Link {
        Link {
            id: id.into(),
            chat: ChatUser {
                platform: Platform::Mattermost,
                workspace: "T1".into(),
                user: user.into(),
            },
            username: username.into(),
            member: format!("m-{user}"),
            device: format!("d-{user}"),
            created_ms: at,
        }
    }

    #[test]
    fn a_username_belongs_to_one_link_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut links = Links::open(dir.path()).unwrap();
        links.add(&link("aa", "u1", "ben", 1)).unwrap();
        let found = links
            .by_username(Platform::Mattermost, "T1", "Ben")
            .unwrap()
            .unwrap();
        assert_eq!(found.chat.user, "u1");
        // Another workspace, another platform: nobody.
        assert!(
            links
                .by_username(Platform::Mattermost, "T2", "ben")
                .unwrap()
                .is_none()
        );
        assert!(
            links
                .by_username(Platform::Slack, "T1", "ben")
                .unwrap()
                .is_none()
        );
        // u1 renamed, and u2 now goes by "ben": the name leads to u2 only.
        links.add(&link("bb", "u2", "ben", 2)).unwrap();
        assert_eq!(
            links
                .by_username(Platform::Mattermost, "T1", "ben")
                .unwrap()
                .unwrap()
                .chat
                .user,
            "u2"
        );
        links
            .seen_as(&link("", "u1", "", 0).chat, "benjamin")
            .unwrap();
        assert_eq!(
            links
                .by_username(Platform::Mattermost, "T1", "benjamin")
                .unwrap()
                .unwrap()
                .id,
            "aa"
        );
        // A second link of the same chat user is refused by the table.
        assert!(links.add(&link("cc", "u1", "x", 3)).is_err());
        assert_eq!(
            links
                .remove(&link("", "u1", "", 0).chat)
                .unwrap()
                .unwrap()
                .id,
            "aa"
        );
        assert_eq!(links.all().unwrap().len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn the_table_and_link_dirs_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let links = Links::open(&home).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&links_path(&home)), 0o600);
        let id = links.new_dir().unwrap();
        assert_eq!(mode(&home.join("links").join(&id)), 0o700);
        assert!(links.remove_dir("../x").is_err());
        links.remove_dir(&id).unwrap();
        assert!(!home.join("links").join(&id).exists());
    }
}
