//! A request's story: what a search found, and everything recorded of one id, as a timeline first
//! and then table by table.

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use pasarela_shared::store::documents::DocumentStatus;
use pasarela_shared::store::operator_actions::ActionRow;
use pasarela_shared::store::search::Found;
use pasarela_shared::store::status::Trail;
use pasarela_shared::store::webhook_jobs::DocumentJobs;
use uuid::Uuid;

use super::{action_form, action_table, actions_off, maybe_moment, moment, page, search_form};
use crate::console::guard::Forms;

/// A trace id, linked through `template` (`{trace_id}` replaced) when there is one.
pub fn trace(trace_id: Option<&str>, template: Option<&str>) -> Markup {
    let Some(id) = trace_id else {
        return html! {};
    };
    match template {
        Some(template) => html! { a href=(template.replace("{trace_id}", id)) { code { (id) } } },
        None => html! { code { (id) } },
    }
}

/// A failure recorded as `{"kind", "message"}`, as one line.
pub fn error_text(error: Option<&serde_json::Value>) -> String {
    let Some(e) = error else {
        return String::new();
    };
    match (e["kind"].as_str(), e["message"].as_str()) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (Some(kind), None) => kind.to_string(),
        _ => e.to_string(),
    }
}

/// What a search by tenant or destination found, newest first.
pub fn found(term: &str, rows: &[Found], limit: usize) -> Markup {
    page(
        term,
        html! {
            (search_form(term))
            h1 { "Requests of " (term) }
            @if rows.is_empty() {
                p.bad { "Nothing found: a tenant's name, or a destination typed in full as it was sent (+573001234567, ana@example.com)." }
            } @else {
                table id="found" {
                    tr { th { "kind" } th { "id" } th { "tenant" } th { "status" } th { "destination" } th { "created" } }
                    @for f in rows {
                        tr {
                            td { (f.kind) }
                            td { a href={ "/search?q=" (f.id) } { code { (f.id) } } }
                            td { (f.tenant) }
                            td { (f.status) }
                            td { (f.destination.as_deref().unwrap_or("")) }
                            td { (moment(&f.created_at)) }
                        }
                    }
                }
                @if rows.len() >= limit { p.note { "The newest " (limit) " are shown." } }
            }
        },
    )
}

/// One line of a timeline.
struct Moment {
    at: DateTime<Utc>,
    what: String,
    detail: String,
    bad: bool,
}

/// Every dated fact of a trail, in order.
fn timeline(
    trail: &Trail,
    document: Option<&DocumentStatus>,
    jobs: Option<&DocumentJobs>,
) -> Vec<Moment> {
    let mut lines = Vec::new();
    let mut add = |at: DateTime<Utc>, what: String, detail: String, bad: bool| {
        lines.push(Moment {
            at,
            what,
            detail,
            bad,
        });
    };
    for w in &trail.work_items {
        add(
            w.created_at,
            format!("{} received", w.queue),
            format!("message {}", w.message_id),
            false,
        );
        if let Some(done) = w.completed_at {
            let failed = w.last_error.is_some();
            add(
                done,
                format!(
                    "{} finished: {}",
                    w.queue,
                    w.status.as_deref().unwrap_or("done")
                ),
                format!(
                    "attempt {} (the last); {}",
                    w.attempts,
                    error_text(w.last_error.as_ref())
                ),
                failed,
            );
        }
    }
    for a in &trail.attempts {
        add(
            a.failed_at,
            format!("{} attempt {} failed", a.queue, a.attempt),
            format!(
                "{}; took {} ms; attempt {} waits {} in the {} tier",
                error_text(a.error.as_ref()),
                a.latency_ms.map_or("?".into(), |l| l.to_string()),
                a.next_attempt,
                humantime::format_duration(std::time::Duration::from_millis(
                    a.wait_ms.max(0) as u64
                )),
                a.tier
            ),
            true,
        );
    }
    if let Some(o) = &trail.otp_request {
        let detail = format!(
            "{} via {}; vendor code {}; {}",
            o.channel,
            o.provider,
            o.vendor_code.as_deref().unwrap_or("-"),
            o.error_message.as_deref().unwrap_or("")
        );
        add(
            o.completed_at.unwrap_or(o.created_at),
            format!("OTP send {}", o.status),
            detail,
            o.error_kind.is_some(),
        );
    }
    for c in &trail.vendor_calls {
        add(
            c.created_at,
            format!("{} {} {}: {}", c.vendor, c.method, c.path, c.status),
            format!(
                "HTTP {}; {} ms; {} attempt(s); {}",
                c.http_status.map_or("-".into(), |s| s.to_string()),
                c.latency_ms.map_or("?".into(), |l| l.to_string()),
                c.attempts,
                c.error_message.as_deref().unwrap_or("")
            ),
            c.error_kind.is_some(),
        );
    }
    for d in &trail.dead_letters {
        add(
            d.created_at,
            format!("dead-lettered from {}", d.queue),
            format!("{}: {}", d.kind, d.reason),
            true,
        );
        if let Some(at) = d.replayed_at {
            add(
                at,
                format!("dead letter {} replayed", d.id),
                String::new(),
                false,
            );
        }
        if let Some(at) = d.discarded_at {
            add(
                at,
                format!("dead letter {} discarded", d.id),
                String::new(),
                false,
            );
        }
    }
    if let Some(d) = document {
        add(
            d.created_at,
            "document stored".into(),
            d.document_name.clone(),
            false,
        );
        if let Some(at) = d.submitted_at {
            add(
                at,
                "document submitted to the vendor".into(),
                d.vendor_document_id.clone().unwrap_or_default(),
                false,
            );
        }
        if let Some(at) = d.completed_at {
            add(
                at,
                format!("document {}", d.state.as_str()),
                format!(
                    "{} polls; {}",
                    d.polls,
                    d.error_message.as_deref().unwrap_or("")
                ),
                d.error_kind.is_some(),
            );
        }
    }
    for job in jobs.map(|j| j.jobs.as_slice()).unwrap_or_default() {
        for a in &job.deliveries {
            let ok = a.http_status.is_some_and(|s| (200..300).contains(&s));
            add(
                a.attempted_at,
                format!("webhook {} attempt {}", job.event_type, a.attempt),
                format!(
                    "{} → HTTP {}; {} ms; {}",
                    job.url,
                    a.http_status.map_or("-".into(), |s| s.to_string()),
                    a.latency_ms.map_or("?".into(), |l| l.to_string()),
                    a.error.as_deref().unwrap_or("")
                ),
                !ok,
            );
        }
    }
    lines.sort_by_key(|m| m.at);
    lines
}

/// What one id's page shows besides its trail.
pub struct Extras<'a> {
    /// The document, when the id is a document_id.
    pub document: Option<&'a DocumentStatus>,
    /// Its webhook jobs and their attempts.
    pub jobs: Option<&'a DocumentJobs>,
    /// Operator actions on it.
    pub actions: &'a [ActionRow],
    /// Where traces are shown.
    pub trace_url: Option<&'a str>,
    /// Forms for actions, when they are on.
    pub forms: Option<&'a Forms>,
}

/// Everything recorded about `id`.
pub fn trail(id: Uuid, trail: &Trail, extras: &Extras<'_>) -> Markup {
    let id_text = id.to_string();
    let lines = timeline(trail, extras.document, extras.jobs);
    page(
        &id_text,
        html! {
            (search_form(&id_text))
            h1 { code { (id_text) } }
            @if trail.is_empty() && extras.document.is_none() {
                p.bad { "Nothing is recorded for this id (finished work is kept PASARELA_WORK_RETENTION, 7 days by default)." }
            } @else {
                h2 { "Timeline" }
                table id="timeline" {
                    tr { th { "when" } th { "what" } th { "detail" } }
                    @for m in &lines {
                        tr {
                            td { (moment(&m.at)) }
                            @if m.bad { td.bad { (m.what) } } @else { td { (m.what) } }
                            td { (m.detail) }
                        }
                    }
                }
            }
            (otp_section(trail))
            (work_section(trail, extras.trace_url))
            (letters_section(trail))
            (document_section(id, extras))
            @if !extras.actions.is_empty() {
                h2 { "Operator actions" }
                (action_table(extras.actions))
            }
        },
    )
}

fn otp_section(trail: &Trail) -> Markup {
    let Some(otp) = &trail.otp_request else {
        return html! {};
    };
    html! {
        h2 { "OTP send" }
        table {
            tr { th { "request_id" } td { code { (otp.request_id) } } }
            tr { th { "message_id" } td { code { (otp.message_id) } } }
            tr { th { "tenant" } td { (otp.tenant) } }
            tr { th { "provider / channel" } td { (otp.provider) " / " (otp.channel) } }
            tr { th { "status" } td { (otp.status) } }
            tr { th { "attempts" } td.n { (otp.attempts) } }
            tr { th { "vendor code" } td { (otp.vendor_code.as_deref().unwrap_or("")) } }
            tr { th { "vendor request id" } td { code { (otp.vendor_request_id.as_deref().unwrap_or("")) } } }
            @if let Some(kind) = &otp.error_kind {
                tr { th { "error" } td.bad { (kind) ": " (otp.error_message.as_deref().unwrap_or("")) } }
            }
            tr { th { "created" } td { (moment(&otp.created_at)) } }
            tr { th { "completed" } td { (maybe_moment(&otp.completed_at)) } }
        }
    }
}

fn work_section(trail: &Trail, trace_url: Option<&str>) -> Markup {
    html! {
        @if !trail.work_items.is_empty() {
            h2 { "Work" }
            table id="work" {
                tr { th { "queue" } th { "message_id" } th { "state" } th { "status" } th { "attempts" }
                     th { "possible duplicates" } th { "last error" } th { "created" } th { "completed" } th { "trace" } }
                @for w in &trail.work_items {
                    tr {
                        td { (w.queue) }
                        td { code { (w.message_id) } }
                        td { (w.state) }
                        td { (w.status.as_deref().unwrap_or("")) }
                        td.n { (w.attempts) }
                        td.n { (w.possible_duplicates) }
                        td.bad { (error_text(w.last_error.as_ref())) }
                        td { (moment(&w.created_at)) }
                        td { (maybe_moment(&w.completed_at)) }
                        td { (trace(w.trace_id.as_deref(), trace_url)) }
                    }
                }
            }
        }
        @if !trail.attempts.is_empty() {
            h2 { "Failed attempts" }
            table id="attempts" {
                tr { th { "queue" } th { "attempt" } th { "error" } th { "took" } th { "retry tier" } th { "waited" } th { "failed at" } }
                @for a in &trail.attempts {
                    tr {
                        td { (a.queue) }
                        td.n { (a.attempt) }
                        td.bad { (error_text(a.error.as_ref())) }
                        td.n { (a.latency_ms.map_or("?".into(), |l| format!("{l} ms"))) }
                        td { (a.tier) }
                        td.n { (a.wait_ms) " ms" }
                        td { (moment(&a.failed_at)) }
                    }
                }
            }
        }
        @if !trail.vendor_calls.is_empty() {
            h2 { "Vendor calls" }
            table {
                tr { th { "call_id" } th { "vendor" } th { "request" } th { "status" } th { "HTTP" } th { "latency" } th { "attempts" } th { "error" } }
                @for c in &trail.vendor_calls {
                    tr {
                        td { code { (c.call_id) } }
                        td { (c.vendor) }
                        td { (c.method) " " (c.path) }
                        td { (c.status) }
                        td.n { (c.http_status.map_or(String::new(), |s| s.to_string())) }
                        td.n { (c.latency_ms.map_or(String::new(), |l| format!("{l} ms"))) }
                        td.n { (c.attempts) }
                        td.bad { (c.error_message.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    }
}

fn letters_section(trail: &Trail) -> Markup {
    html! {
        @if !trail.dead_letters.is_empty() {
            h2 { "Dead letters" }
            table id="letters" {
                tr { th { "id" } th { "queue" } th { "kind" } th { "reason" } th { "dead since" } th { "replayed" } th { "discarded" } }
                @for d in &trail.dead_letters {
                    tr {
                        td.n { a href={ "/dead-letters/" (d.id) } { (d.id) } }
                        td { (d.queue) }
                        td { (d.kind) }
                        td { (d.reason) }
                        td { (moment(&d.created_at)) }
                        td { (maybe_moment(&d.replayed_at)) }
                        td { (maybe_moment(&d.discarded_at)) }
                    }
                }
            }
        }
    }
}

fn document_section(id: Uuid, extras: &Extras<'_>) -> Markup {
    let Some(d) = extras.document else {
        return html! {};
    };
    html! {
        h2 { "Document" }
        table {
            tr { th { "name" } td { (d.document_name) } }
            tr { th { "tenant" } td { (d.tenant) } }
            tr { th { "state" } td { (d.state.as_str()) } }
            tr { th { "vendor id / status" } td { code { (d.vendor_document_id.as_deref().unwrap_or("")) } " " (d.vendor_status.as_deref().unwrap_or("")) } }
            tr { th { "polls" } td.n { (d.polls) } }
            tr { th { "next poll" } td { (maybe_moment(&d.next_poll_at)) } }
            @if let Some(kind) = &d.error_kind {
                tr { th { "error" } td.bad { (kind) ": " (d.error_message.as_deref().unwrap_or("")) } }
            }
        }
        @if let Some(jobs) = extras.jobs {
            h2 { "Client webhooks" }
            table id="webhooks" {
                tr { th { "event" } th { "url" } th { "state" } th { "attempt" } th { "when" } th { "HTTP" } th { "latency" } th { "error / answer" } }
                @for job in &jobs.jobs {
                    @if job.deliveries.is_empty() {
                        tr { td { (job.event_type) } td { (job.url) } td { (job.state.as_str()) } td {} td { (moment(&job.created_at)) } td {} td {} td {} }
                    }
                    @for a in &job.deliveries {
                        tr {
                            td { (job.event_type) }
                            td { (job.url) }
                            td { (job.state.as_str()) }
                            td.n { (a.attempt) }
                            td { (moment(&a.attempted_at)) }
                            td.n { (a.http_status.map_or(String::new(), |s| s.to_string())) }
                            td.n { (a.latency_ms.map_or(String::new(), |l| format!("{l} ms"))) }
                            td { (a.error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
            (actions_off(extras.forms))
            (action_form(extras.forms, &format!("/documents/{id}/redeliver"), "Redeliver webhooks",
                html! { p.note { "Sends this document's client webhooks again (same webhook-id, so the client can drop a copy it has)." } }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_is_linked_through_the_template() {
        let linked = trace(
            Some("abc"),
            Some("http://grafana/explore?trace={trace_id}&x=1"),
        );
        assert_eq!(
            linked.into_string(),
            "<a href=\"http://grafana/explore?trace=abc&amp;x=1\"><code>abc</code></a>"
        );
        assert_eq!(trace(Some("abc"), None).into_string(), "<code>abc</code>");
        assert_eq!(trace(None, Some("x")).into_string(), "");
    }

    #[test]
    fn an_unknown_id_says_nothing_is_recorded() {
        let empty = Trail {
            work_items: Vec::new(),
            otp_request: None,
            dead_letters: Vec::new(),
            attempts: Vec::new(),
            vendor_calls: Vec::new(),
        };
        let extras = Extras {
            document: None,
            jobs: None,
            actions: &[],
            trace_url: None,
            forms: None,
        };
        let page = trail(Uuid::nil(), &empty, &extras).into_string();
        assert!(page.contains("Nothing is recorded"), "{page}");
    }
}
