//! The neutral contact every source parses into.
//!
//! Sources fill it from their own payloads, as given (untrimmed, unvalidated);
//! `transform` owns all normalisation (trimming, E.164, de-duplication). Nothing here
//! knows a provider or Vendasta.

/// A person as a POS or CRM describes them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contact {
    /// Given name(s), as sent.
    pub first_name: Option<String>,
    /// Family name(s), as sent.
    pub last_name: Option<String>,
    /// Email addresses, as sent, most important first.
    pub emails: Vec<String>,
    /// Phone numbers, as sent, most important first, each with the country to read it in.
    pub phones: Vec<Phone>,
    /// The primary postal address.
    pub address: Option<PostalAddress>,
    /// Tags, already split into single tags (not yet trimmed).
    pub tags: Vec<String>,
    /// Marketing consent: `Some(true)` opted in, `Some(false)` not, `None` the payload
    /// does not say (so an update must not overwrite what Vendasta has).
    pub marketing_consent: Option<bool>,
}

/// A phone number in whatever format the source holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// The number as sent (`555-555-5555`, `+1 613 555 0199`, …).
    pub number: String,
    /// ISO 3166-1 alpha-2 country used when the number has no `+` country code
    /// (usually the country of the address it came with).
    pub default_region: Option<String>,
}

/// A postal address as a source gives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostalAddress {
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub city: Option<String>,
    /// Subdivision code within the country, without the country prefix (`MI`, `ON`).
    pub province_code: Option<String>,
    /// ISO 3166-1 alpha-2 country code, any case.
    pub country_code: Option<String>,
}
