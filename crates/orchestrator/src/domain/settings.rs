//! What a mission runs with: one [`Settings`] value, built by the command line from the defaults, then the
//! project's configuration file, then the command line's own options over them, and consumed as it is by
//! the engine and the adapters.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use opencode_client::ModelRef;

use crate::domain::prompts::{Prompts, Role};

/// The largest mission text accepted, in bytes.
pub const MAX_MISSION_BYTES: usize = 64 * 1024;

/// Everything a mission runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The project the agents work in.
    pub project: PathBuf,
    /// Worker slots: tasks run at once, at most.
    pub slots: usize,
    /// The session pools.
    pub pool: PoolSettings,
    /// How turns are followed.
    pub monitor: MonitorSettings,
    /// How calls to OpenCode are guarded.
    pub calls: CallPolicy,
    /// The review gate.
    pub gate: GateSettings,
    /// Plans asked of the Planner before the mission gives up on planning.
    pub plan_attempts: u32,
    /// Whether the Planner answers through structured output (a JSON schema of the plan); when the
    /// server or the model cannot, the mission falls back to the TODO.md markdown.
    pub structured_plan: bool,
    /// Worker attempts per task (a review asking for changes starts the next).
    pub review_attempts: u32,
    /// Times a Worker that answered without a status is asked to go on before it is diagnosed.
    pub nudges: u32,
    /// Times an answer cut off at the model's output limit is asked to go on, per turn.
    pub continuations: u32,
    /// Worker turns in a row without a change in the task's worktree before a diagnostic prompt.
    pub stall_turns: u32,
    /// Turns retried after the model failed, per turn.
    pub model_retries: u32,
    /// The first delay before a failed model turn is retried; later ones double, up to 10 s, with full
    /// jitter.
    pub model_retry_delay: Duration,
    /// Consecutive failed model turns that open the model's circuit breaker.
    pub model_breaker_failures: u32,
    /// How long the model's breaker stays open.
    pub model_breaker_open_for: Duration,
    /// Whether Workers may start sub-agents (OpenCode's `task` tool): the delegation depth limit, 0 or 1.
    pub delegation_depth: u32,
    /// The prompt modules, with the project's overrides.
    pub prompts: Prompts,
    /// Which model each agent uses.
    pub models: Models,
    /// The budgets (over those a resumed mission's journal has).
    pub budgets: crate::domain::usage::Budgets,
    /// Below this fraction of RAM available, no new task starts; below 1.25 times it, only high-priority
    /// tasks start. Running tasks go on either way.
    pub memory_floor: f64,
}

impl Settings {
    /// The defaults for a project.
    pub fn new(project: impl Into<PathBuf>) -> Self {
        Self {
            project: project.into(),
            slots: 4,
            pool: PoolSettings::default(),
            monitor: MonitorSettings::default(),
            calls: CallPolicy::default(),
            gate: GateSettings::default(),
            plan_attempts: 3,
            structured_plan: true,
            review_attempts: 3,
            nudges: 2,
            continuations: 2,
            stall_turns: 3,
            model_retries: 3,
            model_retry_delay: Duration::from_millis(500),
            model_breaker_failures: 5,
            model_breaker_open_for: Duration::from_secs(5),
            delegation_depth: 1,
            prompts: Prompts::new(),
            models: Models::default(),
            budgets: crate::domain::usage::Budgets::default(),
            memory_floor: 0.20,
        }
    }
}

/// Which model each agent uses, resolved once for every turn by [`Models::for_role`]: the command line's
/// `--model`, then the role's configured model, then the configured default, then the server's own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Models {
    /// `--model`: every agent, whatever the configuration says.
    pub command_line: Option<ModelRef>,
    /// `agents.<role>.model` of the configuration.
    pub roles: BTreeMap<Role, ModelRef>,
    /// `agents.model` of the configuration.
    pub default: Option<ModelRef>,
}

impl Models {
    /// The model `role` uses; `None` leaves the choice to the server.
    pub fn for_role(&self, role: Role) -> Option<&ModelRef> {
        self.command_line
            .as_ref()
            .or_else(|| self.roles.get(&role))
            .or(self.default.as_ref())
    }
}

/// How sessions are pooled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSettings {
    /// Parent sessions kept per role.
    pub per_role: usize,
    /// Children per parent before it is retired.
    pub max_reuses: u32,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            per_role: 5,
            max_reuses: 10,
        }
    }
}

/// How turns are followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MonitorSettings {
    /// The shortest polling interval (right after a change, when the event stream is down).
    pub min_poll: Duration,
    /// The longest polling interval; with the event stream up, the session is looked at this often anyway.
    pub max_poll: Duration,
    /// A turn with no progress for this long is stalled.
    pub stall_after: Duration,
    /// A turn may take at most this long.
    pub turn_timeout: Duration,
    /// OpenCode's own retries of a failing model call allowed before the turn is given up.
    pub model_retries: u64,
    /// How long a server may take to show a session's changes after the step that made them.
    pub diff_wait: Duration,
}

impl Default for MonitorSettings {
    fn default() -> Self {
        Self {
            min_poll: Duration::from_millis(500),
            max_poll: Duration::from_secs(5),
            stall_after: Duration::from_secs(300),
            turn_timeout: Duration::from_secs(1800),
            model_retries: 3,
            diff_wait: Duration::from_secs(5),
        }
    }
}

/// How calls to OpenCode are guarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// The first retry's delay; later ones double, up to `max_delay`, with full jitter.
    pub base_delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Consecutive failed calls that open the server's breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before it lets a trial call through.
    pub breaker_open_for: Duration,
}

impl Default for CallPolicy {
    fn default() -> Self {
        Self {
            attempts: 4,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            breaker_failures: 5,
            breaker_open_for: Duration::from_secs(2),
        }
    }
}

/// The review gate's commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateSettings {
    /// The commands; `None` detects them from the project when a review first needs them (Cargo, npm,
    /// pytest or unittest, go).
    pub commands: Option<Vec<crate::domain::gate::GateCommand>>,
    /// How long each command may run.
    pub timeout: Duration,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            commands: None,
            timeout: Duration::from_secs(300),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_model_wins_over_the_configuration() {
        let sonnet = ModelRef::parse("anthropic/claude-sonnet-4").unwrap();
        let gpt = ModelRef::parse("openai/gpt-5").unwrap();
        let local = ModelRef::parse("local/gemma").unwrap();
        let mut models = Models {
            command_line: None,
            roles: BTreeMap::from([(Role::Reviewer, gpt.clone())]),
            default: Some(local.clone()),
        };
        assert_eq!(models.for_role(Role::Reviewer), Some(&gpt));
        assert_eq!(models.for_role(Role::Worker), Some(&local));
        models.command_line = Some(sonnet.clone());
        for role in Role::ALL {
            assert_eq!(models.for_role(role), Some(&sonnet), "{role:?}");
        }
        assert_eq!(Models::default().for_role(Role::Planner), None);
    }
}
