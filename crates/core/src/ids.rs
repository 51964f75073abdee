//! Identifiers: events, members and documents.
//!
//! An event id is 18 characters of lowercase Crockford base32: ten for the creation instant in
//! milliseconds, so ids sort by time, then eight random ones (its *tag*). People type the tag, or
//! a prefix of it; the full id is always accepted too.

use std::fmt;

use sha2::Digest as _;

const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
/// Characters of the time part of an event id.
pub const TIME_CHARS: usize = 10;
/// Characters of the random part (the tag) of an event id.
pub const TAG_CHARS: usize = 8;
/// How many characters of the tag the feed shows.
pub const SHORT_CHARS: usize = 6;

/// The id of the team document inside a replica.
pub const TEAM_DOC: &str = "team";

fn encode(mut value: u64, chars: usize, out: &mut String) {
    let mut buf = vec![0u8; chars];
    for slot in buf.iter_mut().rev() {
        *slot = ALPHABET[(value & 31) as usize];
        value >>= 5;
    }
    out.extend(buf.iter().map(|&b| b as char));
}

/// Encodes `bytes` of randomness as lowercase Crockford base32 (5 bits a character).
pub fn random_text(bytes: &[u8], chars: usize) -> String {
    let mut acc: u128 = 0;
    for &b in bytes.iter().take(16) {
        acc = (acc << 8) | u128::from(b);
    }
    let mut out = String::with_capacity(chars);
    for i in (0..chars).rev() {
        out.push(ALPHABET[((acc >> (5 * i)) & 31) as usize] as char);
    }
    out
}

/// True when `s` is made only of characters of the id alphabet.
pub fn is_id_text(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| IN_ALPHABET[b as usize])
}

/// Which bytes are characters of the id alphabet (every key of every journal is checked).
const IN_ALPHABET: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < ALPHABET.len() {
        table[ALPHABET[i] as usize] = true;
        i += 1;
    }
    table
};

/// The id of an event.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct EventId(String);

impl EventId {
    /// Makes the id of an event created at `at_ms` (UTC milliseconds) with five random bytes.
    pub fn new(at_ms: i64, random: [u8; 5]) -> Self {
        let mut s = String::with_capacity(TIME_CHARS + TAG_CHARS);
        encode(at_ms.max(0) as u64, TIME_CHARS, &mut s);
        s.push_str(&random_text(&random, TAG_CHARS));
        EventId(s)
    }

    /// Parses a full event id.
    pub fn parse(s: &str) -> Option<Self> {
        (s.len() == TIME_CHARS + TAG_CHARS && is_id_text(s)).then(|| EventId(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The random part, which people type to name the event.
    pub fn tag(&self) -> &str {
        &self.0[TIME_CHARS..]
    }

    /// The short form shown in the feed.
    pub fn short(&self) -> &str {
        &self.tag()[..SHORT_CHARS]
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The id of the journal holding `member`'s events of the UTC month `yyyy_mm` (`2026-11`).
pub fn journal_doc(member: &str, yyyy_mm: &str) -> String {
    format!("j/{member}/{yyyy_mm}")
}

/// The member a journal document belongs to, if `doc_id` names a journal.
pub fn journal_owner(doc_id: &str) -> Option<&str> {
    let rest = doc_id.strip_prefix("j/")?;
    let (member, _month) = rest.rsplit_once('/')?;
    Some(member)
}

/// The id of the journal, in an organisation's log, holding what `member` of `team` gave across
/// teams in the UTC month `yyyy_mm` (see [`crate::across`]).
pub fn across_doc(team: &str, member: &str, yyyy_mm: &str) -> String {
    format!("x/{team}/{member}/{yyyy_mm}")
}

/// The (team, member) whose journal of kudos across teams `doc_id` names, if it names one.
pub fn across_owner(doc_id: &str) -> Option<(&str, &str)> {
    let rest = doc_id.strip_prefix("x/")?;
    let (team, rest) = rest.split_once('/')?;
    let (member, month) = rest.rsplit_once('/')?;
    (is_team_id(team) && is_member_id(member) && is_month(month)).then_some((team, member))
}

/// The id of the document, in an organisation's log, holding what team `team` shares upward
/// (see [`crate::figures`]).
pub fn shared_doc(team: &str) -> String {
    format!("s/{team}")
}

/// The team whose shared document `doc_id` names, if it names one.
pub fn shared_owner(doc_id: &str) -> Option<&str> {
    doc_id.strip_prefix("s/").filter(|t| is_team_id(t))
}

/// True when `doc` names a document of an organisation's log other than its own: a journal of
/// kudos across teams or a team's shared document.
pub fn is_org_doc_id(doc: &str) -> bool {
    across_owner(doc).is_some() || shared_owner(doc).is_some()
}

/// A team's id: 1 to 64 characters of the id alphabet.
fn is_team_id(s: &str) -> bool {
    s.len() <= 64 && is_id_text(s)
}

/// A member's id: 1 to 64 ASCII letters, digits, `-` or `_`.
fn is_member_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
}

/// `YYYY-MM`.
fn is_month(m: &str) -> bool {
    let m = m.as_bytes();
    m.len() == 7
        && m[4] == b'-'
        && m.iter()
            .enumerate()
            .all(|(i, b)| i == 4 || b.is_ascii_digit())
}

/// True when `doc` names a document a replica may hold: `team`, `j/<member>/<YYYY-MM>`, or in
/// an organisation's log one of [`is_org_doc_id`]'s.
pub fn is_doc_id(doc: &str) -> bool {
    if doc == TEAM_DOC || is_org_doc_id(doc) {
        return true;
    }
    let Some(member) = journal_owner(doc) else {
        return false;
    };
    let month = &doc[2 + member.len() + 1..];
    !member.contains('/') && is_member_id(member) && is_month(month)
}

/// True when the checksum in an automerge change's header (bytes 4..8) matches its hash, whose
/// first four bytes it is. `automerge::Change::from_bytes` does not check it, so a change damaged
/// in transit would otherwise pass for another change.
pub fn checksum_ok(raw: &[u8], hash: &[u8; 32]) -> bool {
    raw.len() >= 8 && raw[4..8] == hash[..4]
}

/// Turns a display name into a handle: its reading in lowercase ASCII letters and digits, words
/// joined by `-` (`Chloé Martin` → `chloe-martin`, `Łukasz` → `lukasz`, `Søren` → `soren`,
/// `信頼` → `xin-lai`). A name with letters but no reading gets `m-` and a short digest of it;
/// `None` when the name has no letter or digit at all (then the person picks a handle).
pub fn handle_from_name(name: &str) -> Option<String> {
    handle_reading(name).map(|h| shorten(&h, 32))
}

/// True when the handle made from `name` had to be cut to fit 32 characters.
pub fn handle_is_cut(name: &str) -> bool {
    handle_reading(name).is_some_and(|h| h.len() > 32)
}

/// `slug` cut to `max` characters, at the last word's end when one ends past the middle.
fn shorten(slug: &str, max: usize) -> String {
    if slug.chars().count() <= max {
        return slug.to_owned();
    }
    let cut: String = slug.chars().take(max).collect();
    let at_word = slug.chars().nth(max) == Some('-');
    let cut = match cut.rfind('-') {
        Some(i) if !at_word && i >= max / 2 => cut[..i].to_owned(),
        _ => cut,
    };
    cut.trim_matches('-').to_owned()
}

/// The whole reading of `name` as a handle, however long.
fn handle_reading(name: &str) -> Option<String> {
    if !name.chars().any(char::is_alphanumeric) {
        return None;
    }
    // Only the letters and digits are read (an emoji's reading is no part of a name).
    let letters: String = name
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() {
                Some(c)
            } else if c.is_whitespace() || matches!(c, '-' | '_' | '.') {
                Some(' ')
            } else {
                None
            }
        })
        .collect();
    let reading = deunicode::deunicode_with_tofu(&letters, " ");
    let handle = slug(&reading, |c| c.is_ascii_alphanumeric(), usize::MAX);
    if !handle.is_empty() {
        return Some(handle);
    }
    let digest = sha2::Sha256::digest(name.trim().as_bytes());
    Some(format!("m-{}", random_text(&digest, 6)))
}

/// A handle as someone typed it, made comparable with the handles members hold: without the
/// `@`, read in lowercase ASCII (`@Chloé` → `chloe`), spaces as `-`.
pub fn handle_key(typed: &str) -> String {
    let reading = deunicode::deunicode_with_tofu(typed.trim().trim_start_matches('@'), "");
    let mut out = String::with_capacity(reading.len());
    for c in reading.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c.to_ascii_lowercase());
        } else if c.is_whitespace() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// True for a valid handle: 1 to 32 of lowercase ASCII letters, digits, `-`, `_`.
pub fn is_valid_handle(h: &str) -> bool {
    (1..=32).contains(&h.len())
        && h.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Turns a pillar name into its id: its letters and digits in lowercase, in any script, words
/// joined by `-`. Empty when the name has no letter or digit.
pub fn pillar_id(name: &str) -> String {
    slug(name, char::is_alphanumeric, 32)
}

/// The words of `name` made of the characters `keep` takes, lowercase, joined by `-`; cut after
/// `max` characters.
fn slug(name: &str, keep: impl Fn(char) -> bool, max: usize) -> String {
    let mut out = String::new();
    let mut chars = 0;
    for c in name.trim().chars() {
        if keep(c) {
            for lower in c.to_lowercase() {
                out.push(lower);
                chars += 1;
            }
        } else if (c.is_whitespace() || matches!(c, '-' | '_' | '.')) && !out.ends_with('-') {
            out.push('-');
            chars += 1;
        }
        if chars >= max {
            break;
        }
    }
    out.trim_matches('-').to_owned()
}

/// The smallest event id that can carry local date `date` (`YYYY-MM-DD`): no zone is more than
/// 14 hours ahead of UTC, so nothing for that day was created before then.
pub fn earliest_id_on(date: &str) -> Option<EventId> {
    let day: jiff::civil::Date = date.parse().ok()?;
    let utc_midnight = day.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    let ms = utc_midnight.as_millisecond() - 14 * 3_600_000;
    Some(EventId::new(ms, [0; 5]))
}

/// An event id later than the id of every event whose local date is `date` (`YYYY-MM-DD`): an
/// event's date is never more than [`crate::journal::MAX_DAYS_BEHIND`] days before the UTC date
/// of its instant, so nothing for that day was created once that many days more have begun.
pub fn id_after_day(date: &str) -> Option<EventId> {
    let day: jiff::civil::Date = date.parse().ok()?;
    let after = day
        .checked_add(jiff::Span::new().days(crate::journal::MAX_DAYS_BEHIND + 1))
        .ok()?;
    let ms = after
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp()
        .as_millisecond();
    Some(EventId::new(ms, [0; 5]))
}

/// How many slips of the keyboard (a character wrong, missing, added, or two neighbours
/// swapped) turn `a` into `b`: the optimal string alignment distance.
pub fn typo_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: two back (for swaps), the last, this one.
    let mut back2 = vec![0; b.len() + 1];
    let mut back: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (back[j] + 1).min(row[j - 1] + 1).min(back[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(back2[j - 2] + 1);
            }
        }
        back2 = std::mem::replace(&mut back, row);
    }
    back[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_alphabet_table_holds_the_alphabet_and_nothing_else() {
        for b in 0..=255u8 {
            let text = [b];
            let text = std::str::from_utf8(&text).unwrap_or("\u{ff}");
            assert_eq!(is_id_text(text), ALPHABET.contains(&b), "byte {b}");
        }
        assert!(!is_id_text(""));
    }

    #[test]
    fn long_names_are_cut_at_a_word_and_say_so() {
        let long = "Maximiliano Alejandro Fernández de la Vega Rodríguez";
        assert_eq!(
            handle_from_name(long).as_deref(),
            Some("maximiliano-alejandro-fernandez")
        );
        assert!(handle_is_cut(long));
        assert!(!handle_is_cut("Chloé Martin"));
        // One long word is cut where it must.
        let word = "Wolfeschlegelsteinhausenbergerdorffwelchevoralternwarengewissenhaft";
        assert_eq!(handle_from_name(word).unwrap().len(), 32);
        // A word ending at the limit is kept whole.
        let exact = format!("{} {}", "a".repeat(32), "b");
        assert_eq!(handle_from_name(&exact).unwrap(), "a".repeat(32));
    }

    #[test]
    fn event_ids_sort_by_time() {
        let a = EventId::new(1_000, [255; 5]);
        let b = EventId::new(1_001, [0; 5]);
        assert!(a < b);
        assert_eq!(a.as_str().len(), 18);
        assert_eq!(EventId::parse(a.as_str()), Some(a.clone()));
        assert_eq!(a.tag(), "zzzzzzzz");
        assert_eq!(b.short(), "000000");
    }

    #[test]
    fn the_earliest_id_of_a_day_precedes_every_zone() {
        let first = earliest_id_on("2026-11-23").unwrap();
        // 2026-11-23T00:00 in Kiritimati (UTC+14) is 2026-11-22T10:00Z.
        assert!(first <= EventId::new(1_795_341_600_000, [0; 5]));
        assert!(first > EventId::new(1_795_341_600_000 - 1, [255; 5]));
        assert!(earliest_id_on("not a day").is_none());
    }

    #[test]
    fn no_event_of_a_day_has_an_id_past_its_bound() {
        let after = id_after_day("2026-11-23").unwrap();
        // Logged late, far west, as late as the reader takes a date: 2026-12-02T23:59Z.
        let latest = EventId::new(1_796_255_999_999, [255; 5]);
        assert!(latest < after);
        // The bound is no later than it must be: the next millisecond is past it.
        assert!(EventId::new(1_796_256_000_000, [0; 5]) >= after);
        assert!(id_after_day("someday").is_none());
    }

    #[test]
    fn bad_ids_do_not_parse() {
        assert!(EventId::parse("short").is_none());
        assert!(EventId::parse("00000000000000000U").is_none());
    }

    #[test]
    fn journals_name_their_owner() {
        let d = journal_doc("m1abc", "2026-11");
        assert_eq!(journal_owner(&d), Some("m1abc"));
        assert_eq!(journal_owner(TEAM_DOC), None);
    }

    #[test]
    fn handles_from_names() {
        assert_eq!(handle_from_name("Ana María").as_deref(), Some("ana-maria"));
        assert_eq!(
            handle_from_name("Chloé Martin").as_deref(),
            Some("chloe-martin")
        );
        assert_eq!(handle_from_name("Łukasz").as_deref(), Some("lukasz"));
        assert_eq!(handle_from_name("Søren").as_deref(), Some("soren"));
        assert_eq!(handle_from_name("Zoë O'Neil").as_deref(), Some("zoe-oneil"));
        assert_eq!(handle_from_name("  Ben  ").as_deref(), Some("ben"));
        assert_eq!(handle_from_name("!!!"), None);
        assert_eq!(handle_from_name("信頼").as_deref(), Some("xin-lai"));
        assert_eq!(handle_from_name("Дмитрий").as_deref(), Some("dmitrii"));
        assert_eq!(handle_from_name("🎉"), None);
        for name in [
            "Chloé Martin",
            "Łukasz",
            "信頼",
            "Дмитрий",
            "𐌰𐌱",
            "Ἀλέξανδρος",
        ] {
            assert!(is_valid_handle(&handle_from_name(name).unwrap()), "{name}");
        }
        assert_eq!(handle_key("@Chloé"), "chloe");
        assert_eq!(handle_key(" CHLOE-Martin "), "chloe-martin");
        assert_eq!(handle_key("@ana_b"), "ana_b");
        assert_eq!(pillar_id("信頼"), "信頼");
        assert_eq!(pillar_id("Team Spirit"), "team-spirit");
        assert_eq!(pillar_id("!!!"), "");
        assert!(is_valid_handle("ana_b-2"));
        assert!(!is_valid_handle("Ana"));
        assert!(!is_valid_handle(""));
    }
}

/// The UTC month (`YYYY-MM`) of the instant `at_ms`, which names the journal an event goes to.
pub fn month_of(at_ms: i64) -> String {
    let ts = jiff::Timestamp::from_millisecond(at_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m")
        .to_string()
}

#[cfg(test)]
mod month_tests {
    #[test]
    fn months_are_utc() {
        // 2026-11-30T23:30:00Z is already December in Tokyo, still November in UTC.
        assert_eq!(super::month_of(1_796_081_400_000), "2026-11");
    }
}
