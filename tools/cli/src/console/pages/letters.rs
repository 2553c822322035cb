//! Dead letters: the list with its filters, one letter whole, and the forms that replay or discard.

use maud::{Markup, html};
use pasarela_shared::contract::queue::WORK_QUEUES;
use pasarela_shared::store::dead_letters::{Filter, Letter};
use pasarela_shared::store::operator_actions::ActionRow;
use serde_json::Value;

use super::{action_form, action_table, actions_off, maybe_moment, moment, page};
use crate::console::guard::Forms;
use crate::dlq::show::{printable_body, redact};

/// Where a letter stands, in a word.
fn standing(replayed: bool, discarded: bool) -> &'static str {
    match (replayed, discarded) {
        (true, _) => "replayed",
        (_, true) => "discarded",
        _ => "open",
    }
}

/// The filter form of the list, holding what is filtered now (times as typed).
fn filter_form(filter: &Filter, since: &str, until: &str) -> Markup {
    html! {
        form id="filter" action="/dead-letters" method="get" {
            label { "queue " select name="queue" {
                option value="" { "every queue" }
                @for q in WORK_QUEUES {
                    @if filter.queue.as_deref() == Some(q) { option value=(q) selected { (q) } }
                    @else { option value=(q) { (q) } }
                }
            } }
            " "
            label { "error kind " input name="kind" size="10" value=(filter.kind.as_deref().unwrap_or("")); }
            " "
            label { "since " input name="since" size="16" placeholder="2h, 1d or RFC 3339" value=(since); }
            " "
            label { "until " input name="until" size="16" value=(until); }
            " "
            label { @if filter.closed_too { input type="checkbox" name="closed" value="on" checked; }
                    @else { input type="checkbox" name="closed" value="on"; } " replayed and discarded too" }
            " "
            button type="submit" { "Filter" }
        }
    }
}

/// The letters a filter names, newest first, with the forms that act on them all (for one queue).
pub fn letters(
    filter: &Filter,
    typed: (&str, &str),
    rows: &[Letter],
    limit: usize,
    forms: Option<&Forms>,
) -> Markup {
    let (since, until) = typed;
    let hidden = html! {
        input type="hidden" name="queue" value=(filter.queue.as_deref().unwrap_or(""));
        input type="hidden" name="kind" value=(filter.kind.as_deref().unwrap_or(""));
        input type="hidden" name="since" value=(since);
        input type="hidden" name="until" value=(until);
    };
    let open = rows
        .iter()
        .filter(|r| r.replayed_at.is_none() && r.discarded_at.is_none())
        .count();
    page(
        "Dead letters",
        html! {
            h1 { "Dead letters" }
            (filter_form(filter, since, until))
            @if rows.is_empty() {
                p.note { "No dead letters match." }
            } @else {
                table id="dead-letters" {
                    tr { th { "id" } th { "queue" } th { "message_id" } th { "kind" } th { "reason" } th { "attempts" } th { "dead since" } th { "state" } }
                    @for r in rows {
                        tr {
                            td.n { a href={ "/dead-letters/" (r.id) } { (r.id) } }
                            td { (r.queue) }
                            td { @if let Some(m) = &r.message_id { a href={ "/search?q=" (m) } { code { (m) } } } }
                            td { (r.kind) }
                            td { (r.reason) }
                            td.n { (r.attempts.map_or(String::new(), |a| a.to_string())) }
                            td { (moment(&r.created_at)) }
                            td { (standing(r.replayed_at.is_some(), r.discarded_at.is_some())) }
                        }
                    }
                }
                @if rows.len() >= limit { p.note { "The newest " (limit) " are shown: narrow the filter to act on the rest." } }
            }
            @if open > 0 {
                (actions_off(forms))
                @if filter.queue.is_some() {
                    (action_form(forms, "/dead-letters/replay", &format!("Replay the {open} open letter(s) this filter names"),
                        html! { (hidden) p.note { "Sent back to their work queue; each runs once, however often this is asked." } }))
                    (action_form(forms, "/dead-letters/discard", &format!("Discard the {open} open letter(s) this filter names"),
                        html! { (hidden) label { "Why " textarea name="reason" required {} } br; }))
                } @else if forms.is_some() {
                    p.note { "Choose a queue to replay or discard letters by filter." }
                }
            }
        },
    )
}

/// Whether a field's name says it holds a destination.
fn is_personal(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["mobile", "email", "phone", "destination"]
        .iter()
        .any(|w| name.contains(w))
}

/// Masks the values of destination fields, as the reports show them; a `{"key", "value"}` pair
/// whose key names a destination (DANAConnect's `COD1_MOBILE`) has its value masked too.
fn mask_destinations(value: &Value) -> Value {
    match value {
        Value::Object(map)
            if map
                .get("key")
                .and_then(Value::as_str)
                .is_some_and(is_personal)
                && map.get("value").is_some_and(Value::is_string) =>
        {
            let mut masked = map.clone();
            if let Some(Value::String(v)) = map.get("value") {
                masked.insert("value".into(), Value::String(mask(v)));
            }
            Value::Object(masked)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let personal = is_personal(k);
                    match v {
                        Value::String(s) if personal => (k.clone(), Value::String(mask(s))),
                        other => (k.clone(), mask_destinations(other)),
                    }
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(mask_destinations).collect()),
        other => other.clone(),
    }
}

/// `+573001234567` → `+5730*****567`; `ana@example.com` → `a**@example.com`.
fn mask(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    if let Some(at) = s.find('@') {
        let first: String = chars.iter().take(1).collect();
        let stars = "*".repeat(s[..at].chars().count().saturating_sub(1).max(2));
        return format!("{first}{stars}{}", &s[at..]);
    }
    if chars.len() > 8 {
        let head: String = chars[..5].iter().collect();
        let tail: String = chars[chars.len() - 3..].iter().collect();
        format!("{head}{}{tail}", "*".repeat(chars.len() - 8))
    } else {
        "*".repeat(chars.len())
    }
}

/// The JSON shown for a letter's body: secrets redacted, destinations masked.
pub fn shown_body(body: Option<&[u8]>) -> String {
    let body = mask_destinations(&printable_body(body));
    serde_json::to_string_pretty(&body).unwrap_or_default()
}

/// One letter whole, the forms that act on it, and what operators did to it.
pub fn letter(letter: &Letter, actions: &[ActionRow], forms: Option<&Forms>) -> Markup {
    let open = letter.replayed_at.is_none() && letter.discarded_at.is_none();
    let headers = letter
        .headers
        .as_ref()
        .map(|h| serde_json::to_string_pretty(&redact(h)).unwrap_or_default())
        .unwrap_or_default();
    page(
        &format!("Dead letter {}", letter.id),
        html! {
            h1 { "Dead letter " (letter.id) }
            table id="letter" {
                tr { th { "queue" } td { (letter.queue) } }
                tr { th { "message_id" } td { @if let Some(m) = &letter.message_id { a href={ "/search?q=" (m) } { code { (m) } } } } }
                tr { th { "kind" } td { (letter.kind) } }
                tr { th { "reason" } td.bad { (letter.reason) } }
                tr { th { "attempts" } td.n { (letter.attempts.map_or(String::new(), |a| a.to_string())) } }
                tr { th { "dead since" } td { (moment(&letter.created_at)) } }
                tr { th { "state" } td id="state" { (standing(letter.replayed_at.is_some(), letter.discarded_at.is_some())) } }
                tr { th { "replayed" } td { (maybe_moment(&letter.replayed_at)) } }
                tr { th { "discarded" } td { (maybe_moment(&letter.discarded_at)) } }
                @if let Some(why) = &letter.discard_reason { tr { th { "discarded because" } td { (why) } } }
            }
            @if open {
                (actions_off(forms))
                (action_form(forms, &format!("/dead-letters/{}/replay", letter.id), "Replay",
                    html! { p.note { "Sent back to " (letter.queue) " to start over; it runs once, however often this is asked." } }))
                (action_form(forms, &format!("/dead-letters/{}/discard", letter.id), "Discard",
                    html! { label { "Why " textarea name="reason" required {} } br; }))
            }
            h2 { "Body" }
            p.note { "Secrets and codes redacted, destinations masked." }
            pre id="body" { (shown_body(letter.body.as_deref())) }
            h2 { "Headers" }
            pre { (headers) }
            h2 { "Operator actions" }
            (action_table(actions))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_are_masked_and_codes_redacted() {
        let body = br#"{"destination":{"mobile":"+573001234567","email":"ana@example.com"},"code":"123456","tenant":"acme","values":[{"key":"COD1_MOBILE","value":"+573009876543"}]}"#;
        let shown = shown_body(Some(body));
        assert!(shown.contains("+5730*****567"), "{shown}");
        assert!(shown.contains("a**@example.com"), "{shown}");
        assert!(!shown.contains("123456"), "{shown}");
        assert!(shown.contains("acme"), "{shown}");
        assert!(
            !shown.contains("+573009876543") && shown.contains("+5730*****543"),
            "{shown}"
        );
    }
}
