//! Money: an integer number of minor units and an ISO 4217 currency. Never a float.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The largest amount aloft accepts, in minor units of any currency (the common gateway
/// limit: 999,999.99 USD).
pub const MAX_AMOUNT_MINOR: i64 = 99_999_999;

/// ISO 4217 currencies aloft knows, with their minor-unit exponent. The exponent matters
/// to people reading amounts (JPY 500 is ¥500; USD 500 is $5.00) and to gateways.
const CURRENCIES: &[(&str, u8)] = &[
    ("AUD", 2),
    ("BHD", 3),
    ("BRL", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CNY", 2),
    ("CZK", 2),
    ("DKK", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("ILS", 2),
    ("INR", 2),
    ("ISK", 0),
    ("JOD", 3),
    ("JPY", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("MXN", 2),
    ("MYR", 2),
    ("NOK", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PHP", 2),
    ("PLN", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TWD", 2),
    ("USD", 2),
    ("VND", 0),
    ("ZAR", 2),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(into = "String")]
pub struct Currency(&'static str);

// By hand: a derived `try_from` would tie the input's lifetime to the `'static` code.
impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Self::parse(&code).map_err(serde::de::Error::custom)
    }
}

impl Currency {
    pub fn parse(code: &str) -> Result<Self, MoneyError> {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == code)
            .map(|(c, _)| Currency(c))
            .ok_or_else(|| MoneyError::UnknownCurrency(code.to_owned()))
    }

    pub fn code(self) -> &'static str {
        self.0
    }

    /// Digits after the decimal point in this currency (JPY 0, USD 2, KWD 3).
    pub fn exponent(self) -> u8 {
        CURRENCIES
            .iter()
            .find(|(c, _)| *c == self.0)
            .map(|(_, e)| *e)
            .unwrap_or(2)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

impl From<Currency> for String {
    fn from(c: Currency) -> Self {
        c.0.to_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a supported ISO 4217 currency code (upper case, e.g. USD)")]
    UnknownCurrency(String),
    #[error("must be a whole number of minor units greater than 0")]
    NotPositive,
    #[error("must be at most {MAX_AMOUNT_MINOR} minor units")]
    TooLarge,
}

/// A positive amount in minor units of a currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Result<Self, MoneyError> {
        if minor <= 0 {
            return Err(MoneyError::NotPositive);
        }
        if minor > MAX_AMOUNT_MINOR {
            return Err(MoneyError::TooLarge);
        }
        Ok(Self { minor, currency })
    }
}

impl fmt::Display for Money {
    /// `12.34 USD`, `500 JPY`, `1.234 KWD`: exact, from integers only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = u32::from(self.currency.exponent());
        if exp == 0 {
            return write!(f, "{} {}", self.minor, self.currency);
        }
        let unit = 10i64.pow(exp);
        write!(
            f,
            "{}.{:0width$} {}",
            self.minor / unit,
            self.minor % unit,
            self.currency,
            width = exp as usize
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn currencies_know_their_exponent() {
        assert_eq!(Currency::parse("JPY").unwrap().exponent(), 0);
        assert_eq!(Currency::parse("USD").unwrap().exponent(), 2);
        assert_eq!(Currency::parse("KWD").unwrap().exponent(), 3);
        assert!(Currency::parse("usd").is_err(), "codes are upper case");
        assert!(Currency::parse("XXX").is_err());
        assert!(Currency::parse("").is_err());
    }

    #[test]
    fn amounts_are_positive_and_bounded() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(Money::new(0, usd), Err(MoneyError::NotPositive));
        assert_eq!(Money::new(-5, usd), Err(MoneyError::NotPositive));
        assert_eq!(
            Money::new(MAX_AMOUNT_MINOR + 1, usd),
            Err(MoneyError::TooLarge)
        );
        assert!(Money::new(MAX_AMOUNT_MINOR, usd).is_ok());
    }

    #[test]
    fn display_respects_the_exponent() {
        let m = |minor, c| {
            Money::new(minor, Currency::parse(c).unwrap())
                .unwrap()
                .to_string()
        };
        assert_eq!(m(1234, "USD"), "12.34 USD");
        assert_eq!(m(5, "EUR"), "0.05 EUR");
        assert_eq!(m(500, "JPY"), "500 JPY");
        assert_eq!(m(1234, "KWD"), "1.234 KWD");
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn currency() -> impl Strategy<Value = Currency> {
            proptest::sample::select(CURRENCIES.iter().map(|(c, _)| *c).collect::<Vec<_>>())
                .prop_map(|c| Currency::parse(c).unwrap())
        }

        proptest! {
            /// Only the listed codes, exactly as written (upper case, no padding), parse.
            #[test]
            fn only_listed_codes_are_currencies(s in "[A-Za-z]{2,4}|[A-Z]{3}[ \\n]?|\\PC{0,6}") {
                match Currency::parse(&s) {
                    Ok(c) => {
                        prop_assert_eq!(c.code(), s.as_str());
                        prop_assert!(CURRENCIES.iter().any(|(code, _)| *code == s));
                    }
                    Err(e) => prop_assert_eq!(e, MoneyError::UnknownCurrency(s.clone())),
                }
            }

            #[test]
            fn currencies_round_trip_through_json(c in currency()) {
                let json = serde_json::to_string(&c).unwrap();
                prop_assert_eq!(serde_json::from_str::<Currency>(&json).unwrap(), c);
                prop_assert_eq!(Currency::parse(&c.to_string()), Ok(c));
            }

            #[test]
            fn amounts_are_accepted_exactly_from_1_to_the_maximum(minor in any::<i64>(), c in currency()) {
                match Money::new(minor, c) {
                    Ok(m) => {
                        prop_assert!((1..=MAX_AMOUNT_MINOR).contains(&minor));
                        prop_assert_eq!(m.minor, minor);
                    }
                    Err(MoneyError::NotPositive) => prop_assert!(minor <= 0),
                    Err(MoneyError::TooLarge) => prop_assert!(minor > MAX_AMOUNT_MINOR),
                    Err(e) => prop_assert!(false, "{}", e),
                }
            }

            /// The shown amount is the integer with the decimal point moved by the
            /// exponent: dropping the point gives the minor units back.
            #[test]
            fn shown_amounts_read_back_as_their_minor_units(minor in 1..=MAX_AMOUNT_MINOR, c in currency()) {
                let shown = Money::new(minor, c).unwrap().to_string();
                let (number, code) = shown.split_once(' ').unwrap();
                prop_assert_eq!(code, c.code());
                let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
                prop_assert_eq!(decimals, usize::from(c.exponent()));
                prop_assert_eq!(number.replace('.', "").parse::<i64>().unwrap(), minor);
            }
        }
    }
}
