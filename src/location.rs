//! Locations derived from node topology labels.
//!
//! A location is a `/`-separated string starting with `/` whose components use only
//! `[a-zA-Z0-9_.-]`, e.g. `/eu-west-1/eu-west-1a`. [`location_from_labels`] builds one
//! from a node's labels; [`validate_location`] checks a string someone else produced.

use std::collections::BTreeMap;
use std::fmt;

/// A validated location such as `/dc-0/rack-09`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location(String);

/// The location placement gives tablet servers that have none (no mapping command is
/// configured): they all share it, so the placement policy treats them as one location.
pub const DEFAULT_LOCATION: &str = "/default";

impl Location {
    /// The location text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The one location shared by every tablet server without an assigned location
    /// ([`DEFAULT_LOCATION`]).
    pub fn default_location() -> Location {
        Location(DEFAULT_LOCATION.to_owned())
    }
}

impl std::str::FromStr for Location {
    type Err = InvalidLocation;

    /// Parses and validates a location (see [`validate_location`]).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        validate_location(s)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why no location could be derived from a node's labels.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocationFromLabelsError {
    /// No label keys were configured.
    #[error("no topology label keys are configured")]
    NoKeys,
    /// The node lacks one of the configured labels.
    #[error("node has no label {key:?} (configured topology labels: {configured})")]
    MissingLabel {
        /// The missing label key.
        key: String,
        /// All configured keys, comma-separated, for the message.
        configured: String,
    },
    /// The node has the label but its value is empty.
    #[error("node label {key:?} is empty and cannot form a location component")]
    EmptyValue {
        /// The label key with the empty value.
        key: String,
    },
}

/// Why a string is not a valid location.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidLocation {
    /// The location does not start with `/`.
    #[error("location {0:?} must start with '/'")]
    NoLeadingSlash(String),
    /// A component between slashes is empty (e.g. `/a//b` or `/a/`).
    #[error("location {0:?} has an empty component")]
    EmptyComponent(String),
    /// A component contains a character outside `[a-zA-Z0-9_.-]`.
    #[error("location {location:?} contains {character:?}; components may use only [a-zA-Z0-9_.-]")]
    BadCharacter {
        /// The rejected location.
        location: String,
        /// The first offending character.
        character: char,
    },
}

/// Whether `c` may appear in a location component.
pub fn is_component_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Make `value` a valid location component: every character outside `[a-zA-Z0-9_.-]`
/// becomes `_`. Returns `None` for an empty value.
pub fn sanitize_component(value: &str) -> Option<String> {
    if value.is_empty() {
        return None;
    }
    Some(value.chars().map(|c| if is_component_char(c) { c } else { '_' }).collect())
}

/// Build the location of a node from its `labels`, taking the values of `keys` in order:
/// keys `[region, zone]` with values `eu-west-1`, `eu-west-1a` give `/eu-west-1/eu-west-1a`.
pub fn location_from_labels(
    labels: &BTreeMap<String, String>,
    keys: &[String],
) -> Result<Location, LocationFromLabelsError> {
    if keys.is_empty() {
        return Err(LocationFromLabelsError::NoKeys);
    }
    let mut location = String::new();
    for key in keys {
        let value = labels
            .get(key)
            .ok_or_else(|| LocationFromLabelsError::MissingLabel { key: key.clone(), configured: keys.join(", ") })?;
        let component =
            sanitize_component(value).ok_or_else(|| LocationFromLabelsError::EmptyValue { key: key.clone() })?;
        location.push('/');
        location.push_str(&component);
    }
    Ok(Location(location))
}

/// Check that `location` is `/`-separated, starts with `/`, and that every component is
/// non-empty and uses only `[a-zA-Z0-9_.-]`.
pub fn validate_location(location: &str) -> Result<Location, InvalidLocation> {
    let Some(rest) = location.strip_prefix('/') else {
        return Err(InvalidLocation::NoLeadingSlash(location.to_owned()));
    };
    for component in rest.split('/') {
        if component.is_empty() {
            return Err(InvalidLocation::EmptyComponent(location.to_owned()));
        }
        if let Some(character) = component.chars().find(|&c| !is_component_char(c)) {
            return Err(InvalidLocation::BadCharacter { location: location.to_owned(), character });
        }
    }
    Ok(Location(location.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    fn keys(keys: &[&str]) -> Vec<String> {
        keys.iter().map(|k| (*k).to_owned()).collect()
    }

    const REGION: &str = "topology.kubernetes.io/region";
    const ZONE: &str = "topology.kubernetes.io/zone";

    #[test]
    fn region_and_zone_in_configured_order() {
        let node = labels(&[(ZONE, "eu-west-1a"), (REGION, "eu-west-1"), ("other", "x")]);
        let loc = location_from_labels(&node, &keys(&[REGION, ZONE])).unwrap();
        assert_eq!(loc.as_str(), "/eu-west-1/eu-west-1a");
        let reversed = location_from_labels(&node, &keys(&[ZONE, REGION])).unwrap();
        assert_eq!(reversed.as_str(), "/eu-west-1a/eu-west-1");
    }

    #[test]
    fn invalid_characters_become_underscores() {
        let node = labels(&[("rack", "row 3/rack=1:a"), ("dc", "dc_0.b-c")]);
        let loc = location_from_labels(&node, &keys(&["dc", "rack"])).unwrap();
        assert_eq!(loc.as_str(), "/dc_0.b-c/row_3_rack_1_a");
        assert!(validate_location(loc.as_str()).is_ok());
    }

    #[test]
    fn non_ascii_characters_become_one_underscore_each() {
        assert_eq!(sanitize_component("zürich").as_deref(), Some("z_rich"));
    }

    #[test]
    fn missing_label_names_the_key() {
        let node = labels(&[(REGION, "eu-west-1")]);
        let err = location_from_labels(&node, &keys(&[REGION, ZONE])).unwrap_err();
        assert_eq!(
            err,
            LocationFromLabelsError::MissingLabel { key: ZONE.to_owned(), configured: format!("{REGION}, {ZONE}") }
        );
        assert!(err.to_string().contains(ZONE));
    }

    #[test]
    fn empty_label_value_is_an_error() {
        let node = labels(&[("rack", "")]);
        let err = location_from_labels(&node, &keys(&["rack"])).unwrap_err();
        assert_eq!(err, LocationFromLabelsError::EmptyValue { key: "rack".to_owned() });
    }

    #[test]
    fn no_keys_is_an_error() {
        let err = location_from_labels(&labels(&[("a", "b")]), &[]).unwrap_err();
        assert_eq!(err, LocationFromLabelsError::NoKeys);
    }

    #[test]
    fn validator_accepts_valid_locations() {
        for ok in ["/dc-0/rack-09", "/a", "/eu-west-1/eu-west-1a", "/A_b.c-D/0"] {
            assert_eq!(validate_location(ok).unwrap().as_str(), ok, "{ok}");
        }
    }

    #[test]
    fn default_location_is_valid_and_parses_back() {
        let default = Location::default_location();
        assert_eq!(validate_location(default.as_str()), Ok(default.clone()));
        assert_eq!("/default".parse::<Location>(), Ok(default));
        assert!("default".parse::<Location>().is_err());
    }

    #[test]
    fn validator_rejects_invalid_locations() {
        assert_eq!(validate_location("rack-04"), Err(InvalidLocation::NoLeadingSlash("rack-04".to_owned())));
        assert_eq!(
            validate_location("/rack=1"),
            Err(InvalidLocation::BadCharacter { location: "/rack=1".to_owned(), character: '=' })
        );
        for empty in ["/", "//a", "/a/", "/a//b"] {
            assert_eq!(validate_location(empty), Err(InvalidLocation::EmptyComponent(empty.to_owned())), "{empty}");
        }
        assert!(validate_location("").is_err());
        assert!(validate_location("/a b").is_err());
    }
}
