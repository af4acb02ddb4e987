//! What attributes an IdP's user object offers to attribute mapping
//! ([`crate::mapping`]): declared by each source in its folder
//! (`source::okta::ATTRIBUTES`, …) and read by the mapping. Its own module,
//! below both, so that neither imports the other.

/// The attributes one IdP offers for mapping.
#[derive(Debug)]
pub struct AttributeSpec {
    /// Named attributes and their dotted path in the IdP's user object:
    /// `("login", "profile.login")`.
    pub named: &'static [(&'static str, &'static str)],
    /// Prefixes under which any path is accepted as written
    /// (`profile.`, `app_metadata.`).
    pub path_prefixes: &'static [&'static str],
    /// The attribute an event's login ([`crate::event::UserRef::login`])
    /// holds: Okta `login`, Auth0 `email`. An event that carries only the
    /// login can be mapped without the IdP's API when the username comes
    /// from this attribute.
    pub login: &'static str,
    /// The variables that let the relay read the IdP's API (for the log
    /// line of an event that lacks a mapped attribute).
    pub api_variables: &'static str,
}

impl AttributeSpec {
    /// The JSON path of `attribute`, if this IdP offers it.
    pub(crate) fn path_of(&self, attribute: &str) -> Option<Vec<String>> {
        if let Some((_, path)) = self.named.iter().find(|(name, _)| *name == attribute) {
            return Some(path.split('.').map(str::to_owned).collect());
        }
        let rest = self
            .path_prefixes
            .iter()
            .find_map(|p| attribute.strip_prefix(p))?;
        let parts: Vec<&str> = rest.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        Some(attribute.split('.').map(str::to_owned).collect())
    }

    /// What this IdP accepts, for messages: `login, email, profile.<attr>`.
    pub(crate) fn accepted(&self) -> String {
        let mut names: Vec<String> = self.named.iter().map(|(n, _)| (*n).to_owned()).collect();
        names.extend(self.path_prefixes.iter().map(|p| format!("{p}<path>")));
        names.join(", ")
    }
}
