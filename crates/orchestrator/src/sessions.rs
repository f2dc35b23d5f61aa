//! Stage 5, `sessions`: a pool of OpenCode sessions per role, on [`pools::ObjectPool`].
//!
//! What the pool keeps is a role's *parent* session; every piece of work gets a fresh child session of it,
//! so no agent ever sees another task's context (a reused session is truly reset), while the sessions of a
//! role stay grouped under a few parents in OpenCode's session list. A parent serves at most
//! `max_reuses` children, then the pool drops it and the next use creates a new one. Role names are
//! interned ([`pools::Interner`]): titles, summaries and logs carry symbols, not copies.

use std::sync::Arc;

use opencode_client::CreateSession;
use pools::{Interner, ObjectPool, Symbol};

use crate::error::OrchestratorError;
use crate::prompts::Role;
use crate::server::Opencode;

/// How sessions are pooled.
#[derive(Debug, Clone, Copy)]
pub struct PoolConfig {
    /// Parent sessions kept per role (seed default 5).
    pub per_role: usize,
    /// Children per parent before it is retired (seed default 10).
    pub max_reuses: u32,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            per_role: 5,
            max_reuses: 10,
        }
    }
}

/// A role's parent session, as the pool keeps it.
#[derive(Debug, Default)]
struct Parent {
    id: Option<String>,
    uses: u32,
}

/// The session pools of a mission.
#[derive(Debug, Clone)]
pub struct Sessions {
    opencode: Opencode,
    pools: Arc<[ObjectPool<Parent>; 4]>,
    names: Arc<Interner>,
    config: PoolConfig,
    mission: String,
}

/// A fresh session for one piece of work.
#[derive(Debug, Clone)]
pub struct Lease {
    /// The session's id.
    pub id: String,
    /// The role, interned.
    pub role: Symbol,
}

impl Sessions {
    /// Pools for the mission `mission` (its id goes into session titles).
    ///
    /// # Panics
    ///
    /// If `per_role` is zero (the configuration validation rejects it).
    pub fn new(opencode: Opencode, config: PoolConfig, mission: &str) -> Self {
        let max_reuses = config.max_reuses.max(1);
        let pool = || {
            ObjectPool::builder(Parent::default)
                .capacity(config.per_role)
                .reset(move |parent: &mut Parent| parent.uses < max_reuses)
                .build()
                .expect("a pool with a non-zero capacity builds")
        };
        let names = Interner::new();
        for role in Role::ALL {
            names.intern(role.name());
        }
        Self {
            opencode,
            pools: Arc::new([pool(), pool(), pool(), pool()]),
            names: Arc::new(names),
            config,
            mission: mission.to_string(),
        }
    }

    /// The interned role names.
    pub fn names(&self) -> &Interner {
        &self.names
    }

    /// A new session for `role`, titled `title`: a child of one of the role's pooled parents.
    ///
    /// # Errors
    ///
    /// [`OrchestratorError::Opencode`] when OpenCode cannot create it.
    pub async fn lease(&self, role: Role, title: &str) -> Result<Lease, OrchestratorError> {
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
                let request =
                    CreateSession::new().title(format!("{} {} (pool)", self.mission, role.name()));
                let id = self
                    .opencode
                    .call("create a session", |client| {
                        let request = request.clone();
                        async move { client.create_session(&request).await }
                    })
                    .await?
                    .id;
                parent.id = Some(id.clone());
                parent.uses = 0;
                id
            }
        };
        let request = CreateSession::new().parent(parent_id).title(format!(
            "{} {}: {title}",
            self.mission,
            role.name()
        ));
        let child = self
            .opencode
            .call("create a session", |client| {
                let request = request.clone();
                async move { client.create_session(&request).await }
            })
            .await?;
        parent.uses += 1;
        drop(parent);
        Ok(Lease {
            id: child.id,
            role: self.names.intern(role.name()),
        })
    }

    /// The pool configuration.
    pub fn config(&self) -> PoolConfig {
        self.config
    }
}
