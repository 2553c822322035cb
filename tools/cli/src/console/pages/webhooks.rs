//! Client webhooks per endpoint: how a window's webhooks went, the last error, whether the endpoint is
//! disabled; and the forms that re-enable one or redeliver what failed.

use maud::{Markup, html};
use pasarela_shared::store::webhook_jobs::Endpoint;

use super::{action_form, actions_off, maybe_moment, moment, page};
use crate::console::guard::Forms;

/// An endpoint's last error, or its last status when that was a refusal without one.
fn last_error(e: &Endpoint) -> String {
    match (&e.last_error, e.last_http_status) {
        (Some(error), _) => error.clone(),
        (None, Some(s)) if !(200..300).contains(&s) => format!("HTTP {s}"),
        _ => String::new(),
    }
}

/// Every endpoint with webhooks since `since` (as typed), and every disabled one.
pub fn webhooks(since: &str, endpoints: &[Endpoint], forms: Option<&Forms>) -> Markup {
    page(
        "Webhooks",
        html! {
            h1 { "Client webhooks" }
            form action="/webhooks" method="get" {
                label { "Webhooks created since " input name="since" size="16" value=(since); }
                " " button type="submit" { "Show" }
            }
            @if endpoints.is_empty() {
                p.note { "No webhooks in this window, and no endpoint is disabled." }
            } @else {
                table id="endpoints" {
                    tr { th { "endpoint" } th { "webhooks" } th { "delivered" } th { "failed" } th { "on their way" }
                         th { "success rate" } th { "last error" } th { "newest" } th { "disabled" } }
                    @for e in endpoints {
                        tr {
                            td { code { (e.url) } }
                            td.n { (e.jobs) }
                            td.n { (e.delivered) }
                            td.n { (e.failed) }
                            td.n { (e.waiting) }
                            td.n { (e.success_rate().map_or("-".into(), |r| format!("{:.1} %", r * 100.0))) }
                            td.bad { (last_error(e)) }
                            td { (maybe_moment(&e.last_job_at)) }
                            td {
                                @if let Some(d) = &e.disabled {
                                    span.bad { "since " (moment(&d.at)) " (" (d.reason.as_deref().unwrap_or("")) ")" }
                                    (action_form(forms, "/webhooks/reenable", "Re-enable",
                                        html! { input type="hidden" name="url" value=(e.url); }))
                                }
                            }
                        }
                    }
                }
            }
            (actions_off(forms))
            @if forms.is_some() {
                h2 { "Redeliver" }
            }
            (action_form(forms, "/webhooks/redeliver", "Redeliver every webhook that failed",
                html! {
                    label { "failed since " input name="since" size="16" value=(since) required; }
                    " "
                    label { "to endpoint (optional) " input name="url" size="40"; }
                    br;
                }))
            (action_form(forms, "/webhooks/redeliver-document", "Redeliver one document's webhooks",
                html! { label { "document_id " input name="document_id" size="38" required; } br; }))
        },
    )
}
