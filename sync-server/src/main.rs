//! `cairn-server`: run the sync server, and administer its teams, invites and devices.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use cairn_server::hub::{DOC_CACHE, Fate, Go, Hub, Whom, invite_id};
use cairn_server::store::{self, redact};
use cairn_server::{Limits, Rate, State, now_ms};
use clap::{Parser, Subcommand};

mod config;

/// The self-hosted sync server of cairn.
///
/// Members' `cairn` clients push their changes here and pull everyone else's. Start it with
/// `cairn-server serve`, create a team with `cairn-server team create NAME` (it prints the
/// founder's invite and next command), then hand out codes from `cairn-server invite create
/// --team NAME`. Admin commands take a team's name or id, and work on the same database as a
/// running server. The database is a SQLite file (the default) or a PostgreSQL URL, which any
/// number of `cairn-server serve` processes can share.
#[derive(Debug, Parser)]
#[command(name = "cairn-server", version = env!("CAIRN_VERSION"), max_term_width = 100)]
struct Cli {
    /// A configuration file (TOML; keys are these flags' names, the server's under [serve]):
    /// defaults < file < environment < flags [default: cairn-server/config.toml in the config
    /// directory, when it exists].
    #[arg(long, global = true, env = "CAIRN_SERVER_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// The server's database: a SQLite file (created when missing) or a PostgreSQL URL,
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME` (the database must exist; its tables are
    /// created and migrated at start).
    #[arg(long, global = true, env = "CAIRN_SERVER_DB", value_name = "PATH|URL")]
    db: Option<String>,
    /// The address members reach this server at (behind its proxy), like
    /// `https://cairn.example.org`: `invite create` then prints a `cairn join` line ready to
    /// paste.
    #[arg(
        long,
        global = true,
        env = "CAIRN_SERVER_PUBLIC_URL",
        value_name = "URL"
    )]
    public_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the sync API until SIGINT or SIGTERM.
    ///
    /// Logs go to stderr, as text or JSON lines (--log-format; set the level with CAIRN_LOG or
    /// RUST_LOG, e.g. `CAIRN_LOG=debug`); the
    /// first line on stdout is the address it listens on. Health: GET /healthz; readiness (touches
    /// the database): GET /readyz; Prometheus metrics: GET /metrics.
    Serve(Box<ServeArgs>),
    /// Create and list teams.
    #[command(subcommand)]
    Team(TeamCommand),
    /// Create and list organisations (sets of teams with stewards), and name their stewards.
    ///
    /// An organisation has a log of its own, synced like a team's: every device of its teams
    /// reads it, its stewards' devices write its document. Attach teams with `team create
    /// --org` or `team attach TEAM --org ORG`.
    #[command(subcommand)]
    Org(OrgCommand),
    /// Create, list and revoke invite codes.
    #[command(subcommand)]
    Invite(InviteCommand),
    /// List and revoke devices.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Withdraw stored changes.
    #[command(subcommand)]
    Change(ChangeCommand),
    /// Copy every team, organisation, device, invite and change of the database into another,
    /// and check the
    /// copy.
    ///
    /// For moving a server from SQLite to PostgreSQL (or back): stop the server, copy, start it
    /// on the new database. The target must hold no team yet; the copy is read back and compared
    /// row for row before this says it is done. Devices keep their tokens and cursors.
    ///
    ///   cairn-server --db server.sqlite3 copy --to postgres://cairn@db.example/cairn
    Copy {
        /// The database to copy into: a SQLite file or a PostgreSQL URL.
        #[arg(long, value_name = "PATH|URL")]
        to: String,
    },
    /// Back up a SQLite database while servers run on it: a consistent copy, checked.
    ///
    /// The copy is of one moment, taken through SQLite's online backup while writes go on; it is
    /// written beside FILE, readable by its owner only (0600), checked (integrity, and the
    /// teams, devices and each log's changes and head counted again) and only then named FILE.
    /// Restore: stop the server, put the file in the database's place (with no -wal or -shm
    /// file beside it), start the server. PostgreSQL is backed up with its own tools instead
    /// (`pg_dump -Fc`, `pg_restore`), which this says when --db is a PostgreSQL URL.
    ///
    ///   cairn-server --db /var/lib/cairn/server.sqlite3 backup --to /backups/cairn.sqlite3
    ///
    /// A server restored from the copy loses nothing any device still holds: the copy's logs
    /// have an identity of their own, and each device that sees it sends again what it wrote.
    Backup {
        /// The backup file to write.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
        /// Replace FILE when it exists (only once the new copy is checked).
        #[arg(long)]
        force: bool,
        /// Print JSON instead of the line: the file, its bytes, the counts and each log.
        #[arg(long)]
        json: bool,
    },
    /// Tell the database it was restored (or rolled back some other way): its logs get a new
    /// identity, so every device sends again what it wrote and reads the logs from their start
    /// at its next sync, and the server loses nothing a device still holds.
    ///
    /// A SQLite backup made with `cairn-server backup` has its own identity already; run this
    /// after `pg_restore`, or after putting back a copy made any other way, before starting the
    /// servers.
    ///
    ///   cairn-server --db postgres://cairn@localhost/cairn restored
    Restored,
    /// Write the manual pages, `cairn-server.1` and one per subcommand, into DIR (for packages).
    #[command(hide = true)]
    GenerateMan {
        /// The directory to write them into (created when missing).
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ChangeCommand {
    /// Withdraw changes from a team's history, for whatever slipped through one day; says first
    /// what would go.
    ///
    /// Prints one line per change it touches: its hash, document, author, kind (a membership, a
    /// pillar, an event, ...) and what becomes of it. A named change with nothing after it in its
    /// document leaves the log and every replica (devices drop it at their next sync). When a
    /// team document's later history holds changes not made on it (a pillar added, then someone
    /// joined), that history stays, and a change of the server's takes back what the named one
    /// set. What was made on a named change goes with it only with --cascade; without it, the
    /// list is shown and nothing is done. A membership is never withdrawn by a cascade. A change
    /// already pruned from the log (`team prune`) is not found here: withdraw before pruning.
    Withdraw {
        /// The team's name or id (see `cairn-server team list`).
        #[arg(long, required_unless_present = "org", conflicts_with = "org")]
        team: Option<String>,
        /// An organisation's name or id instead (a change to its log: `org list`).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// The changes' hashes in hex (a unique prefix of 8 digits or more will do).
        #[arg(required = true, value_name = "HASH")]
        hashes: Vec<String>,
        /// Go on when the withdrawal reaches beyond the named changes (what was made on them).
        #[arg(long)]
        cascade: bool,
        /// Only say what would go.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
}

/// The server's address and limits. Every limit has a safe default; raise one only for a reason.
#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The address to listen on; port 0 lets the system pick one.
    #[arg(
        long,
        env = "CAIRN_SERVER_LISTEN",
        default_value = "127.0.0.1:7878",
        value_name = "ADDR"
    )]
    listen: SocketAddr,
    /// Open connections at most; past it a new one gets a 503 and is closed. Keep it well under
    /// the process's file-descriptor limit (`ulimit -n`).
    #[arg(
        long,
        env = "CAIRN_SERVER_MAX_CONNECTIONS",
        default_value_t = 512,
        value_name = "N"
    )]
    max_connections: usize,
    /// Open connections of one client address at most (a trusted proxy is not limited).
    #[arg(
        long,
        env = "CAIRN_SERVER_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 64,
        value_name = "N"
    )]
    max_connections_per_address: usize,
    /// Active devices one member may have.
    #[arg(
        long,
        env = "CAIRN_SERVER_MAX_DEVICES_PER_MEMBER",
        default_value_t = 10,
        value_name = "N"
    )]
    max_devices_per_member: u32,
    /// Time a client has to send a request's headers, and the most a kept-alive connection
    /// may idle between requests.
    #[arg(long, env = "CAIRN_SERVER_HEADER_TIMEOUT", default_value = "10s", value_parser = duration, value_name = "DURATION")]
    header_timeout: Duration,
    /// Time a client has to send a request's body.
    #[arg(long, env = "CAIRN_SERVER_BODY_TIMEOUT", default_value = "30s", value_parser = duration, value_name = "DURATION")]
    body_timeout: Duration,
    /// The largest sync body read, in bytes.
    #[arg(long, env = "CAIRN_SERVER_MAX_REQUEST_BYTES", default_value_t = 8 << 20, value_name = "BYTES")]
    max_request_bytes: usize,
    /// Requests decoding changes or writing the database at once, shared fairly between teams
    /// and members (a quarter at most to one member); the rest wait a moment, then get a 503.
    #[arg(
        long,
        env = "CAIRN_SERVER_MAX_HEAVY",
        default_value_t = 16,
        value_name = "N"
    )]
    max_heavy: usize,
    /// Joins per client address: BURST/EVERY (`30/2s`: thirty at once, then one every two
    /// seconds), or `off`.
    #[arg(long, env = "CAIRN_SERVER_RATE_JOIN", default_value = "30/2s", value_parser = rate, value_name = "RATE")]
    rate_join: Rate,
    /// Syncs per device, and per member (their devices share one budget).
    #[arg(long, env = "CAIRN_SERVER_RATE_SYNC", default_value = "200/10ms", value_parser = rate, value_name = "RATE")]
    rate_sync: Rate,
    /// Link codes per device.
    #[arg(long, env = "CAIRN_SERVER_RATE_LINK", default_value = "5/1m", value_parser = rate, value_name = "RATE")]
    rate_link: Rate,
    /// Requests with a refused token per client address.
    #[arg(long, env = "CAIRN_SERVER_RATE_BAD_TOKEN", default_value = "20/500ms", value_parser = rate, value_name = "RATE")]
    rate_bad_token: Rate,
    /// A reverse proxy in front of the server whose X-Forwarded-For names the client (for the
    /// rate limits and the log); repeat it, or separate addresses with commas.
    #[arg(
        long,
        env = "CAIRN_SERVER_TRUSTED_PROXY",
        value_delimiter = ',',
        value_name = "IP"
    )]
    trusted_proxy: Vec<std::net::IpAddr>,
    /// Documents kept in memory to check pushed changes against (more use memory, fewer
    /// reload documents from the log).
    #[arg(long, env = "CAIRN_SERVER_DOC_CACHE", default_value_t = DOC_CACHE, value_name = "N")]
    doc_cache: usize,
    /// A device more than this many changes behind (a new one, one back from months offline)
    /// is sent each document whole, compacted, instead of every change.
    #[arg(
        long,
        env = "CAIRN_SERVER_CATCH_UP_AFTER",
        default_value_t = 1_000,
        value_name = "N"
    )]
    catch_up_after: u64,
    /// The most bytes of changes or documents one sync response carries (it holds at least one).
    #[arg(
        long,
        env = "CAIRN_SERVER_MAX_PAGE_BYTES",
        default_value_t = 4 << 20,
        value_name = "BYTES"
    )]
    max_page_bytes: usize,
    /// Waits for news (`GET /v1/wait`, a relay's or `cairn web`'s long poll) pending at once;
    /// past it a 503 (two at most per device). Each holds a connection open: keep it well under
    /// --max-connections, so syncs always find room.
    #[arg(
        long,
        env = "CAIRN_SERVER_MAX_WAITERS",
        default_value_t = 256,
        value_name = "N"
    )]
    max_waiters: usize,
    /// How often waiters read their team's head from the database, for changes pushed through
    /// another server process on a shared PostgreSQL (one read per team and period).
    #[arg(long, env = "CAIRN_SERVER_WAIT_POLL", default_value = "3s", value_parser = duration, value_name = "DURATION")]
    wait_poll: Duration,
    /// The log's format on stderr: `text`, for people, or `json`, one object per line for a log
    /// shipper (time, level, message, and the fields: client, method, route, team, status,
    /// error, ...).
    #[arg(
        long,
        env = "CAIRN_SERVER_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    log_format: LogFormat,
    /// PostgreSQL: connections this process keeps open at most.
    #[arg(
        long,
        env = "CAIRN_SERVER_DB_POOL",
        default_value_t = 16,
        value_name = "N"
    )]
    db_pool: usize,
}

/// How the server writes its log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Lines for people: `LEVEL span{fields}: message field=value ...`.
    Text,
    /// One JSON object per line.
    Json,
}

impl ServeArgs {
    fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections.max(1),
            max_connections_per_address: self.max_connections_per_address.max(1),
            max_devices_per_member: self.max_devices_per_member.max(1),
            header_timeout: self.header_timeout,
            body_timeout: self.body_timeout,
            max_request_bytes: self.max_request_bytes,
            max_heavy: self.max_heavy.max(1),
            max_member_heavy: (self.max_heavy / 4).max(1),
            join: self.rate_join,
            sync: self.rate_sync,
            link: self.rate_link,
            bad_token: self.rate_bad_token,
            trusted_proxies: self.trusted_proxy.clone(),
            catch_up_after: self.catch_up_after,
            max_page_bytes: self.max_page_bytes.max(1),
            max_waiters: self.max_waiters,
            wait_poll: self.wait_poll,
            ..Limits::default()
        }
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    cairn_server::limits::parse_duration(text.trim())
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("`{text}` is not a duration like 500ms, 10s or 2m"))
}

fn rate(text: &str) -> Result<Rate, String> {
    Rate::parse(text)
}

#[derive(Debug, Subcommand)]
enum TeamCommand {
    /// Create a team and its founder's invite; prints the team's id (the founder's invite and
    /// next command go to stderr).
    ///
    /// The founder's invite is the only one that brings the team its first history, on one
    /// device: the founder either starts the team on the server (`cairn join URL --invite CODE
    /// --name "YOUR NAME"`: its name is this one, its time zone the founder's) or brings a team
    /// begun offline with `cairn init` (`cairn publish URL --invite CODE`: the server then calls
    /// the team what the founder's replica does). Everyone else joins with an invite from
    /// `invite create`. Another founder's invite: `invite create --team NAME --founder`.
    Create {
        /// The team's name (no other team may have it, in any case).
        name: String,
        /// How long the founder's invite stays valid: a number and m, h or d.
        #[arg(long, default_value = "7d", value_parser = parse_duration_ms)]
        expires: i64,
        /// Attach it to this organisation (its name or id; see `org list`).
        #[arg(long, value_name = "ORG")]
        org: Option<String>,
        /// Print JSON instead: the team's id and name, and the founder's invite.
        #[arg(long)]
        json: bool,
    },
    /// Attach a team to an organisation: every device of the team reads the organisation's
    /// log from its next sync. A team belongs to one organisation at most.
    Attach {
        /// The team's name or id.
        team: String,
        /// The organisation's name or id.
        #[arg(long, value_name = "ORG")]
        org: String,
    },
    /// Detach a team from its organisation: its devices no longer read the organisation's
    /// log, and its members are its stewards no more.
    Detach {
        /// The team's name or id.
        team: String,
    },
    /// List teams with their changes, active devices, and the bytes of their log, of their
    /// documents' snapshots and of the changes pruned.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Prune a team's log: changes older than the horizon that its documents' snapshots hold
    /// leave it (each member device's last change in each document stays, as do withdrawals).
    /// Devices behind then catch up from whole documents, exactly; prints what went.
    ///
    /// Run it while servers run with a horizon of an hour or more (they hold documents for ten
    /// minutes); a shorter one only with no server running on the database.
    Prune {
        /// The team's name or id.
        #[arg(long)]
        team: String,
        /// How old a change must be: a number and m, h or d (`12h`, `30d`), or 0 for all.
        #[arg(long, default_value = "30d", value_parser = parse_horizon_ms)]
        older_than: i64,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum OrgCommand {
    /// Create an organisation with no team yet; prints its id.
    Create {
        /// Its name (no other organisation may have it, in any case).
        name: String,
        /// Print JSON instead: its id and name.
        #[arg(long)]
        json: bool,
    },
    /// List organisations with their teams and stewards.
    List {
        /// Print JSON instead of lines.
        #[arg(long)]
        json: bool,
    },
    /// Name and remove stewards: members of an organisation's teams whose devices write its
    /// document.
    #[command(subcommand)]
    Steward(StewardCommand),
    /// Prune an organisation's log, as `team prune` does a team's.
    Prune {
        /// The organisation's name or id.
        org: String,
        /// How old a change must be: a number and m, h or d (`12h`, `30d`), or 0 for all.
        #[arg(long, default_value = "30d", value_parser = parse_horizon_ms)]
        older_than: i64,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum StewardCommand {
    /// Name a member of one of the organisation's teams a steward.
    Add {
        /// The organisation's name or id.
        org: String,
        /// The member: TEAM:@handle or TEAM:MEMBER-ID (the team by name or id).
        #[arg(long, value_name = "TEAM:@HANDLE")]
        member: String,
    },
    /// Take a steward's writing back (what they wrote stays).
    Remove {
        /// The organisation's name or id.
        org: String,
        /// The member: TEAM:@handle or TEAM:MEMBER-ID.
        #[arg(long, value_name = "TEAM:@HANDLE")]
        member: String,
    },
}

/// A pruning horizon: a duration, or 0.
fn parse_horizon_ms(text: &str) -> Result<i64, String> {
    if text.trim() == "0" {
        return Ok(0);
    }
    parse_duration_ms(text)
}

#[derive(Debug, Subcommand)]
enum InviteCommand {
    /// Create an invite code to a team; prints only the code.
    ///
    /// A general invite adds new members. An invite made for one member (--member) joins a
    /// device as that member: for someone a teammate added by name before they joined, or to
    /// give a member back their place after their devices were revoked. The founder's invite
    /// (--founder; `team create` made one) is the only one that brings a team with no history
    /// its first: started on the server with `cairn join`, or begun offline and brought with
    /// `cairn publish`. A relay's invite (--relay) registers a `cairn-relay`: a read-only device
    /// of no member, which pulls the team to post to chat and is refused every write; `cairn
    /// join` refuses it.
    Create {
        /// The team's name or id (see `cairn-server team list`).
        #[arg(long)]
        team: String,
        /// Make it for this member (`@handle` or member id) [default uses: 1].
        #[arg(long, value_name = "@HANDLE", conflicts_with_all = ["founder", "relay"])]
        member: Option<String>,
        /// Make it for a relay (`cairn-relay`): each use registers a read-only device that
        /// belongs to no member and never appears among them [default uses: 1].
        #[arg(long, conflicts_with = "founder")]
        relay: bool,
        /// Make it for the team's founder, for a team with no history yet (one device).
        #[arg(long, conflicts_with = "uses")]
        founder: bool,
        /// How many devices may join with it [default: 10, or 1 with --member].
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        uses: Option<u32>,
        /// How long it stays valid: a number and m, h or d (`30m`, `12h`, `7d`).
        #[arg(long, default_value = "7d", value_parser = parse_duration_ms)]
        expires: i64,
    },
    /// List the invites that can still be used: id, team, whom it is for (anyone, the founder,
    /// a relay or a member), uses left, expiry. Codes are kept only as hashes; the id is the start of
    /// the hash.
    List {
        /// Only this team's (its name or id).
        #[arg(long)]
        team: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Take back an invite before it is used up or expires.
    Revoke {
        /// The invite's code, or its id from `invite list`.
        #[arg(value_name = "CODE|ID")]
        invite: String,
    },
}

#[derive(Debug, Subcommand)]
enum DeviceCommand {
    /// List devices, of one team or all: their member's handle and name (a relay's says
    /// `(relay)`: it belongs to no member), and when each last synced.
    List {
        /// Only this team's (its name or id).
        #[arg(long)]
        team: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a device (a member's or a relay's): its token is refused from the next request on.
    Revoke {
        /// The device's id (see `cairn-server device list`).
        device: String,
    },
}

fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let bad = || format!("`{text}` is not a duration like 30m, 12h or 7d");
    let (n, unit_ms) = if let Some(n) = text.strip_suffix('m') {
        (n, 60_000)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 3_600_000)
    } else if let Some(n) = text.strip_suffix('d') {
        (n, 86_400_000)
    } else {
        return Err(bad());
    };
    let n: i64 = n.parse().map_err(|_| bad())?;
    if !(1..=3650 * 86_400_000 / unit_ms).contains(&n) {
        return Err(format!("`{text}` is out of range (at most ten years)"));
    }
    Ok(n * unit_ms)
}

fn main() -> ExitCode {
    cairn_core::change::install_panic_hook();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let cli = match parse(&args) {
        Ok(cli) => cli,
        Err(Parse::Clap(e)) => e.exit(),
        Err(Parse::Config(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

enum Parse {
    Clap(clap::Error),
    Config(String),
}

/// The command line, over the configuration file's settings.
fn parse(args: &[std::ffi::OsString]) -> Result<Cli, Parse> {
    use clap::{CommandFactory, FromArgMatches};
    let mut command = Cli::command();
    if let Some(config) = config::find(args).map_err(Parse::Config)? {
        command = config.apply(command).map_err(Parse::Config)?;
    }
    let matches = command.try_get_matches_from(args).map_err(Parse::Clap)?;
    Cli::from_arg_matches(&matches).map_err(Parse::Clap)
}

fn default_db() -> PathBuf {
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("cairn-server")
        .join("server.sqlite3")
}

fn fmt_bytes(n: i64) -> String {
    match n {
        ..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        _ => format!("{:.1} MB", n as f64 / 1e6),
    }
}

fn fmt_ms(ms: Option<i64>) -> String {
    ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map_or_else(
            || "-".to_owned(),
            |t| t.strftime("%Y-%m-%d %H:%M").to_string(),
        )
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    let db = cli
        .db
        .unwrap_or_else(|| default_db().to_string_lossy().into_owned());
    if let Command::Serve(args) = &cli.command {
        return serve(&db, args);
    }
    if let Command::GenerateMan { dir } = &cli.command {
        use clap::CommandFactory as _;
        std::fs::create_dir_all(dir)?;
        clap_mangen::generate_to(Cli::command(), dir)
            .map_err(|e| format!("cannot write manual pages into {}: {e}", dir.display()))?;
        println!("wrote {}", dir.join("cairn-server.1").display());
        return Ok(());
    }
    // Before opening the store: a backup reads the database as it is and migrates nothing.
    if let Command::Backup { to, force, json } = &cli.command {
        let report = cairn_server::backup::backup(&db, to, *force)?;
        let mut out = std::io::stdout().lock();
        if *json {
            writeln!(out, "{}", serde_json::to_string(&report)?)?;
        } else {
            writeln!(out, "{}", report.line())?;
        }
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(admin(cli.command, &db, cli.public_url.as_deref()))
}

async fn admin(
    command: Command,
    db: &str,
    public_url: Option<&str>,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = store::open(db, &store::Options::default())
        .await
        .map_err(|e| format!("cannot open {}: {e}", redact(db)))?;
    let hub = Hub::new(store, 64);
    let mut out = std::io::stdout().lock();
    match command {
        Command::Serve(_) | Command::Backup { .. } | Command::GenerateMan { .. } => {
            unreachable!("run above")
        }
        Command::Restored => {
            let log = hub.store().renew_server_log().await?;
            writeln!(out, "{log}")?;
            eprintln!(
                "the logs of this database have a new identity: each device sends again what it \
                 wrote, and reads the logs from their start, at its next sync"
            );
        }
        Command::Team(TeamCommand::Create {
            name,
            expires,
            org,
            json,
        }) => {
            let now = now_ms();
            // The organisation first: a name it does not know creates nothing.
            let org = match org {
                Some(o) => Some(hub.find_org(&o).await?),
                None => None,
            };
            let team = hub.create_team(&name, now).await?;
            if let Some((org, org_name)) = &org {
                hub.attach(&team.id, org).await?;
                eprintln!("attached to organisation `{org_name}`");
            }
            let code = hub
                .create_invite(&team.id, 1, now + expires, now, Whom::Founder)
                .await?;
            if json {
                let v = serde_json::json!({
                    "id": team.id,
                    "name": team.name,
                    "founder_invite": code,
                    "founder_invite_expires_ms": now + expires,
                });
                writeln!(out, "{v}")?;
                return Ok(());
            }
            writeln!(out, "{}", team.id)?;
            eprintln!("created team `{}` (id {})", team.name, team.id);
            eprint!(
                "{}",
                founder_lines(public_url, &code, now + expires, &team.name)
            );
            eprintln!(
                "then invite everyone else: cairn-server invite create --team {}",
                team_arg(&team.id, &team.name)
            );
        }
        Command::Team(TeamCommand::Attach { team, org }) => {
            let (team, team_name) = hub.find_team(&team).await?;
            let (org, org_name) = hub.find_org(&org).await?;
            hub.attach(&team, &org).await?;
            eprintln!(
                "attached team `{team_name}` to organisation `{org_name}`: its devices read the \
                 organisation's log from their next sync"
            );
        }
        Command::Team(TeamCommand::Detach { team }) => {
            let (team, team_name) = hub.find_team(&team).await?;
            match hub.detach(&team).await? {
                Some((_, org_name)) => eprintln!(
                    "detached team `{team_name}` from organisation `{org_name}`: its devices no \
                     longer read its log, and its members are its stewards no more"
                ),
                None => eprintln!("team `{team_name}` belongs to no organisation; nothing done"),
            }
        }
        Command::Org(OrgCommand::Create { name, json }) => {
            let org = hub.create_org(&name, now_ms()).await?;
            if json {
                let v = serde_json::json!({ "id": org.id, "name": org.name });
                writeln!(out, "{v}")?;
                return Ok(());
            }
            writeln!(out, "{}", org.id)?;
            eprintln!("created organisation `{}` (id {})", org.name, org.id);
            eprintln!(
                "then attach teams: cairn-server team attach TEAM --org {}",
                team_arg(&org.id, &org.name)
            );
        }
        Command::Org(OrgCommand::List { json }) => {
            let orgs = hub.orgs().await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&orgs)?)?;
            } else if orgs.is_empty() {
                eprintln!("no organisation yet; create one with `cairn-server org create NAME`");
            } else {
                for o in &orgs {
                    writeln!(
                        out,
                        "{} ({}): {} change(s), created {}",
                        o.name,
                        o.id,
                        o.changes,
                        fmt_ms(Some(o.created_ms))
                    )?;
                    let teams: Vec<&str> = o.teams.iter().map(|t| t.name.as_str()).collect();
                    writeln!(
                        out,
                        "  teams:    {}",
                        if teams.is_empty() {
                            "-".to_owned()
                        } else {
                            teams.join(", ")
                        }
                    )?;
                    let stewards: Vec<String> = o
                        .stewards
                        .iter()
                        .map(|s| match &s.handle {
                            Some(h) => format!("{}:@{h}", s.team_name),
                            None => format!("{}:{}", s.team_name, s.member),
                        })
                        .collect();
                    writeln!(
                        out,
                        "  stewards: {}",
                        if stewards.is_empty() {
                            "-".to_owned()
                        } else {
                            stewards.join(", ")
                        }
                    )?;
                }
            }
        }
        Command::Org(OrgCommand::Steward(StewardCommand::Add { org, member })) => {
            let (org, org_name) = hub.find_org(&org).await?;
            let (s, changed) = hub.set_steward(&org, &member, true).await?;
            let who = format!("@{}", s.handle.as_deref().unwrap_or(&s.member));
            if changed {
                eprintln!(
                    "{who} of team `{}` is a steward of `{org_name}`: their devices write its \
                     document from their next sync",
                    s.team_name
                );
            } else {
                eprintln!(
                    "{who} of team `{}` is a steward of `{org_name}` already",
                    s.team_name
                );
            }
        }
        Command::Org(OrgCommand::Steward(StewardCommand::Remove { org, member })) => {
            let (org, org_name) = hub.find_org(&org).await?;
            let (s, changed) = hub.set_steward(&org, &member, false).await?;
            let who = format!("@{}", s.handle.as_deref().unwrap_or(&s.member));
            if changed {
                eprintln!(
                    "{who} of team `{}` is no longer a steward of `{org_name}` (what they wrote \
                     stays)",
                    s.team_name
                );
            } else {
                return Err(format!(
                    "{who} of team `{}` is no steward of `{org_name}`; see `cairn-server org list`",
                    s.team_name
                )
                .into());
            }
        }
        Command::Team(TeamCommand::List { json }) => {
            let teams = hub.teams().await?;
            // Each team's organisation, by name.
            let orgs = hub.store().org_rows().await?;
            let org_of = |team: &str| {
                let org = orgs.teams.iter().find(|(t, _)| t == team)?;
                orgs.orgs.iter().find(|(id, _, _)| *id == org.1)
            };
            if json {
                let rows: Vec<_> = teams
                    .iter()
                    .map(|t| {
                        let mut v = serde_json::to_value(t).unwrap_or_default();
                        if let Some((id, name, _)) = org_of(&t.id) {
                            v["org"] = serde_json::json!({ "id": id, "name": name });
                        }
                        v
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                writeln!(
                    out,
                    "{:<14} {:>8} {:>8} {:>10} {:>10} {:>10}  {:<17} name",
                    "id", "changes", "devices", "log", "snapshots", "pruned", "created"
                )?;
                for t in teams {
                    let org = org_of(&t.id).map_or_else(String::new, |(_, name, _)| {
                        format!("  (organisation {name})")
                    });
                    writeln!(
                        out,
                        "{:<14} {:>8} {:>8} {:>10} {:>10} {:>10}  {:<17} {}{org}",
                        t.id,
                        t.changes,
                        t.devices,
                        fmt_bytes(t.log_bytes),
                        fmt_bytes(t.snapshot_bytes),
                        fmt_bytes(t.pruned_bytes),
                        fmt_ms(Some(t.created_ms)),
                        t.name
                    )?;
                }
            }
        }
        Command::Team(TeamCommand::Prune {
            team,
            older_than,
            json,
        }) => {
            let (team, _) = hub.find_team(&team).await?;
            prune(&hub, &mut out, (&team, "team"), older_than, json).await?;
        }
        Command::Org(OrgCommand::Prune {
            org,
            older_than,
            json,
        }) => {
            let (org, _) = hub.find_org(&org).await?;
            prune(&hub, &mut out, (&org, "organisation"), older_than, json).await?;
        }
        Command::Invite(InviteCommand::Create {
            team,
            member,
            founder,
            relay,
            uses,
            expires,
        }) => {
            let now = now_ms();
            let (team, name) = hub.find_team(&team).await?;
            let uses = uses.unwrap_or(if member.is_some() || founder || relay {
                1
            } else {
                10
            });
            let whom = match (&member, founder) {
                _ if relay => Whom::Relay,
                (_, true) => Whom::Founder,
                (Some(m), false) => Whom::Member(m),
                (None, false) => Whom::Anyone,
            };
            let code = hub
                .create_invite(&team, uses, now + expires, now, whom)
                .await?;
            writeln!(out, "{code}")?;
            if founder {
                eprint!("{}", founder_lines(public_url, &code, now + expires, &name));
                return Ok(());
            }
            let until = fmt_ms(Some(now + expires));
            if relay {
                let relays = if uses == 1 { "relay" } else { "relays" };
                eprintln!(
                    "good for {uses} {relays} until {until} UTC: give it to `cairn-relay`, which \
                     joins as a read-only device of no member (`cairn join` refuses it)"
                );
                return Ok(());
            }
            let url = public_url.map(|u| u.trim_end_matches('/')).unwrap_or("URL");
            let line = match &member {
                Some(_) => format!("cairn join {url} --invite {code}"),
                None => format!("cairn join {url} --invite {code} --name \"YOUR NAME\""),
            };
            let whom = member
                .as_deref()
                .map_or(String::new(), |m| format!(" of {m}"));
            let devices = if uses == 1 { "device" } else { "devices" };
            eprintln!("good for {uses} {devices}{whom} until {until} UTC; to join:");
            eprintln!("  {line}");
            if public_url.is_none() {
                eprintln!("(with --public-url or CAIRN_SERVER_PUBLIC_URL set, URL is filled in)");
            }
        }
        Command::Invite(InviteCommand::List { team, json }) => {
            let team = match team {
                Some(t) => Some(hub.find_team(&t).await?.0),
                None => None,
            };
            let invites = hub.invites(team.as_deref(), now_ms()).await?;
            if json {
                let rows: Vec<_> = invites
                    .iter()
                    .map(|i| {
                        let mut v = serde_json::to_value(i).unwrap_or_default();
                        v["id"] = invite_id(&i.code_hash).into();
                        v
                    })
                    .collect();
                writeln!(out, "{}", serde_json::to_string_pretty(&rows)?)?;
            } else {
                writeln!(
                    out,
                    "{:<12} {:<14} {:<18} {:>9} {:<17} {:<17} made by",
                    "id", "team", "for", "uses left", "expires", "created"
                )?;
                for i in &invites {
                    writeln!(
                        out,
                        "{:<12} {:<14} {:<18} {:>9} {:<17} {:<17} {}",
                        invite_id(&i.code_hash),
                        i.team,
                        match (&i.member, i.founder) {
                            _ if i.relay => "a-relay",
                            (_, true) => "the-founder",
                            (Some(m), false) => m.as_str(),
                            (None, false) => "anyone",
                        },
                        i.uses_left,
                        fmt_ms(Some(i.expires_ms)),
                        fmt_ms(Some(i.created_ms)),
                        i.created_by
                            .as_deref()
                            .map_or("the admin".to_owned(), |d| format!("device {d}")),
                    )?;
                }
            }
        }
        Command::Invite(InviteCommand::Revoke { invite }) => {
            let id = hub.revoke_invite(&invite, now_ms()).await?;
            eprintln!("revoked invite {id}: nobody can join with it any more");
        }
        Command::Device(DeviceCommand::List { team, json }) => {
            let team = match team {
                Some(t) => Some(hub.find_team(&t).await?.0),
                None => None,
            };
            let devices = hub.named_devices(team.as_deref()).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&devices)?)?;
            } else {
                writeln!(
                    out,
                    "{:<14} {:<14} {:<18} {:<22} {:<17} {:<17} device",
                    "id", "team", "member", "name", "last sync", "revoked"
                )?;
                for named in devices {
                    let d = &named.device;
                    let who = match &named.handle {
                        _ if d.relay => "(relay)".to_owned(),
                        Some(h) => format!("@{h}"),
                        None => d.member.clone(),
                    };
                    writeln!(
                        out,
                        "{:<14} {:<14} {:<18} {:<22} {:<17} {:<17} {}",
                        d.id,
                        d.team,
                        who,
                        named.member_name.as_deref().unwrap_or("-"),
                        fmt_ms(d.last_seen_ms),
                        fmt_ms(d.revoked_ms),
                        d.name
                    )?;
                }
            }
        }
        Command::Change(ChangeCommand::Withdraw {
            team,
            org,
            hashes,
            cascade,
            dry_run,
            json,
        }) => {
            // An organisation's log is withdrawn from like a team's.
            let (team, _) = match (team, org) {
                (Some(team), _) => hub.find_team(&team).await?,
                (None, Some(org)) => hub.find_org(&org).await?,
                (None, None) => return Err("name the team (--team) or organisation (--org)".into()),
            };
            let go = match (dry_run, cascade) {
                (true, _) => Go::Preview,
                (false, true) => Go::Cascade,
                (false, false) => Go::Named,
            };
            let w = hub.withdraw(&team, &hashes, now_ms(), go).await?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(&w)?)?;
            } else {
                for c in &w.changes {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}",
                        c.hash,
                        c.doc,
                        c.author,
                        c.kind,
                        c.fate.words()
                    )?;
                }
            }
            let count =
                |fates: &[Fate]| w.changes.iter().filter(|c| fates.contains(&c.fate)).count();
            let out_of_history = count(&[
                Fate::Withdrawn,
                Fate::WithdrawnWithIt,
                Fate::WithdrawnAfterIt,
            ]);
            let taken_back = count(&[Fate::TakenBack, Fate::TakenBackWithIt]);
            let kept = count(&[Fate::Kept]);
            let beyond = w
                .changes
                .iter()
                .filter(|c| !c.named && c.fate.goes())
                .count();
            let what = [
                (out_of_history > 0)
                    .then(|| format!("{out_of_history} change(s) out of the history")),
                (taken_back > 0).then(|| {
                    format!(
                        "what {taken_back} change(s) set taken back by a change of the server's \
                         (their history stays)"
                    )
                }),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", and ");
            let kept = if kept > 0 {
                format!("; {kept} later change(s), made after but not on it, kept")
            } else {
                String::new()
            };
            if w.done {
                eprintln!("withdrew {what}{kept}; devices follow at their next sync");
            } else if dry_run {
                eprintln!("would withdraw {what}{kept}; nothing done (--dry-run)");
            } else {
                return Err(format!(
                    "nothing withdrawn: {beyond} more change(s) would go with what you named \
                     (listed above, with what would become of each); run again with --cascade \
                     to withdraw them too"
                )
                .into());
            }
        }
        Command::Device(DeviceCommand::Revoke { device }) => {
            hub.revoke(&device, now_ms()).await?;
            eprintln!("revoked {device}: its token is refused from now on");
        }
        Command::Copy { to } => {
            let target = store::open(&to, &store::Options::default())
                .await
                .map_err(|e| format!("cannot open {}: {e}", redact(&to)))?;
            let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
            let copied = store::copy(&**hub.store(), &*target, |n| {
                if tty {
                    eprint!("\rcopied {n} changes");
                }
            })
            .await?;
            if tty {
                eprintln!();
            }
            writeln!(
                out,
                "copied {} team(s), {} organisation(s), {} device(s), {} invite(s), {} log \
                 entries; checked",
                copied.teams, copied.orgs, copied.devices, copied.invites, copied.entries
            )?;
            eprintln!(
                "start the server on it: `cairn-server --db {} serve`",
                redact(&to)
            );
        }
    }
    Ok(())
}

/// Prunes the log `id` (of a team or an organisation, as `what` says) and says what went.
async fn prune(
    hub: &Hub,
    out: &mut impl std::io::Write,
    (id, what): (&str, &str),
    older_than: i64,
    json: bool,
) -> Result<(), Box<dyn std::error::Error>> {
    let pruned = hub.store().prune(id, now_ms() - older_than).await?;
    if json {
        writeln!(out, "{}", serde_json::to_string(&pruned)?)?;
    } else {
        writeln!(
            out,
            "pruned {} change{} ({}) from {what} {id}",
            pruned.changes,
            if pruned.changes == 1 { "" } else { "s" },
            fmt_bytes(pruned.bytes)
        )?;
    }
    Ok(())
}

/// What the founder does with their invite, for stderr: start the team on the server, or bring
/// one begun offline.
fn founder_lines(public_url: Option<&str>, code: &str, expires_ms: i64, team: &str) -> String {
    let url = public_url.map(|u| u.trim_end_matches('/')).unwrap_or("URL");
    let mut text = format!(
        "the founder's invite, good for one device until {} UTC; the founder either\n  \
         starts `{team}` on the server:   cairn join {url} --invite {code} --name \"YOUR NAME\"\n  \
         or brings a team begun offline: cairn publish {url} --invite {code}\n",
        fmt_ms(Some(expires_ms))
    );
    if public_url.is_none() {
        text.push_str("(with --public-url or CAIRN_SERVER_PUBLIC_URL set, URL is filled in)\n");
    }
    text
}

/// A team as an argument to paste: its name when a shell takes it as it is (quoted when it
/// has spaces), else its id.
fn team_arg(id: &str, name: &str) -> String {
    let plain = |c: char| c.is_alphanumeric() || matches!(c, '-' | '_' | '.');
    if name.chars().all(plain) {
        name.to_owned()
    } else if name.chars().all(|c| plain(c) || c == ' ') {
        format!("\"{name}\"")
    } else {
        id.to_owned()
    }
}

fn serve(db: &str, args: &ServeArgs) -> Result<(), Box<dyn std::error::Error>> {
    let listen = args.listen;
    let limits = args.limits();
    let filter = tracing_subscriber::EnvFilter::try_from_env("CAIRN_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match args.log_format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .fmt_fields(cairn_server::logs::JsonFields)
            .event_format(cairn_server::logs::JsonLines)
            .init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let options = store::Options {
            pool: args.db_pool.max(1),
            checkpoint_in_background: true,
        };
        let store = store::open(db, &options)
            .await
            .map_err(|e| format!("cannot open {}: {e}", redact(db)))?;
        let backend = store.backend();
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let addr = listener.local_addr()?;
        {
            let mut out = std::io::stdout().lock();
            writeln!(out, "listening on http://{addr}")?;
            out.flush()?;
        }
        tracing::info!(%addr, db = %redact(db), backend, "serving");
        let hub = Arc::new(Hub::new(store, args.doc_cache));
        let state = State::new(hub, limits);
        cairn_server::serve(listener, state, shutdown_signal()).await?;
        tracing::info!("stopped");
        Ok::<_, Box<dyn std::error::Error>>(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<std::ffi::OsString> {
        list.iter().map(Into::into).collect()
    }

    fn with_config(text: &str, list: &[&str]) -> Result<Cli, String> {
        use clap::{CommandFactory, FromArgMatches};
        let path = std::path::Path::new("test.toml");
        let config = config::parse(text, path)?;
        let command = config.apply(Cli::command())?;
        let matches = command
            .try_get_matches_from(args(list))
            .map_err(|e| e.to_string())?;
        Cli::from_arg_matches(&matches).map_err(|e| e.to_string())
    }

    #[test]
    fn the_example_configuration_parses_and_flags_win_over_it() {
        let example = include_str!("../cairn-server.example.toml");
        let cli = with_config(example, &["cairn-server", "serve"]).unwrap();
        assert_eq!(cli.db.as_deref(), Some("/var/lib/cairn/server.sqlite3"));
        assert_eq!(cli.public_url.as_deref(), Some("https://cairn.example.org"));
        let Command::Serve(serve) = &cli.command else {
            panic!("serve")
        };
        assert_eq!(serve.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(serve.max_devices_per_member, 10);
        assert_eq!(serve.catch_up_after, 1000);
        assert_eq!(serve.log_format, LogFormat::Text);
        // The admin commands read the same database.
        let cli = with_config(example, &["cairn-server", "team", "list"]).unwrap();
        assert_eq!(cli.db.as_deref(), Some("/var/lib/cairn/server.sqlite3"));
        // A flag wins over the file.
        let cli = with_config(
            example,
            &[
                "cairn-server",
                "--db",
                "other.sqlite3",
                "serve",
                "--listen",
                "0.0.0.0:1",
            ],
        )
        .unwrap();
        assert_eq!(cli.db.as_deref(), Some("other.sqlite3"));
        let Command::Serve(serve) = &cli.command else {
            panic!("serve")
        };
        assert_eq!(serve.listen.port(), 1);
    }

    #[test]
    fn the_packaged_configuration_parses() {
        // What the Debian package installs as /etc/cairn-server/config.toml: the database under
        // the unit's StateDirectory, the only place the service may write.
        let packaged = include_str!("../debian/config.toml");
        for command in [
            &["cairn-server", "serve"][..],
            &["cairn-server", "team", "list"],
        ] {
            let cli = with_config(packaged, command).unwrap();
            assert_eq!(
                cli.db.as_deref(),
                Some("/var/lib/cairn-server/server.sqlite3")
            );
        }
        let cli = with_config(packaged, &["cairn-server", "serve"]).unwrap();
        let Command::Serve(serve) = &cli.command else {
            panic!("serve")
        };
        assert_eq!(serve.listen.to_string(), "127.0.0.1:7878");
        assert_eq!(serve.log_format, LogFormat::Text);
    }

    #[test]
    fn the_log_format_is_a_setting_of_serve() {
        let serve_of = |cli: Cli| match cli.command {
            Command::Serve(serve) => Some(serve.log_format),
            _ => None,
        };
        let cli = with_config("[serve]\nlog_format = \"json\"", &["cairn-server", "serve"]);
        assert_eq!(cli.map(serve_of), Ok(Some(LogFormat::Json)));
        let cli = with_config(
            "[serve]\nlog-format = \"json\"",
            &["cairn-server", "serve", "--log-format", "text"],
        );
        assert_eq!(cli.map(serve_of), Ok(Some(LogFormat::Text)));
        let err = with_config("", &["cairn-server", "serve", "--log-format", "xml"]).unwrap_err();
        assert!(err.contains("json"), "{err}");
    }

    #[test]
    fn a_bad_configuration_says_what_is_wrong() {
        let err = with_config("dbb = \"x\"", &["cairn-server", "team", "list"]).unwrap_err();
        assert!(
            err.contains("unknown setting `dbb`") && err.contains("db"),
            "{err}"
        );
        let err = with_config("[serve]\nlisten = 5", &["cairn-server", "serve"]).unwrap_err();
        assert!(err.contains("listen"), "{err}");
        let err = with_config("[web]\nx = 1", &["cairn-server", "serve"]).unwrap_err();
        assert!(err.contains("unknown section [web]"), "{err}");
        let err = with_config("db = [1]", &["cairn-server", "serve"]).unwrap_err();
        assert!(err.contains("must be a string"), "{err}");
        let err = with_config("not toml", &["cairn-server", "serve"]).unwrap_err();
        assert!(err.contains("not valid TOML"), "{err}");
    }
}
