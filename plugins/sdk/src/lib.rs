//! The guest SDK for ignareo task plugins.
//!
//! A task is plain sequential code; every call that waits (HTTP, [`sleep`], [`Child::join`])
//! suspends the task on the host without holding a thread, so one host runs thousands of them.
//!
//! ```ignore
//! use ignareo_sdk::{http::Session, Error};
//!
//! #[derive(serde::Deserialize)]
//! struct Input { url: String }
//!
//! fn run(input: Input) -> Result<serde_json::Value, Error> {
//!     let page = Session::new().get(&input.url).send()?.error_for_status()?;
//!     Ok(serde_json::json!({ "length": page.text()?.len() }))
//! }
//!
//! ignareo_sdk::task!(run);
//! ```

mod error;
pub mod html;
pub mod http;
pub mod log;
mod task;

pub use error::Error;
pub use task::{Child, JoinError, emit, plugin_name, progress, sleep, spawn, task_id};

/// The bindings generated from the `ignareo:task` WIT package.
#[doc(hidden)]
#[allow(clippy::same_length_and_capacity, reason = "wit-bindgen's generated code, not ours to change")]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../../wit",
        world: "ignareo:task/task",
        pub_export_macro: true,
        default_bindings_module: "ignareo_sdk::bindings",
    });
}

#[doc(hidden)]
pub mod __private {
    pub use crate::task::dispatch;
}

/// Declares the plugin's task: a function from a deserializable input to
/// `Result<impl Serialize, impl Into<Error>>`.
///
/// The input is the request body parsed as JSON (an empty body is `null`); the output is
/// serialized as JSON.
#[macro_export]
macro_rules! task {
    ($run:path) => {
        struct __IgnareoTask;

        impl $crate::bindings::Guest for __IgnareoTask {
            fn run(
                input: ::std::vec::Vec<u8>,
            ) -> ::std::result::Result<
                ::std::vec::Vec<u8>,
                $crate::bindings::ignareo::task::types::TaskError,
            > {
                $crate::__private::dispatch(&input, $run)
            }
        }

        $crate::bindings::export!(__IgnareoTask with_types_in $crate::bindings);
    };
}
