//! Discovery and resolve query strings. An unknown parameter, or a single-valued one
//! given twice, is a 400 naming it (the shared extractor's rule); a bad value is a 422
//! naming the parameter. Every value is bounded, so none can reach a key or a filter
//! oversized.

use std::collections::BTreeSet;

use aloft_shared::FieldError;

use super::registration::MAX_META_VALUE_BYTES;
use super::tokens::{is_token, token_message};
use super::{DiscoveryFilter, MAX_META, MAX_TAGS, Strategy};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("unknown parameter `{name}` (known: {known})")]
    Unknown { name: String, known: &'static str },
    #[error("parameter `{0}` may be given once")]
    Repeated(String),
    #[error("invalid values")]
    Invalid(Vec<FieldError>),
}

impl QueryError {
    /// The parameter a 400 names.
    pub fn parameter(&self) -> Option<&str> {
        match self {
            QueryError::Unknown { name, .. } | QueryError::Repeated(name) => Some(name),
            QueryError::Invalid(_) => None,
        }
    }
}

/// Tracks single-valued parameters, and collects value errors.
#[derive(Default)]
struct Parser {
    seen: BTreeSet<String>,
    errors: Vec<FieldError>,
}

impl Parser {
    fn once(&mut self, name: &str) -> Result<(), QueryError> {
        if self.seen.insert(name.to_owned()) {
            Ok(())
        } else {
            Err(QueryError::Repeated(name.to_owned()))
        }
    }

    fn tag(&mut self, filter: &mut DiscoveryFilter, v: &str) {
        if !is_token(v, 128) {
            self.errors.push(FieldError::new("tag", token_message(128)));
        } else if filter.tags.len() == MAX_TAGS {
            let message = format!("may be given at most {MAX_TAGS} times");
            self.errors.push(FieldError::new("tag", message));
        } else {
            filter.tags.push(v.to_owned());
        }
    }

    fn finish<T>(self, value: T) -> Result<T, QueryError> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            Err(QueryError::Invalid(self.errors))
        }
    }
}

const DISCOVERY_PARAMETERS: &str = "health, tag, version, meta.KEY, fail_open";

/// `GET /services/{service}/instances` query: `health=passing|any`, repeated `tag`,
/// `version`, `meta.KEY=VALUE`, `fail_open=true|false`.
pub fn parse_discovery_query(
    pairs: &[(String, String)],
) -> Result<(DiscoveryFilter, bool), QueryError> {
    let mut filter = DiscoveryFilter {
        healthy_only: true,
        ..Default::default()
    };
    let mut fail_open = false;
    let mut p = Parser::default();
    for (k, v) in pairs {
        match k.as_str() {
            "tag" => p.tag(&mut filter, v),
            "health" => {
                p.once(k)?;
                match v.as_str() {
                    "passing" => filter.healthy_only = true,
                    "any" => filter.healthy_only = false,
                    _ => p
                        .errors
                        .push(FieldError::new("health", "must be passing or any")),
                }
            }
            "version" => {
                p.once(k)?;
                if is_token(v, 64) {
                    filter.version = Some(v.clone());
                } else {
                    p.errors.push(FieldError::new("version", token_message(64)));
                }
            }
            "fail_open" => {
                p.once(k)?;
                match v.as_str() {
                    "true" => fail_open = true,
                    "false" => fail_open = false,
                    _ => p
                        .errors
                        .push(FieldError::new("fail_open", "must be true or false")),
                }
            }
            other => match other.strip_prefix("meta.") {
                Some(key) if is_token(key, 64) => {
                    p.once(k)?;
                    if v.len() > MAX_META_VALUE_BYTES || filter.meta.len() == MAX_META {
                        let message = format!(
                            "values are at most {MAX_META_VALUE_BYTES} bytes, and at most {MAX_META} meta keys"
                        );
                        p.errors.push(FieldError::new(other, message));
                    } else {
                        filter.meta.insert(key.to_owned(), v.clone());
                    }
                }
                _ => {
                    return Err(QueryError::Unknown {
                        name: truncated(other),
                        known: DISCOVERY_PARAMETERS,
                    });
                }
            },
        }
    }
    p.finish((filter, fail_open))
}

/// `GET /services/{service}/resolve` query: `strategy` (default round_robin), repeated `tag`.
pub fn parse_resolve_query(
    pairs: &[(String, String)],
) -> Result<(Strategy, DiscoveryFilter), QueryError> {
    let mut strategy = Strategy::RoundRobin;
    let mut filter = DiscoveryFilter {
        healthy_only: true,
        ..Default::default()
    };
    let mut p = Parser::default();
    for (k, v) in pairs {
        match k.as_str() {
            "strategy" => {
                p.once(k)?;
                match Strategy::parse(v) {
                    Ok(s) => strategy = s,
                    Err(m) => p.errors.push(FieldError::new("strategy", m)),
                }
            }
            "tag" => p.tag(&mut filter, v),
            other => {
                return Err(QueryError::Unknown {
                    name: truncated(other),
                    known: "strategy, tag",
                });
            }
        }
    }
    p.finish((strategy, filter))
}

/// A parameter name echoed back in a problem, cut to a readable length.
fn truncated(name: &str) -> String {
    name.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(q: &[(&str, &str)]) -> Vec<(String, String)> {
        q.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn fields(e: QueryError) -> Vec<String> {
        match e {
            QueryError::Invalid(errors) => errors.into_iter().map(|e| e.field).collect(),
            other => panic!("expected a 422, got {other:?}"),
        }
    }

    #[test]
    fn discovery_query() {
        let (f, open) = parse_discovery_query(&pairs(&[
            ("health", "any"),
            ("tag", "eu"),
            ("tag", "blue"),
            ("meta.az", "a"),
            ("fail_open", "true"),
        ]))
        .unwrap();
        assert!(!f.healthy_only && open);
        assert_eq!(f.tags, ["eu", "blue"]);
        assert_eq!(f.meta["az"], "a");
        let long = "v".repeat(2000);
        let errs = parse_discovery_query(&pairs(&[
            ("health", "sick"),
            ("tag", &long),
            ("version", &long),
            ("meta.az", &long),
        ]))
        .unwrap_err();
        assert_eq!(fields(errs), ["health", "tag", "version", "meta.az"]);
    }

    #[test]
    fn unknown_and_repeated_parameters_are_named() {
        // (query, the parameter a 400 names)
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("colour", "x")], "colour"),
            (&[("meta.", "x")], "meta."),
            (&[("meta.bad key", "x")], "meta.bad key"),
            (&[("health", "any"), ("health", "passing")], "health"),
            (&[("version", "1"), ("version", "2")], "version"),
            (&[("fail_open", "true"), ("fail_open", "true")], "fail_open"),
            (&[("meta.az", "a"), ("meta.az", "b")], "meta.az"),
        ];
        for (q, name) in cases {
            let e = parse_discovery_query(&pairs(q)).unwrap_err();
            assert_eq!(e.parameter(), Some(*name), "{q:?}");
        }
        let e = parse_resolve_query(&pairs(&[
            ("strategy", "weighted"),
            ("strategy", "weighted"),
        ]));
        assert_eq!(e.unwrap_err().parameter(), Some("strategy"));
        let e = parse_resolve_query(&pairs(&[("health", "any")]));
        assert_eq!(e.unwrap_err().parameter(), Some("health"));
        let too_many: Vec<(String, String)> = (0..=MAX_TAGS)
            .map(|i| ("tag".to_owned(), format!("t{i}")))
            .collect();
        assert_eq!(
            fields(parse_discovery_query(&too_many).unwrap_err()),
            ["tag"]
        );
    }

    #[test]
    fn resolve_query() {
        assert_eq!(parse_resolve_query(&[]).unwrap().0, Strategy::RoundRobin);
        assert_eq!(
            parse_resolve_query(&pairs(&[("strategy", "weighted")]))
                .unwrap()
                .0,
            Strategy::Weighted
        );
        let e = parse_resolve_query(&pairs(&[("strategy", "random")])).unwrap_err();
        assert_eq!(fields(e), ["strategy"]);
    }

    mod properties {
        use super::super::*;
        use crate::domain::Strategy as Pick;
        use proptest::prelude::*;
        use proptest::strategy::Strategy;

        /// Query pairs as a fuzzer sends them: known names (and near-misses), valid and
        /// invalid values, repeats.
        fn pairs(names: &'static str) -> impl Strategy<Value = Vec<(String, String)>> {
            let value = prop_oneof![
                9 => "passing|any|true|false|[A-Za-z0-9._:=-]{1,10}|\\PC{0,6}",
                1 => "[a-z]{60,70}|[a-z]{510,515}",
            ];
            proptest::collection::vec((names, value), 0..8)
        }

        const DISCOVERY_NAMES: &str = "health|tag|version|fail_open|meta\\.[a-z:=]{1,4}|meta\\.|meta\\.\\PC{1,3}|Health|tags|[a-z_]{1,8}|\\PC{0,80}";

        fn is_single(name: &str) -> bool {
            matches!(name, "health" | "version" | "fail_open") || name.starts_with("meta.")
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// Any query: a filter within its bounds, a 400 naming the parameter, or a 422
            /// naming each bad value; never a panic.
            #[test]
            fn any_discovery_query_is_a_filter_or_names_a_parameter(q in pairs(DISCOVERY_NAMES)) {
                match parse_discovery_query(&q) {
                    Ok((f, _)) => {
                        prop_assert!(f.tags.len() <= MAX_TAGS);
                        prop_assert!(f.meta.len() <= MAX_META);
                        prop_assert!(f.tags.iter().all(|t| is_token(t, 128)));
                        prop_assert!(f.version.iter().all(|v| is_token(v, 64)));
                        for (k, v) in &f.meta {
                            prop_assert!(is_token(k, 64) && v.len() <= MAX_META_VALUE_BYTES);
                        }
                        let tags: Vec<&String> = q.iter().filter(|(k, _)| k == "tag").map(|(_, v)| v).collect();
                        prop_assert_eq!(f.tags.iter().collect::<Vec<_>>(), tags);
                    }
                    Err(QueryError::Unknown { name, .. }) => {
                        prop_assert!(name.chars().count() <= 64);
                        prop_assert!(q.iter().any(|(k, _)| k.starts_with(&name)));
                    }
                    Err(QueryError::Repeated(name)) => {
                        prop_assert!(is_single(&name));
                        prop_assert!(q.iter().filter(|(k, _)| *k == name).count() >= 2);
                    }
                    Err(QueryError::Invalid(errors)) => {
                        prop_assert!(!errors.is_empty());
                        for e in errors {
                            prop_assert!(q.iter().any(|(k, _)| *k == e.field), "{:?}", e);
                        }
                    }
                }
            }

            #[test]
            fn valid_discovery_queries_give_their_filter(
                health in proptest::option::of("passing|any"),
                tags in proptest::collection::vec(prop_oneof![9 => "[A-Za-z0-9._:=-]{1,12}", 1 => "[a-z]{128}"], 0..=MAX_TAGS),
                version in proptest::option::of("[A-Za-z0-9._:=-]{1,12}|[a-z]{64}"),
                meta in proptest::collection::btree_map(
                    prop_oneof![9 => "[A-Za-z0-9._:=-]{1,12}", 1 => "[a-z]{64}"],
                    prop_oneof![9 => "[ -~]{0,10}", 1 => "[a-z]{512}"],
                    0..=MAX_META,
                ),
                fail_open in proptest::option::of(any::<bool>()),
            ) {
                let mut q: Vec<(String, String)> = Vec::new();
                q.extend(health.iter().map(|h| ("health".to_owned(), h.clone())));
                q.extend(tags.iter().map(|t| ("tag".to_owned(), t.clone())));
                q.extend(version.iter().map(|v| ("version".to_owned(), v.clone())));
                q.extend(meta.iter().map(|(k, v)| (format!("meta.{k}"), v.clone())));
                q.extend(fail_open.iter().map(|b| ("fail_open".to_owned(), b.to_string())));
                let (f, open) = parse_discovery_query(&q).unwrap();
                prop_assert_eq!(f.healthy_only, health.as_deref() != Some("any"));
                prop_assert_eq!(f.tags, tags);
                prop_assert_eq!(f.version, version);
                prop_assert_eq!(f.meta, meta);
                prop_assert_eq!(open, fail_open == Some(true));
            }

            #[test]
            fn any_resolve_query_is_a_strategy_or_names_a_parameter(
                mut q in pairs("strategy|tag|health|\\PC{0,70}"),
                strategy in proptest::option::of("round_robin|weighted|least_loaded|random|Weighted"),
            ) {
                q.extend(strategy.map(|s| ("strategy".to_owned(), s)));
                match parse_resolve_query(&q) {
                    Ok((s, f)) => {
                        let given = q.iter().find(|(k, _)| k == "strategy").map(|(_, v)| v.as_str());
                        prop_assert_eq!(Some(s), Pick::parse(given.unwrap_or("round_robin")).ok());
                        prop_assert!(f.tags.len() <= MAX_TAGS && f.healthy_only);
                    }
                    Err(QueryError::Unknown { name, known }) => {
                        prop_assert_eq!(known, "strategy, tag");
                        prop_assert!(name != "strategy" && name != "tag");
                    }
                    Err(QueryError::Repeated(name)) => prop_assert_eq!(name, "strategy"),
                    Err(QueryError::Invalid(errors)) => {
                        for e in errors {
                            prop_assert!(e.field == "strategy" || e.field == "tag");
                        }
                    }
                }
            }
        }
    }
}
