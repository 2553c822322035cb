//! What a report holds: the states and channels as the schema spells them, each section's rows, and
//! the traffic light's bands.

use chrono::{DateTime, Utc};
use clap::ValueEnum;
use pasarela_shared::store::reports::OtpRows;
use serde::Serialize;

/// The five states of an OTP in Aldeamo's reports, as `otp_requests.state` spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OtpState {
    /// Generated and sent, not validated yet (generado); `sent` names it too.
    #[value(alias = "sent")]
    Generated,
    /// Validated successfully (validado exitoso).
    #[value(name = "validated_ok")]
    ValidatedOk,
    /// A validation that did not pass (validado no exitoso).
    #[value(name = "validated_failed")]
    ValidatedFailed,
    /// Not validated in time (vencido).
    Expired,
    /// Never generated or sent (errado).
    Errored,
}

impl OtpState {
    /// Every state, in the document's order.
    pub const ALL: [OtpState; 5] = [
        OtpState::Generated,
        OtpState::ValidatedOk,
        OtpState::ValidatedFailed,
        OtpState::Expired,
        OtpState::Errored,
    ];

    /// The value in `otp_requests.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            OtpState::Generated => "generated",
            OtpState::ValidatedOk => "validated_ok",
            OtpState::ValidatedFailed => "validated_failed",
            OtpState::Expired => "expired",
            OtpState::Errored => "errored",
        }
    }

    /// The document's (Spanish) name of the state.
    pub fn document_name(self) -> &'static str {
        match self {
            OtpState::Generated => "generado",
            OtpState::ValidatedOk => "validado exitoso",
            OtpState::ValidatedFailed => "validado no exitoso",
            OtpState::Expired => "vencido",
            OtpState::Errored => "errado",
        }
    }
}

/// The channels an OTP is sent on: the same choice as `pasarela otp send --channel`.
pub use crate::otp::Channel;

/// The filters a report was made with, as the report shows them: each a list any of which matches,
/// empty when off.
#[derive(Debug, Clone, Serialize)]
pub struct Filters {
    /// Start of the window (creation time, inclusive).
    pub since: DateTime<Utc>,
    /// End of the window (creation time, inclusive).
    pub until: DateTime<Utc>,
    /// Tenants.
    pub tenants: Vec<String>,
    /// Destinations, masked like every destination in a report.
    pub destinations: Vec<String>,
    /// States.
    pub states: Vec<&'static str>,
    /// Channels.
    pub channels: Vec<&'static str>,
    /// Providers.
    pub providers: Vec<String>,
    /// Detail rows at most; `None` for all.
    pub limit: Option<u32>,
}

/// One OTP in the detailed report, as the store reads it.
pub use pasarela_shared::store::reports::DetailRow;

/// OTPs per state, every state present.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    /// Generated and sent, not validated yet.
    pub generated: i64,
    /// Validated successfully.
    pub validated_ok: i64,
    /// A validation that did not pass.
    pub validated_failed: i64,
    /// Not validated in time.
    pub expired: i64,
    /// Never generated or sent.
    pub errored: i64,
}

impl StateCounts {
    /// The count of one state.
    pub fn get(&self, state: OtpState) -> i64 {
        match state {
            OtpState::Generated => self.generated,
            OtpState::ValidatedOk => self.validated_ok,
            OtpState::ValidatedFailed => self.validated_failed,
            OtpState::Expired => self.expired,
            OtpState::Errored => self.errored,
        }
    }

    /// Every OTP counted.
    pub fn total(&self) -> i64 {
        OtpState::ALL.iter().map(|s| self.get(*s)).sum()
    }
}

/// Sends in one hour, per channel, as the store reads them.
pub use pasarela_shared::store::reports::HourRow;

/// A band of the validation traffic light, with the document's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Band {
    /// 0–25 %.
    Effective,
    /// 26–50 %.
    PartiallyEffective,
    /// 51–75 %.
    Regular,
    /// 76–100 %.
    InDanger,
}

impl Band {
    /// The band of a whole percentage; above 100 stays in danger.
    pub fn for_percent(percent: u32) -> Band {
        match percent {
            0..=25 => Band::Effective,
            26..=50 => Band::PartiallyEffective,
            51..=75 => Band::Regular,
            _ => Band::InDanger,
        }
    }

    /// The band's name.
    pub fn name(self) -> &'static str {
        match self {
            Band::Effective => "effective",
            Band::PartiallyEffective => "partially effective",
            Band::Regular => "regular",
            Band::InDanger => "in danger",
        }
    }

    /// The document's label of the band.
    pub fn label(self) -> &'static str {
        match self {
            Band::Effective => "Validaciones efectivas",
            Band::PartiallyEffective => "Validaciones parcialmente efectivas",
            Band::Regular => "Validaciones regulares",
            Band::InDanger => "Validaciones en peligro",
        }
    }
}

/// `validated` out of `generated` as a whole percent, rounded half up; `None` when nothing was
/// generated.
pub fn ratio_percent(validated: i64, generated: i64) -> Option<u32> {
    if generated <= 0 {
        return None;
    }
    let validated = validated.max(0);
    let percent = (validated.saturating_mul(200) + generated) / (2 * generated);
    Some(u32::try_from(percent).unwrap_or(u32::MAX))
}

/// What the traffic light's percentage measures (`--light`, `PASARELA_OTP_TRAFFIC_LIGHT`). The
/// document's bands (0–25 % effective … 76–100 % in danger) only make sense for a share of what went
/// wrong, so the default is the share of generated OTPs not validated successfully: codes sent and
/// never used are the mark of SMS pumping. The literal reading, validations over OTPs generated, reads
/// a perfect run as "in danger".
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    /// OTPs generated that were not validated successfully, over OTPs generated.
    Unvalidated,
    /// OTPs generated that had a validation the vendor answered, over OTPs generated.
    Validated,
}

impl Measure {
    /// The setting's words, the default first.
    pub const CHOICES: [(&'static str, Measure); 2] = [
        ("unvalidated", Measure::Unvalidated),
        ("validated", Measure::Validated),
    ];

    /// The setting's word.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Unvalidated => "unvalidated",
            Measure::Validated => "validated",
        }
    }

    /// What the percentage is, in words.
    pub fn describe(self) -> &'static str {
        match self {
            Measure::Unvalidated => "share of generated OTPs not validated successfully",
            Measure::Validated => {
                "share of generated OTPs with a validation (the document's literal reading)"
            }
        }
    }
}

/// The validation traffic light: a share of the OTPs generated, placed in the document's bands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrafficLight {
    /// What the percentage measures.
    pub measure: Measure,
    /// The same, in words.
    pub description: &'static str,
    /// OTPs generated: every OTP not errored.
    pub generated: i64,
    /// OTPs with at least one verification the vendor answered.
    pub validated: i64,
    /// OTPs validated successfully.
    pub validated_ok: i64,
    /// The OTPs the measure counts: `generated - validated_ok`, or `validated`.
    pub measured: i64,
    /// `measured / generated` as a whole percent; `None` when nothing was generated.
    pub ratio_percent: Option<u32>,
    /// The band's name.
    pub band: Option<&'static str>,
    /// The document's label of the band.
    pub label: Option<&'static str>,
}

impl TrafficLight {
    /// Places the `measure` of `generated` OTPs, `validated` of them with a validation and
    /// `validated_ok` validated successfully, in its band.
    pub fn new(measure: Measure, generated: i64, validated: i64, validated_ok: i64) -> Self {
        let measured = match measure {
            Measure::Unvalidated => (generated - validated_ok).max(0),
            Measure::Validated => validated,
        };
        let ratio_percent = ratio_percent(measured, generated);
        let band = ratio_percent.map(Band::for_percent);
        Self {
            measure,
            description: measure.describe(),
            generated,
            validated,
            validated_ok,
            measured,
            ratio_percent,
            band: band.map(Band::name),
            label: band.map(Band::label),
        }
    }
}

/// Sends the fraud guard refused, per limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LimitCounts {
    /// Too many sends to one destination.
    pub destination: i64,
    /// Too many sends by one tenant.
    pub tenant: i64,
    /// A destination outside the allowed country prefixes.
    pub country: i64,
}

/// Everything `pasarela report otp` prints.
#[derive(Debug, Clone, Serialize)]
pub struct OtpReport {
    /// The filters applied.
    pub filters: Filters,
    /// The detailed report, newest first.
    pub detail: Vec<DetailRow>,
    /// OTPs per state.
    pub states: StateCounts,
    /// Sends per channel per hour, hours with sends only, oldest first.
    pub hourly: Vec<HourRow>,
    /// The validation traffic light.
    pub traffic_light: TrafficLight,
    /// Fraud-guard refusals per limit.
    pub limits: LimitCounts,
}

impl OtpReport {
    /// The report of what the store read, made with `filters`: the counts placed in their sections
    /// and the traffic light banded.
    pub fn new(filters: Filters, measure: Measure, rows: OtpRows) -> Self {
        let t = rows.totals;
        Self {
            filters,
            detail: rows.detail,
            states: StateCounts {
                generated: t.generated,
                validated_ok: t.validated_ok,
                validated_failed: t.validated_failed,
                expired: t.expired,
                errored: t.errored,
            },
            hourly: rows.hourly,
            traffic_light: TrafficLight::new(measure, t.not_errored, t.validated, t.validated_ok),
            limits: LimitCounts {
                destination: t.destination_limit,
                tenant: t.tenant_limit,
                country: t.country_limit,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_round_half_up_to_a_whole_percent() {
        assert_eq!(ratio_percent(0, 10), Some(0));
        assert_eq!(ratio_percent(1, 3), Some(33));
        assert_eq!(ratio_percent(2, 3), Some(67));
        assert_eq!(ratio_percent(1, 8), Some(13), "12.5 rounds up");
        assert_eq!(ratio_percent(51, 200), Some(26), "25.5 rounds up");
        assert_eq!(ratio_percent(10, 10), Some(100));
        assert_eq!(ratio_percent(3, 2), Some(150));
        assert_eq!(ratio_percent(5, 0), None);
    }

    #[test]
    fn bands_follow_the_documents_ranges() {
        for (percent, band) in [
            (0, Band::Effective),
            (25, Band::Effective),
            (26, Band::PartiallyEffective),
            (50, Band::PartiallyEffective),
            (51, Band::Regular),
            (75, Band::Regular),
            (76, Band::InDanger),
            (100, Band::InDanger),
            (250, Band::InDanger),
        ] {
            assert_eq!(Band::for_percent(percent), band, "{percent} %");
        }
    }

    #[test]
    fn the_traffic_light_rounds_before_banding() {
        // 25.4 % rounds to 25: still effective; 25.5 % rounds to 26: partially effective.
        let light = TrafficLight::new(Measure::Validated, 1000, 254, 0);
        assert_eq!(light.ratio_percent, Some(25));
        assert_eq!(light.band, Some("effective"));
        assert_eq!(light.label, Some("Validaciones efectivas"));
        let light = TrafficLight::new(Measure::Validated, 1000, 255, 0);
        assert_eq!(light.band, Some("partially effective"));
        assert_eq!(light.label, Some("Validaciones parcialmente efectivas"));
        let light = TrafficLight::new(Measure::Validated, 4, 5, 0);
        assert_eq!(light.ratio_percent, Some(125));
        assert_eq!(light.label, Some("Validaciones en peligro"));
    }

    /// `make demo` validated 180 of 180 and read "in danger" under the literal measure; the default
    /// reads the same run as effective, and a run of codes sent and never used as in danger.
    #[test]
    fn a_perfect_run_is_effective_and_unused_codes_are_in_danger() {
        let perfect = TrafficLight::new(Measure::Unvalidated, 180, 180, 180);
        assert_eq!((perfect.measured, perfect.ratio_percent), (0, Some(0)));
        assert_eq!(perfect.band, Some("effective"));
        let literal = TrafficLight::new(Measure::Validated, 180, 180, 180);
        assert_eq!(literal.band, Some("in danger"));
        let pumped = TrafficLight::new(Measure::Unvalidated, 1000, 30, 20);
        assert_eq!((pumped.measured, pumped.ratio_percent), (980, Some(98)));
        assert_eq!(pumped.band, Some("in danger"));
        assert!(pumped.description.contains("not validated successfully"));
    }

    #[test]
    fn no_otps_generated_means_no_band() {
        let light = TrafficLight::new(Measure::Unvalidated, 0, 0, 0);
        assert_eq!(light.ratio_percent, None);
        assert_eq!(light.band, None);
        assert_eq!(light.label, None);
    }

    #[test]
    fn state_counts_total_every_state() {
        let counts = StateCounts {
            generated: 1,
            validated_ok: 2,
            validated_failed: 3,
            expired: 4,
            errored: 5,
        };
        assert_eq!(counts.total(), 15);
        assert_eq!(counts.get(OtpState::Expired), 4);
    }

    #[test]
    fn state_names_match_the_schema() {
        // The values the V3 CHECK constraint allows, in the document's order.
        let names: Vec<&str> = OtpState::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "generated",
                "validated_ok",
                "validated_failed",
                "expired",
                "errored"
            ]
        );
        for state in OtpState::ALL {
            let parsed = OtpState::from_str(state.as_str(), false).unwrap();
            assert_eq!(parsed, state, "--state {} parses", state.as_str());
        }
    }
}
