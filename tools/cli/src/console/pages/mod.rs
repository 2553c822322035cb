//! The console's pages as HTML (maud: templates checked at compile time, every value escaped).

mod letters;
mod report;
mod trail;
mod webhooks;

pub use letters::*;
pub use report::*;
pub use trail::*;
pub use webhooks::*;

use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use pasarela_shared::store::operator_actions::ActionRow;

use super::guard::Forms;
use crate::queues::View;

/// The stylesheet, served at `/console.css` (the content policy allows no inline style).
pub const STYLESHEET: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1d2330}\
header{background:#1d2330;color:#fff;padding:.6em 1.2em;display:flex;gap:1.5em;align-items:center}\
header a{color:#fff;text-decoration:none}header strong{margin-right:1em}\
main{padding:1em 1.2em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
th,td{border-bottom:1px solid #d8dce3;padding:.3em .8em;text-align:left;vertical-align:top}\
th{background:#f1f3f6}td.n{text-align:right;font-variant-numeric:tabular-nums}\
input[type=search]{width:32em;padding:.35em}.bad{color:#a3161b}.ok{color:#11683a}\
.note{color:#5b6475}code{font-size:13px}pre{background:#f6f7f9;padding:.6em;overflow:auto;max-width:70em}\
form.inline{display:inline-block;margin:0 .8em .8em 0}form.act{margin:.6em 0;padding:.6em;\
border:1px solid #d8dce3;max-width:44em}textarea{width:40em;height:3.5em}\
.light{display:inline-block;padding:.2em .8em;border-radius:1em;color:#fff;font-weight:600}\
.light.green{background:#11683a}.light.yellow{background:#b07d00}.light.red{background:#a3161b}\
svg text{font:11px system-ui,sans-serif;fill:#5b6475}svg .bar{fill:#3465a4}svg .bar2{fill:#a3161b}";

/// A whole page: the header's links, then `body`.
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
                    a href="/dead-letters" { "Dead letters" }
                    a href="/webhooks" { "Webhooks" }
                    a href="/report/otp" { "OTP report" }
                    a href="/actions" { "Actions" }
                }
                main { (body) }
            }
        }
    }
}

fn search_form(value: &str) -> Markup {
    html! {
        form action="/search" method="get" {
            label for="q" { "Id, trace id, tenant or destination " }
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

/// A form that asks for an action: POSTed to `path` with its one-time id and form token, `fields`
/// inside, `button` to send it. Without `forms` (actions are off) a note says so instead.
fn action_form(forms: Option<&Forms>, path: &str, button: &str, fields: Markup) -> Markup {
    let Some(forms) = forms else {
        return html! {};
    };
    let (id, token) = forms.fresh();
    html! {
        form.act method="post" action=(path) {
            input type="hidden" name="action_id" value=(id);
            input type="hidden" name="form_token" value=(token);
            (fields)
            button type="submit" { (button) }
        }
    }
}

/// Says that actions are off, where a page would offer them.
fn actions_off(forms: Option<&Forms>) -> Markup {
    match forms {
        Some(_) => html! {},
        None => html! {
            p.note { "Actions are off: the console runs read-only (PASARELA_CONSOLE_ACTIONS=true turns them on)." }
        },
    }
}

/// The operator actions in `rows`, newest first.
fn action_table(rows: &[ActionRow]) -> Markup {
    html! {
        @if rows.is_empty() {
            p.note { "No operator actions recorded." }
        } @else {
            table id="actions" {
                tr { th { "when" } th { "who" } th { "action" } th { "on" } th { "why" } th { "outcome" } }
                @for a in rows {
                    tr {
                        td { (moment(&a.created_at)) }
                        td { (a.operator) }
                        td { (a.action) }
                        td { (a.target) }
                        td { (a.reason.as_deref().unwrap_or("")) }
                        td { (a.outcome.as_deref().unwrap_or("(not finished)")) }
                    }
                }
            }
        }
    }
}

/// The start page: the search box.
pub fn home() -> Markup {
    page(
        "Search",
        html! {
            h1 { "Find a request" }
            (search_form(""))
            p.note { "An OTP request_id, any message_id, a document_id, a call_id or a trace id; or a tenant, or a destination (a mobile number or an e-mail address, typed in full)." }
        },
    )
}

/// Every operator action, newest first.
pub fn actions(rows: &[ActionRow]) -> Markup {
    page(
        "Actions",
        html! {
            h1 { "Operator actions" }
            p.note { "Every action taken from the console: who, what, on what, why, and what came of it." }
            (action_table(rows))
        },
    )
}

/// What became of an action the page asked for (shown when it cannot simply go back).
pub fn refused(why: &str) -> Markup {
    page("Refused", html! { h1 { "Refused" } p.bad { (why) } })
}

/// A page that could not be made.
pub fn failed(why: &str) -> Markup {
    page(
        "Unavailable",
        html! { h1 { "Unavailable" } p.bad { (why) } },
    )
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
        let page = refused("<script>alert(1)</script>").into_string();
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("&lt;script&gt;"), "{page}");
    }
}
