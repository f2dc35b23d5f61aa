//! What a mission costs, and the budgets that bound it: token counts and cost as OpenCode reports them on
//! each answer, summed per turn, task, attempt, role, server and mission; and the arithmetic that says when
//! a budget is near (80%) or reached.

use std::collections::BTreeMap;
use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Nanos of currency per unit: costs are kept as integers so that sums are exact and events compare equal.
const NANOS: f64 = 1e9;

/// Tokens and cost of one or more answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens (not read from the cache).
    pub input: u64,
    /// Output tokens (reasoning left out).
    pub output: u64,
    /// Reasoning tokens.
    pub reasoning: u64,
    /// Input tokens read from the provider's cache.
    pub cache_read: u64,
    /// Input tokens written to the provider's cache.
    pub cache_write: u64,
    /// The cost, in billionths of the provider's currency unit.
    pub cost_nanos: u64,
}

impl Usage {
    /// Every token processed: input, output, reasoning and cache reads and writes.
    pub fn tokens(&self) -> u64 {
        self.input + self.output + self.reasoning + self.cache_read + self.cache_write
    }

    /// The cost, in the provider's currency.
    pub fn cost(&self) -> f64 {
        self.cost_nanos as f64 / NANOS
    }

    /// A cost in the provider's currency, as kept here (negative or not a number is none).
    pub fn nanos(cost: f64) -> u64 {
        if cost.is_finite() && cost > 0.0 {
            (cost * NANOS).round() as u64
        } else {
            0
        }
    }

    /// The context an answer's session holds after it: what the answer read (input, fresh and cached) and
    /// wrote (output and reasoning). Meaningful for one answer, not for a sum of answers.
    pub fn context(&self) -> u64 {
        self.tokens()
    }

    /// Whether nothing was used.
    pub fn is_empty(&self) -> bool {
        *self == Usage::default()
    }
}

impl Add for Usage {
    type Output = Usage;

    fn add(self, other: Usage) -> Usage {
        Usage {
            input: self.input + other.input,
            output: self.output + other.output,
            reasoning: self.reasoning + other.reasoning,
            cache_read: self.cache_read + other.cache_read,
            cache_write: self.cache_write + other.cache_write,
            cost_nanos: self.cost_nanos + other.cost_nanos,
        }
    }
}

impl AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        *self = *self + other;
    }
}

impl Sum for Usage {
    fn sum<I: Iterator<Item = Usage>>(iter: I) -> Usage {
        iter.fold(Usage::default(), Add::add)
    }
}

/// `12.3k tokens, $0.0420`.
impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} tokens, {}",
            Tokens(self.tokens()),
            Cost(self.cost_nanos)
        )
    }
}

/// A token count for people: `950`, `12.3k`, `4.1M`.
#[derive(Debug, Clone, Copy)]
pub struct Tokens(pub u64);

impl fmt::Display for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            count @ 0..1_000 => write!(f, "{count}"),
            count @ 1_000..1_000_000 => write!(f, "{:.1}k", count as f64 / 1e3),
            count => write!(f, "{:.1}M", count as f64 / 1e6),
        }
    }
}

/// A cost for people: `$0.0420` (four decimals; the provider's currency).
#[derive(Debug, Clone, Copy)]
pub struct Cost(pub u64);

impl fmt::Display for Cost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${:.4}", self.0 as f64 / NANOS)
    }
}

/// The limits a mission runs under; `None` is no limit.
///
/// A budget is checked before each turn starts, as a running turn's answers arrive, and when a turn ends.
/// At [`WARN_AT`] of a budget the mission warns once; at its limit the mission pauses: no turn starts any
/// more, the running turns are aborted with the sessions they started, and `resume` with a higher budget
/// goes on.
///
/// # How far a budget can be overshot
///
/// At most by the turns already running when the limit is reached: what each of them receives before its
/// abort lands (the answer the model is sending, and a tool callback OpenCode may already have asked for).
/// Once the orchestrator has seen the answer that reached the limit no turn starts, so the overshoot is
/// bounded by the answers of the turns in flight then (one per busy slot, a Worker's or a Reviewer's; one
/// of them may have started while that answer was on its way). Usage arrives with each finished answer: a
/// budget cannot stop an answer halfway through, only what would come after it. `tests/budgets.rs` checks
/// the bound against a real OpenCode server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budgets {
    /// The most the mission may cost, in billionths of the provider's currency.
    pub cost_nanos: Option<u64>,
    /// The most tokens it may use ([`Usage::tokens`]).
    pub tokens: Option<u64>,
    /// The longest it may run (the time its runs spent, stops and crashes left out), in milliseconds.
    pub time_ms: Option<u64>,
    /// The most turns one task's Workers may take (a task past it fails).
    pub turns_per_task: Option<u32>,
}

impl Budgets {
    /// These budgets with `other`'s limits where `other` sets one.
    pub fn over(self, other: Budgets) -> Budgets {
        Budgets {
            cost_nanos: other.cost_nanos.or(self.cost_nanos),
            tokens: other.tokens.or(self.tokens),
            time_ms: other.time_ms.or(self.time_ms),
            turns_per_task: other.turns_per_task.or(self.turns_per_task),
        }
    }

    /// The mission-wide budget most used by `spent` after `elapsed`: which, its limit, what was spent, and
    /// the fraction.
    pub fn most_used(&self, spent: &Usage, elapsed: Duration) -> Option<(Budget, u64, u64, f64)> {
        let elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
        [
            (Budget::Cost, self.cost_nanos, spent.cost_nanos),
            (Budget::Tokens, self.tokens, spent.tokens()),
            (Budget::Time, self.time_ms, elapsed_ms),
        ]
        .into_iter()
        .filter_map(|(budget, limit, used)| {
            let limit = limit?;
            let fraction = if limit == 0 {
                f64::INFINITY
            } else {
                used as f64 / limit as f64
            };
            Some((budget, limit, used, fraction))
        })
        .max_by(|a, b| a.3.total_cmp(&b.3))
    }
}

/// The fraction of a budget at which a warning is shown.
pub const WARN_AT: f64 = 0.8;

/// One of the mission-wide budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Budget {
    /// `--max-cost`.
    Cost,
    /// `--max-tokens`.
    Tokens,
    /// `--max-time`.
    Time,
}

impl Budget {
    /// Its option.
    pub fn option(self) -> &'static str {
        match self {
            Budget::Cost => "--max-cost",
            Budget::Tokens => "--max-tokens",
            Budget::Time => "--max-time",
        }
    }

    /// An amount of this budget for people: a cost, tokens, or a duration.
    pub fn show(self, amount: u64) -> String {
        match self {
            Budget::Cost => Cost(amount).to_string(),
            Budget::Tokens => format!("{} tokens", Tokens(amount)),
            Budget::Time => format!("{:.0?}", Duration::from_millis(amount)),
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Budget::Cost => "cost",
            Budget::Tokens => "tokens",
            Budget::Time => "time",
        })
    }
}

/// Usage split the ways the summary shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    /// The whole mission.
    pub total: Usage,
    /// By role (`Commander`, `Planner`, `Worker`, `Reviewer`).
    pub by_role: BTreeMap<String, Usage>,
    /// By server URL.
    pub by_server: BTreeMap<String, Usage>,
}

impl Ledger {
    /// Adds one turn's usage.
    pub fn add(&mut self, role: &str, server: &str, usage: Usage) {
        self.total += usage;
        *self.by_role.entry(role.to_string()).or_default() += usage;
        *self.by_server.entry(server.to_string()).or_default() += usage;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_adds_up_exactly() {
        let a = Usage {
            input: 800,
            output: 250,
            reasoning: 50,
            cache_read: 200,
            cache_write: 0,
            cost_nanos: Usage::nanos(0.00696),
        };
        let sum: Usage = [a, a, a].into_iter().sum();
        assert_eq!(sum.tokens(), 3 * 1300);
        assert_eq!(sum.cost_nanos, 3 * 6_960_000);
        assert_eq!(format!("{sum}"), "3.9k tokens, $0.0209");
        assert_eq!(Usage::nanos(-1.0), 0);
        assert_eq!(Usage::nanos(f64::NAN), 0);
    }

    #[test]
    fn the_most_used_budget_is_found() {
        let budgets = Budgets {
            cost_nanos: Some(Usage::nanos(1.0)),
            tokens: Some(10_000),
            time_ms: Some(60_000),
            turns_per_task: None,
        };
        let spent = Usage {
            input: 9_000,
            cost_nanos: Usage::nanos(0.5),
            ..Usage::default()
        };
        let (budget, limit, used, fraction) =
            budgets.most_used(&spent, Duration::from_secs(30)).unwrap();
        assert_eq!((budget, limit, used), (Budget::Tokens, 10_000, 9_000));
        assert!((fraction - 0.9).abs() < 1e-9);
        assert_eq!(Budgets::default().most_used(&spent, Duration::ZERO), None);
        let raised = budgets.over(Budgets {
            tokens: Some(20_000),
            ..Budgets::default()
        });
        assert_eq!(raised.tokens, Some(20_000));
        assert_eq!(raised.cost_nanos, budgets.cost_nanos);
    }
}
