//! What an operator does from the console: replay or discard dead letters, redeliver client
//! webhooks, re-enable an endpoint. Each is admitted only when actions are on, the request comes from
//! the console's own page and carries its form's token; each is recorded in `operator_actions` before
//! it is carried out, so the same form sent twice is carried out once; each answers with a redirect
//! to the page that shows what came of it.

use std::collections::HashSet;

use axum::Extension;
use axum::extract::{Form, FromRequest, FromRequestParts, Path, Request};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use pasarela_shared::contract::queue::WORK_QUEUES;
use pasarela_shared::store::dead_letters::{self, Mark, Selector};
use pasarela_shared::store::operator_actions::{self, Begun, NewAction};
use pasarela_shared::store::webhook_jobs::{self, Redelivery};
use uuid::Uuid;

use super::guard::{self, Operator};
use super::{Shared, pages, typed_time};
use crate::dlq;

/// Letters one action by filter marks at most.
const SET_LIMIT: i64 = 1000;

/// What every action's form carries: its one-time id and its token.
#[derive(Debug, serde::Deserialize)]
pub struct ActionForm {
    action_id: Uuid,
    #[serde(default)]
    form_token: String,
    /// Why, for a discard.
    #[serde(default)]
    reason: String,
    /// A work queue, for actions by filter.
    #[serde(default)]
    queue: String,
    /// An error kind, for actions by filter.
    #[serde(default)]
    kind: String,
    /// A time as typed, for actions by filter or redeliveries.
    #[serde(default)]
    since: String,
    /// A time as typed, for actions by filter.
    #[serde(default)]
    until: String,
    /// An endpoint, for re-enabling or redelivering.
    #[serde(default)]
    url: String,
    /// A document, for redelivering its webhooks.
    #[serde(default)]
    document_id: String,
}

/// An action that was let in: actions are on, the browser says it came from the console's own page,
/// and its form carries the token made for it. Checked here, before a handler reads anything.
pub struct Ask {
    console: Shared,
    operator: Operator,
    form: ActionForm,
}

impl FromRequest<Shared> for Ask {
    type Rejection = Response;

    async fn from_request(request: Request, console: &Shared) -> Result<Self, Self::Rejection> {
        let Some(forms) = console.forms.as_ref() else {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "Actions are off: the console runs read-only (PASARELA_CONSOLE_ACTIONS=true turns them on).",
            ));
        };
        let (mut parts, body) = request.into_parts();
        if let Some(why) = guard::cross_site(&parts.headers) {
            return Err(refuse(StatusCode::FORBIDDEN, &format!("refused: {why}")));
        }
        let Extension(operator) = Extension::<Operator>::from_request_parts(&mut parts, console)
            .await
            .map_err(IntoResponse::into_response)?;
        let Form(form) =
            Form::<ActionForm>::from_request(Request::from_parts(parts, body), console)
                .await
                .map_err(IntoResponse::into_response)?;
        if !forms.verify(form.action_id, &form.form_token) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "refused: the form's token is missing or wrong; reload the page",
            ));
        }
        Ok(Self {
            console: console.clone(),
            operator,
            form,
        })
    }
}

impl Ask {
    /// Records the action (`action` on `target`, with the form's reason when it gave one) before it
    /// is carried out; `Err` is the redirect to `back` when the same form was sent before.
    async fn begin(&self, action: &str, target: &str, back: &str) -> Result<(), Response> {
        let reason = self.form.reason.trim();
        let record = NewAction {
            action_id: self.form.action_id,
            operator: &self.operator.0,
            action,
            target,
            reason: (!reason.is_empty()).then_some(reason),
        };
        match operator_actions::begin(&self.console.database, &record).await {
            Ok(Begun::Fresh) => Ok(()),
            Ok(Begun::Seen(_)) => Err(Redirect::to(back).into_response()),
            Err(e) => Err(super::unavailable("the action could not be recorded", e)),
        }
    }

    /// Records what came of it and goes back to `back` (303: the browser fetches the page with GET,
    /// and reloading it sends nothing again).
    async fn finish(&self, outcome: &str, back: &str) -> Response {
        let db = &self.console.database;
        if let Err(e) = operator_actions::finish(db, self.form.action_id, outcome).await {
            return super::unavailable(&format!("done ({outcome}), but not recorded"), e);
        }
        Redirect::to(back).into_response()
    }
}

/// How an operator action names dead letter `id` (a trailing space, so `42` does not find `420`).
pub fn letter_target(id: i64) -> String {
    format!("dead letter {id} ")
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, Html(pages::refused(why).into_string())).into_response()
}

/// Marks the letters, takes their messages from the broker (replayed or discarded), and opens again
/// the replayed letters whose message the broker did not hold. Answers the outcome in words.
async fn act_on_letters(
    console: &Shared,
    queue: &str,
    selector: &Selector,
    limit: i64,
    mark: Mark<'_>,
) -> String {
    let db = &console.database;
    let replay = matches!(mark, Mark::Replayed);
    let claimed = match dead_letters::claim(db, queue, selector, limit, mark).await {
        Ok(c) => c,
        Err(e) => return format!("failed: the letters could not be marked: {e}"),
    };
    if claimed.is_empty() {
        return "nothing done: no open letter matched (already replayed or discarded)".into();
    }
    let ids: HashSet<String> = claimed.iter().filter_map(|(_, m)| m.clone()).collect();
    let (done, failure) = dlq::carry_out(&console.ctx, queue, ids, replay).await;
    let done: HashSet<&str> = done.iter().map(String::as_str).collect();
    let missing: Vec<i64> = claimed
        .iter()
        .filter(|(_, m)| !m.as_deref().is_some_and(|m| done.contains(m)))
        .map(|(id, _)| *id)
        .collect();
    let verb = if replay { "replayed" } else { "discarded" };
    let mut outcome = format!(
        "{verb} {} of {} letter(s) ({})",
        claimed.len() - missing.len(),
        claimed.len(),
        claimed
            .iter()
            .map(|(id, _)| id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !missing.is_empty() {
        let ids = missing
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if replay {
            let _ = dead_letters::reopen(db, &missing).await;
            outcome.push_str(&format!("; the broker held no copy of {ids}: left open"));
        } else {
            outcome.push_str(&format!(
                "; the broker held no copy of {ids}: marked discarded"
            ));
        }
    }
    if let Some(why) = failure {
        outcome.push_str(&format!("; the broker: {why:#}"));
    }
    outcome
}

async fn on_letter(ask: Ask, id: i64, discard: bool) -> Response {
    let reason = ask.form.reason.trim();
    if discard && reason.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "A discard needs a reason: say why the letter is thrown away.",
        );
    }
    let letter = match dead_letters::letter(&ask.console.database, &id.to_string()).await {
        Ok(Some(l)) if l.id == id => l,
        Ok(_) => return refuse(StatusCode::NOT_FOUND, &format!("No dead letter {id}.")),
        Err(e) => return super::unavailable("the database did not answer", e),
    };
    let back = format!("/dead-letters/{id}");
    let target = format!(
        "{}of {} (message {})",
        letter_target(id),
        letter.queue,
        letter.message_id.as_deref().unwrap_or("-")
    );
    let verb = if discard { "discard" } else { "replay" };
    if let Err(answer) = ask.begin(verb, &target, &back).await {
        return answer;
    }
    let selector = Selector {
        ids: vec![id],
        ..Default::default()
    };
    let mark = if discard {
        Mark::Discarded(reason)
    } else {
        Mark::Replayed
    };
    let outcome = act_on_letters(&ask.console, &letter.queue, &selector, 1, mark).await;
    ask.finish(&outcome, &back).await
}

/// `POST /dead-letters/{id}/replay`.
pub async fn replay_letter(Path(id): Path<i64>, ask: Ask) -> Response {
    on_letter(ask, id, false).await
}

/// `POST /dead-letters/{id}/discard`.
pub async fn discard_letter(Path(id): Path<i64>, ask: Ask) -> Response {
    on_letter(ask, id, true).await
}

async fn on_letters(ask: Ask, discard: bool) -> Response {
    let form = &ask.form;
    let reason = form.reason.trim();
    if discard && reason.is_empty() {
        return refuse(
            StatusCode::BAD_REQUEST,
            "A discard needs a reason: say why the letters are thrown away.",
        );
    }
    let queue = form.queue.trim();
    if !WORK_QUEUES.contains(&queue) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Choose a work queue to act on letters by filter.",
        );
    }
    let (since, until) = match (
        typed_time("since", &form.since),
        typed_time("until", &form.until),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(why), _) | (_, Err(why)) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
    let kind = Some(form.kind.trim().to_string()).filter(|k| !k.is_empty());
    let target = format!(
        "dead letters of {queue} (kind {}, since {}, until {})",
        kind.as_deref().unwrap_or("any"),
        form.since.trim(),
        form.until.trim()
    );
    let back = format!(
        "/dead-letters?queue={queue}&closed=on{}",
        kind.as_deref()
            .map(|k| format!("&kind={k}"))
            .unwrap_or_default()
    );
    let verb = if discard { "discard" } else { "replay" };
    if let Err(answer) = ask.begin(verb, &target, &back).await {
        return answer;
    }
    let selector = Selector {
        ids: Vec::new(),
        kind,
        since,
        until,
    };
    let mark = if discard {
        Mark::Discarded(reason)
    } else {
        Mark::Replayed
    };
    let outcome = act_on_letters(&ask.console, queue, &selector, SET_LIMIT, mark).await;
    ask.finish(&outcome, &back).await
}

/// `POST /dead-letters/replay`: the open letters a filter names.
pub async fn replay_letters(ask: Ask) -> Response {
    on_letters(ask, false).await
}

/// `POST /dead-letters/discard`: the open letters a filter names.
pub async fn discard_letters(ask: Ask) -> Response {
    on_letters(ask, true).await
}

/// Redelivers one document's webhooks, back to its page.
async fn redeliver_one(ask: Ask, id: Uuid) -> Response {
    let back = format!("/search?q={id}");
    if let Err(answer) = ask
        .begin("redeliver", &format!("document {id}"), &back)
        .await
    {
        return answer;
    }
    let outcome = match webhook_jobs::redeliver(&ask.console.database, id).await {
        Ok(Redelivery::UnknownDocument) => "nothing done: no such document".to_string(),
        Ok(Redelivery::NoJobs(_)) => "nothing done: the document has no client webhook".to_string(),
        Ok(Redelivery::Done { reenabled, steps }) => format!(
            "{} webhook(s) due now{}",
            steps.len(),
            if reenabled.is_empty() {
                String::new()
            } else {
                format!("; {} endpoint(s) re-enabled", reenabled.len())
            }
        ),
        Err(e) => format!("failed: {e}"),
    };
    ask.finish(&outcome, &back).await
}

/// `POST /documents/{id}/redeliver`.
pub async fn redeliver_document(Path(id): Path<Uuid>, ask: Ask) -> Response {
    redeliver_one(ask, id).await
}

/// `POST /webhooks/redeliver-document`: the document typed in the form.
pub async fn redeliver_document_form(ask: Ask) -> Response {
    let Ok(id) = Uuid::parse_str(ask.form.document_id.trim()) else {
        return refuse(StatusCode::BAD_REQUEST, "A document_id is a UUID.");
    };
    redeliver_one(ask, id).await
}

/// `POST /webhooks/redeliver`: every document with a webhook given up on since a time.
pub async fn redeliver_failed(ask: Ask) -> Response {
    let form = &ask.form;
    let since = match typed_time("since", &form.since) {
        Ok(Some(s)) => s,
        Ok(None) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Say since when (2h, 1d or a time).",
            );
        }
        Err(why) => return refuse(StatusCode::BAD_REQUEST, &why),
    };
    let url = Some(form.url.trim()).filter(|u| !u.is_empty());
    let target = format!(
        "webhooks failed since {} to {}",
        form.since.trim(),
        url.unwrap_or("any endpoint")
    );
    if let Err(answer) = ask.begin("redeliver", &target, "/webhooks").await {
        return answer;
    }
    let db = &ask.console.database;
    let outcome = match webhook_jobs::redeliver_failed_since(db, since, url, SET_LIMIT).await {
        Ok(documents) => format!(
            "redelivered the webhooks of {} document(s)",
            documents.len()
        ),
        Err(e) => format!("failed: {e}"),
    };
    ask.finish(&outcome, "/webhooks").await
}

/// `POST /webhooks/reenable`: an endpoint disabled by a 410.
pub async fn reenable(ask: Ask) -> Response {
    let url = ask.form.url.trim();
    if url.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "Which endpoint?");
    }
    if let Err(answer) = ask
        .begin("reenable", &format!("endpoint {url}"), "/webhooks")
        .await
    {
        return answer;
    }
    let outcome = match webhook_jobs::reenable_endpoint(&ask.console.database, url).await {
        Ok(Some(_)) => "re-enabled: its next webhooks are sent".to_string(),
        Ok(None) => "nothing done: it was not disabled".to_string(),
        Err(e) => format!("failed: {e}"),
    };
    ask.finish(&outcome, "/webhooks").await
}
