//! What a valid registration is.

use std::collections::{BTreeMap, BTreeSet};

use aloft_shared::FieldError;
use aloft_shared::ssrf::AddressPolicy;
use serde::Deserialize;

use super::strict::{some, some_object};
use super::tokens::{is_token, token_message};
use super::{
    CHECK_INTERVAL_RANGE, CHECK_TIMEOUT_RANGE, DEFAULT_CHECK_INTERVAL_SECONDS,
    DEFAULT_CHECK_TIMEOUT_MS, DEFAULT_TTL_SECONDS, DEFAULT_WEIGHT, HealthCheck, MAX_DEPENDS_ON,
    MAX_META, MAX_TAGS, ServiceName, TTL_RANGE, WEIGHT_RANGE, check_target,
};

pub const MAX_META_VALUE_BYTES: usize = 512;

/// `POST /services/{service}/instances` body as sent (read through [`super::Object`]).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[serde(default, deserialize_with = "some")]
    pub instance_id: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub address: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub port: Option<u32>,
    #[serde(default, deserialize_with = "some")]
    pub version: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub tags: Option<Vec<String>>,
    #[serde(default, deserialize_with = "some")]
    pub meta: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "some")]
    pub weight: Option<u32>,
    #[serde(default, deserialize_with = "some")]
    pub ttl_seconds: Option<u32>,
    #[serde(default, deserialize_with = "some_object")]
    pub check: Option<CheckRequest>,
    #[serde(default, deserialize_with = "some")]
    pub depends_on: Option<Vec<String>>,
}

/// The `check` of a registration as sent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckRequest {
    #[serde(default, deserialize_with = "some")]
    pub http: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub interval_seconds: Option<u32>,
    #[serde(default, deserialize_with = "some")]
    pub timeout_ms: Option<u32>,
}

/// A validated registration.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    pub instance_id: Option<String>,
    pub address: String,
    pub port: Option<u16>,
    pub version: Option<String>,
    pub tags: Vec<String>,
    pub meta: BTreeMap<String, String>,
    pub weight: u32,
    pub ttl_seconds: u32,
    pub check: Option<HealthCheck>,
    /// `None` when not sent: the service's declared dependencies stay as they are.
    /// `Some` replaces them (deduplicated, sorted); `Some([])` declares none.
    pub depends_on: Option<Vec<ServiceName>>,
}

type Errors = Vec<FieldError>;

fn fail(errors: &mut Errors, field: &str, message: impl Into<String>) {
    errors.push(FieldError::new(field, message));
}

impl HealthCheck {
    /// `address` is the instance's own: a check probes the instance it belongs to.
    fn parse(
        req: &CheckRequest,
        address: &str,
        policy: AddressPolicy,
        errors: &mut Errors,
    ) -> Option<Self> {
        let before = errors.len();
        match req.http.as_deref() {
            None => fail(errors, "check.http", "is required"),
            Some(http) => {
                if let Err(e) = check_target(http, policy).and_then(|t| t.owned_by(address)) {
                    fail(errors, "check.http", e.to_string());
                }
            }
        }
        let interval_seconds = req
            .interval_seconds
            .unwrap_or(DEFAULT_CHECK_INTERVAL_SECONDS);
        if !CHECK_INTERVAL_RANGE.contains(&interval_seconds) {
            fail(errors, "check.interval_seconds", "must be from 5 to 3600");
        }
        let timeout_ms = req.timeout_ms.unwrap_or(DEFAULT_CHECK_TIMEOUT_MS);
        if !CHECK_TIMEOUT_RANGE.contains(&timeout_ms) {
            fail(errors, "check.timeout_ms", "must be from 100 to 10000");
        }
        (errors.len() == before).then(|| Self {
            http: req.http.clone().unwrap_or_default(),
            interval_seconds,
            timeout_ms,
        })
    }
}

/// 1–253 of letters, digits and `. - : [ ]`: a host name or an IP address.
fn is_address(a: &str) -> bool {
    (1..=253).contains(&a.len())
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

fn parse_depends_on(
    service: &ServiceName,
    raw: Option<Vec<String>>,
    errors: &mut Errors,
) -> Option<Vec<ServiceName>> {
    let raw = raw?;
    if raw.len() > MAX_DEPENDS_ON {
        let message = format!("must name at most {MAX_DEPENDS_ON} services");
        fail(errors, "depends_on", message);
        return None;
    }
    let mut deps = BTreeSet::new();
    for (i, d) in raw.iter().enumerate() {
        match ServiceName::parse(d) {
            Ok(n) if &n == service => fail(
                errors,
                &format!("depends_on[{i}]"),
                "must not be the service itself",
            ),
            Ok(n) => {
                deps.insert(n);
            }
            Err(m) => fail(errors, &format!("depends_on[{i}]"), m),
        }
    }
    Some(deps.into_iter().collect())
}

impl Registration {
    /// Every bad field at once. `policy` says which address kinds a health check may
    /// reach in this deployment.
    pub fn parse(
        service: &ServiceName,
        req: RegisterRequest,
        policy: AddressPolicy,
    ) -> Result<Self, Errors> {
        let mut errors = Vec::new();
        let e = &mut errors;
        if let Some(id) = &req.instance_id
            && !is_token(id, 128)
        {
            fail(e, "instance_id", token_message(128));
        }
        // As sent: the spec's pattern has no room for white space, so padding is refused.
        let address = req.address.clone().unwrap_or_default();
        if req.address.is_none() {
            fail(e, "address", "is required");
        } else if !is_address(&address) {
            fail(e, "address", "must be a hostname or IP address");
        }
        let port = match req.port.map(u16::try_from) {
            None => None,
            Some(Ok(p)) if p > 0 => Some(p),
            Some(_) => {
                fail(e, "port", "must be from 1 to 65535");
                None
            }
        };
        if let Some(v) = &req.version
            && !is_token(v, 64)
        {
            fail(e, "version", token_message(64));
        }
        let mut tags = req.tags.unwrap_or_default();
        if tags.len() > MAX_TAGS {
            fail(e, "tags", format!("must have at most {MAX_TAGS} tags"));
        }
        for (i, t) in tags.iter().enumerate() {
            if !is_token(t, 128) {
                fail(e, &format!("tags[{i}]"), token_message(128));
            }
        }
        let meta = req.meta.unwrap_or_default();
        if meta.len() > MAX_META {
            fail(e, "meta", format!("must have at most {MAX_META} keys"));
        }
        for (k, v) in &meta {
            if !is_token(k, 64) || v.len() > MAX_META_VALUE_BYTES {
                let rule = format!("keys are {}; values at most 512 bytes", token_message(64));
                fail(e, &format!("meta.{k}"), rule);
            }
        }
        let weight = req.weight.unwrap_or(DEFAULT_WEIGHT);
        if !WEIGHT_RANGE.contains(&weight) {
            fail(e, "weight", "must be from 1 to 1000");
        }
        let ttl_seconds = req.ttl_seconds.unwrap_or(DEFAULT_TTL_SECONDS);
        if !TTL_RANGE.contains(&ttl_seconds) {
            fail(e, "ttl_seconds", "must be from 5 to 3600");
        }
        let check = req
            .check
            .as_ref()
            .and_then(|c| HealthCheck::parse(c, &address, policy, e));
        let depends_on = parse_depends_on(service, req.depends_on, e);
        if !errors.is_empty() {
            return Err(errors);
        }
        tags.sort();
        tags.dedup();
        Ok(Self {
            instance_id: req.instance_id,
            address,
            port,
            version: req.version,
            tags,
            meta,
            weight,
            ttl_seconds,
            check,
            depends_on,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Object;
    use aloft_shared::extract::parse_json;

    fn api() -> ServiceName {
        ServiceName::parse("api").unwrap()
    }

    fn parse(json: serde_json::Value, policy: AddressPolicy) -> Result<Registration, Errors> {
        Registration::parse(&api(), serde_json::from_value(json).unwrap(), policy)
    }

    fn fields(r: Result<Registration, Errors>) -> Vec<String> {
        r.unwrap_err().into_iter().map(|e| e.field).collect()
    }

    const PRIVATE: AddressPolicy = AddressPolicy {
        allow_private: true,
        allow_loopback: false,
    };

    #[test]
    fn defaults_and_bounds() {
        let r = parse(
            serde_json::json!({"address": "10.0.0.7", "tags": ["b", "a", "b"]}),
            AddressPolicy::STRICT,
        )
        .unwrap();
        assert_eq!(
            (r.weight, r.ttl_seconds, r.tags.clone()),
            (100, 30, vec!["a".into(), "b".into()])
        );
        assert_eq!(r.depends_on, None, "not sent: left as it is");
        let bad = serde_json::json!({"port": 70000, "weight": 0, "ttl_seconds": 4,
            "tags": ["ok", "no spaces"], "depends_on": ["Bad"]});
        assert_eq!(
            fields(parse(bad, AddressPolicy::STRICT)),
            [
                "address",
                "port",
                "tags[1]",
                "weight",
                "ttl_seconds",
                "depends_on[0]"
            ]
        );
    }

    #[test]
    fn depends_on_is_deduplicated_bounded_and_never_the_service_itself() {
        let r = parse(
            serde_json::json!({"address": "a", "depends_on": ["db", "cache", "db"]}),
            AddressPolicy::STRICT,
        )
        .unwrap();
        let names: Vec<&str> = r
            .depends_on
            .as_deref()
            .unwrap()
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(names, ["cache", "db"]);
        let empty = parse(
            serde_json::json!({"address": "a", "depends_on": []}),
            AddressPolicy::STRICT,
        );
        assert_eq!(empty.unwrap().depends_on, Some(vec![]), "[] declares none");
        let many: Vec<String> = (0..=MAX_DEPENDS_ON).map(|i| format!("s{i}")).collect();
        assert_eq!(
            fields(parse(
                serde_json::json!({"address": "a", "depends_on": many}),
                AddressPolicy::STRICT
            )),
            ["depends_on"]
        );
        let repeated: Vec<String> = (0..=MAX_DEPENDS_ON).map(|_| "db".to_owned()).collect();
        assert_eq!(
            fields(parse(
                serde_json::json!({"address": "a", "depends_on": repeated}),
                AddressPolicy::STRICT
            )),
            ["depends_on"],
            "the list as sent is bounded, repeats included"
        );
        assert_eq!(
            fields(parse(
                serde_json::json!({"address": "a", "depends_on": ["api"]}),
                AddressPolicy::STRICT
            )),
            ["depends_on[0]"]
        );
    }

    #[test]
    fn nulls_and_wrong_shapes_are_422_naming_the_field() {
        for (body, field) in [
            (r#"{"address": "a", "depends_on": null}"#, "depends_on"),
            (r#"{"address": "a", "depends_on": "db"}"#, "depends_on"),
            (r#"{"address": null}"#, "address"),
            (r#"{"address": "a", "tags": null}"#, "tags"),
            (r#"{"address": "a", "meta": {"k": 1}}"#, "meta.k"),
            (r#"{"address": "a", "check": null}"#, "check"),
            (r#"{"address": "a", "check": ["http://a/"]}"#, "check"),
            (r#"{"address": "a", "weight": "1"}"#, "weight"),
            (r#"[{"address": "a"}]"#, "body"),
        ] {
            let p = parse_json::<Object<RegisterRequest>>(body.as_bytes()).unwrap_err();
            assert_eq!(
                (p.status, p.errors[0].field.as_str()),
                (422, field),
                "{body}"
            );
        }
    }

    #[test]
    fn http_checks_point_at_the_own_address_and_a_permitted_kind() {
        let check = |address: &str, url: &str, policy| {
            parse(
                serde_json::json!({"address": address, "check": {"http": url}}),
                policy,
            )
        };
        let c = check(
            "93.184.216.34",
            "http://93.184.216.34:8080/health",
            AddressPolicy::STRICT,
        )
        .unwrap()
        .check
        .unwrap();
        assert_eq!((c.interval_seconds, c.timeout_ms), (30, 2000));
        // (address, url, policy, accepted)
        for (address, url, policy, ok) in [
            ("10.0.0.1", "http://10.0.0.1:8080/health", PRIVATE, true),
            (
                "10.0.0.1",
                "http://10.0.0.1:8080/health",
                AddressPolicy::STRICT,
                false,
            ),
            ("10.0.0.1", "http://10.0.0.2:8080/health", PRIVATE, false),
            ("10.0.0.1", "http://10.0.0.1@evil.example/", PRIVATE, false),
            (
                "10.0.0.1",
                "http://evil.example/?h=10.0.0.1",
                PRIVATE,
                false,
            ),
            (
                "169.254.169.254",
                "http://169.254.169.254/latest/",
                PRIVATE,
                false,
            ),
            ("0xa9fea9fe", "http://0xa9fea9fe/", PRIVATE, false),
            ("2852039166", "http://2852039166/", PRIVATE, false),
            (
                "0251.254.169.254",
                "http://0251.254.169.254/",
                PRIVATE,
                false,
            ),
            (
                "::ffff:169.254.169.254",
                "http://[::ffff:169.254.169.254]/",
                PRIVATE,
                false,
            ),
            ("fd00::1", "http://[fd00::1]:80/", PRIVATE, true),
            (
                "svc.internal",
                "http://svc.internal/health",
                AddressPolicy::STRICT,
                true,
            ),
        ] {
            assert_eq!(check(address, url, policy).is_ok(), ok, "{address} {url}");
        }
        let errs = check("a", "http://a/", AddressPolicy::STRICT);
        assert!(errs.is_ok());
        let bad = parse(
            serde_json::json!({"address": "a", "check": {"http": "ftp://x", "interval_seconds": 1, "timeout_ms": 60000}}),
            AddressPolicy::STRICT,
        );
        assert_eq!(
            fields(bad),
            ["check.http", "check.interval_seconds", "check.timeout_ms"]
        );
    }

    mod properties {
        use super::super::*;
        use super::api;
        use proptest::prelude::*;

        /// The spec's `address` pattern: `^[A-Za-z0-9.:\[\]-]+$`, 1–253 characters.
        fn is_spec_address(a: &str) -> bool {
            (1..=253).contains(&a.chars().count())
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:[]-".contains(&b))
        }

        fn is_known_field(f: &str) -> bool {
            [
                "instance_id",
                "address",
                "port",
                "version",
                "tags",
                "meta",
                "weight",
                "ttl_seconds",
                "check.http",
                "check.interval_seconds",
                "check.timeout_ms",
                "depends_on",
            ]
            .contains(&f)
                || ["tags[", "meta.", "depends_on["]
                    .iter()
                    .any(|p| f.starts_with(p))
        }

        /// Mostly valid values, each field sometimes broken (so whole requests pass often
        /// enough to check what passes).
        fn field<T: std::fmt::Debug + Clone>(
            good: impl Strategy<Value = T> + 'static,
            bad: impl Strategy<Value = T> + 'static,
        ) -> impl Strategy<Value = Option<T>> {
            prop_oneof![2 => Just(None), 6 => good.prop_map(Some), 1 => bad.prop_map(Some)]
        }

        fn request() -> impl Strategy<Value = RegisterRequest> {
            let token = "[A-Za-z0-9._:=-]{1,12}";
            let bad_token = "[a-z ]{1,4}|\\PC{0,5}|[a-z]{125,130}|";
            (
                (
                    field(token, bad_token),
                    field(
                        "93\\.184\\.216\\.34|web\\.example\\.com|[A-Za-z0-9.:-]{1,20}",
                        "[ \\t][a-z]{1,5}|[a-z]{1,5}[ \\t]|\\PC{0,10}|[a-z]{250,256}|",
                    ),
                    field(1u32..=65_535, prop_oneof![Just(0u32), 65_536u32..]),
                    field(token, bad_token),
                    field(
                        proptest::collection::vec(token, 0..5),
                        proptest::collection::vec(prop_oneof![token, bad_token], 0..35),
                    ),
                ),
                (
                    field(
                        proptest::collection::btree_map(token, "\\PC{0,5}", 0..4),
                        proptest::collection::btree_map(bad_token, "\\PC{0,5}|[a-z]{510,514}", 0..34),
                    ),
                    field(1u32..=1000, prop_oneof![Just(0u32), 1001u32..]),
                    field(5u32..=3600, prop_oneof![0u32..5, 3601u32..]),
                    field(
                        (
                            field(
                                "http://93\\.184\\.216\\.34(:[0-9]{1,4})?/[a-z]{0,5}",
                                "[ ]http://93\\.184\\.216\\.34/|HTTP://93\\.184\\.216\\.34/|ftp://x|http://10\\.0\\.0\\.1/|\\PC{0,10}",
                            ),
                            field(5u32..=3600, any::<u32>()),
                            field(100u32..=10_000, any::<u32>()),
                        ),
                        Just((None, None, None)),
                    ),
                    field(
                        proptest::collection::vec("api|db|cache|[a-z][a-z0-9-]{0,8}", 0..6),
                        proptest::collection::vec("api|Bad|\\PC{0,4}|[a-z]", 0..35),
                    ),
                ),
            )
                .prop_map(|((instance_id, address, port, version, tags), (meta, weight, ttl_seconds, check, depends_on))| {
                    let check = check.map(|(http, interval_seconds, timeout_ms)| CheckRequest { http, interval_seconds, timeout_ms });
                    RegisterRequest { instance_id, address, port, version, tags, meta, weight, ttl_seconds, check, depends_on }
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            /// Any body: a registration that keeps every documented rule, or the list of
            /// fields that broke one.
            #[test]
            fn any_registration_keeps_the_rules_or_names_its_fields(req in request()) {
                let sent_address = req.address.clone();
                let sent_http = req.check.as_ref().and_then(|c| c.http.clone());
                match Registration::parse(&api(), req, AddressPolicy::STRICT) {
                    Ok(r) => {
                        // What the spec refuses is refused: the address as sent matches it.
                        prop_assert!(is_spec_address(sent_address.as_deref().unwrap_or_default()), "{:?}", sent_address);
                        prop_assert_eq!(Some(&r.address), sent_address.as_ref());
                        prop_assert!(r.instance_id.iter().all(|i| is_token(i, 128)));
                        prop_assert!(r.version.iter().all(|v| is_token(v, 64)));
                        prop_assert!(r.tags.len() <= MAX_TAGS && r.tags.iter().all(|t| is_token(t, 128)));
                        prop_assert!(r.tags.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
                        prop_assert!(r.meta.len() <= MAX_META);
                        prop_assert!(r.meta.iter().all(|(k, v)| is_token(k, 64) && v.len() <= MAX_META_VALUE_BYTES));
                        prop_assert!(WEIGHT_RANGE.contains(&r.weight) && TTL_RANGE.contains(&r.ttl_seconds));
                        prop_assert!(r.port.is_none_or(|p| p > 0));
                        if let Some(deps) = &r.depends_on {
                            prop_assert!(deps.len() <= MAX_DEPENDS_ON);
                            prop_assert!(deps.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
                            prop_assert!(!deps.contains(&api()));
                        }
                        if let Some(c) = &r.check {
                            let http = sent_http.unwrap_or_default();
                            prop_assert!(http.starts_with("http://") || http.starts_with("https://"), "{:?}", http);
                            prop_assert_eq!(&c.http, &http);
                            prop_assert!(CHECK_INTERVAL_RANGE.contains(&c.interval_seconds));
                            prop_assert!(CHECK_TIMEOUT_RANGE.contains(&c.timeout_ms));
                        }
                    }
                    Err(errors) => {
                        prop_assert!(!errors.is_empty());
                        for e in &errors {
                            prop_assert!(is_known_field(&e.field), "{:?}", e);
                        }
                    }
                }
            }

            /// An address is accepted exactly when it matches the spec's pattern, as sent.
            #[test]
            fn addresses_are_the_spec_pattern_as_sent(
                a in "[A-Za-z0-9.:\\[\\]-]{1,20}|[ \\t]?[a-z0-9.]{1,8}[ \\t\\n]?|[a-z_/@%]{1,5}|\\PC{0,10}|[a-z]{250,256}",
            ) {
                let req = RegisterRequest {
                    instance_id: None, address: Some(a.clone()), port: None, version: None, tags: None,
                    meta: None, weight: None, ttl_seconds: None, check: None, depends_on: None,
                };
                match Registration::parse(&api(), req, AddressPolicy::STRICT) {
                    Ok(r) => {
                        prop_assert!(is_spec_address(&a), "{:?}", a);
                        prop_assert_eq!(r.address, a);
                    }
                    Err(errors) => {
                        prop_assert!(!is_spec_address(&a), "{:?}", a);
                        prop_assert_eq!(&errors[0].field, "address");
                    }
                }
            }

            #[test]
            fn valid_registrations_are_accepted(
                instance_id in proptest::option::of("[A-Za-z0-9._:=-]{1,128}"),
                host in "[a-z]{1,10}(\\.[a-z]{1,10}){1,3}",
                port in proptest::option::of(1u32..=65_535),
                tags in proptest::collection::vec("[A-Za-z0-9._:=-]{1,128}", 0..=MAX_TAGS),
                deps in proptest::collection::vec("[b-z][a-z0-9-]{0,10}[a-z0-9]", 0..=MAX_DEPENDS_ON),
                with_check in any::<bool>(),
            ) {
                let req = RegisterRequest {
                    instance_id: instance_id.clone(),
                    address: Some(host.clone()),
                    port,
                    version: None,
                    tags: Some(tags.clone()),
                    meta: None,
                    weight: None,
                    ttl_seconds: None,
                    check: with_check.then(|| CheckRequest {
                        http: Some(format!("https://{host}/health")),
                        interval_seconds: None,
                        timeout_ms: None,
                    }),
                    depends_on: Some(deps.clone()),
                };
                let r = Registration::parse(&api(), req, AddressPolicy::STRICT).unwrap();
                let mut sorted = tags;
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(r.tags, sorted);
                let mut deps = deps;
                deps.sort();
                deps.dedup();
                let got: Vec<String> = r.depends_on.unwrap().into_iter().map(String::from).collect();
                prop_assert_eq!(got, deps);
                prop_assert_eq!((r.instance_id, r.address, r.port.map(u32::from)), (instance_id, host, port));
                prop_assert_eq!(r.check.is_some(), with_check);
            }
        }
    }
}
