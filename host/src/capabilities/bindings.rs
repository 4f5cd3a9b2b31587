//! Host-side bindings of the `ignareo:task` world. Every import is async (a waiting guest
//! holds no thread) and trappable (a bad resource handle traps the guest, not the host).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "ignareo:task/task",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "ignareo:task/http.session": crate::capabilities::http::Session,
        "ignareo:task/context.child": crate::capabilities::context::Child,
    },
});

pub use self::ignareo::task::{context, events, http, timer, types};

/// The world this host runs, as users see it in error messages.
pub const WORLD: &str = "ignareo:task/task@0.2.0";
