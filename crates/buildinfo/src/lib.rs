//! What a cairn binary says of itself in `--version`: the version, the commit it was built from
//! and the day it was built, as jj does (`cairn 0.1.0 (commit 1e64045a9f3c, built 2026-12-07)`).
//!
//! Used from each binary's build script, which sets `CAIRN_VERSION` for `clap`'s `version`:
//!
//! ```no_run
//! // build.rs, in its `main`:
//! cairn_buildinfo::emit();
//! // main.rs: #[command(version = env!("CAIRN_VERSION"))]
//! ```
//!
//! The commit comes from `git` when the source is a git checkout; otherwise, as in a source
//! tarball, the version says "commit unknown". The day is `SOURCE_DATE_EPOCH`'s when it is set
//! (reproducible builds, Debian's packaging), else today's in UTC. The script runs again when
//! the checkout moves to another commit, not at every build.

use std::path::PathBuf;
use std::process::Command;

/// Prints the `cargo:` lines that set `CAIRN_VERSION` (and `CAIRN_COMMIT`, `CAIRN_BUILD_DATE`)
/// for the package being built.
pub fn emit() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_else(|_| "0.0.0".into());
    let commit = commit();
    let date = build_date();
    let described = match &commit {
        Some(c) => format!("{version} (commit {c}, built {date})"),
        None => format!("{version} (commit unknown, built {date})"),
    };
    println!("cargo:rustc-env=CAIRN_VERSION={described}");
    println!(
        "cargo:rustc-env=CAIRN_COMMIT={}",
        commit.as_deref().unwrap_or("unknown")
    );
    println!("cargo:rustc-env=CAIRN_BUILD_DATE={date}");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    println!("cargo:rerun-if-changed=build.rs");
    // Again when the checkout moves: HEAD, and the branch file it points to. Only files that
    // exist are named (a missing one would run the script at every build).
    for path in watched() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?;
    Some(text.trim().to_owned())
}

/// The commit, 12 hex digits; `None` outside git.
fn commit() -> Option<String> {
    let hash = git(&["rev-parse", "--short=12", "HEAD"])?;
    (!hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit())).then_some(hash)
}

/// The files whose change means another commit: the git directory's HEAD and the ref it names.
fn watched() -> Vec<PathBuf> {
    let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return Vec::new();
    };
    let dir = PathBuf::from(dir);
    let mut out = vec![dir.join("HEAD")];
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        out.push(dir.join(reference));
    }
    out.into_iter().filter(|p| p.exists()).collect()
}

/// `YYYY-MM-DD` of `SOURCE_DATE_EPOCH`, or of now, in UTC.
fn build_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64)
        });
    civil(secs.div_euclid(86_400))
}

/// The calendar day `days` after 1970-01-01 (Howard Hinnant's days-to-civil).
fn civil(days: i64) -> String {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::civil;

    #[test]
    fn days_become_calendar_days() {
        assert_eq!(civil(0), "1970-01-01");
        assert_eq!(civil(59), "1970-03-01");
        assert_eq!(civil(11_016), "2000-02-29");
        assert_eq!(civil(20_794), "2026-12-07");
        assert_eq!(civil(-1), "1969-12-31");
    }
}
