//! Money: integer minor units plus an ISO 4217 currency. Never a float, and
//! never converted between currencies.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{FieldError, FieldReason};

/// ISO 4217 codes this ledger knows, with their minor-unit exponent (digits
/// after the decimal point) as ISO publishes them. A built-in table, rather
/// than "any three letters", so that the exponent used by the earn formula is
/// never a guess: JPY has none, KWD has three.
const CURRENCIES: &[(&str, u8)] = &[
    ("AED", 2),
    ("ALL", 2),
    ("AMD", 2),
    ("ARS", 2),
    ("AUD", 2),
    ("AZN", 2),
    ("BAM", 2),
    ("BDT", 2),
    ("BGN", 2),
    ("BHD", 3),
    ("BIF", 0),
    ("BOB", 2),
    ("BRL", 2),
    ("BWP", 2),
    ("BYN", 2),
    ("CAD", 2),
    ("CHF", 2),
    ("CLF", 4),
    ("CLP", 0),
    ("CNY", 2),
    ("COP", 2),
    ("CRC", 2),
    ("CZK", 2),
    ("DJF", 0),
    ("DKK", 2),
    ("DOP", 2),
    ("EGP", 2),
    ("ETB", 2),
    ("EUR", 2),
    ("GBP", 2),
    ("GEL", 2),
    ("GHS", 2),
    ("GNF", 0),
    ("GTQ", 2),
    ("HKD", 2),
    ("HUF", 2),
    ("IDR", 2),
    ("ILS", 2),
    ("INR", 2),
    ("IQD", 3),
    ("ISK", 0),
    ("JMD", 2),
    ("JOD", 3),
    ("JPY", 0),
    ("KES", 2),
    ("KHR", 2),
    ("KMF", 0),
    ("KRW", 0),
    ("KWD", 3),
    ("KZT", 2),
    ("LAK", 2),
    ("LKR", 2),
    ("LYD", 3),
    ("MAD", 2),
    ("MDL", 2),
    ("MKD", 2),
    ("MMK", 2),
    ("MNT", 2),
    ("MUR", 2),
    ("MXN", 2),
    ("MYR", 2),
    ("NAD", 2),
    ("NGN", 2),
    ("NOK", 2),
    ("NPR", 2),
    ("NZD", 2),
    ("OMR", 3),
    ("PEN", 2),
    ("PHP", 2),
    ("PKR", 2),
    ("PLN", 2),
    ("PYG", 0),
    ("QAR", 2),
    ("RON", 2),
    ("RSD", 2),
    ("RUB", 2),
    ("RWF", 0),
    ("SAR", 2),
    ("SEK", 2),
    ("SGD", 2),
    ("THB", 2),
    ("TND", 3),
    ("TRY", 2),
    ("TTD", 2),
    ("TWD", 2),
    ("TZS", 2),
    ("UAH", 2),
    ("UGX", 0),
    ("USD", 2),
    ("UYU", 2),
    ("UYW", 4),
    ("UZS", 2),
    ("VND", 0),
    ("VUV", 0),
    ("XAF", 0),
    ("XCD", 2),
    ("XOF", 0),
    ("XPF", 0),
    ("ZAR", 2),
    ("ZMW", 2),
];

/// A validated ISO 4217 currency with its minor-unit exponent. Serialized
/// as its code; deserializing looks the code up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Currency {
    code: &'static str,
    exponent: u8,
}

/// An amount of money in integer minor units (cents, yen, fils).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    /// Amount in minor units of `currency`.
    pub minor_units: i64,
    /// Its currency.
    pub currency: Currency,
}

impl Currency {
    /// Looks `code` up in the ISO 4217 table (exact, upper case). An unknown
    /// code is an error naming `field`, e.g. `spend.currency`.
    pub fn from_code(code: &str, field: impl Into<String>) -> Result<Currency, FieldError> {
        CURRENCIES
            .binary_search_by(|(known, _)| (*known).cmp(code))
            .ok()
            .and_then(|index| CURRENCIES.get(index))
            .map(|&(code, exponent)| Currency { code, exponent })
            .ok_or_else(|| {
                FieldError::new(
                    field,
                    FieldReason::UnknownCurrency {
                        code: code.to_owned(),
                    },
                )
            })
    }

    /// The three-letter ISO code.
    pub fn code(self) -> &'static str {
        self.code
    }

    /// Digits after the decimal point (0 for JPY, 2 for USD, 3 for KWD).
    pub fn exponent(self) -> u8 {
        self.exponent
    }

    /// Minor units per major unit: `10^exponent`.
    pub fn minor_units_per_major(self) -> i64 {
        10_i64.pow(u32::from(self.exponent))
    }
}

impl Money {
    /// An amount of `minor_units` of `currency`.
    pub const fn new(minor_units: i64, currency: Currency) -> Self {
        Self {
            minor_units,
            currency,
        }
    }
}

// Hand-written because a derived impl would try to borrow the `&'static
// str` from the input.
impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code)
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Currency::from_code(&code, "currency").map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} (minor units)", self.minor_units, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_unique_so_binary_search_is_valid() {
        for pair in CURRENCIES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{} before {}", pair[0].0, pair[1].0);
        }
    }

    #[test]
    fn known_exponents() {
        let exponent = |code| Currency::from_code(code, "c").unwrap().exponent();
        assert_eq!(exponent("USD"), 2);
        assert_eq!(exponent("JPY"), 0);
        assert_eq!(exponent("KRW"), 0);
        assert_eq!(exponent("KWD"), 3);
        assert_eq!(exponent("BHD"), 3);
        assert_eq!(exponent("CLP"), 0);
        assert_eq!(exponent("VND"), 0);
        for code in [
            "USD", "EUR", "GBP", "JPY", "CHF", "CAD", "AUD", "NZD", "SEK", "NOK", "DKK", "PLN",
            "CZK", "HUF", "CNY", "HKD", "SGD", "KRW", "INR", "BRL", "MXN", "ZAR", "TRY", "AED",
            "SAR", "KWD", "BHD", "OMR", "JOD", "TND", "ILS", "THB", "MYR", "IDR", "PHP", "VND",
            "CLP", "COP", "TWD",
        ] {
            assert!(Currency::from_code(code, "c").is_ok(), "{code}");
        }
    }

    #[test]
    fn unknown_currency_names_the_field() {
        for code in ["usd", "XXX", "", "US", "USDD", "ÜSD"] {
            let error = Currency::from_code(code, "spend.currency").unwrap_err();
            assert_eq!(
                error,
                FieldError::new(
                    "spend.currency",
                    FieldReason::UnknownCurrency {
                        code: code.to_owned()
                    }
                )
            );
        }
    }
}
