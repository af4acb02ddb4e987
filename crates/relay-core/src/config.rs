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

/// A [`RawConfig`] holding `pairs` (a later pair wins over an earlier one
/// of the same name): for settings built in code rather than read from the
/// environment.
pub fn from_pairs(pairs: &[(&str, &str)]) -> RawConfig {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// The value of `name`, trimmed; `None` when unset or blank.
pub fn optional<'a>(raw: &'a RawConfig, name: &str) -> Option<&'a str> {
    raw.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// A `true`/`false` setting (also `1`/`0`, `yes`/`no`, any case); unset is
/// `false`; anything else is an error naming it.
pub fn flag(raw: &RawConfig, name: &'static str) -> Result<bool, ConfigError> {
    match optional(raw, name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("false" | "0" | "no") => Ok(false),
        Some("true" | "1" | "yes") => Ok(true),
        Some(_) => Err(ConfigError::new(name, "must be true or false")),
    }
}

/// The value of `name`, or an error naming it.
pub fn required<'a>(raw: &'a RawConfig, name: &'static str) -> Result<&'a str, ConfigError> {
    optional(raw, name).ok_or_else(|| ConfigError::new(name, "is not set"))
}

/// The Duo client configuration from `DUO_API_HOST`, `DUO_IKEY`, `DUO_SKEY`,
/// `DUO_API_URL` and `DUO_SIG_VERSION`. The retry policy is the caller's: a
/// webhook answered in sync mode cannot sleep for a minute.
pub fn duo_config(
    raw: &RawConfig,
    retry: duo_admin::RetryPolicy,
) -> Result<duo_admin::DuoConfig, ConfigError> {
    let host = required(raw, "DUO_API_HOST")?;
    if host.contains("://") || host.contains('/') || host.contains(' ') {
        return Err(ConfigError::new(
            "DUO_API_HOST",
            "must be a bare host name like api-1234abcd.duosecurity.com (use DUO_API_URL for a full URL)",
        ));
    }
    let ikey = required(raw, "DUO_IKEY")?;
    let skey = required(raw, "DUO_SKEY")?;
    check_skey(skey)?;
    let mut config = duo_admin::DuoConfig::new(host, ikey, duo_admin::Secret::new(skey));
    if let Some(version) = optional(raw, "DUO_SIG_VERSION") {
        config.sig_version = duo_admin::SigVersion::parse(version)
            .ok_or_else(|| ConfigError::new("DUO_SIG_VERSION", "must be 5 or 2"))?;
    }
    config.base_url = optional(raw, "DUO_API_URL").map(str::to_owned);
    config.retry = retry;
    config.pace = duo_pace(raw)?.map(|pace| std::sync::Arc::new(duo_admin::Pacer::new(pace)));
    Ok(config)
}

/// `DUO_RATE_PER_MINUTE` (default 600, Duo's published figures; `off` for no
/// pace) and `DUO_RATE_BURST` (default 30): the process's one Duo pace
/// ([`duo_admin::pace`]). Several instances each keep their own, so give
/// each the account's budget divided by how many can run at once.
pub fn duo_pace(raw: &RawConfig) -> Result<Option<duo_admin::PaceConfig>, ConfigError> {
    let mut pace = duo_admin::PaceConfig::default();
    match optional(raw, "DUO_RATE_PER_MINUTE") {
        Some(v) if v.eq_ignore_ascii_case("off") => return Ok(None),
        Some(v) => {
            pace.per_minute = v
                .parse::<u32>()
                .ok()
                .filter(|n| (6..=1_000_000).contains(n))
                .map(f64::from)
                .ok_or_else(|| {
                    ConfigError::new(
                        "DUO_RATE_PER_MINUTE",
                        "must be 6 to 1000000 calls a minute, or off",
                    )
                })?;
        }
        None => {}
    }
    if let Some(v) = optional(raw, "DUO_RATE_BURST") {
        pace.burst = v
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=100_000).contains(n))
            .map(f64::from)
            .ok_or_else(|| ConfigError::new("DUO_RATE_BURST", "must be 1 to 100000 calls"))?;
    }
    Ok(Some(pace))
}

/// Length of a Duo secret key: every Duo client library checks it
/// (`SKEY_LEN = 40` in duo_web / DuoWeb and their ports).
pub const DUO_SKEY_CHARS: usize = 40;

/// `DUO_SKEY` as Duo issues it: 40 ASCII letters and digits (the length
/// every Duo client checks; Duo's documented keys, e.g. the signing
/// example's `Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep`, are alphanumeric).
/// One character, a key cut short or pasted with a quote, a space or a
/// newline inside is refused at start-up instead of signing every request
/// wrong. Surrounding blanks are trimmed, as for every variable. The
/// message names the variable and what is wrong, never the value.
fn check_skey(skey: &str) -> Result<(), ConfigError> {
    let chars = skey.chars().count();
    if chars != DUO_SKEY_CHARS {
        return Err(ConfigError::new(
            "DUO_SKEY",
            format!(
                "is {chars} characters long; an Admin API secret key is {DUO_SKEY_CHARS} letters and digits (copy it from the application's page in the Duo Admin Panel)"
            ),
        ));
    }
    if !skey.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(ConfigError::new(
            "DUO_SKEY",
            format!(
                "holds a character that is not a letter or digit (a space, a newline, a quote?); an Admin API secret key is {DUO_SKEY_CHARS} letters and digits"
            ),
        ));
    }
    Ok(())
}

/// Builds the Duo client, naming the variable at fault when it refuses.
pub fn duo_client(config: duo_admin::DuoConfig) -> Result<duo_admin::DuoClient, ConfigError> {
    let has_url = config.base_url.is_some();
    duo_admin::DuoClient::new(config).map_err(|e| {
        let variable = if has_url {
            "DUO_API_URL"
        } else {
            "DUO_API_HOST"
        };
        ConfigError::new(variable, e.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use super::from_pairs as raw;

    /// Issue 13 item 7: `DUO_SKEY` must be what Duo issues; the message
    /// names the variable and never repeats the value.
    #[test]
    fn duo_skey_is_forty_letters_and_digits() {
        let with = |skey: &str| {
            duo_config(
                &raw(&[
                    ("DUO_API_HOST", "api-x.duosecurity.com"),
                    ("DUO_IKEY", "DIXXXXXXXXXXXXXXXXXX"),
                    ("DUO_SKEY", skey),
                ]),
                duo_admin::RetryPolicy::none(),
            )
        };
        let good = "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep";
        assert!(with(good).is_ok());
        // Surrounding blanks (a trailing newline from a file) are trimmed.
        assert!(with(&format!("{good}\n")).is_ok());
        for bad in [
            "x",
            "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4E",
            "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Epp",
            "Zh5eGmUq9zpfQnyUI\n5OL9iWoMMv5ZNmk3zLJ4Ep",
            "Zh5eGmUq9zpfQnyUI 5OL9iWoMMv5ZNmk3zLJ4Ep",
            "\"h5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep",
            "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4É",
        ] {
            let err = with(bad).unwrap_err();
            assert_eq!(err.variable, "DUO_SKEY", "{bad:?}");
            let shown = err.to_string();
            assert!(!shown.contains(bad.trim()), "{bad:?}: {shown}");
            assert!(!shown.contains("Zh5e"), "{shown}");
        }
    }

    /// Issue 13 item 7: a `DUO_API_URL` with credentials is refused, and
    /// the message does not repeat them.
    #[test]
    fn duo_api_url_credentials_are_never_shown() {
        let cfg = duo_config(
            &raw(&[
                ("DUO_API_HOST", "api-x.duosecurity.com"),
                ("DUO_IKEY", "DIXXXXXXXXXXXXXXXXXX"),
                ("DUO_SKEY", "Zh5eGmUq9zpfQnyUIu5OL9iWoMMv5ZNmk3zLJ4Ep"),
                ("DUO_API_URL", "https://relay:hunter2-pw@proxy.example:8443"),
            ]),
            duo_admin::RetryPolicy::none(),
        )
        .unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
        let err = duo_client(cfg).unwrap_err();
        assert_eq!(err.variable, "DUO_API_URL");
        let shown = err.to_string();
        assert!(
            !shown.contains("hunter2") && !shown.contains("relay:"),
            "{shown}"
        );
        assert!(shown.contains("[redacted]@proxy.example:8443"), "{shown}");
    }

    #[test]
    fn duo_pace_defaults_to_duos_figures_and_names_bad_values() {
        assert_eq!(
            duo_pace(&raw(&[])).unwrap(),
            Some(duo_admin::PaceConfig::default())
        );
        assert_eq!(
            duo_pace(&raw(&[("DUO_RATE_PER_MINUTE", "off")])).unwrap(),
            None
        );
        let set = duo_pace(&raw(&[
            ("DUO_RATE_PER_MINUTE", "120"),
            ("DUO_RATE_BURST", "5"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!((set.per_minute, set.burst), (120.0, 5.0));
        for (k, v) in [
            ("DUO_RATE_PER_MINUTE", "0"),
            ("DUO_RATE_PER_MINUTE", "fast"),
            ("DUO_RATE_BURST", "0"),
        ] {
            assert_eq!(duo_pace(&raw(&[(k, v)])).unwrap_err().variable, k);
        }
    }

    #[test]
    fn duo_config_names_missing_and_bad_variables() {
        let retry = duo_admin::RetryPolicy::none();
        let err = duo_config(&raw(&[]), retry.clone()).unwrap_err();
        assert_eq!(err.variable, "DUO_API_HOST");
        let base = [
            ("DUO_API_HOST", "api-x.duosecurity.com"),
            ("DUO_IKEY", "DIX"),
        ];
        assert_eq!(
            duo_config(&raw(&base), retry.clone()).unwrap_err().variable,
            "DUO_SKEY"
        );
        let mut full = base.to_vec();
        full.push(("DUO_SKEY", "VerySecretSkeyValue0123456789abcdefghijk"));
        full.push(("DUO_SIG_VERSION", "3"));
        let err = duo_config(&raw(&full), retry.clone()).unwrap_err();
        assert_eq!(err.variable, "DUO_SIG_VERSION");
        assert!(!err.to_string().contains("VerySecret"));
        full.pop();
        full.push(("DUO_API_URL", "ftp://nope"));
        let cfg = duo_config(&raw(&full), retry).unwrap();
        assert!(!format!("{cfg:?}").contains("VerySecret"));
        assert_eq!(duo_client(cfg).unwrap_err().variable, "DUO_API_URL");
    }
}
