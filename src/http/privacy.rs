//! Privacy requests carried out at ingest, before the provider gets its 200.
//!
//! Shopify requires every app to answer `customers/redact`, `shop/redact` and
//! `customers/data_request`. A redaction is only acknowledged once the deletion is
//! committed, so these run synchronously against the store instead of being queued (the
//! request's own payload holds the personal data it asks to erase, so it is never
//! stored). Logs carry ids and counts only.

use crate::{
    sources::PrivacyRequest,
    store::{Store, StoreError},
};

/// Carries out `request` for `route` and returns the status to answer with.
pub async fn carry_out(
    store: &Store,
    route: &str,
    topic: &str,
    request: PrivacyRequest,
) -> Result<&'static str, StoreError> {
    match request {
        PrivacyRequest::RedactContacts {
            tenant,
            contact_ids,
        } => {
            let deleted = store.redact_contacts(route, &contact_ids).await?;
            tracing::info!(
                route, topic, tenant = tenant.as_deref().unwrap_or(""),
                contact_ids = ?contact_ids, deleted_jobs = deleted,
                "Redacted the stored payloads and links of the contacts."
            );
            Ok("redacted")
        }
        PrivacyRequest::RedactTenant { tenant } => {
            let deleted = store.redact_tenant(route, &tenant).await?;
            tracing::info!(
                route, topic, tenant = %tenant, deleted_jobs = deleted,
                "Redacted every stored payload and link of the shop."
            );
            Ok("redacted")
        }
        PrivacyRequest::DataRequest {
            tenant,
            contact_ids,
            request_id,
        } => {
            // The bridge holds no customer data beyond the queued webhooks themselves,
            // which the merchant already has; the request is recorded for the operator.
            tracing::info!(
                route, topic, tenant = tenant.as_deref().unwrap_or(""),
                contact_ids = ?contact_ids, data_request_id = request_id.as_deref().unwrap_or(""),
                "Customer data request received; the bridge keeps only queued webhooks for it."
            );
            Ok("logged")
        }
    }
}
