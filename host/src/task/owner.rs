//! Who a task runs for: the token that submitted it (or its tree's first task, or defined its
//! schedule), and whether that token may still start tasks of a plugin.
//!
//! The scheduler asks at every spawn and at every scheduled run; the tokens answer from what
//! is live now, so a revoked token starts nothing more, whatever it started before.

/// Answers whether tasks run for a token may start tasks of a plugin.
pub trait Owners: Send + Sync {
    /// Whether tasks run for `owner` (a token id; `None` for the bootstrap admin token) may
    /// start tasks of `plugin`.
    fn may_start(&self, owner: Option<&str>, plugin: &str) -> Result<(), OwnerRefusal>;
}

/// Why a token may not start a task.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OwnerRefusal {
    #[error("token {0} was revoked: tasks run for it start nothing more")]
    Revoked(String),
    #[error("token {token} may not trigger plugin {plugin:?}: it has {scope}")]
    NotGranted { token: String, plugin: String, scope: String },
}
