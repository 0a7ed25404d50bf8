//! The worker's steps beyond "create or update the contact in the payload": fetching a
//! contact the payload only names (HubSpot), partial updates of a linked contact
//! (Shopify's tags and consent topics), and deleting a linked customer.
//!
//! Kept apart from `worker` so the claim/record loop stays small. Each step either yields
//! a contact for the ordinary create-or-update path or decides how the job ends.

use std::time::{Duration, SystemTime};

use crate::{
    config::RouteConfig,
    hubspot::{self, Fetched},
    sources::{self, Action, ParsedEvent, PartialChange},
    store::{ContactLink, Finish, Job, Store},
    transform,
    vendasta::{self, Outcome, model::CustomerAttributes},
};

/// How long a deferred partial update waits before it looks for its contact's link
/// again; linking the contact wakes it at once, so this is only the fallback.
const DEFER_RECHECK: Duration = Duration::from_secs(300);

/// What the worker needs for these steps.
pub(super) struct Context<'a> {
    pub store: &'a Store,
    pub upstream: &'a vendasta::Upstream,
    pub hubspot: &'a hubspot::Client,
    pub max_age: Duration,
    /// The worker's retry decision (schedule, jitter, maximum age).
    pub retry: &'a (dyn Fn(String, Option<Duration>) -> Finish + Sync),
    /// The worker's decision when no Vendasta token could be had (wait, never dead).
    pub wait: &'a (dyn Fn(String) -> Finish + Sync),
}

/// Either a contact for the create-or-update path, or how the job ends (and whether an
/// upstream was called).
pub(super) enum Resolved {
    Upsert(ParsedEvent),
    Finished(Finish, bool),
}

/// Carries out `action` as far as it goes without the ordinary create-or-update.
pub(super) async fn resolve(
    ctx: &Context<'_>,
    job: &Job,
    route: &RouteConfig,
    link: &ContactLink,
    action: Action,
    now: SystemTime,
) -> Resolved {
    match action {
        Action::Upsert(parsed) => Resolved::Upsert(parsed),
        Action::Fetch { contact_id, tenant } => fetch(ctx, route, &contact_id, tenant).await,
        Action::Partial { change, tenant } => {
            partial(ctx, job, route, link, change, tenant.as_deref(), now).await
        }
        Action::Delete { tenant } => delete(ctx, job, route, link, tenant.as_deref()).await,
    }
}

/// Reads the contact from HubSpot's CRM API with the route's access token.
async fn fetch(
    ctx: &Context<'_>,
    route: &RouteConfig,
    contact_id: &str,
    tenant: Option<String>,
) -> Resolved {
    let Some(token) = &route.access_token else {
        return Resolved::Finished(
            dead(
                "no_access_token",
                format!(
                    "route `{}` has no access_token: set routes[].access_token, then replay the job",
                    route.name
                ),
            ),
            false,
        );
    };
    match ctx
        .hubspot
        .contact(&route.api_base_url, token, contact_id)
        .await
    {
        Fetched::Found(body) => match sources::hubspot::contact_from_crm(&body) {
            Ok(contact) => Resolved::Upsert(ParsedEvent { contact, tenant }),
            Err(error) => Resolved::Finished(dead("unparseable", error.to_string()), true),
        },
        Fetched::Retry {
            reason,
            retry_after,
        } => Resolved::Finished((ctx.retry)(reason, retry_after), true),
        Fetched::Dead { reason } => Resolved::Finished(dead("source_rejected", reason), true),
    }
}

/// PATCHes only the changed attribute of a linked contact; an unlinked one is deferred.
async fn partial(
    ctx: &Context<'_>,
    job: &Job,
    route: &RouteConfig,
    link: &ContactLink,
    change: PartialChange,
    tenant: Option<&str>,
    now: SystemTime,
) -> Resolved {
    let Some(customer_id) = &link.customer_id else {
        if now >= job.created_at + ctx.max_age {
            return Resolved::Finished(
                dead(
                    "never_linked",
                    "the contact was never created in Vendasta within delivery.max_age_hours, so this partial update has nothing to update; replay it after the contact's create is delivered".into(),
                ),
                false,
            );
        }
        return Resolved::Finished(
            Finish::Defer {
                at: now + DEFER_RECHECK,
                reason: "waiting for the contact's create to reach Vendasta".into(),
            },
            false,
        );
    };
    let Some(location) = route.location_for(tenant) else {
        return Resolved::Finished(no_location(route, tenant), false);
    };
    let contact_id = job.contact_id.as_deref().unwrap_or("");
    let mut new_tags = None;
    let mut attributes = CustomerAttributes::default();
    match change {
        PartialChange::Consent(None) => {
            return Resolved::Finished(nothing("the event states no consent"), false);
        }
        PartialChange::Consent(Some(consent)) => attributes.permission_to_contact = Some(consent),
        PartialChange::TagsAdded(tags) | PartialChange::TagsRemoved(tags) if tags.is_empty() => {
            return Resolved::Finished(nothing("the event lists no tags"), false);
        }
        PartialChange::TagsAdded(added) => {
            let mut known = link.source_tags.clone().unwrap_or_default();
            for tag in added {
                if !known.contains(&tag) {
                    known.push(tag);
                }
            }
            new_tags = Some(known);
        }
        PartialChange::TagsRemoved(removed) => {
            let mut known = link.source_tags.clone().unwrap_or_default();
            known.retain(|tag| !removed.iter().any(|r| r.trim() == tag.trim()));
            new_tags = Some(known);
        }
    }
    if let Some(tags) = &new_tags {
        attributes.tags = transform::to_tags(tags, &route.tags);
        if attributes.tags.is_empty() {
            // Vendasta rejects an empty list (and omitting it keeps the old tags), so the
            // last tag cannot be removed through the customers API.
            if let Err(error) = ctx.store.remember_tags(&job.route, contact_id, tags).await {
                return Resolved::Finished(
                    (ctx.retry)(format!("cannot record the contact's tags: {error}"), None),
                    false,
                );
            }
            return Resolved::Finished(
                nothing("no tags are left, and Vendasta cannot be sent an empty tag list"),
                false,
            );
        }
    }
    let delivery = vendasta::Delivery {
        route: &job.route,
        source_contact_id: job.contact_id.as_deref(),
        business_location: location,
        linked_id: Some(customer_id),
        attributes: &attributes,
    };
    let finish = match ctx.upstream.deliver(&delivery).await {
        Outcome::Updated | Outcome::Conflict { .. } => {
            if let Some(tags) = &new_tags
                && let Err(error) = ctx.store.remember_tags(&job.route, contact_id, tags).await
            {
                // The PATCH is idempotent: applying the same change again is harmless.
                return Resolved::Finished(
                    (ctx.retry)(format!("cannot record the contact's tags: {error}"), None),
                    true,
                );
            }
            Finish::Done {
                outcome: "updated",
                link: Some(customer_id.clone()),
                applied: false,
                note: None,
            }
        }
        Outcome::NotFound => Finish::Unlink {
            error: "vendasta answered 404 for the linked customer".into(),
        },
        Outcome::Retry {
            reason,
            retry_after,
        } => (ctx.retry)(reason, retry_after),
        Outcome::Reject { reason } => dead("rejected", reason),
        Outcome::Unauthorized { reason } => dead("unauthorized", reason),
        Outcome::AuthUnavailable { reason } => (ctx.wait)(reason),
        Outcome::Created { .. } => dead("rejected", "vendasta answered a PATCH as a create".into()),
    };
    Resolved::Finished(finish, true)
}

/// Deletes the linked customer; an unlinked contact has nothing upstream to delete.
async fn delete(
    ctx: &Context<'_>,
    job: &Job,
    route: &RouteConfig,
    link: &ContactLink,
    tenant: Option<&str>,
) -> Resolved {
    let Some(customer_id) = &link.customer_id else {
        return Resolved::Finished(
            nothing("the contact is not linked to a Vendasta customer"),
            false,
        );
    };
    let Some(location) = route.location_for(tenant) else {
        return Resolved::Finished(no_location(route, tenant), false);
    };
    let finish = match ctx.upstream.delete(&job.route, location, customer_id).await {
        Outcome::Updated | Outcome::NotFound => Finish::Done {
            outcome: "deleted",
            link: None,
            applied: false,
            note: Some(format!("deleted vendasta customer {customer_id}")),
        },
        Outcome::Retry {
            reason,
            retry_after,
        } => (ctx.retry)(reason, retry_after),
        Outcome::Reject { reason }
        | Outcome::Conflict {
            existing_id: reason,
        } => dead("rejected", reason),
        Outcome::Unauthorized { reason } => dead("unauthorized", reason),
        Outcome::AuthUnavailable { reason } => (ctx.wait)(reason),
        Outcome::Created { .. } => {
            dead("rejected", "vendasta answered a DELETE as a create".into())
        }
    };
    tracing::debug!(route = %job.route, job_id = %job.id, "Delete of a linked customer handled.");
    Resolved::Finished(finish, true)
}

/// A full payload that states tags (pre-2025 Shopify) is the provider's whole tag set:
/// remember it, so later "tags added/removed" events merge into the right list. The
/// worker runs this next to every create-or-update, whatever its outcome.
pub(super) async fn remember_stated_tags(ctx: &Context<'_>, job: &Job, parsed: &ParsedEvent) {
    let (Some(contact_id), false) = (&job.contact_id, parsed.contact.tags.is_empty()) else {
        return;
    };
    let tags: Vec<String> = parsed
        .contact
        .tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if let Err(error) = ctx.store.remember_tags(&job.route, contact_id, &tags).await {
        // Only later tag merges depend on it; the delivery itself goes ahead.
        tracing::warn!(route = %job.route, job_id = %job.id, error = %error, "Failed to record the contact's tags.");
    }
}

fn nothing(why: &str) -> Finish {
    Finish::Done {
        outcome: "nothing_to_change",
        link: None,
        applied: false,
        note: Some(why.to_string()),
    }
}

fn no_location(route: &RouteConfig, tenant: Option<&str>) -> Finish {
    dead(
        "no_location",
        format!(
            "no business location for tenant `{}` on route `{}`: add it to routes.shop_locations or set routes.business_location, then replay the job",
            tenant.unwrap_or("(none)"),
            route.name
        ),
    )
}

fn dead(outcome: &'static str, reason: String) -> Finish {
    Finish::Dead { outcome, reason }
}
