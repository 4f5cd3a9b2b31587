//! Log lines of the running task, delivered live to whoever watches its events.

use crate::bindings::ignareo::task::events::{self, Level};

pub fn trace(message: impl AsRef<str>) {
    events::log(Level::Trace, message.as_ref());
}

pub fn debug(message: impl AsRef<str>) {
    events::log(Level::Debug, message.as_ref());
}

pub fn info(message: impl AsRef<str>) {
    events::log(Level::Info, message.as_ref());
}

pub fn warn(message: impl AsRef<str>) {
    events::log(Level::Warn, message.as_ref());
}

pub fn error(message: impl AsRef<str>) {
    events::log(Level::Error, message.as_ref());
}
