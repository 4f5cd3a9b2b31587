//! Who may do what: bearer tokens and their scopes.
//!
//! - `admin`: manage plugins, tokens and read the configuration; everything else too.
//! - `read`: list and show plugins and tasks, stream events.
//! - `trigger` (for named plugins, or `*`): run and submit tasks of those plugins, and read
//!   and cancel the tasks it submitted (their spawned children included); define schedules
//!   of those plugins, and read, change, pause and delete the schedules it defined.
//!
//! A missing or unknown token is a 401; a known token without the scope a request needs is
//! a 403 that names the scope. What a token's tasks start on their own (children they spawn,
//! runs of its schedules) is checked against the token as it is when they start ([`Owners`]).

mod bootstrap;
mod tokens;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

pub use crate::store::Scope;
use crate::store::{Store, TokenRecord};
use crate::task::{OwnerRefusal, Owners};
pub use bootstrap::{AdminToken, TokenSource};
pub use tokens::{NewToken, TokenError, TokenStore};

/// What one token allows.
#[derive(Clone, Debug, Default)]
pub struct Scopes {
    admin: bool,
    read: bool,
    /// Plugins this token may trigger; `*` means all.
    trigger: BTreeSet<String>,
}

impl Scopes {
    fn of(record: &TokenRecord) -> Self {
        let has = |scope| record.scopes.contains(&scope);
        Self {
            admin: has(Scope::Admin),
            read: has(Scope::Read),
            trigger: if has(Scope::Trigger) { record.plugins.clone() } else { BTreeSet::new() },
        }
    }

    fn admin() -> Self {
        Self { admin: true, ..Self::default() }
    }

    fn may_trigger(&self, plugin: &str) -> bool {
        self.admin || self.trigger.contains("*") || self.trigger.contains(plugin)
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.admin {
            parts.push("admin".to_owned());
        }
        if self.read {
            parts.push("read".to_owned());
        }
        if !self.trigger.is_empty() {
            let plugins: Vec<&str> = self.trigger.iter().map(String::as_str).collect();
            parts.push(format!("trigger for {}", plugins.join(", ")));
        }
        parts.join(" + ")
    }
}

/// The caller of one request, once its token is known.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's id; `None` for the bootstrap admin token.
    pub token_id: Option<Arc<str>>,
    scopes: Scopes,
}

/// A known caller lacking the scope a request needs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

impl Caller {
    pub fn is_admin(&self) -> bool {
        self.scopes.admin
    }

    /// May list and show plugins and every task.
    pub fn can_read_all(&self) -> bool {
        self.scopes.admin || self.scopes.read
    }

    /// `action` names the refused request; it is built only on refusal.
    pub fn require_admin(&self, action: impl FnOnce() -> String) -> Result<(), Forbidden> {
        if self.scopes.admin {
            return Ok(());
        }
        Err(Forbidden(format!("{} needs a token with the admin scope; this token has {}", action(), self.describe())))
    }

    pub fn require_read(&self, action: impl FnOnce() -> String) -> Result<(), Forbidden> {
        if self.can_read_all() {
            return Ok(());
        }
        Err(Forbidden(format!(
            "{} needs a token with the read or admin scope; this token has {}",
            action(),
            self.describe()
        )))
    }

    pub fn require_trigger(&self, plugin: &str) -> Result<(), Forbidden> {
        if self.scopes.may_trigger(plugin) {
            return Ok(());
        }
        Err(Forbidden(format!(
            "running plugin {plugin:?} needs a token with the trigger scope for it (or admin); this token has {}",
            self.describe()
        )))
    }

    /// Whether this caller may see a task submitted under `owner`'s token.
    pub fn can_see_task_of(&self, owner: Option<&str>) -> bool {
        self.can_read_all() || self.owns(owner)
    }

    /// Whether this caller may cancel a task submitted under `owner`'s token.
    pub fn can_cancel_task_of(&self, owner: Option<&str>) -> bool {
        self.scopes.admin || self.owns(owner)
    }

    /// Whether this caller may change, pause or delete a schedule defined under `owner`'s token.
    pub fn can_change_schedule_of(&self, owner: Option<&str>) -> bool {
        self.scopes.admin || self.owns(owner)
    }

    fn owns(&self, owner: Option<&str>) -> bool {
        !self.scopes.trigger.is_empty() && self.token_id.is_some() && self.token_id.as_deref() == owner
    }

    fn describe(&self) -> String {
        self.scopes.describe()
    }
}

/// The bootstrap admin token and the created ones.
pub struct Auth {
    admin: AdminToken,
    pub tokens: TokenStore,
}

impl Auth {
    /// Loads (or generates) the admin token in the data directory, and the stored tokens.
    pub async fn open(
        configured_admin: Option<&str>,
        data_dir: &Path,
        store: Arc<dyn Store>,
        max_tokens: usize,
    ) -> anyhow::Result<(Self, TokenSource)> {
        let (admin, source) = AdminToken::resolve(configured_admin, data_dir)?;
        let tokens = TokenStore::open(store, data_dir, max_tokens).await?;
        Ok((Self { admin, tokens }, source))
    }

    /// The caller a presented bearer token stands for, if it is valid.
    pub fn caller(&self, presented: &str) -> Option<Caller> {
        // Both checks always run, so timing does not tell which kind of token was tried.
        let is_admin = self.admin.verify(presented);
        let record = self.tokens.verify(presented);
        if is_admin {
            return Some(Caller { token_id: None, scopes: Scopes::admin() });
        }
        record.map(|r| Caller { scopes: Scopes::of(&r), token_id: Some(r.id.into()) })
    }
}

/// Tasks run for a token (spawned by its tasks, or runs of its schedules) start only what the
/// token may trigger now: a revoked token starts nothing more.
impl Owners for Auth {
    fn may_start(&self, owner: Option<&str>, plugin: &str) -> Result<(), OwnerRefusal> {
        // The bootstrap admin token is not in the store and cannot be revoked.
        let Some(id) = owner else {
            return Ok(());
        };
        let record = self.tokens.get(id).ok_or_else(|| OwnerRefusal::Revoked(id.to_owned()))?;
        let scopes = Scopes::of(&record);
        if scopes.may_trigger(plugin) {
            return Ok(());
        }
        Err(OwnerRefusal::NotGranted { token: id.to_owned(), plugin: plugin.to_owned(), scope: scopes.describe() })
    }
}
