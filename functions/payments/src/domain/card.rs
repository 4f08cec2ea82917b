//! Cards: the number, CVC and expiry a caller sends, and the rules they must meet.
//!
//! [`CardNumber`] and [`Cvc`] never show themselves: their `Debug` prints only what a
//! receipt may show (brand and last four), and they are not `Serialize`, so they cannot
//! reach a table, a queue or a log by accident. A payment keeps brand, last four, expiry
//! and a keyed fingerprint.

use std::fmt;

use aloft_shared::master_key::DerivedKey;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Brand {
    Visa,
    Mastercard,
    Amex,
}

impl Brand {
    pub fn as_str(self) -> &'static str {
        match self {
            Brand::Visa => "visa",
            Brand::Mastercard => "mastercard",
            Brand::Amex => "amex",
        }
    }

    /// The brand a number's prefix (IIN range) and length belong to.
    fn detect(digits: &str) -> Option<Brand> {
        let prefix = |n: usize| digits.get(..n).and_then(|p| p.parse::<u32>().ok());
        let len = digits.len();
        if digits.starts_with('4') && matches!(len, 13 | 16 | 19) {
            return Some(Brand::Visa);
        }
        if matches!(prefix(2), Some(34 | 37)) && len == 15 {
            return Some(Brand::Amex);
        }
        let mastercard =
            matches!(prefix(2), Some(51..=55)) || matches!(prefix(4), Some(2221..=2720));
        (mastercard && len == 16).then_some(Brand::Mastercard)
    }

    fn cvc_len(self) -> usize {
        if self == Brand::Amex { 4 } else { 3 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CardError {
    #[error("must be 12 to 19 digits (spaces and dashes allowed)")]
    NotDigits,
    #[error("is not a valid card number (checksum)")]
    Checksum,
    #[error("is not a visa, mastercard or amex number")]
    UnknownBrand,
    #[error("must be {0} digits for this card")]
    CvcLength(usize),
    #[error("must be from 1 to 12")]
    Month,
    #[error("must be a four-digit year")]
    Year,
    #[error("the card has expired")]
    Expired,
}

/// A card number that passed Luhn and has a known brand.
#[derive(Clone, PartialEq, Eq)]
pub struct CardNumber {
    digits: String,
    brand: Brand,
}

impl CardNumber {
    pub fn parse(raw: &str) -> Result<Self, CardError> {
        let digits: String = raw.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if !(12..=19).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::NotDigits);
        }
        if !luhn(&digits) {
            return Err(CardError::Checksum);
        }
        let brand = Brand::detect(&digits).ok_or(CardError::UnknownBrand)?;
        Ok(Self { digits, brand })
    }

    pub fn brand(&self) -> Brand {
        self.brand
    }

    pub fn last4(&self) -> &str {
        &self.digits[self.digits.len() - 4..]
    }

    /// Recognises the same card across payments without storing it: a keyed HMAC, so the
    /// fingerprint cannot be reversed by hashing every possible number.
    pub fn fingerprint(&self, key: &DerivedKey) -> String {
        URL_SAFE_NO_PAD.encode(key.sign(self.digits.as_bytes()))
    }

    /// The full number, for handing to a processor and nothing else.
    pub fn expose_digits(&self) -> &str {
        &self.digits
    }
}

impl fmt::Debug for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ****{}", self.brand.as_str(), self.last4())
    }
}

impl fmt::Display for CardNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// The Luhn (mod 10) checksum every card number carries.
pub fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let dd = d * 2;
                if dd > 9 { dd - 9 } else { dd }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// A card verification code; never stored, never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Cvc(String);

impl Cvc {
    pub fn parse(raw: &str, brand: Brand) -> Result<Self, CardError> {
        let want = brand.cvc_len();
        if raw.len() != want || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(CardError::CvcLength(want));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Cvc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Cvc(<redacted>)")
    }
}

/// A card's expiry month; valid through the last day of that month.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expiry {
    pub month: u8,
    pub year: u16,
}

impl Expiry {
    /// `today` is `(year, month)`; passed in so the rule stays pure.
    pub fn parse(
        month: i64,
        year: i64,
        today: (i32, u8),
    ) -> Result<Self, Vec<(&'static str, CardError)>> {
        let mut errors = Vec::new();
        if !(1..=12).contains(&month) {
            errors.push(("exp_month", CardError::Month));
        }
        if !(1000..=9999).contains(&year) {
            errors.push(("exp_year", CardError::Year));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let expiry = Self {
            month: month as u8,
            year: year as u16,
        };
        if (i32::from(expiry.year), expiry.month) < today {
            return Err(vec![("exp_year", CardError::Expired)]);
        }
        Ok(expiry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aloft_shared::master_key::MasterKey;

    #[test]
    fn brands_by_prefix_and_length() {
        let cases = [
            ("4242 4242 4242 4242", Some(Brand::Visa)),
            ("4000-0000-0000-0002", Some(Brand::Visa)),
            ("5555555555554444", Some(Brand::Mastercard)),
            ("2223003122003222", Some(Brand::Mastercard)),
            ("2720990000000007", Some(Brand::Mastercard)),
            ("378282246310005", Some(Brand::Amex)),
            ("371449635398431", Some(Brand::Amex)),
        ];
        for (number, brand) in cases {
            assert_eq!(
                CardNumber::parse(number).ok().map(|c| c.brand()),
                brand,
                "{number}"
            );
        }
    }

    #[test]
    fn bad_numbers_say_why() {
        assert_eq!(
            CardNumber::parse("4242 4242 4242 4241"),
            Err(CardError::Checksum)
        );
        assert_eq!(
            CardNumber::parse("4242abcd42424242"),
            Err(CardError::NotDigits)
        );
        assert_eq!(CardNumber::parse("42"), Err(CardError::NotDigits));
        // Discover: valid Luhn, unsupported brand.
        assert_eq!(
            CardNumber::parse("6011111111111117"),
            Err(CardError::UnknownBrand)
        );
        // 2721 is just outside mastercard's 2-series.
        assert_eq!(
            CardNumber::parse("2721000000000004").map(|c| c.brand()),
            Err(CardError::UnknownBrand)
        );
    }

    #[test]
    fn the_number_never_shows_itself() {
        let c = CardNumber::parse("4242424242424242").unwrap();
        assert_eq!(format!("{c:?}"), "visa ****4242");
        assert_eq!(c.to_string(), "visa ****4242");
        assert_eq!(c.last4(), "4242");
        let cvc = Cvc::parse("123", Brand::Visa).unwrap();
        assert_eq!(format!("{cvc:?}"), "Cvc(<redacted>)");
    }

    #[test]
    fn fingerprints_are_stable_keyed_and_opaque() {
        let key = MasterKey::from_bytes(b"a master key long enough for tests".to_vec())
            .derive("card-fingerprint");
        let other = MasterKey::from_bytes(b"another master key, long enough too".to_vec())
            .derive("card-fingerprint");
        let a = CardNumber::parse("4242 4242 4242 4242").unwrap();
        let b = CardNumber::parse("4242424242424242").unwrap();
        assert_eq!(a.fingerprint(&key), b.fingerprint(&key));
        assert_ne!(a.fingerprint(&key), a.fingerprint(&other));
        assert!(!a.fingerprint(&key).contains("4242"));
    }

    #[test]
    fn cvc_length_follows_the_brand() {
        assert!(Cvc::parse("123", Brand::Visa).is_ok());
        assert_eq!(
            Cvc::parse("1234", Brand::Visa),
            Err(CardError::CvcLength(3))
        );
        assert!(Cvc::parse("1234", Brand::Amex).is_ok());
        assert_eq!(Cvc::parse("123", Brand::Amex), Err(CardError::CvcLength(4)));
        assert_eq!(
            Cvc::parse("12a", Brand::Mastercard),
            Err(CardError::CvcLength(3))
        );
    }

    #[test]
    fn expiry_is_valid_through_its_month() {
        let today = (2026, 11);
        assert!(Expiry::parse(11, 2026, today).is_ok());
        assert!(Expiry::parse(1, 2027, today).is_ok());
        assert_eq!(
            Expiry::parse(10, 2026, today).unwrap_err()[0].1,
            CardError::Expired
        );
        assert_eq!(
            Expiry::parse(13, 2030, today).unwrap_err()[0].0,
            "exp_month"
        );
        assert_eq!(Expiry::parse(0, 30, today).unwrap_err().len(), 2);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(s in "\\PC{0,40}") {
                let _ = CardNumber::parse(&s);
            }

            #[test]
            fn one_changed_digit_breaks_the_checksum(pos in 0usize..16, delta in 1u8..10) {
                let mut digits: Vec<u8> = b"4242424242424242".to_vec();
                digits[pos] = b'0' + (digits[pos] - b'0' + delta) % 10;
                prop_assert!(!luhn(std::str::from_utf8(&digits).unwrap()));
            }
        }

        /// `body` completed with the Luhn check digit.
        fn with_check_digit(body: &str) -> String {
            (0..10)
                .map(|d| format!("{body}{d}"))
                .find(|n| luhn(n))
                .unwrap()
        }

        /// A valid number of each brand: its prefix, its length, its check digit.
        fn card() -> impl Strategy<Value = (String, Brand)> {
            prop_oneof![
                (prop_oneof![Just(13usize), Just(16), Just(19)], "[0-9]{18}")
                    .prop_map(|(len, rest)| (format!("4{}", &rest[..len - 2]), Brand::Visa)),
                ("3[47]", "[0-9]{12}").prop_map(|(p, rest)| (format!("{p}{rest}"), Brand::Amex)),
                ("5[1-5]", "[0-9]{13}")
                    .prop_map(|(p, rest)| (format!("{p}{rest}"), Brand::Mastercard)),
                (2221u32..=2720, "[0-9]{11}")
                    .prop_map(|(p, rest)| (format!("{p}{rest}"), Brand::Mastercard)),
            ]
            .prop_map(|(body, brand)| (with_check_digit(&body), brand))
        }

        /// `digits` with spaces or dashes put in, as people type them.
        fn typed(digits: &str, seps: &[Option<char>]) -> String {
            digits
                .chars()
                .zip(seps.iter().chain(std::iter::repeat(&None)))
                .flat_map(|(d, sep)| std::iter::once(d).chain(*sep))
                .collect()
        }

        fn key() -> DerivedKey {
            aloft_shared::master_key::MasterKey::from_bytes(
                b"a master key long enough for tests".to_vec(),
            )
            .derive("card-fingerprint")
        }

        proptest! {
            #[test]
            fn valid_numbers_parse_to_their_brand_however_typed(
                (digits, brand) in card(),
                seps in proptest::collection::vec(proptest::option::of(prop_oneof![Just(' '), Just('-')]), 0..19),
            ) {
                let plain = CardNumber::parse(&digits).unwrap();
                let typed = CardNumber::parse(&typed(&digits, &seps)).unwrap();
                prop_assert_eq!(plain.brand(), brand);
                prop_assert_eq!(plain.expose_digits(), digits.as_str());
                prop_assert_eq!(plain.last4(), &digits[digits.len() - 4..]);
                prop_assert_eq!(&typed, &plain);
                prop_assert_eq!(typed.fingerprint(&key()), plain.fingerprint(&key()));
                // Parsing what it holds gives the same card back.
                prop_assert_eq!(CardNumber::parse(plain.expose_digits()).unwrap(), plain.clone());
                // Its Debug and Display show brand and last four only.
                let shown = format!("{plain:?} {plain}");
                prop_assert!(!shown.contains(&digits[..digits.len() - 4]));
            }

            #[test]
            fn any_changed_digit_is_a_checksum_error((digits, _) in card(), at in any::<proptest::sample::Index>(), delta in 1u8..10) {
                let mut bytes = digits.into_bytes();
                let i = at.index(bytes.len());
                bytes[i] = b'0' + (bytes[i] - b'0' + delta) % 10;
                let changed = String::from_utf8(bytes).unwrap();
                prop_assert_eq!(CardNumber::parse(&changed), Err(CardError::Checksum));
            }

            /// Near-valid numbers: the right alphabet, any length; what parses keeps every rule.
            #[test]
            fn accepted_numbers_keep_every_rule(s in "[0-9 -]{0,25}|[0-9]{10,21}|[0-9０-９]{12,19}") {
                match CardNumber::parse(&s) {
                    Ok(c) => {
                        let d = c.expose_digits();
                        prop_assert!((12..=19).contains(&d.len()));
                        prop_assert!(d.bytes().all(|b| b.is_ascii_digit()));
                        prop_assert!(luhn(d));
                        prop_assert_eq!(Brand::detect(d), Some(c.brand()));
                    }
                    Err(CardError::NotDigits | CardError::Checksum | CardError::UnknownBrand) => {}
                    Err(e) => prop_assert!(false, "{}", e),
                }
            }

            #[test]
            fn a_cvc_is_exactly_its_brands_length_in_digits(
                s in "[0-9]{0,6}|\\PC{0,5}|[0-9]{2,3}[a ]",
                brand in prop_oneof![Just(Brand::Visa), Just(Brand::Mastercard), Just(Brand::Amex)],
            ) {
                let ok = s.len() == brand.cvc_len() && s.bytes().all(|b| b.is_ascii_digit());
                match Cvc::parse(&s, brand) {
                    Ok(c) => {
                        prop_assert!(ok);
                        prop_assert_eq!(c.expose(), s.as_str());
                        prop_assert_eq!(format!("{c:?}"), "Cvc(<redacted>)");
                    }
                    Err(e) => {
                        prop_assert!(!ok);
                        prop_assert_eq!(e, CardError::CvcLength(brand.cvc_len()));
                    }
                }
            }

            /// Any integers JSON carries: an expiry through its month, or each bad field named.
            #[test]
            fn expiry_is_valid_through_its_month_or_names_its_fields(
                month in prop_oneof![any::<i64>(), -1i64..14],
                year in prop_oneof![any::<i64>(), 990i64..10_010, 2024i64..2030],
                today_year in 2000i32..2100,
                today_month in 1u8..=12,
            ) {
                let today = (today_year, today_month);
                let month_ok = (1..=12).contains(&month);
                let year_ok = (1000..=9999).contains(&year);
                match Expiry::parse(month, year, today) {
                    Ok(e) => {
                        prop_assert!(month_ok && year_ok);
                        prop_assert_eq!((i64::from(e.month), i64::from(e.year)), (month, year));
                        prop_assert!((i32::from(e.year), e.month) >= today);
                    }
                    Err(errors) => {
                        let fields: Vec<&str> = errors.iter().map(|(f, _)| *f).collect();
                        if month_ok && year_ok {
                            prop_assert_eq!(errors, vec![("exp_year", CardError::Expired)]);
                            prop_assert!((year, month) < (i64::from(today_year), i64::from(today_month)));
                        } else {
                            let mut expected = Vec::new();
                            if !month_ok { expected.push("exp_month"); }
                            if !year_ok { expected.push("exp_year"); }
                            prop_assert_eq!(fields, expected);
                        }
                    }
                }
            }
        }
    }
}
