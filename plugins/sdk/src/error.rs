//! The error a task returns: a message, and whether the input was to blame.

use std::fmt;

use crate::bindings::ignareo::task::types::TaskError;

/// Why a task failed. Any `std::error::Error` converts into it, so `?` works on HTTP errors,
/// JSON errors and the like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    invalid_input: bool,
    message: String,
}

impl Error {
    /// A failure of the task itself.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self { invalid_input: false, message: message.to_string() }
    }

    /// The input was not what the task expects.
    pub fn invalid_input(message: impl fmt::Display) -> Self {
        Self { invalid_input: true, message: message.to_string() }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    pub fn is_invalid_input(&self) -> bool {
        self.invalid_input
    }

    pub(crate) fn into_wit(self) -> TaskError {
        if self.invalid_input { TaskError::InvalidInput(self.message) } else { TaskError::Failed(self.message) }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Self {
        Self::msg(error)
    }
}
