//! Checks of the environment variables the Firestore and Pub/Sub clients
//! share in form: the project id, hosts (emulators, the metadata server) and
//! endpoint URLs. Each names its variable in the error.

use relay_core::config::{ConfigError, RawConfig, optional};

/// `GOOGLE_CLOUD_PROJECT`, if set, checked by [`valid_project`].
pub(crate) fn project(raw: &RawConfig) -> Result<Option<&str>, ConfigError> {
    optional(raw, "GOOGLE_CLOUD_PROJECT")
        .map(valid_project)
        .transpose()
}

/// Project ids are lowercase letters, digits and hyphens; old domain-scoped
/// ones look like `example.com:my-project`. The error names
/// `GOOGLE_CLOUD_PROJECT`.
pub(crate) fn valid_project(project: &str) -> Result<&str, ConfigError> {
    let ok = project.len() <= 100
        && project.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b':')
        });
    if ok {
        Ok(project)
    } else {
        Err(ConfigError::new(
            "GOOGLE_CLOUD_PROJECT",
            "must be a project id (lowercase letters, digits and hyphens)",
        ))
    }
}

/// `variable` as a host or host:port (no scheme, no path), if set: the form
/// of `GCE_METADATA_HOST` and the emulators' `*_EMULATOR_HOST`. `example`
/// ends the error message (", like {example}") when given.
pub(crate) fn host<'a>(
    raw: &'a RawConfig,
    variable: &'static str,
    example: Option<&str>,
) -> Result<Option<&'a str>, ConfigError> {
    let Some(host) = optional(raw, variable) else {
        return Ok(None);
    };
    let ok = !host.contains("://")
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'));
    if ok {
        return Ok(Some(host));
    }
    let problem = "must be a host or host:port without scheme or path";
    Err(match example {
        Some(example) => ConfigError::new(variable, format!("{problem}, like {example}")),
        None => ConfigError::new(variable, problem),
    })
}

/// `variable` as an http(s) URL without its trailing `/`, if set; the error
/// shows `example`.
pub(crate) fn base_url(
    raw: &RawConfig,
    variable: &'static str,
    example: &str,
) -> Result<Option<String>, ConfigError> {
    let Some(url) = optional(raw, variable) else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || reqwest::Url::parse(url).is_err()
    {
        return Err(ConfigError::new(
            variable,
            format!("must be an http(s) URL like {example}"),
        ));
    }
    Ok(Some(url.trim_end_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FirestoreConfig;
    use crate::pubsub::PubSubConfig;

    use relay_core::config::from_pairs as raw;

    #[test]
    fn values_that_fit_are_returned_and_unset_is_none() {
        let env = raw(&[
            ("GOOGLE_CLOUD_PROJECT", "example.com:my-project"),
            ("GCE_METADATA_HOST", "[::1]:8080"),
            ("RELAY_PUBSUB_URL", "https://pubsub.example/v1/"),
        ]);
        assert_eq!(
            project(&env).expect("a valid project"),
            Some("example.com:my-project")
        );
        assert_eq!(
            host(&env, "GCE_METADATA_HOST", None).expect("a valid host"),
            Some("[::1]:8080")
        );
        assert_eq!(
            base_url(&env, "RELAY_PUBSUB_URL", "x").expect("a valid URL"),
            Some("https://pubsub.example/v1".to_owned())
        );
        let empty = raw(&[]);
        assert_eq!(project(&empty).expect("unset"), None);
        assert_eq!(
            host(&empty, "GCE_METADATA_HOST", None).expect("unset"),
            None
        );
        assert_eq!(
            base_url(&empty, "RELAY_PUBSUB_URL", "x").expect("unset"),
            None
        );
    }

    /// The messages each client gave before they shared these checks.
    #[test]
    fn each_client_names_the_variable_with_its_own_example() {
        let firestore = |pairs: &[(&str, &str)]| {
            let e = FirestoreConfig::from_config(&raw(pairs)).expect_err("a bad setting");
            (e.variable, e.problem)
        };
        let pubsub = |pairs: &[(&str, &str)]| {
            let e = PubSubConfig::from_config(&raw(pairs)).expect_err("a bad setting");
            (e.variable, e.problem)
        };
        let host_problem = "must be a host or host:port without scheme or path";
        for (name, err) in [
            (
                "GCE_METADATA_HOST",
                firestore(&[("GCE_METADATA_HOST", "http://x")]),
            ),
            (
                "FIRESTORE_EMULATOR_HOST",
                firestore(&[("FIRESTORE_EMULATOR_HOST", "x/y")]),
            ),
        ] {
            assert_eq!(err, (name, format!("{host_problem}, like 127.0.0.1:8080")));
        }
        assert_eq!(
            pubsub(&[("PUBSUB_EMULATOR_HOST", "x y")]),
            (
                "PUBSUB_EMULATOR_HOST",
                format!("{host_problem}, like 127.0.0.1:8085")
            )
        );
        assert_eq!(
            pubsub(&[("GCE_METADATA_HOST", "http://x")]),
            ("GCE_METADATA_HOST", host_problem.to_owned())
        );
        assert_eq!(
            firestore(&[("RELAY_FIRESTORE_URL", "firestore.googleapis.com")]),
            (
                "RELAY_FIRESTORE_URL",
                "must be an http(s) URL like https://firestore.googleapis.com/v1".to_owned()
            )
        );
        assert_eq!(
            pubsub(&[("RELAY_PUBSUB_URL", "https://")]),
            (
                "RELAY_PUBSUB_URL",
                "must be an http(s) URL like https://us-central1-pubsub.googleapis.com/v1"
                    .to_owned()
            )
        );
        let bad_project = (
            "GOOGLE_CLOUD_PROJECT",
            "must be a project id (lowercase letters, digits and hyphens)".to_owned(),
        );
        assert_eq!(
            firestore(&[("GOOGLE_CLOUD_PROJECT", "My_Project")]),
            bad_project
        );
        assert_eq!(
            pubsub(&[("GOOGLE_CLOUD_PROJECT", "My_Project")]),
            bad_project
        );
    }
}
