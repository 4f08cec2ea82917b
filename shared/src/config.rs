//! Configuration read once from the environment. A missing or malformed variable is an
//! error that names it, so a misconfigured deployment fails at cold start, loudly.

use std::str::FromStr;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(String),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: String, reason: String },
}

/// A required variable; empty counts as missing.
pub fn required(name: &str) -> Result<String, ConfigError> {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => Ok(v),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err(ConfigError::Missing(name.to_owned())),
        Err(std::env::VarError::NotUnicode(_)) => Err(ConfigError::Invalid {
            name: name.to_owned(),
            reason: "not valid UTF-8".into(),
        }),
    }
}

/// An optional variable parsed into `T`, with a default when unset.
pub fn parsed_or<T>(name: &str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse().map_err(|e: T::Err| ConfigError::Invalid {
                name: name.to_owned(),
                reason: e.to_string(),
            })
        }
        _ => Ok(default),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_variable_is_named() {
        let err = required("ALOFT_TEST_SURELY_UNSET_VARIABLE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable ALOFT_TEST_SURELY_UNSET_VARIABLE is not set"
        );
    }

    #[test]
    fn default_applies_when_unset() {
        assert_eq!(parsed_or("ALOFT_TEST_SURELY_UNSET_NUMBER", 7u32), Ok(7));
    }
}
