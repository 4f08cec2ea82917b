//! What a caller asks to pay with, validated, and what a payment keeps of it.

use aloft_shared::email::{Email, MAX_EMAIL_CHARS};
use std::collections::BTreeMap;

use aloft_shared::FieldError;
use aloft_shared::master_key::DerivedKey;
use aloft_shared::strict::{object, some, some_object};
use serde::{Deserialize, Serialize};

use super::card::{Brand, CardNumber, Cvc, Expiry};
use super::money::{Currency, Money};

pub const MAX_DESCRIPTION_CHARS: usize = 1000;
/// User ids are UUIDs; the bound keeps any id sent inside DynamoDB's key limits (it is
/// the users table's key and the `by-user` index's), so a huge one is a 422, not a 500.
pub const MAX_USER_ID_CHARS: usize = 128;
pub const MAX_METADATA_KEYS: usize = 20;
pub const MAX_METADATA_KEY_CHARS: usize = 40;
pub const MAX_METADATA_VALUE_CHARS: usize = 500;

/// `POST /payments` body as sent. `amount` is an integer: a float or a string fails to
/// deserialize and is answered 422 naming `amount`. No field is nullable in the spec: a
/// field sent as `null` is a 422 naming it (not "is required"), and `method` and
/// `metadata` are read only from objects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    #[serde(default, deserialize_with = "some")]
    pub user_id: Option<String>,
    #[serde(default, deserialize_with = "some")]
    pub amount: Option<i64>,
    #[serde(default, deserialize_with = "some")]
    pub currency: Option<String>,
    /// An object: a tagged enum alone would also read `["card", {...}]`.
    #[serde(default, deserialize_with = "some_object")]
    pub method: Option<MethodRequest>,
    #[serde(default, deserialize_with = "some")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "some_object")]
    pub metadata: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum MethodRequest {
    Card {
        /// An object: a struct alone would also read `["4242…", 12, 2030, "123"]`.
        #[serde(deserialize_with = "object")]
        card: CardRequest,
    },
    Paypal {
        payer_email: String,
    },
    PaypalCredit {
        payer_email: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardRequest {
    pub number: String,
    pub exp_month: i64,
    pub exp_year: i64,
    pub cvc: String,
}

impl std::fmt::Debug for CardRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CardRequest(<redacted>)")
    }
}

/// A payment method kind as `GET /payment-methods` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    Visa,
    Mastercard,
    Amex,
    Paypal,
    PaypalCredit,
}

impl MethodKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MethodKind::Visa => "visa",
            MethodKind::Mastercard => "mastercard",
            MethodKind::Amex => "amex",
            MethodKind::Paypal => "paypal",
            MethodKind::PaypalCredit => "paypal_credit",
        }
    }
}

impl From<Brand> for MethodKind {
    fn from(b: Brand) -> Self {
        match b {
            Brand::Visa => MethodKind::Visa,
            Brand::Mastercard => MethodKind::Mastercard,
            Brand::Amex => MethodKind::Amex,
        }
    }
}

/// A validated payment method, with the secrets a processor needs for one call.
#[derive(Debug, Clone)]
pub enum PaymentMethod {
    Card {
        number: CardNumber,
        cvc: Cvc,
        expiry: Expiry,
    },
    Paypal {
        kind: MethodKind,
        payer_email: String,
    },
}

impl PaymentMethod {
    pub fn kind(&self) -> MethodKind {
        match self {
            PaymentMethod::Card { number, .. } => number.brand().into(),
            PaymentMethod::Paypal { kind, .. } => *kind,
        }
    }

    /// What the payment keeps: never the number or CVC.
    pub fn summary(&self, fingerprint_key: &DerivedKey) -> MethodSummary {
        match self {
            PaymentMethod::Card { number, expiry, .. } => MethodSummary::Card {
                brand: number.brand(),
                last4: number.last4().to_owned(),
                exp_month: expiry.month,
                exp_year: expiry.year,
                fingerprint: number.fingerprint(fingerprint_key),
            },
            PaymentMethod::Paypal { kind, payer_email } => MethodSummary::Paypal {
                kind: *kind,
                payer_email: payer_email.clone(),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MethodSummary {
    Card {
        brand: Brand,
        last4: String,
        exp_month: u8,
        exp_year: u16,
        fingerprint: String,
    },
    Paypal {
        kind: MethodKind,
        payer_email: String,
    },
}

/// A validated `POST /payments`.
#[derive(Debug, Clone)]
pub struct NewPayment {
    pub user_id: String,
    pub amount: Money,
    pub method: PaymentMethod,
    pub description: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl NewPayment {
    /// `today` is `(year, month)` for the expiry rule.
    pub fn parse(req: CreatePaymentRequest, today: (i32, u8)) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut fail = |field: &str, message: String| errors.push(FieldError::new(field, message));

        let user_id = match req.user_id.as_deref().map(str::trim) {
            None => {
                fail("user_id", "is required".into());
                None
            }
            Some("") => {
                fail("user_id", "must not be empty".into());
                None
            }
            Some(id) if id.chars().count() > MAX_USER_ID_CHARS => {
                fail(
                    "user_id",
                    format!("must be at most {MAX_USER_ID_CHARS} characters"),
                );
                None
            }
            Some(id) => Some(id.to_owned()),
        };
        let currency = match req.currency.as_deref() {
            None => {
                fail("currency", "is required".into());
                None
            }
            Some(c) => Currency::parse(c)
                .map_err(|e| fail("currency", e.to_string()))
                .ok(),
        };
        let amount = match (req.amount, currency) {
            (None, _) => {
                fail("amount", "is required".into());
                None
            }
            (Some(minor), Some(currency)) => Money::new(minor, currency)
                .map_err(|e| fail("amount", e.to_string()))
                .ok(),
            (Some(minor), None) => {
                // Still check the amount itself so both fields are reported at once.
                if minor <= 0 {
                    fail(
                        "amount",
                        "must be a whole number of minor units greater than 0".into(),
                    );
                }
                None
            }
        };
        let method = match req.method {
            None => {
                fail("method", "is required".into());
                None
            }
            Some(m) => parse_method(m, today, &mut fail),
        };
        if let Some(d) = &req.description
            && d.chars().count() > MAX_DESCRIPTION_CHARS
        {
            fail(
                "description",
                format!("must be at most {MAX_DESCRIPTION_CHARS} characters"),
            );
        }
        let metadata = req.metadata.unwrap_or_default();
        if metadata.len() > MAX_METADATA_KEYS {
            fail(
                "metadata",
                format!("must have at most {MAX_METADATA_KEYS} keys"),
            );
        }
        for (k, v) in &metadata {
            if k.is_empty() || k.chars().count() > MAX_METADATA_KEY_CHARS {
                fail(
                    &format!("metadata.{k}"),
                    format!("keys must be 1 to {MAX_METADATA_KEY_CHARS} characters"),
                );
            }
            if v.chars().count() > MAX_METADATA_VALUE_CHARS {
                fail(
                    &format!("metadata.{k}"),
                    format!("values must be at most {MAX_METADATA_VALUE_CHARS} characters"),
                );
            }
        }
        match (user_id, amount, method) {
            (Some(user_id), Some(amount), Some(method)) if errors.is_empty() => Ok(Self {
                user_id,
                amount,
                method,
                description: req.description,
                metadata,
            }),
            _ => Err(errors),
        }
    }
}

fn parse_method(
    m: MethodRequest,
    today: (i32, u8),
    fail: &mut impl FnMut(&str, String),
) -> Option<PaymentMethod> {
    match m {
        MethodRequest::Card { card } => {
            let number = CardNumber::parse(&card.number)
                .map_err(|e| fail("method.card.number", e.to_string()))
                .ok();
            let expiry = Expiry::parse(card.exp_month, card.exp_year, today)
                .map_err(|errs| {
                    for (field, e) in errs {
                        fail(&format!("method.card.{field}"), e.to_string());
                    }
                })
                .ok();
            // The CVC's length depends on the brand; without a brand, only digits are checked.
            let cvc = match &number {
                Some(n) => Cvc::parse(&card.cvc, n.brand())
                    .map_err(|e| fail("method.card.cvc", e.to_string()))
                    .ok(),
                None => None,
            };
            Some(PaymentMethod::Card {
                number: number?,
                cvc: cvc?,
                expiry: expiry?,
            })
        }
        MethodRequest::Paypal { payer_email } => paypal(MethodKind::Paypal, payer_email, fail),
        MethodRequest::PaypalCredit { payer_email } => {
            paypal(MethodKind::PaypalCredit, payer_email, fail)
        }
    }
}

fn paypal(
    kind: MethodKind,
    payer_email: String,
    fail: &mut impl FnMut(&str, String),
) -> Option<PaymentMethod> {
    // A user's email rules (shared), held by the form stored too: lower-casing can
    // lengthen it (`İ` is two characters lower-cased), and a stored address must always
    // be accepted again.
    let email = match Email::parse(&payer_email) {
        Ok(e) if e.key().chars().count() > MAX_EMAIL_CHARS => {
            fail(
                "method.payer_email",
                format!("must be at most {MAX_EMAIL_CHARS} characters, also lower-cased"),
            );
            return None;
        }
        Ok(e) => e.key(),
        Err(message) => {
            fail("method.payer_email", message);
            return None;
        }
    };
    Some(PaymentMethod::Paypal {
        kind,
        payer_email: email,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_shared::extract::parse_json;

    const TODAY: (i32, u8) = (2026, 11);

    fn parse(json: &str) -> Result<NewPayment, Vec<FieldError>> {
        NewPayment::parse(
            parse_json(json.as_bytes()).expect("body deserializes"),
            TODAY,
        )
    }

    fn fields(json: &str) -> Vec<String> {
        parse(json)
            .unwrap_err()
            .into_iter()
            .map(|e| e.field)
            .collect()
    }

    const CARD: &str = r#"{"type":"card","card":{"number":"4242 4242 4242 4242","exp_month":12,"exp_year":2030,"cvc":"123"}}"#;

    #[test]
    fn a_valid_card_payment() {
        let p = parse(&format!(
            r#"{{"user_id":"u1","amount":1000,"currency":"USD","method":{CARD}}}"#
        ))
        .unwrap();
        assert_eq!(p.amount.minor, 1000);
        assert_eq!(p.method.kind(), MethodKind::Visa);
        let key = aloft_shared::master_key::MasterKey::from_bytes(
            b"key material for tests, 32+ bytes".to_vec(),
        );
        let summary =
            serde_json::to_string(&p.method.summary(&key.derive("card-fingerprint"))).unwrap();
        assert!(
            summary.contains(r#""last4":"4242""#) && !summary.contains("4242424242424242"),
            "{summary}"
        );
        assert!(!format!("{p:?}").contains("4242424242424242"));
    }

    #[test]
    fn every_bad_field_is_named() {
        assert_eq!(fields("{}"), ["user_id", "currency", "amount", "method"]);
        assert_eq!(
            fields(
                r#"{"user_id":"u","amount":-5,"currency":"usd","method":{"type":"paypal","payer_email":"x"}}"#
            ),
            ["currency", "amount", "method.payer_email"]
        );
        let bad_card = r#"{"type":"card","card":{"number":"4242424242424241","exp_month":13,"exp_year":2020,"cvc":"1"}}"#;
        assert_eq!(
            fields(&format!(
                r#"{{"user_id":"u","amount":5,"currency":"USD","method":{bad_card}}}"#
            )),
            ["method.card.number", "method.card.exp_month"]
        );
        let amex_short_cvc = r#"{"type":"card","card":{"number":"378282246310005","exp_month":1,"exp_year":2027,"cvc":"123"}}"#;
        assert_eq!(
            fields(&format!(
                r#"{{"user_id":"u","amount":5,"currency":"USD","method":{amex_short_cvc}}}"#
            )),
            ["method.card.cvc"]
        );
        let expired = r#"{"type":"card","card":{"number":"4242424242424242","exp_month":10,"exp_year":2026,"cvc":"123"}}"#;
        assert_eq!(
            fields(&format!(
                r#"{{"user_id":"u","amount":5,"currency":"USD","method":{expired}}}"#
            )),
            ["method.card.exp_year"]
        );
        assert_eq!(
            fields(&format!(
                r#"{{"user_id":"u","amount":100000000,"currency":"JPY","method":{CARD}}}"#
            )),
            ["amount"]
        );
    }

    #[test]
    fn floats_strings_and_unknown_method_types_are_refused_by_shape() {
        for (body, field) in [
            (r#"{"amount": 10.5}"#, "amount"),
            (r#"{"amount": "10"}"#, "amount"),
            (r#"{"method": {"type": "bitcoin"}}"#, "method.type"),
        ] {
            let p = parse_json::<CreatePaymentRequest>(body.as_bytes()).unwrap_err();
            assert_eq!(
                (p.status, p.errors[0].field.as_str()),
                (422, field),
                "{body}"
            );
        }
        let p = parse_json::<CreatePaymentRequest>(
            br#"{"method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 1, "exp_year": 2030, "cvc": "123", "pin": "1"}}}"#,
        )
        .unwrap_err();
        assert_eq!(p.slug(), "unknown-field");
    }

    #[test]
    fn metadata_and_description_are_bounded() {
        let long = "x".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert_eq!(
            fields(&format!(
                r#"{{"user_id":"u","amount":5,"currency":"USD","method":{CARD},"description":"{long}"}}"#
            )),
            ["description"]
        );
        let many: Vec<String> = (0..=MAX_METADATA_KEYS)
            .map(|i| format!(r#""k{i}":"v""#))
            .collect();
        assert_eq!(
            fields(&format!(
                r#"{{"user_id":"u","amount":5,"currency":"USD","method":{CARD},"metadata":{{{}}}}}"#,
                many.join(",")
            )),
            ["metadata"]
        );
    }

    mod properties {
        use super::super::*;
        use super::TODAY;
        use proptest::prelude::*;

        /// Every field a payment request can be refused for.
        fn is_known_field(f: &str) -> bool {
            [
                "user_id",
                "amount",
                "currency",
                "method",
                "method.payer_email",
                "method.card.number",
                "method.card.exp_month",
                "method.card.exp_year",
                "method.card.cvc",
                "description",
                "metadata",
            ]
            .contains(&f)
                || f.starts_with("metadata.")
        }

        fn method() -> impl Strategy<Value = MethodRequest> {
            let email = "[A-Za-z0-9.]{1,10}@[a-z]{1,8}\\.[a-z]{2,4}|\\PC{0,20}|[ ]?[a-zİ]{1,3}@[a-zİ]{1,120}\\.[a-z]{2}[ ]?";
            prop_oneof![
                email.prop_map(|payer_email| MethodRequest::Paypal { payer_email }),
                email.prop_map(|payer_email| MethodRequest::PaypalCredit { payer_email }),
                (
                    "4242 4242 4242 4242|378282246310005|4242424242424241|[0-9]{0,20}",
                    prop_oneof![1i64..=12, any::<i64>()],
                    prop_oneof![2026i64..2035, any::<i64>()],
                    "[0-9]{3,4}|\\PC{0,4}",
                )
                    .prop_map(|(number, exp_month, exp_year, cvc)| {
                        MethodRequest::Card {
                            card: CardRequest {
                                number,
                                exp_month,
                                exp_year,
                                cvc,
                            },
                        }
                    }),
            ]
        }

        fn request() -> impl Strategy<Value = CreatePaymentRequest> {
            (
                proptest::option::of(
                    "[0-9a-f-]{36}|\\PC{0,12}|[ ]{0,2}|[a-z]{120,135}|[a-zé]{2000,2100}",
                ),
                proptest::option::of(prop_oneof![1i64..=MAX_AMOUNT, any::<i64>()]),
                proptest::option::of("USD|JPY|KWD|usd|XXX|\\PC{0,4}"),
                proptest::option::of(method()),
                proptest::option::of("\\PC{0,20}|[a-z]{995,1005}"),
                proptest::option::of(proptest::collection::btree_map(
                    "\\PC{0,3}|[a-z]{38,42}",
                    "\\PC{0,5}|[a-z]{498,502}",
                    0..23,
                )),
            )
                .prop_map(
                    |(user_id, amount, currency, method, description, metadata)| {
                        CreatePaymentRequest {
                            user_id,
                            amount,
                            currency,
                            method,
                            description,
                            metadata,
                        }
                    },
                )
        }

        const MAX_AMOUNT: i64 = super::super::super::money::MAX_AMOUNT_MINOR;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(128))]

            /// Any request: a payment that keeps every rule (and fits DynamoDB's keys), or
            /// a list of the fields that broke one.
            #[test]
            fn any_request_is_a_payment_or_names_its_fields(req in request()) {
                match NewPayment::parse(req, TODAY) {
                    Ok(p) => {
                        let id = p.user_id.as_str();
                        prop_assert!(!id.is_empty() && id == id.trim());
                        prop_assert!(id.chars().count() <= MAX_USER_ID_CHARS);
                        // The users table's key and the `by-user-status` index's.
                        prop_assert!(aloft_shared::keys::user_pk(id).len() <= 2048);
                        let user_status = format!("{id}#partially_refunded");
                        prop_assert!(user_status.len() <= 2048);
                        prop_assert!((1..=MAX_AMOUNT).contains(&p.amount.minor));
                        prop_assert!(p.description.as_ref().is_none_or(|d| d.chars().count() <= MAX_DESCRIPTION_CHARS));
                        prop_assert!(p.metadata.len() <= MAX_METADATA_KEYS);
                        for (k, v) in &p.metadata {
                            prop_assert!((1..=MAX_METADATA_KEY_CHARS).contains(&k.chars().count()));
                            prop_assert!(v.chars().count() <= MAX_METADATA_VALUE_CHARS);
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

            /// A payer email is stored trimmed and lower-cased, and what is stored would be
            /// accepted again as itself.
            #[test]
            fn payer_emails_normalise_once(
                email in "[ ]?[A-Za-z0-9.İẞ]{1,20}@[A-Za-zİ]{1,240}\\.[a-z]{2,4}[ ]?|\\PC{0,30}",
            ) {
                let mut errors = Vec::new();
                let mut fail = |f: &str, m: String| errors.push(FieldError::new(f, m));
                if let Some(PaymentMethod::Paypal { payer_email, .. }) = paypal(MethodKind::Paypal, email, &mut fail) {
                    prop_assert_eq!(payer_email.to_lowercase(), payer_email.clone());
                    prop_assert_eq!(payer_email.trim(), payer_email.as_str());
                    prop_assert!(payer_email.chars().count() <= 254);
                    let again = paypal(MethodKind::Paypal, payer_email.clone(), &mut fail);
                    prop_assert!(
                        matches!(&again, Some(PaymentMethod::Paypal { payer_email: e, .. }) if *e == payer_email),
                        "{:?} -> {:?}", payer_email, again
                    );
                }
            }
        }
    }
}

/// Bodies as `ApiJson` reads them (an object, each field of its documented type) and then
/// as [`NewPayment::parse`] validates them: (body, status, first field named).
#[cfg(test)]
mod strict_bodies {
    use super::*;
    use aloft_shared::extract::parse_json;
    use aloft_shared::strict::Object;

    fn answer(body: &str) -> (u16, Option<String>) {
        match parse_json::<Object<CreatePaymentRequest>>(body.as_bytes()) {
            Err(p) => (p.status, p.errors.first().map(|e| e.field.clone())),
            Ok(Object(req)) => match NewPayment::parse(req, (2026, 11)) {
                Ok(_) => (200, None),
                Err(errors) => (422, errors.first().map(|e| e.field.clone())),
            },
        }
    }

    #[test]
    fn create_bodies_are_the_documented_shape() {
        let pay = |rest: &str| format!(r#"{{"user_id": "u1", "currency": "USD", {rest}}}"#);
        let card =
            r#"{"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}"#;
        let cases: &[(String, u16, Option<&str>)] = &[
            (
                pay(&format!(
                    r#""amount": 1000, "method": {{"type": "card", "card": {card}}}"#
                )),
                200,
                None,
            ),
            (
                pay(
                    r#""amount": 1000, "method": {"type": "paypal", "payer_email": "a@b.co"}, "metadata": {"k": "v"}"#,
                ),
                200,
                None,
            ),
            // A whole number written as a float is that integer.
            (
                pay(
                    r#""amount": 1000.0, "method": {"type": "card", "card": {"number": "4242424242424242", "exp_month": 12.0, "exp_year": 2030.0, "cvc": "123"}}"#,
                ),
                200,
                None,
            ),
            (r#"["u1", 1000, "USD", null]"#.into(), 422, Some("body")),
            (pay(r#""amount": null"#), 422, Some("amount")),
            (pay(r#""amount": 10.5"#), 422, Some("amount")),
            (r#"{"user_id": null}"#.into(), 422, Some("user_id")),
            (r#"{"currency": null}"#.into(), 422, Some("currency")),
            (
                pay(r#""amount": 1000, "description": null"#),
                422,
                Some("description"),
            ),
            (
                pay(r#""amount": 1000, "metadata": null"#),
                422,
                Some("metadata"),
            ),
            (
                pay(r#""amount": 1000, "metadata": [["k", "v"]]"#),
                422,
                Some("metadata"),
            ),
            (
                pay(r#""amount": 1000, "metadata": {"k": null}"#),
                422,
                Some("metadata.k"),
            ),
            (
                pay(r#""amount": 1000, "method": null"#),
                422,
                Some("method"),
            ),
            (
                pay(&format!(r#""amount": 1000, "method": ["card", {card}]"#)),
                422,
                Some("method"),
            ),
            (
                pay(r#""amount": 1000, "method": ["card", ["4242424242424242", 12, 2030, "123"]]"#),
                422,
                Some("method"),
            ),
            (
                pay(
                    r#""amount": 1000, "method": {"type": "card", "card": ["4242424242424242", 12, 2030, "123"]}"#,
                ),
                422,
                Some("method"),
            ),
            (
                pay(r#""amount": 1000, "method": {"type": "card", "card": null}"#),
                422,
                Some("method"),
            ),
            (
                pay(r#""amount": 1000, "method": {"type": "paypal", "payer_email": null}"#),
                422,
                Some("method"),
            ),
            (
                pay(r#""amount": 1000, "method": {"type": null}"#),
                422,
                Some("method.type"),
            ),
            (pay(r#""amount": 1000, "tip": 5"#), 400, Some("tip")),
        ];
        for (body, status, field) in cases {
            assert_eq!(answer(body), (*status, field.map(str::to_owned)), "{body}");
        }
    }
}
