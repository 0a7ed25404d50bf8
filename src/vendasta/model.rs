//! JSON:API bodies of Vendasta's customers API (`/business/customers`).
//!
//! Plain serde types. Every optional member is omitted rather than sent empty, because
//! Vendasta rejects empty strings (minLength 1) and an omitted attribute keeps its value
//! on PATCH.

use serde::Serialize;

/// `data.attributes` of a customer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomerAttributes {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub given_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub family_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<Address>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phone_numbers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub email_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_to_contact: Option<bool>,
}

/// `attributes.address`. Vendasta has no postal code field.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Address {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// ISO 3166-2, e.g. `US-MI`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region_code: Option<String>,
    /// ISO 3166-1 alpha-2, upper case.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country_code: Option<String>,
}

impl Address {
    pub fn is_empty(&self) -> bool {
        self.street_address.is_none()
            && self.city.is_none()
            && self.region_code.is_none()
            && self.country_code.is_none()
    }
}

/// Body of `POST {customers_url}`.
#[derive(Debug, Serialize)]
pub struct CreateRequest<'a> {
    pub data: CreateData<'a>,
}

#[derive(Debug, Serialize)]
pub struct CreateData<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub attributes: &'a CustomerAttributes,
    pub relationships: Relationships<'a>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Relationships<'a> {
    pub business_location: Related<'a>,
}

#[derive(Debug, Serialize)]
pub struct Related<'a> {
    pub data: RelatedId<'a>,
}

#[derive(Debug, Serialize)]
pub struct RelatedId<'a> {
    pub id: &'a str,
}

/// Body of `PATCH {customers_url}/{id}`.
#[derive(Debug, Serialize)]
pub struct UpdateRequest<'a> {
    pub data: UpdateData<'a>,
}

#[derive(Debug, Serialize)]
pub struct UpdateData<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a str,
    pub attributes: &'a CustomerAttributes,
}

impl<'a> CreateRequest<'a> {
    pub fn new(business_location: &'a str, attributes: &'a CustomerAttributes) -> Self {
        Self {
            data: CreateData {
                kind: "customers",
                attributes,
                relationships: Relationships {
                    business_location: Related {
                        data: RelatedId {
                            id: business_location,
                        },
                    },
                },
            },
        }
    }
}

impl<'a> UpdateRequest<'a> {
    pub fn new(id: &'a str, attributes: &'a CustomerAttributes) -> Self {
        Self {
            data: UpdateData {
                kind: "customers",
                id,
                attributes,
            },
        }
    }
}
