//! Stage 1, `server`: attach to an OpenCode server at a URL, or start one (the testkit launcher, for
//! `--demo` and tests); check its health; and [`Opencode`], the guarded handle every other stage calls
//! OpenCode through: each call goes through a [`circuit::CircuitBreaker`] and a [`circuit::Retry`] with
//! jittered exponential backoff.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use circuit::{Backoff, CallError, CircuitBreaker, Jitter, Retry};
use opencode_client::testkit::{OpencodeServer, Script, ScriptedModel};
use opencode_client::{Client, Error as ClientError};

use crate::error::OrchestratorError;

/// How calls to OpenCode are guarded.
#[derive(Debug, Clone)]
pub struct CallPolicy {
    /// Attempts per call, the first included.
    pub attempts: u32,
    /// The first retry's delay; later ones double, up to `max_delay`, with full jitter.
    pub base_delay: Duration,
    /// The longest delay between attempts.
    pub max_delay: Duration,
    /// Consecutive failed calls that open the breaker.
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

/// An OpenCode server the mission talks to, with its breaker and retry policy.
#[derive(Debug, Clone)]
pub struct Opencode {
    client: Client,
    breaker: Arc<CircuitBreaker>,
    retry: Arc<Retry>,
}

/// Whether an error from OpenCode is worth another attempt: it could not be reached, timed out, lost its
/// stream, or answered with a server error or 429. A 4xx other than 429, or an answer that does not decode,
/// will not change.
pub fn is_transient(error: &ClientError) -> bool {
    match error {
        ClientError::Connect { .. }
        | ClientError::Timeout { .. }
        | ClientError::Transport { .. }
        | ClientError::StreamLost { .. } => true,
        ClientError::Status { status, .. } => *status == 429 || *status >= 500,
        _ => false,
    }
}

impl Opencode {
    /// Guards `client` with `policy`.
    ///
    /// # Panics
    ///
    /// If the policy is invalid (zero attempts or a zero delay): the defaults and the configuration
    /// validation never make one.
    pub fn new(client: Client, policy: &CallPolicy) -> Self {
        let breaker = CircuitBreaker::builder()
            .name(client.url().to_string())
            .consecutive_failures(policy.breaker_failures.max(1))
            .open_wait(Backoff::constant(policy.breaker_open_for))
            .build()
            .expect("a breaker with consecutive failures and a constant wait is valid");
        let retry = Retry::builder()
            .max_attempts(policy.attempts.max(1))
            .backoff(
                Backoff::exponential(policy.base_delay, policy.max_delay.max(policy.base_delay))
                    .expect("the base delay is at most the maximum")
                    .with_jitter(Jitter::Full),
            )
            .build()
            .expect("a retry with at least one attempt is valid");
        Self {
            client,
            breaker: Arc::new(breaker),
            retry: Arc::new(retry),
        }
    }

    /// The client, for calls that must not be retried (an event stream reconnects by itself).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The breaker (its state shows in the summary).
    pub fn breaker(&self) -> &CircuitBreaker {
        &self.breaker
    }

    /// Runs one OpenCode call through the breaker and the retry: transient errors are retried with backoff;
    /// an open breaker is waited out as a retry too.
    ///
    /// # Errors
    ///
    /// [`OrchestratorError::Opencode`] with what was being done and the last error.
    pub async fn call<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T, OrchestratorError>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = Result<T, ClientError>>,
    {
        let breaker = &self.breaker;
        let client = &self.client;
        let result = self
            .retry
            .call_async(
                |_| {
                    let call = op(client.clone());
                    async move { breaker.call_async_with(is_transient, call).await }
                },
                |error: &CallError<ClientError>| match error {
                    CallError::Rejected(_) => true,
                    CallError::Inner(error) => is_transient(error),
                },
            )
            .await;
        result.map_err(|error| {
            let attempts = error.attempts();
            let message = match error.into_inner() {
                CallError::Rejected(rejected) => format!(
                    "the circuit breaker for {} is {} after repeated failures",
                    self.client.url(),
                    rejected.state()
                ),
                CallError::Inner(error) => error.to_string(),
            };
            OrchestratorError::Opencode {
                what: what.to_string(),
                attempts,
                message,
            }
        })
    }
}

/// Connects to the OpenCode server at `url` and checks that it is healthy.
///
/// # Errors
///
/// [`OrchestratorError::BadUrl`] for a URL that does not parse, [`OrchestratorError::Unreachable`] when the
/// server does not answer as OpenCode does.
pub async fn connect(
    url: &str,
    password: Option<&str>,
    directory: Option<&str>,
) -> Result<Client, OrchestratorError> {
    let mut builder = Client::builder(url).timeout(Duration::from_secs(60));
    if let Some(password) = password {
        builder = builder.password(password);
    }
    if let Some(directory) = directory {
        builder = builder.directory(directory);
    }
    let client = builder.build().map_err(|error| OrchestratorError::BadUrl {
        url: url.to_string(),
        message: error.to_string(),
    })?;
    match client.health().await {
        Ok(health) if health.healthy => Ok(client),
        Ok(health) => Err(OrchestratorError::Unreachable {
            url: url.to_string(),
            message: format!(
                "it answers but says it is not healthy (version {})",
                health.version
            ),
        }),
        Err(error) => Err(OrchestratorError::Unreachable {
            url: url.to_string(),
            message: error.to_string(),
        }),
    }
}

/// A scripted model and a real OpenCode server playing against it, in a scratch project: what `--demo`
/// and the tests run on.
#[derive(Debug)]
pub struct DemoServer {
    /// The model.
    pub model: ScriptedModel,
    /// The server.
    pub server: OpencodeServer,
}

/// Starts a scripted model with `script` and an OpenCode server using it, in `project` (created if
/// missing).
///
/// # Errors
///
/// [`OrchestratorError::Launch`] when the model or the server does not start.
pub async fn start_demo(
    script: Script,
    project: &std::path::Path,
) -> Result<DemoServer, OrchestratorError> {
    let model = ScriptedModel::start(script)
        .await
        .map_err(|error| OrchestratorError::Launch {
            message: format!("start the scripted model: {error}"),
        })?;
    let server = OpencodeServer::builder()
        .model(model.base_url())
        .project(project)
        .start()
        .await
        .map_err(|error| OrchestratorError::Launch {
            message: error.to_string(),
        })?;
    Ok(DemoServer { model, server })
}
