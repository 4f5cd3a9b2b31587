//! Host capabilities: one module per interface of the `ignareo:task` world, each implementing
//! that interface for the per-invocation [`HostState`](crate::runtime::HostState).

pub mod context;
pub mod events;
pub mod http;
pub mod outbound;
pub mod stdio;
pub mod timer;
