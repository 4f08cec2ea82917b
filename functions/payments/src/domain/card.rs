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
    }
}
