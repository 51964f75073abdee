//! The replica's schema and its append-only migrations.
//!
//! `PRAGMA user_version` holds how many migrations ran. A migration, once landed, is never edited:
//! a change of schema is a new entry at the end.

/// The triggers that kept `member_days` at schema 6 (migration 6 holds them; 7 replaces them).
macro_rules! member_days_triggers_6 {
    () => {
        r#"
    CREATE TRIGGER member_days_insert AFTER INSERT ON events
    WHEN NEW.kind IN ('action', 'kudos') AND NEW.retracted = 0
    BEGIN
        INSERT INTO member_days (author, date, acts) VALUES (NEW.author, NEW.date, 1)
        ON CONFLICT (author, date) DO UPDATE SET acts = acts + 1;
    END;
    CREATE TRIGGER member_days_delete AFTER DELETE ON events
    WHEN OLD.kind IN ('action', 'kudos') AND OLD.retracted = 0
    BEGIN
        UPDATE member_days SET acts = acts - 1 WHERE author = OLD.author AND date = OLD.date;
        DELETE FROM member_days WHERE author = OLD.author AND date = OLD.date AND acts <= 0;
    END;
    CREATE TRIGGER member_days_update
    AFTER UPDATE OF author, date, kind, retracted ON events
    BEGIN
        UPDATE member_days SET acts = acts - 1
        WHERE author = OLD.author AND date = OLD.date
          AND OLD.kind IN ('action', 'kudos') AND OLD.retracted = 0;
        DELETE FROM member_days WHERE author = OLD.author AND date = OLD.date AND acts <= 0;
        INSERT INTO member_days (author, date, acts)
        SELECT NEW.author, NEW.date, 1 WHERE NEW.kind IN ('action', 'kudos') AND NEW.retracted = 0
        ON CONFLICT (author, date) DO UPDATE SET acts = acts + 1;
    END;
"#
    };
}

/// Whether the row of `events` (columns prefixed by `$row`: `""`, `"NEW."`, `"OLD."`) counts
/// as an act: a micro-action or a recognition, not retracted ([`cairn_core::Event::counts`]).
macro_rules! counts_as_act {
    ($row:literal) => {
        concat!(
            $row,
            "kind IN ('action', 'kudos') AND ",
            $row,
            "retracted = 0"
        )
    };
}

/// The Monday that starts the week of the date in column `$date` (`''` for anything but a
/// `YYYY-MM-DD` date, which Rust would not read either): the weekly team streak's period.
macro_rules! week_of {
    ($date:literal) => {
        concat!(
            "coalesce(CASE WHEN date(",
            $date,
            ") IS ",
            $date,
            " THEN date(",
            $date,
            ", 'weekday 0', '-6 days') END, '')"
        )
    };
}

/// The triggers that keep `member_days` in step with every row written to `events` (a macro, so
/// migration 7 can hold them too).
macro_rules! member_days_triggers {
    () => {
        concat!(
            r#"
    CREATE TRIGGER member_days_insert AFTER INSERT ON events
    WHEN "#,
            counts_as_act!("NEW."),
            r#"
    BEGIN
        INSERT INTO member_days (author, date, week, acts)
        VALUES (NEW.author, NEW.date, "#,
            week_of!("NEW.date"),
            r#", 1)
        ON CONFLICT (author, date) DO UPDATE SET acts = acts + 1;
    END;
    CREATE TRIGGER member_days_delete AFTER DELETE ON events
    WHEN "#,
            counts_as_act!("OLD."),
            r#"
    BEGIN
        UPDATE member_days SET acts = acts - 1 WHERE author = OLD.author AND date = OLD.date;
        DELETE FROM member_days WHERE author = OLD.author AND date = OLD.date AND acts <= 0;
    END;
    CREATE TRIGGER member_days_update
    AFTER UPDATE OF author, date, kind, retracted ON events
    BEGIN
        UPDATE member_days SET acts = acts - 1
        WHERE author = OLD.author AND date = OLD.date AND "#,
            counts_as_act!("OLD."),
            r#";
        DELETE FROM member_days WHERE author = OLD.author AND date = OLD.date AND acts <= 0;
        INSERT INTO member_days (author, date, week, acts)
        SELECT NEW.author, NEW.date, "#,
            week_of!("NEW.date"),
            r#", 1
        WHERE "#,
            counts_as_act!("NEW."),
            r#"
        ON CONFLICT (author, date) DO UPDATE SET acts = acts + 1;
    END;
"#
        )
    };
}

pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: documents, outbox and the derived index.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
    -- One automerge actor per member writing from this device; never reused elsewhere.
    CREATE TABLE actors (member TEXT PRIMARY KEY, actor BLOB NOT NULL) STRICT;
    -- Each document is a compacted snapshot plus the chunks of changes written since.
    CREATE TABLE docs (
        id TEXT PRIMARY KEY,
        snapshot BLOB NOT NULL,
        chunks INTEGER NOT NULL DEFAULT 0,
        chunk_bytes INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE TABLE chunks (
        doc TEXT NOT NULL,
        seq INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (doc, seq)
    ) STRICT;
    -- Changes made here that the server has not acknowledged yet.
    CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        doc TEXT NOT NULL,
        hash BLOB NOT NULL,
        change BLOB NOT NULL
    ) STRICT;

    -- The index: derived from the documents, rebuilt from them at will.
    CREATE TABLE members (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        handle TEXT NOT NULL,
        joined_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX members_handle ON members (handle);
    CREATE TABLE pillars (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        about TEXT,
        ord INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE commitments (
        id TEXT PRIMARY KEY,
        text TEXT NOT NULL,
        why TEXT NOT NULL,
        by TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        tag TEXT NOT NULL,
        doc TEXT NOT NULL,
        kind TEXT NOT NULL,
        author TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        tz TEXT NOT NULL,
        date TEXT NOT NULL,
        late INTEGER NOT NULL,
        pillar TEXT,
        text TEXT NOT NULL,
        why TEXT,
        target TEXT,
        emoji TEXT,
        retracted INTEGER NOT NULL,
        edited_ms INTEGER
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX events_tag ON events (tag);
    CREATE INDEX events_doc ON events (doc);
    CREATE INDEX events_target ON events (target) WHERE target IS NOT NULL;
    CREATE INDEX events_author ON events (author, id);
    CREATE INDEX events_pillar ON events (pillar, id);
    CREATE TABLE recipients (
        event TEXT NOT NULL,
        ord INTEGER NOT NULL,
        member TEXT NOT NULL,
        PRIMARY KEY (event, ord)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX recipients_member ON recipients (member, event);
    "#,
    // 2: who was active on which local date, for streaks, without reading the events.
    r#"
    CREATE INDEX events_activity ON events (author, date, kind, retracted);
    "#,
    // 3: the team's challenges; the team document is indexed again after this one.
    r#"
    CREATE TABLE challenges (
        id TEXT PRIMARY KEY,
        title TEXT NOT NULL,
        metric TEXT NOT NULL,
        target INTEGER NOT NULL,
        start TEXT NOT NULL,
        until TEXT NOT NULL,
        ord INTEGER NOT NULL
    ) STRICT;
    "#,
    // 4: an event is its author's: two members' events with one id are kept apart (the random
    // part of an id is its author's to choose, so a teammate could pick someone else's). Changes
    // waiting for the changes they depend on, changes set aside because they do not apply, and
    // changes the server's admin withdrew are kept beside the documents, never inside them. The
    // index is rebuilt from the documents after this one.
    r#"
    DROP TABLE recipients;
    DROP TABLE events;
    CREATE TABLE events (
        id TEXT NOT NULL,
        tag TEXT NOT NULL,
        doc TEXT NOT NULL,
        kind TEXT NOT NULL,
        author TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        tz TEXT NOT NULL,
        date TEXT NOT NULL,
        late INTEGER NOT NULL,
        pillar TEXT,
        text TEXT NOT NULL,
        why TEXT,
        target TEXT,
        emoji TEXT,
        retracted INTEGER NOT NULL,
        edited_ms INTEGER,
        PRIMARY KEY (id, author)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX events_tag ON events (tag);
    CREATE INDEX events_doc ON events (doc);
    CREATE INDEX events_target ON events (target) WHERE target IS NOT NULL;
    CREATE INDEX events_author ON events (author, id);
    CREATE INDEX events_pillar ON events (pillar, id);
    CREATE INDEX events_activity ON events (author, date, kind, retracted);
    CREATE TABLE recipients (
        event TEXT NOT NULL,
        author TEXT NOT NULL,
        ord INTEGER NOT NULL,
        member TEXT NOT NULL,
        PRIMARY KEY (event, author, ord)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX recipients_member ON recipients (member, event, author);
    CREATE TABLE waiting (
        hash BLOB PRIMARY KEY,
        doc TEXT NOT NULL,
        change BLOB NOT NULL
    ) STRICT;
    CREATE INDEX waiting_doc ON waiting (doc);
    CREATE TABLE set_aside (
        hash BLOB PRIMARY KEY,
        doc TEXT NOT NULL,
        change BLOB NOT NULL,
        reason TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE TABLE withdrawn (
        hash BLOB PRIMARY KEY,
        doc TEXT NOT NULL,
        at_ms INTEGER NOT NULL
    ) STRICT;
    "#,
    // 5: members who left, and placeholders merged into a member; the team document is indexed
    // again after this one.
    r#"
    ALTER TABLE members ADD COLUMN left_ms INTEGER;
    ALTER TABLE members ADD COLUMN merged_into TEXT;
    "#,
    // 6: the days each member acted (micro-actions and recognitions, not retracted), kept by
    // triggers on `events` whichever way its rows change: streaks and the heatmap read these
    // instead of every event.
    concat!(
        r#"
    CREATE TABLE member_days (
        author TEXT NOT NULL,
        date TEXT NOT NULL,
        acts INTEGER NOT NULL,
        PRIMARY KEY (author, date)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO member_days (author, date, acts)
        SELECT author, date, count(*) FROM events
        WHERE kind IN ('action', 'kudos') AND retracted = 0
        GROUP BY author, date;
    "#,
        member_days_triggers_6!()
    ),
    // 7: the Monday of each member's day, with an index by it, so the heatmap reads only the
    // weeks it shows; `member_weeks`, kept by triggers on `member_days`, so the weekly team
    // streak reads a row per member and week.
    concat!(
        r#"
    DROP TRIGGER member_days_insert;
    DROP TRIGGER member_days_delete;
    DROP TRIGGER member_days_update;
    ALTER TABLE member_days ADD COLUMN week TEXT NOT NULL DEFAULT '';
    UPDATE member_days SET week = "#,
        week_of!("date"),
        r#";
    CREATE INDEX member_days_week ON member_days (week);
    CREATE TABLE member_weeks (
        author TEXT NOT NULL,
        week TEXT NOT NULL,
        days INTEGER NOT NULL,
        PRIMARY KEY (author, week)
    ) STRICT, WITHOUT ROWID;
    INSERT INTO member_weeks (author, week, days)
        SELECT author, week, count(*) FROM member_days GROUP BY author, week;
    CREATE TRIGGER member_weeks_insert AFTER INSERT ON member_days
    BEGIN
        INSERT INTO member_weeks (author, week, days) VALUES (NEW.author, NEW.week, 1)
        ON CONFLICT (author, week) DO UPDATE SET days = days + 1;
    END;
    CREATE TRIGGER member_weeks_delete AFTER DELETE ON member_days
    BEGIN
        UPDATE member_weeks SET days = days - 1 WHERE author = OLD.author AND week = OLD.week;
        DELETE FROM member_weeks WHERE author = OLD.author AND week = OLD.week AND days <= 0;
    END;
    "#,
        member_days_triggers!()
    ),
    // 8: placeholders (members added by a teammate before they joined) and when they arrived:
    // they count in the team's figures only from then; the team document is indexed again
    // after this one.
    r#"
    ALTER TABLE members ADD COLUMN placeholder INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE members ADD COLUMN arrived_ms INTEGER;
    "#,
    // 9: a retraction is no edit (it writes `retracted_at`); the journals an older cairn indexed
    // with a retraction's time as an edit's are indexed again after this one.
    "-- (no change of schema)",
    // 10: what withdrawals removed, kept for review: the bytes of each change that left beside
    // its hash (none for a change never held here), and each notice with what it did, or what
    // it would have removed when it was held back.
    r#"
    ALTER TABLE withdrawn ADD COLUMN change BLOB;
    CREATE TABLE withdrawals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        doc TEXT NOT NULL,
        at_ms INTEGER NOT NULL,
        named INTEGER NOT NULL,
        dropped INTEGER NOT NULL,
        refused INTEGER NOT NULL,
        redone INTEGER NOT NULL,
        held TEXT,
        what TEXT NOT NULL
    ) STRICT;
    "#,
    // 11: whether each member may be named in chat, as they set it (NULL: never set, named);
    // the team document is indexed again after this one.
    r#"
    ALTER TABLE members ADD COLUMN chat INTEGER;
    "#,
    // 12: the organisation's non-negotiable an act honours (its id), for the digest and the
    // figures a team shares; the journals are indexed again after this one (a replica of an
    // older cairn took in the acts of newer ones without it).
    r#"
    ALTER TABLE events ADD COLUMN honours TEXT;
    CREATE INDEX events_honours ON events (honours, date) WHERE honours IS NOT NULL;
    "#,
];

/// The triggers that keep `member_days`; [`crate::index::DaysPaused`] lifts them while a
/// transaction indexes many documents.
pub(crate) const MEMBER_DAYS_TRIGGERS: &str = member_days_triggers!();

/// The days each member acted, counted from `events`: what `member_days` holds (a macro, so the
/// statements below can be constants).
macro_rules! counted_days {
    ($where:literal) => {
        concat!(
            "SELECT author, date, ",
            week_of!("date"),
            " AS week, count(*) AS acts FROM events WHERE ",
            $where,
            " AND ",
            counts_as_act!(""),
            " GROUP BY author, date"
        )
    };
}

/// The days each member acted, counted from `events` (author, date, week, acts).
pub(crate) const COUNTED_DAYS: &str = counted_days!("1");

/// The weeks each member acted, counted from `member_days`: what `member_weeks` holds.
macro_rules! counted_weeks {
    () => {
        "SELECT author, week, count(*) AS days FROM member_days GROUP BY author, week"
    };
}

/// The weeks each member acted, counted from `member_days` (author, week, days).
pub(crate) const COUNTED_WEEKS: &str = counted_weeks!();

/// Builds `member_days` and then `member_weeks` again from `events`, for after a rebuild of the
/// index (the weeks come last, so they are right whether the triggers on `member_days` were
/// there or not).
pub(crate) const MEMBER_DAYS_REBUILD: &str = concat!(
    "DELETE FROM member_days; INSERT INTO member_days (author, date, week, acts) ",
    counted_days!("1"),
    "; DELETE FROM member_weeks; INSERT INTO member_weeks (author, week, days) ",
    counted_weeks!(),
    ";"
);

/// Counts the days of one author (`?1`) again from `events`, once their rows are deleted.
pub(crate) const MEMBER_DAYS_OF_AUTHOR: &str = concat!(
    "INSERT INTO member_days (author, date, week, acts) ",
    counted_days!("author = ?1"),
);

/// The instants and dates of member `?1`'s acts logged at the time: the travel rule's input.
pub(crate) const TRAVEL_STAMPS: &str = concat!(
    "SELECT at_ms, date FROM events WHERE author = ?1 AND ",
    counts_as_act!(""),
    " AND late = 0"
);

/// Every act, in (event, author) order: the rows of [`crate::Replica::acts`].
pub(crate) const ACTS: &str = concat!(
    "SELECT id, author, date, kind, pillar FROM events WHERE ",
    counts_as_act!(""),
    " ORDER BY id, author"
);

/// The date and non-negotiable of every act that honoured one, by someone of the team (an act
/// given from another team, authored `@handle@team`, is theirs): the rows of
/// [`crate::Replica::honoured`].
pub(crate) const HONOURED: &str = concat!(
    "SELECT date, honours FROM events WHERE honours IS NOT NULL AND ",
    counts_as_act!(""),
    " AND author NOT LIKE '@%' ORDER BY date, honours"
);

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// Test-only, in debug builds: with `CAIRN_TEST_PAUSE_MIGRATION` set, a replica's migration
/// stops once all of it ran (its statements, its version and the indexing again), before the
/// transaction commits, says `paused in migration` on stdout and waits to be killed, so that a
/// test kills `cairn` mid-migration without guessing at timing. The one place this library
/// writes to stdout or blocks for ever: release builds have none of it.
pub(crate) fn pause_in_migration() {
    #[cfg(debug_assertions)]
    if std::env::var_os("CAIRN_TEST_PAUSE_MIGRATION").is_some() {
        use std::io::Write as _;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "paused in migration");
        let _ = out.flush();
        drop(out);
        loop {
            std::thread::park();
        }
    }
}
