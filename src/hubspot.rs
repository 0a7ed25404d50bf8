//! HubSpot's CRM API, as the delivery worker needs it: read one contact by id.
//!
//! HubSpot webhooks carry only the contact's id, so the worker fetches the contact here
//! before mapping it. This module owns the request and the classification of HubSpot's
//! answer into [`Fetched`]; what a contact means is `sources::hubspot`'s business, and
//! what to do about a failure is `delivery`'s. The reqwest client comes from
//! [`crate::vendasta::client::http_client`] (timeouts, no redirects).

use std::time::{Duration, SystemTime};

use reqwest::{StatusCode, Url, header::RETRY_AFTER};

use crate::{
    config::Secret,
    sources::hubspot::CONTACT_PROPERTIES,
    vendasta::client::{ClientError, http_client, parse_retry_after},
};

/// Largest contact body read; a contact with these properties is a few KiB.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// What HubSpot answered for one contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// 200: the contact's JSON body.
    Found(Vec<u8>),
    /// Worth trying again: transport error, timeout, 429, 5xx.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Will not succeed by retrying; the reason says what to do.
    Dead { reason: String },
}

/// Reads contacts from `{api_base_url}/crm/v3/objects/contacts/{id}`. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
}

impl Client {
    /// Prepares the client; does no I/O.
    pub fn new(timeout: Duration) -> Result<Self, ClientError> {
        Ok(Self {
            http: http_client(timeout)?,
        })
    }

    /// `GET {api_base_url}/crm/v3/objects/contacts/{contact_id}?properties=…` with the
    /// route's access token. 200 → `Found`; 429, 5xx and transport errors → `Retry`
    /// (honouring `Retry-After`); 404 → `Dead` (deleted in HubSpot); 401/403 → `Dead`
    /// naming `routes[].access_token`; anything else → `Dead` with the status.
    pub async fn contact(&self, api_base_url: &str, token: &Secret, contact_id: &str) -> Fetched {
        let Some(url) = contact_url(api_base_url, contact_id) else {
            return Fetched::Dead {
                reason: format!(
                    "routes[].api_base_url `{api_base_url}` is not a usable base URL: set it to https://api.hubapi.com or your HubSpot mock"
                ),
            };
        };
        let response = match self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
        {
            Ok(response) => response,
            Err(error) => {
                return Fetched::Retry {
                    reason: if error.is_timeout() {
                        "hubspot timed out".into()
                    } else {
                        "the request to hubspot failed (connection or transport error)".into()
                    },
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| parse_retry_after(value, SystemTime::now()));
        tracing::debug!(status = status.as_u16(), "HubSpot answered.");
        match status {
            StatusCode::OK => match read_body(response).await {
                Ok(body) => Fetched::Found(body),
                Err(_) => Fetched::Retry {
                    reason: "hubspot answered 200 but reading the body failed".into(),
                    retry_after: None,
                },
            },
            StatusCode::NOT_FOUND => Fetched::Dead {
                reason: "hubspot answered 404: the contact was deleted in HubSpot (or merged into another); nothing to deliver".into(),
            },
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Fetched::Dead {
                reason: format!(
                    "hubspot answered {}: check routes[].access_token (it must be valid and have the scope crm.objects.contacts.read), then replay the job",
                    status.as_u16()
                ),
            },
            StatusCode::TOO_MANY_REQUESTS => Fetched::Retry {
                reason: "hubspot answered 429 (rate limited)".into(),
                retry_after,
            },
            status if status.is_server_error() => Fetched::Retry {
                reason: format!("hubspot answered {}", status.as_u16()),
                retry_after,
            },
            status => Fetched::Dead {
                reason: format!(
                    "hubspot answered {} to the contact request; check routes[].api_base_url, then replay the job",
                    status.as_u16()
                ),
            },
        }
    }
}

/// `{base}/crm/v3/objects/contacts/{id}?properties=…`; the id is one encoded segment.
fn contact_url(base: &str, contact_id: &str) -> Option<Url> {
    let mut url = Url::parse(base).ok()?;
    url.path_segments_mut()
        .ok()?
        .pop_if_empty()
        .extend(["crm", "v3", "objects", "contacts", contact_id]);
    url.set_query(Some(&format!("properties={CONTACT_PROPERTIES}")));
    Some(url)
}

/// Reads at most [`MAX_BODY_BYTES`] of the body.
async fn read_body(mut response: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_BODY_BYTES.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= MAX_BODY_BYTES {
            break;
        }
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_contact_url_keeps_the_base_path_and_asks_for_the_mapped_properties() {
        let url = contact_url("http://127.0.0.1:9/hub/", "12/3").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/hub/crm/v3/objects/contacts/12%2F3?properties=firstname,lastname,email,phone,address,city,state,country,zip"
        );
    }
}
