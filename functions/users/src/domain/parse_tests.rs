//! Properties of the users parsers: emails, names and roles, create and patch bodies,
//! If-Match versions and search filters.

use super::*;
use proptest::prelude::*;

proptest! {
    #[test]
    fn email_parse_never_panics_and_keys_are_lowercase(s in "\\PC{0,300}") {
        if let Ok(e) = Email::parse(&s) {
            prop_assert_eq!(e.key(), e.key().to_lowercase());
            prop_assert!(e.as_str().contains('@'));
        }
    }

    #[test]
    fn valid_names_survive_a_round_trip(s in "[a-zA-Z ]{1,200}") {
        if let Ok(n) = UserName::parse(&s) {
            prop_assert_eq!(UserName::parse(n.as_str()).unwrap(), n);
        }
    }
}

/// An address of the documented shape: a dot-atom local part and a dotted domain.
const EMAIL: &str =
    "[A-Za-z0-9._%+-]{1,64}@([A-Za-z0-9]([A-Za-z0-9-]{0,20}[A-Za-z0-9])?\\.){1,3}[A-Za-z]{2,10}";

proptest! {
    #[test]
    fn emails_of_the_documented_shape_parse_and_round_trip(
        e in EMAIL,
        pad in "[ \t\n]{0,2}",
    ) {
        let email = Email::parse(&format!("{pad}{e}{pad}")).unwrap();
        prop_assert_eq!(email.as_str(), e.as_str());
        prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
        let json = serde_json::to_string(&email).unwrap();
        prop_assert_eq!(serde_json::from_str::<Email>(&json).unwrap(), email.clone());
        // The key is a fixed point: folding twice is folding once.
        prop_assert_eq!(email.key().to_lowercase(), email.key());
    }

    /// Near-valid addresses: one rule broken each.
    #[test]
    fn emails_breaking_a_rule_are_refused(
        local in "[a-z0-9.]{1,20}",
        domain in "[a-z0-9]{1,10}\\.[a-z]{2,5}",
        bad in "[\\x00-\\x1f\\x7f \u{85}\u{a0}\u{2028}]",
        long_local in "[a-z]{65,80}",
        at in 0usize..20,
    ) {
        // Inside the address: at either end, whitespace is trimmed as documented.
        let with_bad = {
            let i = at.min(local.len());
            format!("x{}{bad}{}@{domain}", &local[..i], &local[i..])
        };
        let cases = [
            with_bad,
            format!("{long_local}@{domain}"),
            format!("{local}@{}", domain.replace('.', "")),
            format!("{local}@-{domain}"),
            format!("{local}@{domain}-"),
            format!("{local}@.{domain}"),
            format!("{local}@{domain}."),
            format!("{local}@@{domain}"),
            format!("@{domain}"),
            format!("{local}@"),
            local.clone(),
            format!("{local}@{}.{domain}", "a".repeat(MAX_EMAIL_CHARS)),
        ];
        for case in cases {
            prop_assert!(Email::parse(&case).is_err(), "{:?}", case);
        }
    }

    #[test]
    fn accepted_emails_keep_every_rule(s in "\\PC{0,300}|[a-z@.\\- ]{0,30}") {
        if let Ok(e) = Email::parse(&s) {
            let e = e.as_str();
            prop_assert_eq!(e, s.trim());
            prop_assert!(e.chars().count() <= MAX_EMAIL_CHARS);
            prop_assert!(!e.chars().any(|c| c.is_whitespace() || c.is_control()));
            let (local, domain) = e.rsplit_once('@').unwrap();
            prop_assert!(!local.is_empty() && local.chars().count() <= 64);
            prop_assert!(domain.contains('.'));
        }
    }

    #[test]
    fn names_are_trimmed_bounded_and_free_of_control_characters(
        s in "\\PC{0,220}|[ \t]{0,2}[a-zé]{195,205}[ \t]{0,2}|[a-z]{0,5}[\\x00-\\x1f\\x7f\u{80}-\u{9f}][a-z]{0,5}",
    ) {
        let trimmed = s.trim();
        let expected_ok = !trimmed.is_empty()
            && s.chars().count() <= MAX_NAME_CHARS
            && !trimmed.chars().any(char::is_control);
        match UserName::parse(&s) {
            Ok(n) => {
                prop_assert!(expected_ok);
                prop_assert_eq!(n.as_str(), trimmed);
                // Parsing is idempotent: a parsed name parses to itself.
                prop_assert_eq!(UserName::parse(n.as_str()), Ok(n.clone()));
                prop_assert_eq!(n.key().to_lowercase(), n.key());
            }
            Err(_) => prop_assert!(!expected_ok, "{:?}", s),
        }
    }

    /// Roles are exactly the documented enum: no padding, no other case.
    #[test]
    fn roles_are_exactly_their_names(s in "\\PC{0,10}|[ ]?(admin|member|viewer|Admin|VIEWER)[ \t]?") {
        match Role::parse(&s) {
            Ok(r) => prop_assert_eq!(r.as_str(), s.as_str()),
            Err(m) => prop_assert_eq!(m, "must be one of admin, member, viewer"),
        }
    }

    #[test]
    fn etags_we_send_come_back_as_their_version(v in any::<u64>(), pad in "[ ]{0,2}") {
        let tag = etag(v);
        prop_assert_eq!(parse_if_match(&tag), Some(v));
        let weak = format!("{pad}W/{tag}{pad}");
        prop_assert_eq!(parse_if_match(&weak), Some(v));
        prop_assert_eq!(parse_if_match(&v.to_string()), Some(v));
    }

    /// Only a version (digits, quoted or not, weak or not) is one; any other entity
    /// tag names no version of ours.
    #[test]
    fn if_match_accepts_only_digits(s in "\\PC{0,30}|(W/)?\"?[+-]?[0-9]{0,21}\"?|\\*") {
        if let Some(v) = parse_if_match(&s) {
            let t = s.trim();
            let t = t.strip_prefix("W/").unwrap_or(t);
            let t = t.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(t);
            prop_assert!(!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()), "{:?}", s);
            prop_assert_eq!(t.parse::<u64>().ok(), Some(v));
        }
    }

    #[test]
    fn a_search_takes_any_filters_but_needs_one(
        email in proptest::option::of(EMAIL),
        role in proptest::option::of("admin|viewer"),
        name in proptest::option::of("[A-Za-z]{1,10}"),
    ) {
        let given = [email.is_some(), role.is_some(), name.is_some()]
            .iter()
            .filter(|g| **g)
            .count();
        let p = SearchParams {
            email: email.clone(),
            role,
            name_prefix: name,
            ..Default::default()
        };
        match SearchFilter::parse(&p) {
            Ok(f) => {
                prop_assert!(given >= 1);
                prop_assert_eq!(f.email, email.map(|e| e.to_lowercase()));
            }
            Err(e) => {
                prop_assert_eq!(given, 0);
                prop_assert_eq!(&e[0].field, "query");
            }
        }
    }

    /// Every bad or missing field is named, in order, and nothing else.
    #[test]
    fn a_create_request_names_exactly_its_bad_fields(
        email in proptest::option::of(prop_oneof![EMAIL, "\\PC{0,20}"]),
        name in proptest::option::of("\\PC{0,10}|[\\x00-\\x1f]"),
        role in proptest::option::of("admin|member|\\PC{0,8}"),
    ) {
        let req = CreateUserRequest { email: email.clone(), name: name.clone(), role: role.clone() };
        let bad = |v: &Option<String>, ok: fn(&str) -> bool| !v.as_deref().is_some_and(ok);
        let expected: Vec<&str> = [
            ("email", bad(&email, |s| Email::parse(s).is_ok())),
            ("name", bad(&name, |s| UserName::parse(s).is_ok())),
            ("role", bad(&role, |s| Role::parse(s).is_ok())),
        ]
        .into_iter()
        .filter(|(_, b)| *b)
        .map(|(f, _)| f)
        .collect();
        match NewUser::parse(&req) {
            Ok(_) => prop_assert!(expected.is_empty()),
            Err(errors) => {
                let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
                prop_assert_eq!(fields, expected);
            }
        }
    }

    /// A patch body: each field absent, `null` or a value; `null` and bad values are
    /// named, an empty patch is refused as a whole.
    #[test]
    fn a_patch_names_its_bad_fields(
        fields in proptest::collection::btree_map(
            "email|name|role",
            prop_oneof![Just(serde_json::Value::Null), "\\PC{0,12}|a@b\\.co|viewer".prop_map(serde_json::Value::from)],
            0..4,
        ),
    ) {
        let body = serde_json::Value::Object(fields.clone().into_iter().collect());
        let req: UpdateUserRequest = serde_json::from_value(body).unwrap();
        match UserPatch::parse(&req) {
            Ok(patch) => {
                prop_assert!(!fields.is_empty());
                prop_assert_eq!(patch.email.is_some(), fields.contains_key("email"));
                prop_assert_eq!(patch.name.is_some(), fields.contains_key("name"));
                prop_assert_eq!(patch.role.is_some(), fields.contains_key("role"));
            }
            Err(errors) if fields.is_empty() => prop_assert_eq!(&errors[0].field, "body"),
            Err(errors) => {
                for e in &errors {
                    prop_assert!(fields.contains_key(&e.field), "{:?}", e);
                }
                for (f, v) in &fields {
                    let ok = match (f.as_str(), v.as_str()) {
                        (_, None) => false,
                        ("email", Some(s)) => Email::parse(s).is_ok(),
                        ("name", Some(s)) => UserName::parse(s).is_ok(),
                        (_, Some(s)) => Role::parse(s).is_ok(),
                    };
                    prop_assert_eq!(errors.iter().any(|e| &e.field == f), !ok);
                }
            }
        }
    }

    /// Any valid name, and any prefix of it, is a valid `name_prefix` that folds to
    /// the prefix of the name's key (so a search by a name finds it). Greek capital
    /// sigma is left out: `str::to_lowercase` folds it by position (`ς` at a word's
    /// end, `σ` inside), so a prefix that cuts a word after `Σ` misses; folding keys
    /// differently would orphan stored keys, so that is a known limit, not tested.
    #[test]
    fn a_names_prefix_finds_the_name(
        s in "[^Σ]{1,200}|[İẞa-z ]{190,200}",
        cut in any::<proptest::sample::Index>(),
    ) {
        let Ok(name) = UserName::parse(&s) else { return Ok(()) };
        let chars: Vec<char> = name.as_str().chars().collect();
        let prefix: String = chars[..=cut.index(chars.len())].iter().collect();
        prop_assume!(!prefix.trim().is_empty());
        let p = SearchParams { name_prefix: Some(prefix.clone()), ..Default::default() };
        match SearchFilter::parse(&p) {
            Ok(SearchFilter { name_prefix: Some(folded), .. }) => {
                prop_assert_eq!(&folded, &prefix.trim().to_lowercase());
                if prefix.trim_start() == prefix {
                    prop_assert!(name.key().starts_with(&folded), "{:?} {:?}", name, folded);
                }
            }
            other => prop_assert!(false, "{:?} -> {:?}", prefix, other),
        }
    }
}
