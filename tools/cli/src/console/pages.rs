//! The console's pages as HTML (maud: templates checked at compile time, every value escaped).

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use pasarela_shared::store::status::Trail;
use uuid::Uuid;

use crate::queues::View;

/// The stylesheet, served at `/console.css` (the content policy allows no inline style).
pub const STYLESHEET: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}\
header a{color:#fff;text-decoration:none}header strong{margin-right:1em}\
main{padding:1em 1.2em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border-bottom:1px solid #d8dce3;padding:.3em .8em;text-align:left;vertical-align:top}\
th{background:#f1f3f6}td.n{text-align:right;font-variant-numeric:tabular-nums}\
input[type=search]{width:32em;padding:.35em}.bad{color:#a3161b}.ok{color:#11683a}\
.note{color:#5b6475}code{font-size:13px}";

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { (title) " · pasarela console" }
                link rel="stylesheet" href="/console.css";
            }
            body {
                header {
                    strong { "pasarela" }
                    a href="/" { "Search" }
                    a href="/queues" { "Queues" }
                }
                main { (body) }
            }
        }
    }
}

fn search_form(value: &str) -> Markup {
    html! {
        form action="/search" method="get" {
            label for="q" { "Request, message, document or call id " }
            input id="q" type="search" name="q" value=(value) required autofocus;
            " "
            button type="submit" { "Find" }
        }
    }
}

fn moment(at: &DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

fn maybe_moment(at: &Option<DateTime<Utc>>) -> String {
    at.as_ref().map(moment).unwrap_or_default()
}

/// The start page: the search box.
pub fn home() -> Markup {
    page(
        "Search",
        html! {
            h1 { "Find a request" }
            (search_form(""))
            p.note { "An OTP request_id, any message_id, a document_id or a call_id (the message ids of their messages)." }
        },
    )
}

/// A search for something that is no id.
pub fn not_an_id(wanted: &str) -> Markup {
    page(
        "Search",
        html! {
            h1 { "Find a request" }
            (search_form(wanted))
            p.bad { "Not an id: ids are UUIDs such as 0192f1c4-7d1e-7c3a-9b5e-2a6f0e4b8c11." }
        },
    )
}

/// A page that could not be made.
pub fn failed(why: &str) -> Markup {
    page(
        "Unavailable",
        html! { h1 { "Unavailable" } p.bad { (why) } },
    )
}

/// A trace id, linked through `template` (`{trace_id}` replaced) when there is one.
fn trace(trace_id: Option<&str>, template: Option<&str>) -> Markup {
    let Some(id) = trace_id else {
        return html! {};
    };
    match template {
        Some(template) => html! { a href=(template.replace("{trace_id}", id)) { code { (id) } } },
        None => html! { code { (id) } },
    }
}

/// Everything recorded about `id`; trace ids linked through `trace_url` when given.
pub fn trail(id: Uuid, trail: &Trail, trace_url: Option<&str>) -> Markup {
    let id_text = id.to_string();
    page(
        &id_text,
        html! {
            (search_form(&id_text))
            h1 { code { (id_text) } }
            @if trail.is_empty() {
                p.bad { "Nothing is recorded for this id (finished work is kept PASARELA_WORK_RETENTION, 7 days by default)." }
            }
            @if let Some(otp) = &trail.otp_request {
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
            @if !trail.work_items.is_empty() {
                h2 { "Work" }
                table {
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
            @if !trail.dead_letters.is_empty() {
                h2 { "Dead letters" }
                table {
                    tr { th { "id" } th { "queue" } th { "kind" } th { "reason" } th { "dead since" } th { "replayed" } }
                    @for d in &trail.dead_letters {
                        tr {
                            td.n { (d.id) }
                            td { (d.queue) }
                            td { (d.kind) }
                            td { (d.reason) }
                            td { (moment(&d.created_at)) }
                            td { (maybe_moment(&d.replayed_at)) }
                        }
                    }
                }
            }
        },
    )
}

/// A work row's last error (`{"kind", "message"}`) as one line.
fn error_text(error: Option<&serde_json::Value>) -> String {
    let Some(e) = error else {
        return String::new();
    };
    match (e["kind"].as_str(), e["message"].as_str()) {
        (Some(kind), Some(message)) => format!("{kind}: {message}"),
        (Some(kind), None) => kind.to_string(),
        _ => e.to_string(),
    }
}

fn figure(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn rate(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.1}")).unwrap_or_else(|| "-".into())
}

/// Every queue and each worker's readiness.
pub fn queues(view: &View) -> Markup {
    page(
        "Queues",
        html! {
            h1 { "Queues" }
            p.note { "At " (moment(&view.at)) ", from the " (view.source) "." }
            @for note in &view.notes { p.bad { (note) } }
            table {
                tr { th { "queue" } th { "messages" } th { "ready" } th { "unacked" } th { "in/s" }
                     th { "out/s" } th { "oldest" } th { "consumers" } }
                @for q in &view.queues {
                    tr {
                        td { (q.name) }
                        td.n { (figure(q.messages)) }
                        td.n { (figure(q.ready)) }
                        td.n { (figure(q.unacked)) }
                        td.n { (rate(q.rate_in)) }
                        td.n { (rate(q.rate_out)) }
                        td.n { (q.oldest_s.map(|s| humantime::format_duration(std::time::Duration::from_secs(s)).to_string()).unwrap_or_default()) }
                        td.n { (figure(q.consumers)) }
                    }
                }
            }
            h2 { "Workers" }
            table {
                tr { th { "worker" } th { "health endpoint" } th { "readiness" } }
                @for w in &view.workers {
                    tr {
                        td { (w.worker) }
                        td { code { (w.url) } }
                        @if w.state == "ready" { td.ok { (w.state) } } @else { td.bad { (w.state) } }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let page = not_an_id("<script>alert(1)</script>").into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
    }

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
        };
        let page = trail(Uuid::nil(), &empty, None).into_string();
        assert!(page.contains("Nothing is recorded"), "{page}");
    }
}
