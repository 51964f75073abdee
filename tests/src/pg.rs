//! A throwaway PostgreSQL cluster for tests: its own data directory in a temp dir, its own port on
//! `127.0.0.1`, trust authentication for the `cairn` role, stopped and removed when dropped.
//!
//! The binaries come from `CAIRN_PG_BIN` (a directory), else the newest
//! `/usr/lib/postgresql/*/bin` (Debian's layout), else `initdb` on `PATH`.
//!
//! PostgreSQL refuses to run as root, and CI runs tests as root; so when the effective user is
//! root, `initdb`, `pg_ctl` and `createdb` run as the `postgres` system user (which Debian's
//! package creates), in a temp dir that user owns.

use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// How many times `start` tries a fresh port when the one it picked was taken before the server
/// could bind it.
const START_ATTEMPTS: usize = 5;

/// How much of the server log a failed start shows.
const LOG_TAIL_LINES: usize = 40;

/// The system user that runs PostgreSQL when the tests run as root.
const PG_SYSTEM_USER: &str = "postgres";

/// The role every cluster has, with trust authentication.
const ROLE: &str = "cairn";

/// A PostgreSQL cluster of its own in a temp dir, on a free port on 127.0.0.1, stopped and
/// removed on drop.
#[derive(Debug)]
pub struct Postgres {
    /// Where `initdb`, `pg_ctl`, `createdb` and `psql` are.
    bin_dir: PathBuf,
    /// Holds `data/` (the cluster), `log` (the server log) and the Unix socket.
    dir: tempfile::TempDir,
    port: u16,
    /// Whether the binaries run as [`PG_SYSTEM_USER`] because we are root.
    as_system_user: bool,
}

impl Postgres {
    /// Whether `initdb` and `pg_ctl` can be found, so a test can tell "not installed" apart from
    /// "failed to start".
    pub fn available() -> bool {
        find_bin_dir().is_some()
    }

    /// A started cluster for a test, or `None` (said on stderr) when PostgreSQL is not installed
    /// and this is not CI. In CI (`CI` set) a missing PostgreSQL fails the test: the Postgres
    /// tests never stop running there quietly.
    pub fn for_test() -> Option<Postgres> {
        if Self::available() {
            return Some(Self::start());
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL is not installed, and CI must run the Postgres tests \
             (.ci/run installs it; or set CAIRN_PG_BIN to its bin directory)"
        );
        eprintln!("note: PostgreSQL is not installed; skipping the PostgreSQL part of this test");
        None
    }

    /// Creates a cluster and starts it; panics with a clear message if PostgreSQL is not
    /// installed or does not start (the server log's tail included).
    pub fn start() -> Postgres {
        Self::start_picking_ports(free_port)
    }

    /// [`Postgres::start`], with the ports to try coming from `pick_port` (so a test can hand
    /// it a taken one).
    fn start_picking_ports(pick_port: impl FnMut() -> u16) -> Postgres {
        let bin_dir = find_bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL is not installed: no initdb and pg_ctl in $CAIRN_PG_BIN, \
                 /usr/lib/postgresql/*/bin or PATH \
                 (on Debian: apt-get install --no-install-recommends postgresql)"
            )
        });
        let as_system_user = running_as_root();
        let dir = make_temp_dir(as_system_user);
        let mut pg = Postgres {
            bin_dir,
            dir,
            port: 0,
            as_system_user,
        };
        pg.init_cluster();
        pg.start_server(pick_port);
        pg
    }

    /// The port the server listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The connection URL of database `db`, as the `cairn` role (no password: trust auth).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{ROLE}@127.0.0.1:{}/{db}", self.port)
    }

    /// Creates database `name` with the `createdb` binary and returns its URL.
    pub fn create_db(&self, name: &str) -> String {
        let port = self.port.to_string();
        let out = self.run(
            "createdb",
            &["-h", "127.0.0.1", "-p", &port, "-U", ROLE, name],
        );
        assert!(
            out.status.success(),
            "createdb {name} failed: {}",
            describe(&out)
        );
        self.url(name)
    }

    /// The path of one of the PostgreSQL binaries in use (`psql`, `pg_dump`, ...), so tests talk
    /// to the server with tools of the same version.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }

    /// The temp dir that holds the cluster; it is gone once the value is dropped.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("log")
    }

    fn init_cluster(&self) {
        let data = self.data_dir();
        let mut args = vec![
            "-D".to_owned(),
            data.display().to_string(),
            "-U".to_owned(),
            ROLE.to_owned(),
            "--auth=trust".to_owned(),
            "--no-sync".to_owned(),
            "-E".to_owned(),
            "UTF8".to_owned(),
            // The machine's locale may be unset or not generated; C is always there.
            "--locale=C".to_owned(),
        ];
        if self.initdb_knows("--no-instructions") {
            args.push("--no-instructions".to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run("initdb", &args);
        assert!(out.status.success(), "initdb failed: {}", describe(&out));
    }

    /// Whether this version's `initdb` has an option (`--no-instructions` came in 14).
    fn initdb_knows(&self, option: &str) -> bool {
        Command::new(self.bin("initdb"))
            .arg("--help")
            .stdin(Stdio::null())
            .output()
            .map(|out| String::from_utf8_lossy(&out.stdout).contains(option))
            .unwrap_or(false)
    }

    /// Starts the server on a free port; picks another one if the port was taken between our
    /// probe and the server's bind.
    fn start_server(&mut self, mut pick_port: impl FnMut() -> u16) {
        let data = self.data_dir().display().to_string();
        let log = self.log_path().display().to_string();
        let socket_dir = self.dir.path().display().to_string();
        let mut last_failure = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = pick_port();
            let log_start = fs::metadata(self.log_path()).map_or(0, |m| m.len());
            // pg_ctl hands `-o` to a shell, hence the quotes around the path.
            let options = format!(
                "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories='{socket_dir}' \
                 -c fsync=off -c max_connections=200"
            );
            // `-w` waits until the server accepts connections (or has given up), so no sleeps.
            let out = self.run(
                "pg_ctl",
                &["-D", &data, "-l", &log, "-w", "-o", &options, "start"],
            );
            if out.status.success() {
                self.port = port;
                return;
            }
            // A start that timed out may have left a server running; it must not outlive us.
            self.kill_postmaster();
            let log_text = self.log_since(log_start);
            last_failure = format!(
                "{}\n-- server log (last {LOG_TAIL_LINES} lines) --\n{}",
                describe(&out),
                tail(&log_text, LOG_TAIL_LINES)
            );
            if !log_text.contains("could not bind") && !log_text.contains("already in use") {
                break;
            }
        }
        panic!(
            "PostgreSQL did not start in {}: {last_failure}",
            self.dir.path().display()
        );
    }

    /// The server log from byte `from` on (the part one start attempt wrote).
    fn log_since(&self, from: u64) -> String {
        let bytes = fs::read(self.log_path()).unwrap_or_default();
        let from = usize::try_from(from).unwrap_or(0).min(bytes.len());
        String::from_utf8_lossy(&bytes[from..]).into_owned()
    }

    /// Runs a PostgreSQL binary, as the `postgres` system user when we are root.
    fn run(&self, name: &str, args: &[&str]) -> Output {
        let program = self.bin(name);
        let mut command = if self.as_system_user {
            as_system_user(&program, args)
        } else {
            let mut c = Command::new(&program);
            c.args(args);
            c
        };
        // The cwd (the crate's directory) may be closed to the postgres user; the temp dir is not.
        command
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{} could not run: {e}", program.display()))
    }

    /// Stops the server now, waiting until it has exited; `Err` says why not.
    fn stop(&self) -> Result<(), String> {
        let data = self.data_dir().display().to_string();
        // Immediate: the cluster is about to be deleted, so a clean checkpoint is wasted work.
        let out = self.run("pg_ctl", &["-D", &data, "-m", "immediate", "-w", "stop"]);
        if out.status.success() {
            Ok(())
        } else {
            Err(describe(&out))
        }
    }

    /// Last resort when `pg_ctl stop` failed: signal the postmaster named in `postmaster.pid`,
    /// so a failed stop does not leave a server running on a deleted directory.
    fn kill_postmaster(&self) {
        let Ok(pid_file) = fs::read_to_string(self.data_dir().join("postmaster.pid")) else {
            return;
        };
        let Some(pid) = pid_file.lines().next().map(str::trim) else {
            return;
        };
        if pid.parse::<u32>().is_err() {
            return;
        }
        // SIGQUIT is PostgreSQL's immediate shutdown; it takes the backends with it.
        let result = Command::new("kill")
            .args(["-QUIT", pid])
            .stdin(Stdio::null())
            .output();
        if !result.as_ref().is_ok_and(|out| out.status.success()) {
            eprintln!("cairn-e2e: could not signal postmaster {pid}: {result:?}");
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // `start` may have panicked before the server ran; then there is nothing to stop.
        if self.port == 0 {
            return;
        }
        if let Err(why) = self.stop() {
            eprintln!(
                "cairn-e2e: pg_ctl stop failed for {}: {why}",
                self.data_dir().display()
            );
            self.kill_postmaster();
        }
        // The temp dir is removed when `self.dir` drops, right after this.
    }
}

/// The directory with `initdb` and `pg_ctl`: `CAIRN_PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else the one `initdb` on `PATH` lives in.
fn find_bin_dir() -> Option<PathBuf> {
    let has_tools = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("CAIRN_PG_BIN") {
        // An explicit choice is not second-guessed: if it is wrong, say "not installed".
        let dir = PathBuf::from(dir);
        return has_tools(&dir).then_some(dir);
    }
    if let Some(dir) = newest_debian_bin_dir().filter(|d| has_tools(d)) {
        return Some(dir);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("initdb"))
        .find(|initdb| initdb.is_file())
        // Follow a symlink (Homebrew, /usr/local/bin) to where pg_ctl and postgres live too.
        .and_then(|initdb| fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .filter(|dir| has_tools(dir))
}

/// `/usr/lib/postgresql/VERSION/bin` with the highest VERSION ("16" > "15" > "9.6").
fn newest_debian_bin_dir() -> Option<PathBuf> {
    fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// Whether the effective user is root, from `/proc/self/status` (no libc needed), else `id -u`.
fn running_as_root() -> bool {
    let from_proc = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            // "Uid:\treal\teffective\tsaved\tfs"
            let line = status.lines().find(|l| l.starts_with("Uid:"))?;
            line.split_whitespace().nth(2).map(|euid| euid == "0")
        });
    from_proc.unwrap_or_else(|| {
        Command::new("id")
            .arg("-u")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
    })
}

/// A temp dir for the cluster. As root it sits in `/tmp` (which every user can traverse, unlike
/// a `TMPDIR` that may be private) and belongs to the `postgres` user, who must own the data.
fn make_temp_dir(for_system_user: bool) -> tempfile::TempDir {
    let base = if for_system_user {
        PathBuf::from("/tmp")
    } else {
        std::env::temp_dir()
    };
    let dir = tempfile::Builder::new()
        .prefix("cairn-pg-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("no temp dir in {}: {e}", base.display()));
    if for_system_user {
        let out = Command::new("chown")
            .args(["-R", PG_SYSTEM_USER])
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("chown could not run: {e}"));
        assert!(
            out.status.success(),
            "running as root, PostgreSQL must run as the `{PG_SYSTEM_USER}` system user, \
             but chown to it failed (does the user exist?): {}",
            describe(&out)
        );
    }
    dir
}

/// `program args...` as the `postgres` system user: `runuser` where it exists (util-linux, no
/// password prompt for root), else `su` with the command quoted for its shell.
fn as_system_user(program: &Path, args: &[&str]) -> Command {
    let runuser = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.is_file());
    match runuser {
        Some(runuser) => {
            let mut c = Command::new(runuser);
            c.args(["-u", PG_SYSTEM_USER, "--"]).arg(program).args(args);
            c
        }
        None => {
            let line = std::iter::once(program.display().to_string())
                .chain(args.iter().map(|a| (*a).to_owned()))
                .map(|word| shell_quote(&word))
                .collect::<Vec<_>>()
                .join(" ");
            let mut c = Command::new("su");
            c.args([PG_SYSTEM_USER, "-s", "/bin/sh", "-c", &line]);
            c
        }
    }
}

/// `word` in single quotes for `sh`, with any single quote inside spelled `'\''`.
fn shell_quote(word: &str) -> String {
    format!("'{}'", word.replace('\'', r"'\''"))
}

/// A port on 127.0.0.1 that was free a moment ago: the system picks it for a listener we drop.
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("cannot bind 127.0.0.1:0 to find a free port: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("a bound listener has an address: {e}"))
        .port()
}

/// A command's exit status and output, for a failure message.
fn describe(out: &Output) -> String {
    format!(
        "{}\n-- stdout --\n{}\n-- stderr --\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim_end(),
        String::from_utf8_lossy(&out.stderr).trim_end()
    )
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Like the integration test's guard: skip outside CI without PostgreSQL, fail inside it.
    fn postgres_or_skip() -> bool {
        if Postgres::available() {
            return true;
        }
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL is not installed, and CI must run the Postgres tests"
        );
        eprintln!("note: PostgreSQL is not installed; skipping");
        false
    }

    #[test]
    fn a_port_taken_before_the_server_binds_it_is_replaced_by_another() {
        if !postgres_or_skip() {
            return;
        }
        let squatter = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let taken = squatter.local_addr().expect("an address").port();
        let mut picks = 0;
        let pg = Postgres::start_picking_ports(|| {
            picks += 1;
            if picks == 1 { taken } else { free_port() }
        });
        assert_ne!(
            pg.port(),
            taken,
            "the server cannot share the squatter's port"
        );
        assert_eq!(picks, 2, "one retry after the taken port");
    }

    #[test]
    fn a_server_that_cannot_start_panics_with_its_log() {
        if !postgres_or_skip() {
            return;
        }
        let squatter = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let taken = squatter.local_addr().expect("an address").port();
        let result = std::panic::catch_unwind(|| Postgres::start_picking_ports(|| taken));
        let payload = result.expect_err("every port is taken, so start must fail");
        let message = payload
            .downcast_ref::<String>()
            .expect("the panic carries a formatted message");
        assert!(
            message.contains("did not start") && message.contains("could not bind"),
            "the message should say what happened and show the log: {message}"
        );
    }

    #[test]
    fn shell_quoting_survives_single_quotes() {
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("-c a=b c"), "'-c a=b c'");
    }
}
