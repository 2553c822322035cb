//! The OTP report as a page: the same numbers as `pasarela report otp` (one query layer serves both),
//! with the validation traffic light and the sends per hour drawn.

use maud::{Markup, PreEscaped, html};

use super::{maybe_moment, moment, page};
use crate::report::model::{OtpReport, OtpState};

/// The colour class of a traffic-light band.
fn colour(band: &str) -> &'static str {
    match band {
        "effective" => "green",
        "in danger" => "red",
        _ => "yellow",
    }
}

/// Sends per hour as an inline SVG bar chart (no script, no image fetched: the content policy
/// allows neither).
fn hourly_chart(report: &OtpReport) -> Markup {
    const WIDTH: f64 = 720.0;
    const HEIGHT: f64 = 160.0;
    let hours = &report.hourly;
    if hours.is_empty() {
        return html! { p.note { "No sends in the window." } };
    }
    let peak = hours.iter().map(|h| h.total).max().unwrap_or(1).max(1) as f64;
    let step = WIDTH / hours.len() as f64;
    let bar = (step * 0.8).clamp(1.0, 40.0);
    let mut bars = String::new();
    for (i, h) in hours.iter().enumerate() {
        let height = h.total as f64 / peak * (HEIGHT - 34.0);
        bars.push_str(&format!(
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{bar:.1}\" height=\"{height:.1}\"><title>{} UTC: {} sends</title></rect>",
            i as f64 * step,
            HEIGHT - 14.0 - height,
            h.hour.format("%Y-%m-%d %H:00"),
            h.total
        ));
    }
    let first = hours[0].hour.format("%m-%d %H:00").to_string();
    let last = hours[hours.len() - 1]
        .hour
        .format("%m-%d %H:00")
        .to_string();
    html! {
        svg id="hourly" width=(WIDTH) height=(HEIGHT) viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label="OTP sends per hour" {
            (PreEscaped(bars))
            text x="0" y=(HEIGHT - 2.0) { (first) }
            text x=(WIDTH - 70.0) y=(HEIGHT - 2.0) { (last) }
            text x="0" y="10" { "peak " (peak as i64) " sends/hour" }
        }
    }
}

/// The report for the window and tenants typed (`since`, `until`, `tenant`, as typed).
pub fn otp_report(report: &OtpReport, typed: (&str, &str, &str)) -> Markup {
    let (since, until, tenant) = typed;
    let light = &report.traffic_light;
    page(
        "OTP report",
        html! {
            h1 { "OTP report" }
            form action="/report/otp" method="get" {
                label { "since " input name="since" size="16" value=(since); }
                " " label { "until " input name="until" size="16" value=(until) placeholder="now"; }
                " " label { "tenant " input name="tenant" size="16" value=(tenant); }
                " " button type="submit" { "Show" }
            }
            p.note { "Created " (moment(&report.filters.since)) " to " (moment(&report.filters.until)) "; the same numbers as pasarela report otp." }
            h2 { "Validation traffic light" }
            p id="light" {
                @match (light.band, light.ratio_percent) {
                    (Some(band), Some(percent)) => {
                        span class={ "light " (colour(band)) } { (percent) " %" }
                        " " (light.label.unwrap_or("")) " (" (band) "): " (light.description)
                    }
                    _ => { span.note { "No band: nothing generated in the window." } }
                }
            }
            p.note { (light.generated) " generated, " (light.validated) " validated, " (light.validated_ok) " validated successfully." }
            h2 { "OTPs per state" }
            table id="states" {
                tr { @for s in OtpState::ALL { th { (s.document_name()) } } th { "total" } }
                tr { @for s in OtpState::ALL { td.n { (report.states.get(s)) } } td.n { (report.states.total()) } }
            }
            h2 { "Sends per hour" }
            (hourly_chart(report))
            table {
                tr { th { "hour (UTC)" } th { "SMS" } th { "e-mail" } th { "WhatsApp" } th { "voice" } th { "total" } }
                @for h in &report.hourly {
                    tr {
                        td { (h.hour.format("%Y-%m-%d %H:00")) }
                        td.n { (h.sms) } td.n { (h.email) } td.n { (h.whatsapp) } td.n { (h.voice) } td.n { (h.total) }
                    }
                }
            }
            h2 { "Refused by the fraud guard" }
            table {
                tr { th { "destination limit" } th { "tenant limit" } th { "country" } }
                tr { td.n { (report.limits.destination) } td.n { (report.limits.tenant) } td.n { (report.limits.country) } }
            }
            h2 { "Detail" }
            p.note { "The newest " (report.detail.len()) " of " (report.states.total()) "." }
            table id="detail" {
                tr { th { "transaction" } th { "vendor transaction" } th { "user" } th { "destination" } th { "channel" }
                     th { "provider" } th { "generated" } th { "validated" } th { "state" } }
                @for d in &report.detail {
                    tr {
                        td { a href={ "/search?q=" (d.transaction_id) } { code { (d.transaction_id) } } }
                        td { code { (d.vendor_transaction_id.as_deref().unwrap_or("")) } }
                        td { (d.user) }
                        td { (d.destination.as_deref().unwrap_or("")) }
                        td { (d.channel) }
                        td { (d.provider) }
                        td { (maybe_moment(&d.generated_at)) }
                        td { (maybe_moment(&d.validated_at)) }
                        td { (d.state) }
                    }
                }
            }
        },
    )
}
