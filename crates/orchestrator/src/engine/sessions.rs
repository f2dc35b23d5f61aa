//! A pool of sessions per role, on [`pools::ObjectPool`].
//!
//! What the pool keeps is a role's *parent* session; every piece of work gets a fresh child session of it,
//! so no agent ever sees another task's context (a reused session is truly reset), while the sessions of a
//! role stay grouped under a few parents in OpenCode's session list. A parent serves at most `max_reuses`
//! children, then the pool drops it and the next use creates a new one.

use std::path::Path;
use std::sync::Arc;

use pools::ObjectPool;

use crate::domain::agent::AgentError;
use crate::domain::prompts::Role;
use crate::domain::settings::PoolSettings;
use crate::engine::ports::Agents;

/// A role's parent session, as the pool keeps it.
#[derive(Debug, Default)]
struct Parent {
    id: Option<String>,
    uses: u32,
}

/// The session pools of a mission on one server.
#[derive(Debug, Clone)]
pub struct Sessions {
    agents: Arc<dyn Agents>,
    pools: Arc<[ObjectPool<Parent>; 4]>,
    mission: String,
}

impl Sessions {
    /// Pools for the mission `mission` (its id goes into session titles).
    ///
    /// # Panics
    ///
    /// If `per_role` is zero (the configuration's validation rejects it).
    pub fn new(agents: Arc<dyn Agents>, settings: PoolSettings, mission: &str) -> Self {
        let max_reuses = settings.max_reuses.max(1);
        let pool = || {
            ObjectPool::builder(Parent::default)
                .capacity(settings.per_role)
                .reset(move |parent: &mut Parent| parent.uses < max_reuses)
                .build()
                .expect("a pool with a non-zero capacity builds")
        };
        Self {
            agents,
            pools: Arc::new([pool(), pool(), pool(), pool()]),
            mission: mission.to_string(),
        }
    }

    /// A new session for `role`, titled `title`, working in `directory` (the project's when `None`): a child
    /// of one of the role's pooled parents.
    ///
    /// # Errors
    ///
    /// [`AgentError`] when the server cannot create it.
    pub async fn lease(
        &self,
        role: Role,
        title: &str,
        directory: Option<&Path>,
    ) -> Result<String, AgentError> {
        let index = Role::ALL
            .iter()
            .position(|candidate| *candidate == role)
            .expect("every role is in ALL");
        // The parent stays out of the pool while its child is created, so concurrent leases use different
        // parents; given back, its use is counted and the pool's reset retires it after max_reuses.
        let mut parent = self.pools[index].get();
        let parent_id = match &parent.id {
            Some(id) => id.clone(),
            None => {
                let title = format!("{} {} (pool)", self.mission, role.name());
                let id = self.agents.create_session(&title, None, None).await?;
                parent.id = Some(id.clone());
                parent.uses = 0;
                id
            }
        };
        let title = format!("{} {}: {title}", self.mission, role.name());
        let child = self
            .agents
            .create_session(&title, Some(&parent_id), directory)
            .await?;
        parent.uses += 1;
        Ok(child)
    }
}
