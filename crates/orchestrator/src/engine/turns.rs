//! The one path every agent's turn takes, the Reviewer's included: the request is built once per turn
//! (the role's system prompt and tools, the model resolved by [`Models::for_role`]); a turn whose model
//! call fails is retried with jittered backoff under the model's circuit breaker; and an answer cut off at
//! the model's output limit is not taken as it is: the agent is asked for the rest (or, for a brief or a
//! plan, to answer again within its limits), a bounded number of times, each one logged.
//!
//! [`Models::for_role`]: crate::domain::settings::Models::for_role

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use circuit::{Backoff, CallError, CircuitBreaker, Jitter, Retry};

use crate::domain::agent::{AgentError, Turn, TurnEnd, TurnRequest};
use crate::domain::prompts::{self, Role};
use crate::domain::settings::Settings;
use crate::engine::monitor::Monitor;

/// Builds and runs turns.
#[derive(Debug)]
pub struct Turns {
    breaker: CircuitBreaker,
    retry: Retry,
    failures: AtomicU32,
    breaker_failures: u32,
    continuations: u32,
}

/// What one turn asks.
#[derive(Debug, Clone)]
pub struct Ask<'a> {
    /// The agent.
    pub role: Role,
    /// Its session.
    pub session: &'a str,
    /// The message.
    pub text: String,
    /// A JSON schema the answer must follow.
    pub schema: Option<serde_json::Value>,
}

impl Turns {
    /// The turn path of a mission with `settings`.
    pub fn new(settings: &Settings) -> Self {
        let breaker = CircuitBreaker::builder()
            .name("model")
            .consecutive_failures(settings.model_breaker_failures.max(1))
            .open_wait(Backoff::constant(settings.model_breaker_open_for))
            .build()
            .expect("a breaker with consecutive failures and a constant wait is valid");
        let retry = Retry::builder()
            .max_attempts(settings.model_retries + 1)
            .backoff(
                Backoff::exponential(
                    settings.model_retry_delay,
                    Duration::from_secs(10).max(settings.model_retry_delay),
                )
                .expect("the first delay is at most the longest")
                .with_jitter(Jitter::Full),
            )
            .build()
            .expect("a retry with at least one attempt is valid");
        Self {
            breaker,
            retry,
            failures: AtomicU32::new(0),
            breaker_failures: settings.model_breaker_failures,
            continuations: settings.continuations,
        }
    }

    /// Model turns that failed so far (each retry counts).
    pub fn failures(&self) -> u32 {
        self.failures.load(Ordering::Relaxed)
    }

    /// The model breaker's state, for the summary.
    pub fn breaker_state(&self) -> String {
        self.breaker.state().to_string()
    }

    /// The request of a turn: the role's system prompt and tools, and its model.
    pub fn request(settings: &Settings, ask: &Ask<'_>) -> TurnRequest {
        TurnRequest {
            text: ask.text.clone(),
            system: settings.prompts.system(ask.role),
            tools: ask.role.tools(settings.delegation_depth > 0),
            model: settings.models.for_role(ask.role).cloned(),
            schema: ask.schema.clone(),
        }
    }

    /// Runs one turn to its end: retried while the model fails, under the model's breaker, and continued
    /// while its answer is cut off.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server fails past its retries.
    pub async fn run(
        &self,
        settings: &Settings,
        monitor: &Monitor,
        ask: Ask<'_>,
    ) -> Result<Turn, AgentError> {
        let allow_permissions = ask.role == Role::Worker;
        let mut usage = Turn::ended(TurnEnd::Aborted);
        let mut end = self
            .guarded(
                monitor,
                ask.session,
                &Self::request(settings, &ask),
                allow_permissions,
                &mut usage,
            )
            .await?;
        let mut continued = 0;
        while let TurnEnd::Answered {
            text,
            structured,
            cut_off: true,
        } = &end
        {
            if continued == self.continuations {
                tracing::warn!(
                    role = ask.role.name(),
                    session = ask.session,
                    continued,
                    "the answer is still cut off at the model's output limit; taking it as it is"
                );
                break;
            }
            continued += 1;
            // A brief or a plan that overflows is asked again, shorter; anything else is asked for the rest.
            let again = matches!(ask.role, Role::Commander | Role::Planner);
            tracing::warn!(
                role = ask.role.name(),
                session = ask.session,
                continued,
                bytes = text.len(),
                "the answer was cut off at the model's output limit; asking {}",
                if again { "again" } else { "for the rest" }
            );
            let follow_up = Ask {
                text: if again {
                    prompts::answer_again_message(ask.role)
                } else {
                    prompts::continue_message()
                },
                ..ask.clone()
            };
            let next = self
                .guarded(
                    monitor,
                    ask.session,
                    &Self::request(settings, &follow_up),
                    allow_permissions,
                    &mut usage,
                )
                .await?;
            end = match (again, next) {
                (
                    false,
                    TurnEnd::Answered {
                        text: rest,
                        structured: None,
                        cut_off,
                    },
                ) => TurnEnd::Answered {
                    text: format!("{text}{rest}"),
                    structured: structured.clone(),
                    cut_off,
                },
                (_, next) => next,
            };
        }
        usage.end = end;
        Ok(usage)
    }

    /// One turn, retried while the model fails, under the model's circuit breaker.
    async fn guarded(
        &self,
        monitor: &Monitor,
        session: &str,
        request: &TurnRequest,
        allow_permissions: bool,
        usage: &mut Turn,
    ) -> Result<TurnEnd, AgentError> {
        let breaker = &self.breaker;
        let failures = &self.failures;
        // Every attempt's usage counts, the failed ones' too.
        let used = std::sync::Mutex::new(Turn::ended(TurnEnd::Aborted));
        let used = &used;
        let result = self
            .retry
            .call_async(
                |_| async move {
                    breaker
                        .call_async(async move {
                            let end = if request.schema.is_some() {
                                monitor.turn_and_wait(session, request).await
                            } else {
                                monitor.turn(session, request, allow_permissions).await
                            };
                            let end = end.map(|turn| {
                                let mut used = used
                                    .lock()
                                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                                used.answers.extend(turn.answers);
                                used.sub_agents += turn.sub_agents;
                                used.tool_errors.extend(turn.tool_errors);
                                turn.end
                            });
                            match end {
                                Ok(TurnEnd::ModelFailed { message }) => {
                                    failures.fetch_add(1, Ordering::Relaxed);
                                    Err(Ok(message))
                                }
                                Ok(end) => Ok(end),
                                Err(error) => Err(Err(error)),
                            }
                        })
                        .await
                },
                |error: &CallError<Result<String, AgentError>>| {
                    matches!(error, CallError::Rejected(_) | CallError::Inner(Ok(_)))
                },
            )
            .await;
        let mut used = used
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        usage.answers.append(&mut used.answers);
        usage.tool_errors.append(&mut used.tool_errors);
        usage.sub_agents += used.sub_agents;
        drop(used);
        match result {
            Ok(end) => Ok(end),
            Err(error) => {
                let attempts = error.attempts();
                match error.into_inner() {
                    CallError::Inner(Ok(message)) => Ok(TurnEnd::ModelFailed {
                        message: format!("{message} ({attempts} attempt(s))"),
                    }),
                    CallError::Inner(Err(error)) => Err(error),
                    CallError::Rejected(_) => Ok(TurnEnd::ModelFailed {
                        message: format!(
                            "the model's circuit breaker is open after {} consecutive failed turns",
                            self.breaker_failures
                        ),
                    }),
                }
            }
        }
    }
}
