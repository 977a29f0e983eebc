//! The command line of the VideoPick binaries: one flag per key of `videopick-server`'s
//! settings tables ([`MEDIA_KEYS`], [`JOBS_KEYS`], [`CHAT_KEYS`], [`APP_KEYS`]; each also an environment
//! variable and a key of a `--config` TOML file), the one log set-up, and the signal that
//! stops a role. Precedence: flag > environment > file > default.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// Every VideoPick binary allocates with mimalloc (v3): it hands back the memory of
/// short-lived bursts that glibc's heap keeps as fragments between long-lived allocations.
/// 5,000 socket.io-client connections (long-polling handshake, then WebSocket) opened all
/// at once leave the chat server at 10.6 KiB per connection with glibc, 9.8 with mimalloc
/// v2 and 6.1 with v3 (docs/BENCHMARKS.md, "Chat under the real client").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command};
use videopick_server::FileConfig;
pub use videopick_server::config::{APP_KEYS, CHAT_KEYS, JOBS_KEYS, MEDIA_KEYS};
use videopick_server::config::{Key, Kind};

/// The keys of one settings table offered as flags.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// `media`, `jobs`, `chat` or `app`.
    pub name: &'static str,
    /// Its keys.
    pub keys: &'static [Key],
    /// Put before each flag name (`chat-` in `videopick`, whose roles share one line).
    pub prefix: &'static str,
    /// Offer only these keys (empty: all).
    pub only: &'static [&'static str],
}

impl Table {
    /// Every key of `keys` as a flag.
    pub const fn all(name: &'static str, keys: &'static [Key]) -> Table {
        Table {
            name,
            keys,
            prefix: "",
            only: &[],
        }
    }

    fn offered(&self) -> impl Iterator<Item = &'static Key> + '_ {
        self.keys
            .iter()
            .filter(|k| self.only.is_empty() || self.only.contains(&k.name))
    }

    fn long(&self, key: &Key) -> String {
        format!("{}{}", self.prefix, key.name.replace('_', "-"))
    }
}

/// The binary's command: `--config`, `--log-format` and a flag for every key of `tables`.
pub fn command(name: &'static str, about: &'static str, tables: &[Table]) -> Command {
    let defaults = FileConfig::defaults();
    let mut cmd = Command::new(name)
        .version(env!("CARGO_PKG_VERSION"))
        .about(about)
        .next_help_heading("Configuration and logs")
        .arg(
            Arg::new("config")
                .long("config")
                .env("VIDEOPICK_CONFIG")
                .help("TOML file with [media], [jobs], [chat] and [app] tables (keys are the flags' names with _); flags and environment variables override it"),
        )
        .arg(
            Arg::new("check-config")
                .long("check-config")
                .action(ArgAction::SetTrue)
                .help("Read the configuration (file, environment, flags) as the server would, report the first error or print that it is valid, and exit without starting"),
        )
        .arg(
            Arg::new("log-format")
                .long("log-format")
                .env("VIDEOPICK_LOG_FORMAT")
                .value_parser(["text", "json"])
                .default_value("text")
                .help("Log lines as text, or as JSON objects for log shippers; filter with RUST_LOG (default info)"),
        );
    for t in tables {
        for key in t.offered() {
            let default = defaults
                .get(t.name)
                .and_then(|v| v.get(key.name))
                .filter(|_| !key.secret)
                .map(|v| match v {
                    toml::Value::String(s) => format!(" [default: {s}]"),
                    v => format!(" [default: {v}]"),
                })
                .unwrap_or_default();
            let mut arg = Arg::new(format!("{}.{}", t.name, key.name))
                .long(t.long(key))
                .value_name(key.name.to_uppercase())
                .help(format!("{}{default}", key.help))
                .help_heading(key.heading)
                .hide_env_values(key.secret);
            if !key.env.is_empty() {
                arg = arg.env(key.env);
            }
            arg = match key.kind {
                Kind::Switch => arg
                    .num_args(0..=1)
                    .default_missing_value("true")
                    .value_parser(clap::value_parser!(bool)),
                Kind::Number => arg
                    .allow_negative_numbers(true)
                    .value_parser(clap::value_parser!(i64)),
                Kind::NumberList => arg
                    .value_delimiter(',')
                    .action(ArgAction::Append)
                    .value_parser(clap::value_parser!(i64)),
                Kind::TextList => arg.value_delimiter(',').action(ArgAction::Append),
                Kind::Text => arg,
            };
            cmd = cmd.arg(arg);
        }
    }
    cmd
}

/// Set up logging, read the `--config` file (defaults without one) and write the flags and
/// environment variables given over it. With `--check-config`, print that it is valid and
/// exit the process (an error is returned as always).
pub fn load(m: &ArgMatches, tables: &[Table]) -> Result<FileConfig, String> {
    init_logs(
        m.get_one::<String>("log-format")
            .is_some_and(|f| f == "json"),
    );
    let mut file = match m.get_one::<String>("config") {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            toml::from_str::<toml::Table>(&text).map_err(|e| format!("{path}: {e}"))?
        }
        None => toml::Table::new(),
    };
    for t in tables {
        for key in t.offered() {
            let id = format!("{}.{}", t.name, key.name);
            if !matches!(
                m.value_source(&id),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            ) {
                continue;
            }
            let value = match key.kind {
                Kind::Switch => m.get_one::<bool>(&id).map(|b| toml::Value::Boolean(*b)),
                Kind::Number => m.get_one::<i64>(&id).map(|n| toml::Value::Integer(*n)),
                Kind::NumberList => m
                    .get_many::<i64>(&id)
                    .map(|v| toml::Value::Array(v.map(|n| toml::Value::Integer(*n)).collect())),
                Kind::TextList => m.get_many::<String>(&id).map(|v| {
                    toml::Value::Array(v.map(|s| toml::Value::String(s.clone())).collect())
                }),
                Kind::Text => m
                    .get_one::<String>(&id)
                    .map(|s| toml::Value::String(s.clone())),
            };
            if let Some(value) = value {
                let table = file
                    .entry(t.name)
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                if let toml::Value::Table(table) = table {
                    table.insert(key.name.to_string(), value);
                }
            }
        }
    }
    let config = FileConfig::from_table(file)?;
    if m.get_flag("check-config") {
        // Deployment checks run this on every rendered configuration (deploy/tests).
        println!(
            "{}: valid",
            m.get_one::<String>("config")
                .map_or("the configuration", String::as_str)
        );
        std::process::exit(0);
    }
    Ok(config)
}

/// The one log set-up: `tracing` events to stderr, filtered by `RUST_LOG` (default
/// `info`), as text or JSON lines.
pub fn init_logs(json: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.try_init()
    };
}

/// Completes on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return ctrl_c.await.unwrap_or(());
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
    tracing::info!("signal received: stopping");
}

/// Print `message` for the user and fail (a binary's `main` ends with this on error).
pub fn fail(binary: &str, message: &str) -> std::process::ExitCode {
    eprintln!("{binary}: {message}");
    std::process::ExitCode::FAILURE
}
