//! Which processors run and which one a payment goes to: configuration
//! (`PAYMENT_PROCESSORS`), selection by method and currency, and the method listing.

use std::sync::Arc;

use aloft_shared::config::{self, ConfigError};
use serde::Serialize;

use super::{DEFAULT_PROCESSORS, Processor, ProcessorContext, ProcessorError, REGISTERED};
use crate::domain::{Currency, MethodKind};

/// One entry of `GET /payment-methods`: a method, the processor that takes it, and the
/// currencies for which that processor is the one chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MethodListing {
    pub method: MethodKind,
    pub processor: String,
    pub currencies: Vec<Currency>,
}

/// The method or currency no registered processor takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotSupported {
    #[error("payment method `{}` is not available", .0.as_str())]
    Method(MethodKind),
    #[error("`{}` payments are not available in {currency}; available: {}", .method.as_str(), list(.available))]
    Currency {
        method: MethodKind,
        currency: Currency,
        available: Vec<Currency>,
    },
}

fn list(currencies: &[Currency]) -> String {
    currencies
        .iter()
        .map(|c| c.code())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Which processors run, in order of preference: for each method and currency the first
/// one that takes it is chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessorsConfig {
    pub enabled: Vec<String>,
}

impl ProcessorsConfig {
    pub const VAR: &str = "PAYMENT_PROCESSORS";

    /// `PAYMENT_PROCESSORS`: comma-separated names (default `sandbox_card,sandbox_paypal`),
    /// e.g. `stripe,sandbox_paypal` sends cards to Stripe and PayPal to the sandbox.
    pub fn from_env() -> Result<Self, ConfigError> {
        let raw = config::parsed_or(Self::VAR, DEFAULT_PROCESSORS.to_owned())?;
        Self::parse(&raw)
    }

    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let enabled: Vec<String> = raw
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        let invalid = |reason: String| ConfigError::Invalid {
            name: Self::VAR.to_owned(),
            reason,
        };
        if enabled.is_empty() {
            return Err(invalid("names no processor".into()));
        }
        if let Some(unknown) = enabled
            .iter()
            .find(|n| !REGISTERED.iter().any(|(name, _)| name == n))
        {
            return Err(invalid(format!(
                "unknown processor `{unknown}` (known: {})",
                registered_names()
            )));
        }
        Ok(Self { enabled })
    }
}

fn registered_names() -> String {
    REGISTERED
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The processors that run, in order of preference.
#[derive(Clone)]
pub struct ProcessorRegistry {
    processors: Vec<Arc<dyn Processor>>,
}

impl std::fmt::Debug for ProcessorRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.processors.iter().map(|p| p.name()))
            .finish()
    }
}

impl ProcessorRegistry {
    /// A registry of already-built processors (tests, or a caller wiring its own).
    pub fn new(processors: Vec<Arc<dyn Processor>>) -> Self {
        Self { processors }
    }

    /// Builds every enabled processor from [`REGISTERED`], once per cold start.
    pub async fn from_config(
        config: &ProcessorsConfig,
        context: &ProcessorContext,
    ) -> Result<Self, ProcessorError> {
        let mut processors = Vec::with_capacity(config.enabled.len());
        for name in &config.enabled {
            let (_, build) = REGISTERED.iter().find(|(n, _)| n == name).ok_or_else(|| {
                ProcessorError::UnknownProcessor(name.clone(), registered_names())
            })?;
            processors.push(build(context).await?);
        }
        Ok(Self::new(processors))
    }

    /// The processor a new payment with this method and currency goes to.
    pub fn select(
        &self,
        method: MethodKind,
        currency: Currency,
    ) -> Result<Arc<dyn Processor>, NotSupported> {
        let mut available = Vec::new();
        for processor in &self.processors {
            for supported in processor.supported_methods() {
                if supported.method != method {
                    continue;
                }
                if supported.currencies.contains(&currency) {
                    return Ok(Arc::clone(processor));
                }
                available.extend(supported.currencies);
            }
        }
        if available.is_empty() {
            return Err(NotSupported::Method(method));
        }
        available.sort();
        available.dedup();
        Err(NotSupported::Currency {
            method,
            currency,
            available,
        })
    }

    /// The processor a stored payment names, for confirm, cancel and refund.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Processor>> {
        self.processors.iter().find(|p| p.name() == name).cloned()
    }

    /// `GET /payment-methods`: each method with the processor chosen for it and the
    /// currencies it is chosen for (a currency an earlier processor already takes is not
    /// listed again under a later one).
    pub fn methods(&self) -> Vec<MethodListing> {
        let mut taken: Vec<(MethodKind, Currency)> = Vec::new();
        let mut listings = Vec::new();
        for processor in &self.processors {
            for supported in processor.supported_methods() {
                let currencies: Vec<Currency> = supported
                    .currencies
                    .into_iter()
                    .filter(|c| !taken.contains(&(supported.method, *c)))
                    .collect();
                if currencies.is_empty() {
                    continue;
                }
                taken.extend(currencies.iter().map(|c| (supported.method, *c)));
                listings.push(MethodListing {
                    method: supported.method,
                    processor: processor.name().to_owned(),
                    currencies,
                });
            }
        }
        listings.sort_by_key(|l| l.method);
        listings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processor::sandbox::Sandbox;

    fn c(code: &str) -> Currency {
        Currency::parse(code).unwrap()
    }

    fn sandbox() -> ProcessorRegistry {
        ProcessorRegistry::new(vec![
            Arc::new(Sandbox::card(None)),
            Arc::new(Sandbox::paypal(None)),
        ])
    }

    #[test]
    fn selects_by_method_and_currency() {
        let r = sandbox();
        assert_eq!(
            r.select(MethodKind::Visa, c("JPY")).unwrap().name(),
            "sandbox_card"
        );
        assert_eq!(
            r.select(MethodKind::PaypalCredit, c("EUR")).unwrap().name(),
            "sandbox_paypal"
        );
        let err = r.select(MethodKind::Paypal, c("JPY")).err().unwrap();
        assert_eq!(
            err.to_string(),
            "`paypal` payments are not available in JPY; available: EUR, GBP, USD"
        );
        let only_cards = ProcessorRegistry::new(vec![Arc::new(Sandbox::card(None))]);
        assert_eq!(
            only_cards.select(MethodKind::Paypal, c("USD")).err(),
            Some(NotSupported::Method(MethodKind::Paypal))
        );
    }

    #[test]
    fn lists_every_method_once_per_chosen_processor() {
        let listed = sandbox().methods();
        let kinds: Vec<_> = listed.iter().map(|l| l.method.as_str()).collect();
        assert_eq!(
            kinds,
            ["visa", "mastercard", "amex", "paypal", "paypal_credit"]
        );
        let json = serde_json::to_value(&listed[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"method": "visa", "processor": "sandbox_card",
                "currencies": ["USD", "EUR", "GBP", "JPY"]})
        );
        // A second card processor behind the first only lists what the first does not take.
        let doubled = ProcessorRegistry::new(vec![
            Arc::new(Sandbox::card(None)),
            Arc::new(Sandbox::card(None)),
        ]);
        assert_eq!(doubled.methods().len(), 3);
    }

    #[test]
    fn configuration_names_only_registered_processors() {
        assert_eq!(
            ProcessorsConfig::parse(" stripe , sandbox_paypal")
                .unwrap()
                .enabled,
            ["stripe", "sandbox_paypal"]
        );
        let err = ProcessorsConfig::parse("sandbox_card,adyen").unwrap_err();
        assert!(
            err.to_string().contains("PAYMENT_PROCESSORS") && err.to_string().contains("adyen"),
            "{err}"
        );
        assert!(ProcessorsConfig::parse(" , ").is_err());
    }
}
