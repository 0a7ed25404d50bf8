//! Contact → Vendasta customer attributes. Owned by the transform helper; placeholder.

use crate::{contact::Contact, vendasta::model::CustomerAttributes};

/// The attributes to send, plus what was dropped on the way (for counting and logging).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub attributes: CustomerAttributes,
    /// Phone numbers that could not be read as valid E.164 numbers and were left out.
    pub dropped_phones: usize,
}

/// Why a contact cannot become a Vendasta customer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransformError {
    #[error("the contact has neither a usable email address nor a valid phone number; Vendasta requires one")]
    NoEmailOrPhone,
}

impl TransformError {
    pub fn code(&self) -> &'static str {
        match self {
            TransformError::NoEmailOrPhone => "no_email_or_phone",
        }
    }
}

/// Maps a contact to Vendasta attributes; `route_tags` are appended to the contact's tags.
pub fn to_customer(_contact: &Contact, _route_tags: &[String]) -> Result<Customer, TransformError> {
    Err(TransformError::NoEmailOrPhone)
}
