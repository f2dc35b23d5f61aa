//! The project's configuration file: `.opencode/orchestrator.toml` (or `.opencode/orchestrator.json`), with
//! the OpenCode servers to use, each agent's model and prompt module overrides, the session pools, the review
//! gate's commands, the mission's limits and its budgets.
//!
//! Every key is optional: a key left out keeps the built-in default (or whatever the command line set), so a
//! project writes only what it changes. [`EXAMPLE_TOML`] shows every key with its default and range.
//!
//! ```
//! use std::path::Path;
//! use orchestrator::cli::config;
//! use orchestrator::domain::settings::Settings;
//!
//! let text = "[limits]\nslots = 8\n";
//! let parsed = config::parse_toml(text, Path::new(".opencode/orchestrator.toml"))?;
//! let mut mission = Settings::new("/tmp/project");
//! parsed.apply(&mut mission);
//! assert_eq!(mission.slots, 8);
//!
//! let error = config::parse_toml("[limits]\nslots = 0\n", Path::new("orchestrator.toml")).unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "orchestrator.toml:2: limits.slots: must be between 1 and 64, got 0"
//! );
//! # Ok::<(), config::ConfigError>(())
//! ```
//!
//! Errors are precise: a TOML or JSON syntax error and an unknown key (every table rejects keys it does not
//! know, so `slot = 4` is not silently ignored) are [`ConfigError::Parse`] with the line and column; a value
//! out of its range is [`ConfigError::Invalid`] naming the key's path (`limits.slots`) and its line. Every
//! invalid value is reported at once ([`ConfigError::Many`]), not only the first, so one edit fixes them all.
//!
//! Why the file is deserialized into plain values and located separately: the `toml` crate's span-carrying
//! wrapper only works with the TOML deserializer, while the JSON variant must be located too. So the values
//! are read with serde (one schema for both formats), and a problem's line is found afterwards by walking the
//! document to the key's path: through `toml`'s spanned document tree for TOML, through the syntax tree of
//! the `jsonc-parser` crate (whose nodes carry their byte ranges) for JSON.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use opencode_client::ModelRef;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

use crate::domain::gate::GateCommand;
use crate::domain::position::line_column;
use crate::domain::prompts::Role;
use crate::domain::settings::Settings;

/// The prompt modules a role's `prompts` table may override, in the order `prompts` assembles them.
pub const PROMPT_MODULES: [&str; 8] = [
    "philosophy",
    "role",
    "forbidden",
    "required",
    "format",
    "tools",
    "completion",
    "status",
];

/// The TOML configuration file's name, in the project's `.opencode/` directory.
pub const TOML_FILE: &str = "orchestrator.toml";

/// The JSON configuration file's name, in the project's `.opencode/` directory.
pub const JSON_FILE: &str = "orchestrator.json";

/// Every key of the configuration, with its default and its range; it parses as it is.
///
/// The JSON variant has the same structure (`{"limits": {"slots": 4}, "agents": {"worker": {...}}}`).
pub const EXAMPLE_TOML: &str = r#"# .opencode/orchestrator.toml: the orchestrator's configuration for this project.
# Every key is optional; a key left out keeps its default.

[servers]
# The OpenCode servers to run the mission on (more than one: a multi-server run). Each is an http(s) URL.
# Without this table the orchestrator uses --url, or starts OpenCode itself.
urls = ["http://127.0.0.1:4096"]
# The environment variable that holds the servers' password (`opencode serve` with a password).
password_env = "OPENCODE_SERVER_PASSWORD"

[agents]
# The model of every agent, as provider/model; without it, the server's default model.
model = "anthropic/claude-sonnet-4"

# One table per role: commander, planner, worker, reviewer.
[agents.worker]
# This role's model, instead of agents.model.
model = "anthropic/claude-sonnet-4"

[agents.worker.prompts]
# Replaces one module of this role's system prompt; an empty text drops the module. The modules:
# philosophy, role, forbidden, required, format, tools, completion, status.
philosophy = "Work from facts you can check. Prefer the smallest change that does the job."

[pools]
# Parent sessions kept per role, 1 to 64.
sessions_per_role = 5
# Child sessions per parent before it is retired, 1 to 1000.
max_reuses = 10

[review]
# The gate's commands, each run with `sh -c` in the project; an empty list detects them
# (cargo test, npm test, pytest, go test).
commands = ["cargo test --offline"]
# How long each command may run, 1 to 86400 seconds.
timeout_seconds = 300

[limits]
# Worker slots (tasks at once), 1 to 64.
slots = 4
# Plans asked of the Planner before planning gives up, 1 to 10.
plan_attempts = 3
# Attempts per task (a failed review starts the next), 1 to 10.
review_attempts = 3
# Times a Worker that answered without a status is asked to go on, 0 to 10.
nudges = 2
# Retries of a turn whose model call failed (and OpenCode's own retries allowed per turn), 0 to 10.
model_retries = 3
# A turn with no progress for this long is stalled, 1 to 86400 seconds.
stall_seconds = 300
# A turn may take at most this long, 1 to 86400 seconds.
turn_timeout_seconds = 1800
# Whether Workers may start sub-agents: 0 (no) or 1 (one level).
delegation_depth = 1
# The most tokens the digest of earlier missions' records may take in the Commander's and the Planner's
# prompts, 0 (none) to 20000.
memory_digest_tokens = 800
# A Worker session whose context passed this many tokens before a new round of findings continues in a
# fresh session seeded with a handoff summary, 0 (never) to 10000000.
worker_context_tokens = 120000

[budgets]
# What a mission may spend; the command line's --max-cost, --max-tokens, --max-time and
# --max-turns-per-task win over these. At 80% of a budget a warning; at the limit the mission pauses
# (exit 3) and `orchestrator resume --max-cost <higher>` (or another higher budget) goes on. Each is off
# when left out.
# The most the mission may cost, in the provider's currency: a positive number (or a text such as "$2.50").
max_cost = 2.50
# The most tokens (input, output, reasoning and cache): a positive whole number, or a text such as "2M".
max_tokens = 2000000
# The longest the mission may run (its runs only): a duration such as "45m", "2h" or "1h30m".
max_time = "2h"
# The most turns one task's Workers may take (a task past it fails), 1 to 10000.
max_turns_per_task = 40
"#;

/// The project's configuration, validated. Every setting is optional: `None` (or empty) keeps the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// `[servers]`: the OpenCode servers to use.
    pub servers: Servers,
    /// `agents.model`: the model of every agent without a model of its own.
    pub model: Option<ModelRef>,
    /// `[agents.<role>]`: each role's model and prompt overrides.
    pub agents: BTreeMap<Role, Agent>,
    /// `[pools]`: the session pools.
    pub pools: Pools,
    /// `[review]`: the review gate.
    pub review: Review,
    /// `[limits]`: the mission's limits.
    pub limits: Limits,
    /// `[budgets]`: what the mission may spend.
    pub budgets: Budgets,
}

/// `[servers]`: the OpenCode servers a mission runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Servers {
    /// `urls`: the servers' http(s) URLs, as written; empty when the table or the key is left out.
    pub urls: Vec<String>,
    /// `password_env`: the environment variable that holds the servers' password.
    pub password_env: Option<String>,
}

/// `[agents.<role>]`: one role's settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Agent {
    /// `model`: the role's model, instead of `agents.model`.
    pub model: Option<ModelRef>,
    /// `[agents.<role>.prompts]`: prompt module name → the text that replaces it (empty drops it).
    pub prompts: BTreeMap<String, String>,
}

/// `[pools]`: the session pools.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pools {
    /// `sessions_per_role`: parent sessions kept per role.
    pub sessions_per_role: Option<usize>,
    /// `max_reuses`: child sessions per parent before it is retired.
    pub max_reuses: Option<u32>,
}

/// `[review]`: the review gate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Review {
    /// `commands`: the gate's command lines (run with `sh -c`); `Some(empty)` detects them from the project.
    pub commands: Option<Vec<String>>,
    /// `timeout_seconds`: how long each command may run.
    pub timeout: Option<Duration>,
}

/// `[limits]`: the mission's limits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// `slots`: worker slots.
    pub slots: Option<usize>,
    /// `plan_attempts`: plans asked of the Planner.
    pub plan_attempts: Option<u32>,
    /// `review_attempts`: attempts per task.
    pub review_attempts: Option<u32>,
    /// `nudges`: times a Worker without a status is asked to go on.
    pub nudges: Option<u32>,
    /// `model_retries`: retries of a turn whose model call failed.
    pub model_retries: Option<u32>,
    /// `stall_seconds`: how long a turn may go without progress.
    pub stall_after: Option<Duration>,
    /// `turn_timeout_seconds`: how long a turn may take.
    pub turn_timeout: Option<Duration>,
    /// `delegation_depth`: 0 or 1.
    pub delegation_depth: Option<u32>,
    /// `memory_digest_tokens`: the cap of the digest of earlier missions' records.
    pub memory_digest_tokens: Option<usize>,
    /// `worker_context_tokens`: the context past which a Worker continues in a fresh session.
    pub worker_context_tokens: Option<u64>,
}

/// `[budgets]`: what a mission may spend; each `None` is no limit (unless the command line sets one).
///
/// ```
/// use std::path::Path;
/// use orchestrator::cli::config;
///
/// let text = "[budgets]\nmax_cost = 1.5\nmax_tokens = \"2M\"\nmax_time = \"1h30m\"\n";
/// let budgets = config::parse_toml(text, Path::new("orchestrator.toml"))?.budgets;
/// assert_eq!(budgets.max_cost, Some(1_500_000_000));
/// assert_eq!(budgets.max_tokens, Some(2_000_000));
/// assert_eq!(budgets.max_time, Some(std::time::Duration::from_secs(5400)));
///
/// let error = config::parse_toml("[budgets]\nmax_cost = -1\n", Path::new("orchestrator.toml")).unwrap_err();
/// assert_eq!(
///     error.to_string(),
///     "orchestrator.toml:2: budgets.max_cost: must be a positive amount (e.g. 2.50), got -1"
/// );
/// # Ok::<(), config::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budgets {
    /// `max_cost`: the most the mission may cost, in billionths of the provider's currency.
    pub max_cost: Option<u64>,
    /// `max_tokens`: the most tokens it may use.
    pub max_tokens: Option<u64>,
    /// `max_time`: the longest it may run.
    pub max_time: Option<Duration>,
    /// `max_turns_per_task`: the most turns one task's Workers may take.
    pub max_turns_per_task: Option<u32>,
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or JSON, or has a key the schema does not know.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
        /// The column, in characters from 1.
        column: usize,
        /// What is wrong, led by the key it is about when known (`limits.slot: unknown field …`).
        message: String,
    },
    /// A value is out of its range or malformed.
    #[error("{}{}: {field}: {message}", path.display(), line.map(|line| format!(":{line}")).unwrap_or_default())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The key's path, e.g. `limits.slots` or `servers.urls[1]`.
        field: String,
        /// The line the key is on, from 1, when it could be located.
        line: Option<usize>,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// Several invalid values (each an [`Invalid`](ConfigError::Invalid)), in the file's order.
    #[error("{} invalid settings:\n{}", errors.len(), errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Many {
        /// The problems.
        errors: Vec<ConfigError>,
    },
    /// The file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// Both the TOML and the JSON file exist, and neither is preferred silently.
    #[error(
        "both {} and {} exist: keep one of them (the orchestrator reads one configuration file)",
        toml.display(),
        json.display()
    )]
    Both {
        /// The TOML file.
        toml: PathBuf,
        /// The JSON file.
        json: PathBuf,
    },
}

impl ConfigError {
    /// The single problems this error is made of: the errors of [`Many`](ConfigError::Many), or itself.
    pub fn problems(&self) -> Vec<&ConfigError> {
        match self {
            ConfigError::Many { errors } => errors.iter().collect(),
            other => vec![other],
        }
    }
}

/// Reads the project's configuration from `<project>/.opencode/`: `orchestrator.toml` or `orchestrator.json`.
///
/// # Errors
///
/// [`ConfigError::Both`] when both files exist, [`ConfigError::Io`] when one cannot be read, and the errors of
/// [`parse_toml`] / [`parse_json`].
pub fn load(project: &Path) -> Result<Option<Config>, ConfigError> {
    let dir = project.join(".opencode");
    let toml_path = dir.join(TOML_FILE);
    let json_path = dir.join(JSON_FILE);
    // Read both rather than test for existence first, so a file that vanishes in between is simply absent.
    let toml_text = read_if_present(&toml_path)?;
    let json_text = read_if_present(&json_path)?;
    match (toml_text, json_text) {
        (Some(_), Some(_)) => Err(ConfigError::Both {
            toml: toml_path,
            json: json_path,
        }),
        (Some(text), None) => parse_toml(&text, &toml_path).map(Some),
        (None, Some(text)) => parse_json(&text, &json_path).map(Some),
        (None, None) => Ok(None),
    }
}

fn read_if_present(path: &Path) -> Result<Option<String>, ConfigError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(ConfigError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Parses and validates a TOML configuration; `path` names the file in errors.
///
/// # Errors
///
/// [`ConfigError::Parse`] for a syntax error or an unknown key, [`ConfigError::Invalid`] or
/// [`ConfigError::Many`] for invalid values.
pub fn parse_toml(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let parse_error = |error: &toml::de::Error, key: Option<String>| {
        let offset = error.span().map_or(0, |span| span.start);
        let (line, column) = line_column(text, offset);
        ConfigError::Parse {
            path: path.to_path_buf(),
            line,
            column,
            message: prefixed(key, error.message()),
        }
    };
    let deserializer =
        toml::de::Deserializer::parse(text).map_err(|error| parse_error(&error, None))?;
    let raw: Table<RawConfig> =
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = key_of(error.path());
            parse_error(error.inner(), key)
        })?;
    let document = toml::de::DeTable::parse(text).map_err(|error| parse_error(&error, None))?;
    validate(raw.0, path, |field| {
        toml_offset(document.get_ref(), field).map(|offset| line_column(text, offset).0)
    })
}

/// Parses and validates a JSON configuration; `path` names the file in errors.
///
/// # Errors
///
/// As [`parse_toml`].
pub fn parse_json(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let parse_error = |error: &serde_json::Error, key: Option<String>| ConfigError::Parse {
        path: path.to_path_buf(),
        line: error.line(),
        // serde_json says column 0 for an error before the line's first character.
        column: error.column().max(1),
        message: prefixed(key, &json_message(error)),
    };
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let raw: Table<RawConfig> =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
            let key = error
                .inner()
                .is_data()
                .then(|| key_of(error.path()))
                .flatten();
            parse_error(error.inner(), key)
        })?;
    deserializer
        .end()
        .map_err(|error| parse_error(&error, None))?;
    // serde_json read the values; jsonc-parser's syntax tree locates them (its ranges are byte offsets).
    // The text is valid JSON by now, so a failure here only costs the line number.
    let document = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default())
        .ok()
        .and_then(|parsed| parsed.value);
    validate(raw.0, path, |field| {
        let offset = json_offset(document.as_ref()?, field)?;
        Some(line_column(text, offset).0)
    })
}

/// serde_json's message without the ` at line L column C` it appends (the variant carries them).
fn json_message(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    full.strip_suffix(&suffix).unwrap_or(&full).to_string()
}

/// The key a deserialization error is about (`limits.slots`; for an unknown key, the unknown key itself:
/// `limits.slot`), as serde_path_to_error tracked it; `None` at the top level.
fn key_of(path: &serde_path_to_error::Path) -> Option<String> {
    let key = path.to_string();
    (path.iter().next().is_some() && key != ".").then_some(key)
}

/// `message`, led by the key it is about, as [`ConfigError::Invalid`] shows its field.
fn prefixed(key: Option<String>, message: &str) -> String {
    match key {
        Some(key) => format!("{key}: {message}"),
        None => message.to_string(),
    }
}

impl Config {
    /// Sets the fields of `config` that this configuration sets, and leaves the others as they are.
    ///
    /// `model` becomes [`Models::default`](crate::domain::settings::Models::default); per-role models are in [`model_for`](Self::model_for).
    /// `limits.model_retries` sets both the mission's retries of a failed turn and the monitor's tolerance of
    /// OpenCode's own retries. An empty `review.commands` sets the gate to detection (`None`).
    pub fn apply(&self, config: &mut Settings) {
        let limits = &self.limits;
        if let Some(slots) = limits.slots {
            config.slots = slots;
        }
        if let Some(attempts) = limits.plan_attempts {
            config.plan_attempts = attempts;
        }
        if let Some(attempts) = limits.review_attempts {
            config.review_attempts = attempts;
        }
        if let Some(nudges) = limits.nudges {
            config.nudges = nudges;
        }
        if let Some(retries) = limits.model_retries {
            config.model_retries = retries;
            config.monitor.model_retries = u64::from(retries);
        }
        if let Some(stall_after) = limits.stall_after {
            config.monitor.stall_after = stall_after;
        }
        if let Some(turn_timeout) = limits.turn_timeout {
            config.monitor.turn_timeout = turn_timeout;
        }
        if let Some(depth) = limits.delegation_depth {
            config.delegation_depth = depth;
        }
        if let Some(tokens) = limits.memory_digest_tokens {
            config.memory_digest_tokens = tokens;
        }
        if let Some(tokens) = limits.worker_context_tokens {
            config.context_threshold = tokens;
        }
        if let Some(per_role) = self.pools.sessions_per_role {
            config.pool.per_role = per_role;
        }
        if let Some(max_reuses) = self.pools.max_reuses {
            config.pool.max_reuses = max_reuses;
        }
        if let Some(commands) = &self.review.commands {
            config.gate.commands = (!commands.is_empty()).then(|| {
                commands
                    .iter()
                    .map(|line| GateCommand::shell(line))
                    .collect()
            });
        }
        if let Some(timeout) = self.review.timeout {
            config.gate.timeout = timeout;
        }
        for (role, agent) in &self.agents {
            for (module, text) in &agent.prompts {
                config.prompts =
                    std::mem::take(&mut config.prompts).with_override(*role, module, text.clone());
            }
        }
        for (role, agent) in &self.agents {
            if let Some(model) = &agent.model {
                config.models.roles.insert(*role, model.clone());
            }
        }
        if let Some(model) = &self.model {
            config.models.default = Some(model.clone());
        }
        let budgets = &self.budgets;
        config.budgets = config.budgets.over(crate::domain::usage::Budgets {
            cost_nanos: budgets.max_cost,
            tokens: budgets.max_tokens,
            time_ms: budgets
                .max_time
                .map(|time| u64::try_from(time.as_millis()).unwrap_or(u64::MAX)),
            turns_per_task: budgets.max_turns_per_task,
        });
    }

    /// The model `role` uses: its own `agents.<role>.model`, else `agents.model`; `None` leaves the choice to
    /// the server (or the command line).
    pub fn model_for(&self, role: Role) -> Option<ModelRef> {
        self.agents
            .get(&role)
            .and_then(|agent| agent.model.clone())
            .or_else(|| self.model.clone())
    }

    /// The OpenCode servers' URLs (`servers.urls`), in the file's order; empty when none are configured.
    pub fn urls(&self) -> Vec<String> {
        self.servers.urls.clone()
    }

    /// The servers' password, read from the environment variable `servers.password_env` names; `None` when
    /// no variable is configured or it is unset.
    pub fn password(&self) -> Option<String> {
        self.servers
            .password_env
            .as_deref()
            .and_then(|name| std::env::var(name).ok())
    }
}

// The file as serde reads it. Numbers are `i64` so that a negative or huge value is reported by validation
// with its range ("must be between 1 and 64, got -1") rather than as a type error.

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    servers: Option<Table<RawServers>>,
    agents: Option<Table<RawAgents>>,
    pools: Option<Table<RawPools>>,
    review: Option<Table<RawReview>>,
    limits: Option<Table<RawLimits>>,
    budgets: Option<Table<RawBudgets>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServers {
    urls: Option<Vec<String>>,
    password_env: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgents {
    model: Option<String>,
    commander: Option<Table<RawAgent>>,
    planner: Option<Table<RawAgent>>,
    worker: Option<Table<RawAgent>>,
    reviewer: Option<Table<RawAgent>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAgent {
    model: Option<String>,
    // A map, not a struct, so the module names stay those of `prompts` (validated against them).
    #[serde(default)]
    prompts: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPools {
    sessions_per_role: Option<Integer>,
    max_reuses: Option<Integer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReview {
    commands: Option<Vec<String>>,
    timeout_seconds: Option<Integer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    slots: Option<Integer>,
    plan_attempts: Option<Integer>,
    review_attempts: Option<Integer>,
    nudges: Option<Integer>,
    model_retries: Option<Integer>,
    stall_seconds: Option<Integer>,
    turn_timeout_seconds: Option<Integer>,
    delegation_depth: Option<Integer>,
    memory_digest_tokens: Option<Integer>,
    worker_context_tokens: Option<Integer>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudgets {
    max_cost: Option<Scalar>,
    max_tokens: Option<Scalar>,
    max_time: Option<Scalar>,
    max_turns_per_task: Option<Integer>,
}

/// A number or a text as written (a budget may be either: `max_cost = 2.5`, `max_tokens = "2M"`), checked
/// by validation with the command line's parsers, so a file and an option accept the same values.
#[derive(Debug, Clone)]
enum Scalar {
    Integer(i64),
    Float(f64),
    Text(String),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scalar::Integer(value) => write!(f, "{value}"),
            Scalar::Float(value) => write!(f, "{value}"),
            Scalar::Text(text) => write!(f, "\"{text}\""),
        }
    }
}

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ScalarVisitor;

        impl Visitor<'_> for ScalarVisitor {
            type Value = Scalar;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a number or a text")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Scalar, E> {
                Ok(Scalar::Integer(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Scalar, E> {
                i64::try_from(value)
                    .map(Scalar::Integer)
                    .map_err(|_| E::custom(format!("{value} is too large")))
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<Scalar, E> {
                Ok(Scalar::Float(value))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<Scalar, E> {
                Ok(Scalar::Text(value.to_string()))
            }
        }

        deserializer.deserialize_any(ScalarVisitor)
    }
}

/// A table of settings: read only from a map (a TOML table, a JSON object), because serde's derived
/// structs also accept an array of their fields in order, which would take `limits = [4, 3]` for
/// `slots = 4, plan_attempts = 3`.
#[derive(Debug, Default)]
struct Table<T>(T);

impl<T> Table<T> {
    fn into_inner(self) -> T {
        self.0
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Table<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TableVisitor<T>(PhantomData<T>);

        impl<'de, T: Deserialize<'de>> Visitor<'de> for TableVisitor<T> {
            type Value = Table<T>;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a table of settings")
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(de::value::MapAccessDeserializer::new(map)).map(Table)
            }
        }

        deserializer.deserialize_map(TableVisitor(PhantomData))
    }
}

/// A whole number as written, range-checked by validation; its own type so that a wrong type reads
/// "expected an integer" rather than "expected i64".
#[derive(Debug, Clone, Copy)]
struct Integer(i64);

impl<'de> Deserialize<'de> for Integer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IntegerVisitor;

        impl Visitor<'_> for IntegerVisitor {
            type Value = Integer;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("an integer")
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<Integer, E> {
                Ok(Integer(value))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<Integer, E> {
                i64::try_from(value)
                    .map(Integer)
                    .map_err(|_| E::custom(format!("{value} is too large")))
            }
        }

        deserializer.deserialize_i64(IntegerVisitor)
    }
}

/// A key's path in the document: `limits.slots`, `servers.urls[1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FieldPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    fn new(keys: &[&str]) -> Self {
        Self(
            keys.iter()
                .map(|key| Segment::Key((*key).to_string()))
                .collect(),
        )
    }

    fn key(&self, key: &str) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Key(key.to_string()));
        path
    }

    fn index(&self, index: usize) -> Self {
        let mut path = self.clone();
        path.0.push(Segment::Index(index));
        path
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (position, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if position == 0 => write!(f, "{key}")?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// Collects the problems of one file.
struct Problems {
    problems: Vec<(FieldPath, String)>,
}

impl Problems {
    fn add(&mut self, field: FieldPath, message: impl Into<String>) {
        self.problems.push((field, message.into()));
    }

    /// `value` converted to `T` if it is in `min..=max`; else a problem.
    fn range<T: TryFrom<i64>>(
        &mut self,
        field: FieldPath,
        value: Option<Integer>,
        min: i64,
        max: i64,
    ) -> Option<T> {
        let Integer(value) = value?;
        if (min..=max).contains(&value) {
            T::try_from(value).ok()
        } else {
            self.add(
                field,
                format!("must be between {min} and {max}, got {value}"),
            );
            None
        }
    }

    /// A budget: `parse` reads a text (the command line's parser); a number is taken as it is when
    /// `number` accepts it, and otherwise reported with `expected`.
    fn budget<T>(
        &mut self,
        field: FieldPath,
        value: Option<Scalar>,
        expected: &str,
        number: impl Fn(f64) -> Option<T>,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let value = value?;
        let wrong = || format!("must be {expected}, got {value}");
        let parsed = match &value {
            // The parser's message quotes the text.
            Scalar::Text(text) => parse(text),
            // Budgets worth writing are far below 2^52, where the conversion would round.
            #[allow(clippy::cast_precision_loss)]
            Scalar::Integer(whole) => number(*whole as f64).ok_or_else(wrong),
            Scalar::Float(fraction) => number(*fraction).ok_or_else(wrong),
        };
        match parsed {
            Ok(parsed) => Some(parsed),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }

    fn model(&mut self, field: FieldPath, value: Option<&str>) -> Option<ModelRef> {
        let value = value?;
        let parsed = ModelRef::parse(value).filter(|model| {
            !model.provider_id.is_empty()
                && !model.model_id.is_empty()
                && !value.chars().any(char::is_whitespace)
        });
        if parsed.is_none() {
            self.add(
                field,
                format!(
                    "must be `provider/model` (e.g. `anthropic/claude-sonnet-4`), got `{value}`"
                ),
            );
        }
        parsed
    }
}

/// Whether `url` is an absolute http(s) URL with a host.
fn check_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|error| format!("`{url}` is not a URL: {error}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "`{url}` must be an http:// or https:// URL, not {}://",
            parsed.scheme()
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}

/// Whether `name` can name an environment variable in a shell: letters, digits and `_`, not starting with a
/// digit.
fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn role_key(role: Role) -> &'static str {
    match role {
        Role::Commander => "commander",
        Role::Planner => "planner",
        Role::Worker => "worker",
        Role::Reviewer => "reviewer",
    }
}

/// Checks every value of `raw`, turning it into a [`Config`]; `line_of` locates a key's line.
fn validate(
    raw: RawConfig,
    path: &Path,
    line_of: impl Fn(&FieldPath) -> Option<usize>,
) -> Result<Config, ConfigError> {
    let mut problems = Problems {
        problems: Vec::new(),
    };
    let mut config = Config::default();

    let servers_path = FieldPath::new(&["servers"]);
    let servers = raw.servers.map(Table::into_inner).unwrap_or_default();
    if let Some(urls) = servers.urls {
        if urls.is_empty() {
            problems.add(
                servers_path.key("urls"),
                "lists no server: give at least one URL, or leave `urls` out",
            );
        }
        for (index, url) in urls.iter().enumerate() {
            let field = servers_path.key("urls").index(index);
            let url = url.trim();
            if let Err(message) = check_url(url) {
                problems.add(field, message);
            } else if config.servers.urls.iter().any(|seen| seen == url) {
                problems.add(field, format!("`{url}` is listed twice"));
            } else {
                config.servers.urls.push(url.to_string());
            }
        }
    }
    if let Some(name) = servers.password_env {
        if is_variable_name(&name) {
            config.servers.password_env = Some(name);
        } else {
            problems.add(
                servers_path.key("password_env"),
                format!(
                    "`{name}` is not an environment variable name (letters, digits and `_`, \
                     not starting with a digit)"
                ),
            );
        }
    }

    let agents_path = FieldPath::new(&["agents"]);
    let agents = raw.agents.map(Table::into_inner).unwrap_or_default();
    config.model = problems.model(agents_path.key("model"), agents.model.as_deref());
    for (role, agent) in [
        (Role::Commander, agents.commander),
        (Role::Planner, agents.planner),
        (Role::Worker, agents.worker),
        (Role::Reviewer, agents.reviewer),
    ] {
        let Some(Table(agent)) = agent else { continue };
        let role_path = agents_path.key(role_key(role));
        let model = problems.model(role_path.key("model"), agent.model.as_deref());
        let mut prompts = BTreeMap::new();
        for (module, text) in agent.prompts {
            if PROMPT_MODULES.contains(&module.as_str()) {
                prompts.insert(module, text);
            } else {
                problems.add(
                    role_path.key("prompts").key(&module),
                    format!(
                        "`{module}` is not a prompt module; the modules are {}",
                        PROMPT_MODULES.join(", ")
                    ),
                );
            }
        }
        config.agents.insert(role, Agent { model, prompts });
    }

    let pools_path = FieldPath::new(&["pools"]);
    let pools = raw.pools.map(Table::into_inner).unwrap_or_default();
    config.pools.sessions_per_role = problems.range(
        pools_path.key("sessions_per_role"),
        pools.sessions_per_role,
        1,
        64,
    );
    config.pools.max_reuses =
        problems.range(pools_path.key("max_reuses"), pools.max_reuses, 1, 1000);

    let review_path = FieldPath::new(&["review"]);
    let review = raw.review.map(Table::into_inner).unwrap_or_default();
    if let Some(commands) = review.commands {
        let mut lines = Vec::new();
        for (index, line) in commands.iter().enumerate() {
            if line.trim().is_empty() {
                problems.add(
                    review_path.key("commands").index(index),
                    "is empty: write a command line, or remove it",
                );
            } else {
                lines.push(line.trim().to_string());
            }
        }
        config.review.commands = Some(lines);
    }
    config.review.timeout = problems
        .range(
            review_path.key("timeout_seconds"),
            review.timeout_seconds,
            1,
            86_400,
        )
        .map(Duration::from_secs);

    let limits_path = FieldPath::new(&["limits"]);
    let limits = raw.limits.map(Table::into_inner).unwrap_or_default();
    config.limits = Limits {
        slots: problems.range(limits_path.key("slots"), limits.slots, 1, 64),
        plan_attempts: problems.range(
            limits_path.key("plan_attempts"),
            limits.plan_attempts,
            1,
            10,
        ),
        review_attempts: problems.range(
            limits_path.key("review_attempts"),
            limits.review_attempts,
            1,
            10,
        ),
        nudges: problems.range(limits_path.key("nudges"), limits.nudges, 0, 10),
        model_retries: problems.range(
            limits_path.key("model_retries"),
            limits.model_retries,
            0,
            10,
        ),
        stall_after: problems
            .range(
                limits_path.key("stall_seconds"),
                limits.stall_seconds,
                1,
                86_400,
            )
            .map(Duration::from_secs),
        turn_timeout: problems
            .range(
                limits_path.key("turn_timeout_seconds"),
                limits.turn_timeout_seconds,
                1,
                86_400,
            )
            .map(Duration::from_secs),
        delegation_depth: problems.range(
            limits_path.key("delegation_depth"),
            limits.delegation_depth,
            0,
            1,
        ),
        memory_digest_tokens: problems.range(
            limits_path.key("memory_digest_tokens"),
            limits.memory_digest_tokens,
            0,
            20_000,
        ),
        worker_context_tokens: problems.range(
            limits_path.key("worker_context_tokens"),
            limits.worker_context_tokens,
            0,
            10_000_000,
        ),
    };

    let budgets_path = FieldPath::new(&["budgets"]);
    let budgets = raw.budgets.map(Table::into_inner).unwrap_or_default();
    config.budgets = Budgets {
        max_cost: problems.budget(
            budgets_path.key("max_cost"),
            budgets.max_cost,
            "a positive amount (e.g. 2.50)",
            |amount| Some(crate::domain::usage::Usage::nanos(amount)).filter(|nanos| *nanos > 0),
            crate::cli::args::parse_cost,
        ),
        max_tokens: problems.budget(
            budgets_path.key("max_tokens"),
            budgets.max_tokens,
            "a positive whole number of tokens (e.g. 500000, or a text such as \"2M\")",
            // Whole and below 2^53, so the conversion is exact.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            |count| {
                ((1.0..9_007_199_254_740_992.0).contains(&count) && count.fract() == 0.0)
                    .then_some(count as u64)
            },
            crate::cli::args::parse_tokens,
        ),
        max_time: problems.budget(
            budgets_path.key("max_time"),
            budgets.max_time,
            "a duration as a text, such as \"45m\", \"2h\" or \"1h30m\"",
            |_| None,
            |text| crate::cli::args::parse_duration(text).map(Duration::from_millis),
        ),
        max_turns_per_task: problems.range(
            budgets_path.key("max_turns_per_task"),
            budgets.max_turns_per_task,
            1,
            10_000,
        ),
    };

    let mut errors: Vec<ConfigError> = problems
        .problems
        .into_iter()
        .map(|(field, message)| ConfigError::Invalid {
            path: path.to_path_buf(),
            line: line_of(&field),
            field: field.to_string(),
            message,
        })
        .collect();
    // In the file's order, so they read top to bottom; unlocated ones last.
    errors.sort_by_key(|error| match error {
        ConfigError::Invalid { line, .. } => line.unwrap_or(usize::MAX),
        _ => usize::MAX,
    });
    match errors.len() {
        0 => Ok(config),
        1 => Err(errors.remove(0)),
        _ => Err(ConfigError::Many { errors }),
    }
}

/// The byte offset of `field` in a TOML document: the key's own position (for an array element, the
/// element's), so the line is where the user wrote it.
fn toml_offset(document: &toml::de::DeTable<'_>, field: &FieldPath) -> Option<usize> {
    let mut table = document;
    let mut value: Option<&toml::de::DeValue<'_>> = None;
    let mut offset = None;
    for segment in &field.0 {
        match segment {
            Segment::Key(name) => {
                if let Some(current) = value {
                    table = current.as_table()?;
                }
                let (key, found) = table.iter().find(|(key, _)| key.get_ref() == name)?;
                offset = Some(key.span().start);
                value = Some(found.get_ref());
            }
            Segment::Index(index) => {
                let element = value?.as_array()?.get(*index)?;
                offset = Some(element.span().start);
                value = Some(element.get_ref());
            }
        }
    }
    offset
}

/// The byte offset of `field` in a JSON document parsed by jsonc-parser, found as [`toml_offset`] finds it:
/// the key's own position (for an array element, the element's). For a repeated key, the last one, which
/// is the one serde_json keeps.
fn json_offset(document: &jsonc_parser::ast::Value<'_>, field: &FieldPath) -> Option<usize> {
    use jsonc_parser::ast::Value;
    use jsonc_parser::common::Ranged as _;

    let mut value = document;
    let mut offset = None;
    for segment in &field.0 {
        match (segment, value) {
            (Segment::Key(name), Value::Object(object)) => {
                let property = object
                    .properties
                    .iter()
                    .rfind(|property| property.name.as_str() == name)?;
                offset = Some(property.name.start());
                value = &property.value;
            }
            (Segment::Index(index), Value::Array(array)) => {
                value = array.elements.get(*index)?;
                offset = Some(value.start());
            }
            _ => return None,
        }
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::prompts::Prompts;

    fn toml_path() -> PathBuf {
        PathBuf::from(".opencode/orchestrator.toml")
    }

    fn toml_error(text: &str) -> ConfigError {
        parse_toml(text, &toml_path()).expect_err("the configuration is invalid")
    }

    /// The single `Invalid` problem of `error`: (field, line, message).
    fn invalid(error: &ConfigError) -> (String, Option<usize>, String) {
        match error {
            ConfigError::Invalid {
                field,
                line,
                message,
                ..
            } => (field.clone(), *line, message.clone()),
            other => panic!("expected one invalid value, got {other:?}"),
        }
    }

    fn parse_position(error: &ConfigError) -> (usize, usize, String) {
        match error {
            ConfigError::Parse {
                line,
                column,
                message,
                ..
            } => (*line, *column, message.clone()),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn the_example_parses_and_sets_every_key() {
        let config = parse_toml(EXAMPLE_TOML, &toml_path()).expect("the example is valid");
        let sonnet = ModelRef::parse("anthropic/claude-sonnet-4");
        assert_eq!(config.urls(), vec!["http://127.0.0.1:4096".to_string()]);
        assert_eq!(
            config.servers.password_env.as_deref(),
            Some("OPENCODE_SERVER_PASSWORD")
        );
        assert_eq!(config.model, sonnet);
        assert_eq!(config.model_for(Role::Worker), sonnet);
        assert_eq!(config.model_for(Role::Planner), sonnet);
        assert_eq!(
            config.agents[&Role::Worker].prompts["philosophy"],
            "Work from facts you can check. Prefer the smallest change that does the job."
        );
        assert_eq!(
            config.pools,
            Pools {
                sessions_per_role: Some(5),
                max_reuses: Some(10)
            }
        );
        assert_eq!(
            config.review,
            Review {
                commands: Some(vec!["cargo test --offline".to_string()]),
                timeout: Some(Duration::from_secs(300)),
            }
        );
        assert_eq!(
            config.limits,
            Limits {
                slots: Some(4),
                plan_attempts: Some(3),
                review_attempts: Some(3),
                nudges: Some(2),
                model_retries: Some(3),
                stall_after: Some(Duration::from_secs(300)),
                turn_timeout: Some(Duration::from_secs(1800)),
                delegation_depth: Some(1),
                memory_digest_tokens: Some(800),
                worker_context_tokens: Some(120_000),
            }
        );
        assert_eq!(
            config.budgets,
            Budgets {
                max_cost: Some(2_500_000_000),
                max_tokens: Some(2_000_000),
                max_time: Some(Duration::from_secs(7200)),
                max_turns_per_task: Some(40),
            }
        );

        let mut mission = Settings::new("/tmp/project");
        config.apply(&mut mission);
        assert_eq!(mission.models.default, sonnet);
        assert_eq!(
            mission.budgets,
            crate::domain::usage::Budgets {
                cost_nanos: Some(2_500_000_000),
                tokens: Some(2_000_000),
                time_ms: Some(7_200_000),
                turns_per_task: Some(40),
            }
        );
        assert_eq!(
            mission.gate.commands,
            Some(vec![GateCommand::shell("cargo test --offline")])
        );
        assert!(
            mission
                .prompts
                .system(Role::Worker)
                .contains("Prefer the smallest change that does the job.")
        );
    }

    #[test]
    fn apply_changes_the_mission_config() {
        let text = r#"
[agents]
model = "openai/gpt-5"
[agents.planner]
model = "anthropic/claude-opus-4"
[agents.reviewer.prompts]
role = "You are a very strict Reviewer."
status = ""
[pools]
sessions_per_role = 2
max_reuses = 7
[review]
commands = ["make test", "make lint 2>&1"]
timeout_seconds = 45
[limits]
slots = 9
plan_attempts = 5
review_attempts = 6
nudges = 0
model_retries = 7
stall_seconds = 60
turn_timeout_seconds = 600
delegation_depth = 0
memory_digest_tokens = 0
worker_context_tokens = 64000
"#;
        let config = parse_toml(text, &toml_path()).expect("valid");
        let defaults = Settings::new("/tmp/project");
        let mut mission = Settings::new("/tmp/project");
        config.apply(&mut mission);

        assert_eq!((defaults.slots, mission.slots), (4, 9));
        assert_eq!(mission.pool.per_role, 2);
        assert_eq!(mission.pool.max_reuses, 7);
        assert_eq!(
            mission.gate.commands,
            Some(vec![
                GateCommand::shell("make test"),
                GateCommand::shell("make lint 2>&1")
            ])
        );
        assert_eq!(mission.gate.commands.as_ref().unwrap()[1].program, "sh");
        assert_eq!(mission.gate.timeout, Duration::from_secs(45));
        assert_eq!(mission.plan_attempts, 5);
        assert_eq!(mission.review_attempts, 6);
        assert_eq!(
            (defaults.memory_digest_tokens, mission.memory_digest_tokens),
            (800, 0)
        );
        assert_eq!(
            (defaults.context_threshold, mission.context_threshold),
            (120_000, 64_000)
        );
        assert_eq!(mission.nudges, 0);
        assert_eq!(mission.model_retries, 7);
        assert_eq!(mission.monitor.model_retries, 7);
        assert_eq!(mission.monitor.stall_after, Duration::from_secs(60));
        assert_eq!(mission.monitor.turn_timeout, Duration::from_secs(600));
        assert_eq!(mission.delegation_depth, 0);
        assert_eq!(mission.models.default, ModelRef::parse("openai/gpt-5"));
        assert_eq!(
            config.model_for(Role::Planner),
            ModelRef::parse("anthropic/claude-opus-4")
        );
        assert_eq!(
            config.model_for(Role::Worker),
            ModelRef::parse("openai/gpt-5")
        );
        let reviewer = mission.prompts.system(Role::Reviewer);
        assert!(reviewer.contains("You are a very strict Reviewer."));
        assert!(!reviewer.contains("VERDICT: APPROVED"), "status dropped");
        assert_eq!(
            mission.prompts.system(Role::Worker),
            defaults.prompts.system(Role::Worker)
        );
    }

    #[test]
    fn prompt_modules_are_those_prompts_assembles() {
        // Every built-in module of every role is overridable, and every overridable name is a module.
        let mut built_in: Vec<&str> = Role::ALL
            .into_iter()
            .flat_map(|role| Prompts::new().modules(role))
            .map(|module| module.name)
            .collect();
        built_in.sort_unstable();
        built_in.dedup();
        let mut listed = PROMPT_MODULES.to_vec();
        listed.sort_unstable();
        assert_eq!(built_in, listed);
    }

    #[test]
    fn keys_left_out_keep_the_defaults() {
        let config = parse_toml("# nothing\n", &toml_path()).expect("valid");
        assert_eq!(config, Config::default());
        let mut mission = Settings::new("/tmp/project");
        mission.slots = 13;
        mission.gate.commands = Some(vec![GateCommand::shell("true")]);
        config.apply(&mut mission);
        assert_eq!(mission.slots, 13);
        assert_eq!(
            mission.gate.commands,
            Some(vec![GateCommand::shell("true")])
        );
        assert!(config.urls().is_empty());
        assert_eq!(config.model_for(Role::Worker), None);
    }

    #[test]
    fn empty_review_commands_detect() {
        let config = parse_toml("[review]\ncommands = []\n", &toml_path()).expect("valid");
        let mut mission = Settings::new("/tmp/project");
        mission.gate.commands = Some(vec![GateCommand::shell("true")]);
        config.apply(&mut mission);
        assert_eq!(mission.gate.commands, None);
    }

    #[test]
    fn out_of_range_values_name_the_field_and_line() {
        let error = toml_error("[limits]\nplan_attempts = 3\nslots = 0\n");
        assert_eq!(
            error.to_string(),
            ".opencode/orchestrator.toml:3: limits.slots: must be between 1 and 64, got 0"
        );
        for (text, field, line) in [
            ("[limits]\nslots = 65\n", "limits.slots", 2),
            (
                "[limits]\n\nplan_attempts = 11\n",
                "limits.plan_attempts",
                3,
            ),
            (
                "[limits]\nreview_attempts = 0\n",
                "limits.review_attempts",
                2,
            ),
            ("[limits]\nnudges = -1\n", "limits.nudges", 2),
            ("[limits]\nmodel_retries = 11\n", "limits.model_retries", 2),
            ("[limits]\nstall_seconds = 0\n", "limits.stall_seconds", 2),
            (
                "[limits]\nturn_timeout_seconds = 86401\n",
                "limits.turn_timeout_seconds",
                2,
            ),
            (
                "[limits]\ndelegation_depth = 2\n",
                "limits.delegation_depth",
                2,
            ),
            (
                "[pools]\nsessions_per_role = 0\n",
                "pools.sessions_per_role",
                2,
            ),
            ("[pools]\nmax_reuses = 1001\n", "pools.max_reuses", 2),
            (
                "[limits]\nmemory_digest_tokens = 20001\n",
                "limits.memory_digest_tokens",
                2,
            ),
            (
                "[limits]\nworker_context_tokens = -1\n",
                "limits.worker_context_tokens",
                2,
            ),
            (
                "[review]\ntimeout_seconds = 0\n",
                "review.timeout_seconds",
                2,
            ),
            ("limits.slots = 100\n", "limits.slots", 1),
        ] {
            let (got_field, got_line, message) = invalid(&toml_error(text));
            assert_eq!(got_field, field, "{text}");
            assert_eq!(got_line, Some(line), "{text}");
            assert!(message.starts_with("must be between"), "{message}");
        }
    }

    #[test]
    fn budgets_take_numbers_and_texts_as_the_command_line_does() {
        let parsed = |text: &str| parse_toml(text, &toml_path()).unwrap().budgets;
        let budgets = parsed(
            "[budgets]\nmax_cost = \"$0.75\"\nmax_tokens = 1500\nmax_time = \"90s\"\nmax_turns_per_task = 1\n",
        );
        assert_eq!(budgets.max_cost, Some(750_000_000));
        assert_eq!(budgets.max_tokens, Some(1500));
        assert_eq!(budgets.max_time, Some(Duration::from_secs(90)));
        assert_eq!(budgets.max_turns_per_task, Some(1));
        assert_eq!(
            parsed("[budgets]\nmax_cost = 3\n").max_cost,
            Some(3_000_000_000)
        );
        assert_eq!(
            parsed("[budgets]\nmax_tokens = \"2k\"\n").max_tokens,
            Some(2000)
        );
        assert_eq!(parsed(""), Budgets::default());
    }

    #[test]
    fn negative_or_unparsable_budgets_are_named_with_their_line() {
        let cases = [
            (
                "max_cost = -1",
                "must be a positive amount (e.g. 2.50), got -1",
            ),
            (
                "max_cost = 0.0",
                "must be a positive amount (e.g. 2.50), got 0",
            ),
            ("max_cost = \"lots\"", "`lots` is not an amount (e.g. 2.50)"),
            ("max_cost = \"-2\"", "`-2` is not a positive amount"),
            (
                "max_tokens = -5",
                "must be a positive whole number of tokens (e.g. 500000, or a text such as \"2M\"), got -5",
            ),
            (
                "max_tokens = 2.5",
                "must be a positive whole number of tokens (e.g. 500000, or a text such as \"2M\"), got 2.5",
            ),
            (
                "max_tokens = \"many\"",
                "`many` is not a token count (e.g. 500000 or 2M)",
            ),
            (
                "max_time = 60",
                "must be a duration as a text, such as \"45m\", \"2h\" or \"1h30m\", got 60",
            ),
            (
                "max_time = \"soon\"",
                "`soon` is not a duration (e.g. 45m, 2h or 1h30m)",
            ),
            ("max_time = \"-5m\"", "`-5m` is not a positive duration"),
            (
                "max_turns_per_task = 0",
                "must be between 1 and 10000, got 0",
            ),
        ];
        for (line, message) in cases {
            let key = line.split(' ').next().unwrap();
            let error = toml_error(&format!("# budgets\n[budgets]\n{line}\n"));
            assert_eq!(
                invalid(&error),
                (format!("budgets.{key}"), Some(3), message.to_string()),
                "{line}"
            );
        }
        let (line, _, message) =
            parse_position(&toml_error("[budgets]\nmax_turns_per_task = \"3\"\n"));
        assert_eq!(line, 2);
        assert!(
            message.starts_with("budgets.max_turns_per_task"),
            "{message}"
        );
        let (line, _, message) = parse_position(&toml_error("[budgets]\nmax_price = 3\n"));
        assert_eq!(line, 2);
        assert!(message.contains("max_price"), "{message}");
    }

    #[test]
    fn range_bounds_are_inclusive() {
        let text =
            "[limits]\nslots = 64\nnudges = 0\ndelegation_depth = 0\n[pools]\nmax_reuses = 1000\n";
        let config = parse_toml(text, &toml_path()).expect("valid");
        assert_eq!(config.limits.slots, Some(64));
        assert_eq!(config.pools.max_reuses, Some(1000));
    }

    #[test]
    fn every_invalid_value_is_reported_in_file_order() {
        let text = "[limits]\nslots = 0\nreview_attempts = 99\n[servers]\nurls = [\n  \"http://ok:1\",\n  \"ftp://x\",\n]\n";
        let error = toml_error(text);
        let problems: Vec<_> = error.problems().into_iter().map(invalid).collect();
        assert_eq!(
            problems
                .iter()
                .map(|(field, line, _)| (field.as_str(), *line))
                .collect::<Vec<_>>(),
            vec![
                ("limits.slots", Some(2)),
                ("limits.review_attempts", Some(3)),
                ("servers.urls[1]", Some(7)),
            ]
        );
        assert!(error.to_string().starts_with("3 invalid settings:\n"));
    }

    #[test]
    fn bad_urls_are_rejected() {
        for (url, expected) in [
            ("not a url", "is not a URL"),
            ("ftp://127.0.0.1:4096", "must be an http:// or https:// URL"),
            ("file:///tmp/socket", "must be an http:// or https:// URL"),
        ] {
            let text = format!("[servers]\nurls = [\"http://127.0.0.1:1\", \"{url}\"]\n");
            let (field, line, message) = invalid(&toml_error(&text));
            assert_eq!((field.as_str(), line), ("servers.urls[1]", Some(2)));
            assert!(message.contains(expected), "{message}");
        }
        let (field, _, message) = invalid(&toml_error("[servers]\nurls = []\n"));
        assert_eq!(field, "servers.urls");
        assert!(message.contains("at least one"), "{message}");
        let (field, _, message) = invalid(&toml_error(
            "[servers]\nurls = [\"http://a:1\", \"http://a:1\"]\n",
        ));
        assert_eq!(field, "servers.urls[1]");
        assert!(message.contains("twice"), "{message}");
        let (field, line, _) = invalid(&toml_error("[servers]\npassword_env = \"1BAD-NAME\"\n"));
        assert_eq!((field.as_str(), line), ("servers.password_env", Some(2)));

        let config = parse_toml(
            "[servers]\nurls = [\"http://127.0.0.1:4096\", \"https://opencode.example:443/base\"]\n",
            &toml_path(),
        )
        .expect("valid");
        assert_eq!(config.urls().len(), 2);
    }

    #[test]
    fn bad_models_are_rejected() {
        for model in [
            "claude",
            "/claude",
            "anthropic/",
            "anthropic/claude sonnet",
            "",
        ] {
            let text = format!("[agents.worker]\nmodel = \"{model}\"\n");
            let (field, line, message) = invalid(&toml_error(&text));
            assert_eq!(
                (field.as_str(), line),
                ("agents.worker.model", Some(2)),
                "{model}"
            );
            assert!(message.contains("provider/model"), "{message}");
        }
        let (field, line, _) = invalid(&toml_error("[agents]\nmodel = \"gpt\"\n"));
        assert_eq!((field.as_str(), line), ("agents.model", Some(2)));
        // A model id may itself contain slashes (OpenRouter's do).
        let config = parse_toml(
            "[agents]\nmodel = \"openrouter/anthropic/claude\"\n",
            &toml_path(),
        )
        .expect("valid");
        assert_eq!(config.model.unwrap().model_id, "anthropic/claude");
    }

    #[test]
    fn an_unknown_role_is_named_with_its_line() {
        let error = toml_error("[agents]\nmodel = \"a/b\"\n\n[agents.coder]\nmodel = \"a/b\"\n");
        let (line, _, message) = parse_position(&error);
        assert_eq!(line, 4);
        assert!(message.contains("unknown field `coder`"), "{message}");
        assert!(message.contains("`worker`"), "{message}");
        assert!(
            message.starts_with("agents.coder: unknown field"),
            "{message}"
        );
    }

    #[test]
    fn an_unknown_prompt_module_is_named_with_its_line() {
        let text = "[agents.planner.prompts]\nrole = \"ok\"\nfilosophy = \"typo\"\n";
        let (field, line, message) = invalid(&toml_error(text));
        assert_eq!(
            (field.as_str(), line),
            ("agents.planner.prompts.filosophy", Some(3))
        );
        assert!(message.contains("philosophy, role, forbidden"), "{message}");
    }

    #[test]
    fn a_typo_in_a_key_is_named_with_its_line() {
        let error = toml_error("[pools]\nmax_reuses = 3\n\n[limits]\nnudges = 1\nslot = 4\n");
        let (line, column, message) = parse_position(&error);
        assert_eq!((line, column), (6, 1));
        assert!(message.contains("unknown field `slot`"), "{message}");
        assert!(message.contains("`slots`"), "{message}");
        assert!(
            error
                .to_string()
                .starts_with(".opencode/orchestrator.toml:6:1: limits.slot: unknown field `slot`"),
            "{error}"
        );
        let (line, _, message) = parse_position(&toml_error("limit = 3\n"));
        assert_eq!(line, 1);
        assert!(
            message.starts_with("limit: unknown field `limit`"),
            "{message}"
        );
    }

    #[test]
    fn a_wrong_type_is_a_parse_error_at_the_value() {
        let (line, column, message) = parse_position(&toml_error("[limits]\nslots = \"four\"\n"));
        assert_eq!((line, column), (2, 9));
        assert!(
            message.starts_with("limits.slots: invalid type"),
            "{message}"
        );
        assert!(message.ends_with("expected an integer"), "{message}");
        let (line, _, message) =
            parse_position(&toml_error("[servers]\nurls = [\"http://a:1\", 2]\n"));
        assert_eq!(line, 2);
        assert!(
            message.starts_with("servers.urls[1]: invalid type"),
            "{message}"
        );
    }

    #[test]
    fn an_array_is_not_taken_for_a_table() {
        // serde's derived structs would read `[4, 3]` as `slots = 4, plan_attempts = 3`.
        let (line, column, message) = parse_position(&toml_error("\nlimits = [4, 3]\n"));
        assert_eq!((line, column), (2, 10));
        assert!(
            message.starts_with("limits: invalid type: sequence"),
            "{message}"
        );
        let path = PathBuf::from("orchestrator.json");
        let (_, _, message) =
            parse_position(&parse_json("{\"limits\": [4]}", &path).expect_err("array"));
        assert!(
            message.starts_with("limits: invalid type: sequence"),
            "{message}"
        );
        let (line, column, message) = parse_position(&parse_json("[1]", &path).expect_err("array"));
        assert_eq!((line, column), (1, 1));
        assert!(message.starts_with("invalid type: sequence"), "{message}");
    }

    #[test]
    fn toml_syntax_errors_have_line_and_column() {
        let (line, column, _) = parse_position(&toml_error("[limits]\nslots = 4\nnudges = = 2\n"));
        assert_eq!((line, column), (3, 10));
        let (line, _, _) = parse_position(&toml_error("[limits\nslots = 4\n"));
        assert_eq!(line, 1);
    }

    #[test]
    fn json_parses_and_locates_problems() {
        let path = PathBuf::from(".opencode/orchestrator.json");
        let text = r#"{
  "servers": {"urls": ["http://127.0.0.1:4096", "http://127.0.0.1:4097"]},
  "agents": {
    "model": "anthropic/claude-sonnet-4",
    "reviewer": {"prompts": {"required": "Be brief."}}
  },
  "limits": {"slots": 6, "stall_seconds": 30}
}"#;
        let config = parse_json(text, &path).expect("valid");
        assert_eq!(config.urls().len(), 2);
        assert_eq!(config.limits.slots, Some(6));
        assert_eq!(config.limits.stall_after, Some(Duration::from_secs(30)));
        assert_eq!(
            config.model_for(Role::Reviewer),
            ModelRef::parse("anthropic/claude-sonnet-4")
        );
        let mut mission = Settings::new("/tmp/project");
        config.apply(&mut mission);
        assert_eq!(mission.slots, 6);
        assert!(mission.prompts.system(Role::Reviewer).contains("Be brief."));

        let invalid_text = "{\n  \"limits\": {\n    \"nudges\": 1,\n    \"slots\": 0\n  },\n  \"servers\": {\"urls\": [\n    \"http://a:1\",\n    \"gopher://b\"\n  ]}\n}";
        let error = parse_json(invalid_text, &path).expect_err("invalid");
        let problems: Vec<_> = error.problems().into_iter().map(invalid).collect();
        assert_eq!(
            problems
                .iter()
                .map(|(field, line, _)| (field.as_str(), *line))
                .collect::<Vec<_>>(),
            vec![("limits.slots", Some(4)), ("servers.urls[1]", Some(8))]
        );
        assert_eq!(
            error.problems()[0].to_string(),
            ".opencode/orchestrator.json:4: limits.slots: must be between 1 and 64, got 0"
        );

        let error =
            parse_json("{\n  \"limits\": {\n    \"slot\": 4\n  }\n}", &path).expect_err("typo");
        let (line, _, message) = parse_position(&error);
        assert_eq!(line, 3);
        assert!(
            message.starts_with("limits.slot: unknown field `slot`"),
            "{message}"
        );
        assert!(!message.contains("at line"), "{message}");

        let (line, column, _) = parse_position(
            &parse_json("{\n  \"limits\": {\"slots\": 4,}\n}", &path).expect_err("syntax"),
        );
        assert_eq!((line, column), (2, 25));
        let (line, _, _) = parse_position(&parse_json("{} trailing", &path).expect_err("trailing"));
        assert_eq!(line, 1);
    }

    #[test]
    fn json_keys_with_escapes_and_nesting_are_located() {
        let text =
            "{\"a\": [1, {\"b\\\"c\": true}, [2]],\n\"d\": {\"e\": \"x\\\\\"}, \"d\": {\"e\": 1}}";
        let document = jsonc_parser::parse_to_ast(text, &Default::default(), &Default::default())
            .expect("valid")
            .value
            .expect("a value");
        let at = |keys: &[&str], index: Option<usize>| {
            let mut field = FieldPath::new(keys);
            if let Some(index) = index {
                field = field.index(index);
            }
            json_offset(&document, &field).map(|offset| &text[offset..])
        };
        assert!(at(&["a"], None).expect("a").starts_with("\"a\""));
        assert!(at(&["a"], Some(1)).expect("a[1]").starts_with("{\"b"));
        assert!(
            at(&["a"], Some(2)).expect("a[2]").starts_with("[2]"),
            "an element is located at itself"
        );
        let escaped = FieldPath::new(&["a"]).index(1).key("b\"c");
        assert!(
            json_offset(&document, &escaped).is_some(),
            "keys are compared decoded"
        );
        let d = text.len() - at(&["d"], None).expect("d").len();
        assert_eq!(
            line_column(text, d),
            (2, 20),
            "the last of a repeated key, the one serde_json keeps"
        );
        assert_eq!(at(&["d", "e"], None), Some("\"e\": 1}}"));
        assert_eq!(at(&["x"], None), None);
        assert_eq!(at(&["a", "b"], None), None, "a is an array");
    }

    fn project_with(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::create_dir(dir.path().join(".opencode")).expect("mkdir");
        for (name, text) in files {
            fs::write(dir.path().join(".opencode").join(name), text).expect("write");
        }
        dir
    }

    #[test]
    fn load_finds_the_toml_or_the_json() {
        let project = project_with(&[(TOML_FILE, "[limits]\nslots = 3\n")]);
        let config = load(project.path()).expect("valid").expect("present");
        assert_eq!(config.limits.slots, Some(3));

        let project = project_with(&[(JSON_FILE, "{\"limits\": {\"slots\": 5}}")]);
        let config = load(project.path()).expect("valid").expect("present");
        assert_eq!(config.limits.slots, Some(5));

        let project = project_with(&[(TOML_FILE, "[limits]\nslots = 0\n")]);
        let error = load(project.path()).expect_err("invalid");
        let expected = format!(
            "{}:2: limits.slots: must be between 1 and 64, got 0",
            project.path().join(".opencode").join(TOML_FILE).display()
        );
        assert_eq!(error.to_string(), expected);
    }

    #[test]
    fn load_without_a_file_is_none() {
        let project = project_with(&[]);
        assert_eq!(load(project.path()).expect("no error"), None);
        let bare = tempfile::tempdir().expect("tempdir");
        assert_eq!(load(bare.path()).expect("no .opencode"), None);
    }

    #[test]
    fn load_with_both_files_names_both() {
        let project = project_with(&[(TOML_FILE, ""), (JSON_FILE, "{}")]);
        let error = load(project.path()).expect_err("ambiguous");
        assert!(matches!(error, ConfigError::Both { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("orchestrator.toml"), "{message}");
        assert!(message.contains("orchestrator.json"), "{message}");
    }

    #[test]
    fn an_unreadable_file_is_an_io_error() {
        // A directory where the file should be cannot be read as text.
        let project = project_with(&[]);
        fs::create_dir(project.path().join(".opencode").join(TOML_FILE)).expect("mkdir");
        let error = load(project.path()).expect_err("unreadable");
        assert!(matches!(error, ConfigError::Io { .. }), "{error:?}");
    }

    #[test]
    fn password_comes_from_the_named_variable() {
        let config = Config {
            servers: Servers {
                urls: Vec::new(),
                password_env: Some("PATH".to_string()),
            },
            ..Config::default()
        };
        assert_eq!(config.password(), std::env::var("PATH").ok());
        assert_eq!(Config::default().password(), None);
    }
}
