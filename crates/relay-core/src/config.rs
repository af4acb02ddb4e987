//! Configuration in two steps: raw strings from an injected map (tests pass a
//! map, binaries pass `std::env::vars()`), then validation into typed values.
//! Every error names the variable, never its value.

use std::collections::BTreeMap;

/// Raw configuration: variable name → value.
pub type RawConfig = BTreeMap<String, String>;

/// A missing or malformed variable. `Display` names the variable and what is
/// wrong with it, never the value (it may be a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    pub fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// The value of `name`, trimmed; `None` when unset or blank.
pub fn optional<'a>(raw: &'a RawConfig, name: &str) -> Option<&'a str> {
    raw.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// The value of `name`, or an error naming it.
pub fn required<'a>(raw: &'a RawConfig, name: &'static str) -> Result<&'a str, ConfigError> {
    optional(raw, name).ok_or_else(|| ConfigError::new(name, "is not set"))
}
