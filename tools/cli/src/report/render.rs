//! The report as aligned text tables or as CSV, one section at a time. JSON is the report's serde form.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use super::Section;
use super::model::{OtpReport, OtpState};

/// How a column lines up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Padded on the right.
    Left,
    /// Padded on the left (numbers).
    Right,
}

/// Rows under a header row, each column as wide as its widest cell, two spaces between columns.
pub fn aligned(header: &[(&str, Align)], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|(h, _)| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let titles: Vec<String> = header.iter().map(|(h, _)| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&titles).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let width = widths[i];
            if i > 0 {
                line.push_str("  ");
            }
            match header[i].1 {
                Align::Left => {
                    let _ = write!(line, "{cell:<width$}");
                }
                Align::Right => {
                    let _ = write!(line, "{cell:>width$}");
                }
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A time as the table prints it: UTC, to the second.
fn table_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A time as CSV carries it: RFC 3339, UTC.
fn csv_time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The report as text: every section under its heading.
pub fn table(report: &OtpReport) -> String {
    let mut out = String::new();
    let f = &report.filters;
    let _ = writeln!(
        out,
        "OTP report, created {} to {} UTC",
        table_time(&f.since),
        table_time(&f.until)
    );
    let filters: Vec<String> = [
        ("tenant", f.tenants.join("|")),
        ("destination", f.destinations.join("|")),
        ("state", f.states.join("|")),
        ("channel", f.channels.join("|")),
        ("provider", f.providers.join("|")),
    ]
    .into_iter()
    .filter(|(_, values)| !values.is_empty())
    .map(|(name, values)| format!("{name} {values}"))
    .collect();
    if !filters.is_empty() {
        let _ = writeln!(out, "only {}", filters.join(", "));
    }

    let total = report.states.total();
    let _ = writeln!(
        out,
        "\nDetail ({} of {total} OTPs, newest first{})",
        report.detail.len(),
        if (report.detail.len() as i64) < total {
            "; --limit shows more"
        } else {
            ""
        }
    );
    let dash = || "-".to_string();
    let rows: Vec<Vec<String>> = report
        .detail
        .iter()
        .map(|d| {
            vec![
                d.transaction_id.to_string(),
                d.vendor_transaction_id.clone().unwrap_or_else(dash),
                d.user.clone(),
                d.destination.clone().unwrap_or_else(dash),
                d.channel.clone(),
                d.provider.clone(),
                d.generated_at.as_ref().map_or_else(dash, table_time),
                d.validated_at.as_ref().map_or_else(dash, table_time),
                d.state.clone(),
            ]
        })
        .collect();
    out.push_str(&aligned(
        &[
            ("TRANSACTION ID", Align::Left),
            ("VENDOR TRANSACTION ID", Align::Left),
            ("USER", Align::Left),
            ("DESTINATION", Align::Left),
            ("CHANNEL", Align::Left),
            ("PROVIDER", Align::Left),
            ("GENERATED AT", Align::Left),
            ("VALIDATED AT", Align::Left),
            ("STATE", Align::Left),
        ],
        &rows,
    ));

    let _ = writeln!(out, "\nStates");
    let rows: Vec<Vec<String>> = OtpState::ALL
        .iter()
        .map(|s| {
            vec![
                s.as_str().to_string(),
                s.document_name().to_string(),
                report.states.get(*s).to_string(),
            ]
        })
        .collect();
    out.push_str(&aligned(
        &[
            ("STATE", Align::Left),
            ("IN THE DOCUMENT", Align::Left),
            ("OTPS", Align::Right),
        ],
        &rows,
    ));

    let _ = writeln!(out, "\nSends per channel per hour (UTC)");
    if report.hourly.is_empty() {
        let _ = writeln!(out, "no sends");
    } else {
        let rows: Vec<Vec<String>> = report
            .hourly
            .iter()
            .map(|h| {
                vec![
                    h.hour.format("%Y-%m-%d %H:00").to_string(),
                    h.sms.to_string(),
                    h.email.to_string(),
                    h.whatsapp.to_string(),
                    h.voice.to_string(),
                    h.total.to_string(),
                ]
            })
            .collect();
        out.push_str(&aligned(
            &[
                ("HOUR", Align::Left),
                ("SMS", Align::Right),
                ("EMAIL", Align::Right),
                ("WHATSAPP", Align::Right),
                ("VOICE", Align::Right),
                ("TOTAL", Align::Right),
            ],
            &rows,
        ));
    }

    let light = &report.traffic_light;
    let _ = writeln!(out, "\nValidation traffic light: {}", light.description);
    let _ = writeln!(out, "generated  {}", light.generated);
    let _ = writeln!(
        out,
        "validated  {} ({} successfully)",
        light.validated, light.validated_ok
    );
    let _ = writeln!(out, "measured   {}", light.measured);
    match (light.ratio_percent, light.band, light.label) {
        (Some(percent), Some(band), Some(label)) => {
            let _ = writeln!(out, "ratio      {percent} %");
            let _ = writeln!(out, "band       {band} ({label})");
        }
        _ => {
            let _ = writeln!(out, "band       none: no OTPs generated in this window");
        }
    }

    let _ = writeln!(out, "\nFraud-guard refusals");
    let limits = &report.limits;
    out.push_str(&aligned(
        &[("LIMIT", Align::Left), ("SENDS REFUSED", Align::Right)],
        &[
            vec!["destination".into(), limits.destination.to_string()],
            vec!["tenant".into(), limits.tenant.to_string()],
            vec!["country".into(), limits.country.to_string()],
        ],
    ));
    out
}

/// One section as CSV, header row first.
pub fn csv(report: &OtpReport, section: Section) -> anyhow::Result<String> {
    let mut w = ::csv::Writer::from_writer(Vec::new());
    let opt_time = |t: &Option<DateTime<Utc>>| t.as_ref().map(csv_time).unwrap_or_default();
    match section {
        Section::Detail => {
            w.write_record([
                "transaction_id",
                "vendor_transaction_id",
                "user",
                "destination",
                "channel",
                "provider",
                "generated_at",
                "validated_at",
                "state",
            ])?;
            for d in &report.detail {
                w.write_record([
                    d.transaction_id.to_string(),
                    d.vendor_transaction_id.clone().unwrap_or_default(),
                    d.user.clone(),
                    d.destination.clone().unwrap_or_default(),
                    d.channel.clone(),
                    d.provider.clone(),
                    opt_time(&d.generated_at),
                    opt_time(&d.validated_at),
                    d.state.clone(),
                ])?;
            }
        }
        Section::States => {
            w.write_record(["state", "otps"])?;
            for s in OtpState::ALL {
                w.write_record([s.as_str().to_string(), report.states.get(s).to_string()])?;
            }
        }
        Section::Hourly => {
            w.write_record(["hour", "sms", "email", "whatsapp", "voice", "total"])?;
            for h in &report.hourly {
                w.write_record([
                    csv_time(&h.hour),
                    h.sms.to_string(),
                    h.email.to_string(),
                    h.whatsapp.to_string(),
                    h.voice.to_string(),
                    h.total.to_string(),
                ])?;
            }
        }
        Section::Light => {
            let l = &report.traffic_light;
            w.write_record([
                "measure",
                "generated",
                "validated",
                "validated_ok",
                "measured",
                "ratio_percent",
                "band",
                "label",
            ])?;
            w.write_record([
                l.measure.as_str().to_string(),
                l.generated.to_string(),
                l.validated.to_string(),
                l.validated_ok.to_string(),
                l.measured.to_string(),
                l.ratio_percent.map(|p| p.to_string()).unwrap_or_default(),
                l.band.unwrap_or_default().to_string(),
                l.label.unwrap_or_default().to_string(),
            ])?;
        }
        Section::Limits => {
            let l = &report.limits;
            w.write_record(["limit", "refused"])?;
            for (name, n) in [
                ("destination", l.destination),
                ("tenant", l.tenant),
                ("country", l.country),
            ] {
                w.write_record([name.to_string(), n.to_string()])?;
            }
        }
    }
    Ok(String::from_utf8(w.into_inner()?)?)
}

#[cfg(test)]
mod tests {
    use super::super::model::{
        DetailRow, Filters, HourRow, LimitCounts, Measure, StateCounts, TrafficLight,
    };
    use super::*;
    use uuid::Uuid;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    fn report(generated: i64, validated: i64) -> OtpReport {
        OtpReport {
            filters: Filters {
                since: at("2024-05-01T00:00:00Z"),
                until: at("2024-05-02T00:00:00Z"),
                tenants: vec!["acme".into()],
                destinations: vec!["a**@example.com".into()],
                states: vec![],
                channels: vec![],
                providers: vec![],
                limit: Some(1),
            },
            detail: vec![DetailRow {
                transaction_id: Uuid::nil(),
                vendor_transaction_id: Some("013ff9a3".into()),
                user: "acme, \"east\"".into(),
                destination: Some("a**@example.com".into()),
                channel: "email".into(),
                provider: "aldeamo".into(),
                generated_at: Some(at("2024-05-01T10:05:00Z")),
                validated_at: None,
                state: "generated".into(),
            }],
            states: StateCounts {
                generated: 1,
                errored: 2,
                ..Default::default()
            },
            hourly: vec![HourRow {
                hour: at("2024-05-01T10:00:00Z"),
                sms: 2,
                email: 1,
                whatsapp: 0,
                voice: 0,
                total: 3,
            }],
            traffic_light: TrafficLight::new(Measure::Validated, generated, validated, 0),
            limits: LimitCounts {
                destination: 2,
                ..Default::default()
            },
        }
    }

    #[test]
    fn columns_line_up_and_numbers_align_right() {
        let text = aligned(
            &[("NAME", Align::Left), ("N", Align::Right)],
            &[
                vec!["a".into(), "1".into()],
                vec!["longer".into(), "100".into()],
            ],
        );
        assert_eq!(text, "NAME      N\na         1\nlonger  100\n");
    }

    #[test]
    fn the_table_has_every_section_and_all_five_states() {
        let text = table(&report(4, 1));
        for heading in [
            "OTP report, created 2024-05-01 00:00:00 to 2024-05-02 00:00:00 UTC",
            "only tenant acme, destination a**@example.com",
            "Detail (1 of 3 OTPs, newest first; --limit shows more)",
            "\nStates\n",
            "Sends per channel per hour (UTC)",
            "Validation traffic light",
            "Fraud-guard refusals",
        ] {
            assert!(text.contains(heading), "{heading:?} in\n{text}");
        }
        for line in [
            "generated         generado                1",
            "validated_ok      validado exitoso        0",
            "validated_failed  validado no exitoso     0",
            "expired           vencido                 0",
            "errored           errado                  2",
            "2024-05-01 10:00    2      1         0      0      3",
            "ratio      25 %",
            "band       effective (Validaciones efectivas)",
            "destination              2",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
    }

    #[test]
    fn the_table_says_when_there_is_no_band() {
        let text = table(&report(0, 0));
        assert!(text.contains("no OTPs generated"), "{text}");
        assert!(!text.contains("ratio"), "{text}");
    }

    #[test]
    fn csv_sections_have_a_header_and_quote_per_rfc_4180() {
        let r = report(3, 2);
        let detail = csv(&r, Section::Detail).unwrap();
        assert_eq!(
            detail,
            "transaction_id,vendor_transaction_id,user,destination,channel,provider,generated_at,\
             validated_at,state\n\
             00000000-0000-0000-0000-000000000000,013ff9a3,\"acme, \"\"east\"\"\",a**@example.com,\
             email,aldeamo,2024-05-01T10:05:00Z,,generated\n"
        );
        let states = csv(&r, Section::States).unwrap();
        assert_eq!(states.lines().count(), 6, "{states}");
        assert!(states.contains("\nerrored,2\n"), "{states}");
        let light = csv(&r, Section::Light).unwrap();
        assert_eq!(
            light,
            "measure,generated,validated,validated_ok,measured,ratio_percent,band,label\n\
             validated,3,2,0,2,67,regular,Validaciones regulares\n"
        );
        let hourly = csv(&r, Section::Hourly).unwrap();
        assert_eq!(
            hourly,
            "hour,sms,email,whatsapp,voice,total\n2024-05-01T10:00:00Z,2,1,0,0,3\n"
        );
        let limits = csv(&r, Section::Limits).unwrap();
        assert_eq!(
            limits,
            "limit,refused\ndestination,2\ntenant,0\ncountry,0\n"
        );
        let empty = csv(&report(0, 0), Section::Light).unwrap();
        assert_eq!(
            empty,
            "measure,generated,validated,validated_ok,measured,ratio_percent,band,label\n\
             validated,0,0,0,0,,,\n"
        );
    }

    #[test]
    fn json_has_the_promised_shape() {
        let value = serde_json::to_value(report(3, 2)).unwrap();
        for key in [
            "filters",
            "detail",
            "states",
            "hourly",
            "traffic_light",
            "limits",
        ] {
            assert!(value.get(key).is_some(), "{key} in {value}");
        }
        assert_eq!(value["traffic_light"]["ratio_percent"], 67);
        assert_eq!(value["traffic_light"]["band"], "regular");
        assert_eq!(value["states"]["errored"], 2);
        assert_eq!(value["detail"][0]["validated_at"], serde_json::Value::Null);
        assert_eq!(value["filters"]["since"], "2024-05-01T00:00:00Z");
    }
}
