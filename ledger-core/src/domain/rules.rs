//! A program's rules: the raw `ProgramRules` exactly as the log carries them
//! (field for field with `pointsledger.v1.ProgramRules`), and the validated
//! [`Rules`] that `decide` takes. Every validation error names the field,
//! e.g. `tiers[2].threshold`, `campaigns[0].multiplier_bps`, `currency`.

use serde::{Deserialize, Serialize};

use super::error::DomainError;
use super::money::Currency;
use super::points::Points;
use super::text::check_text;
use super::time::{
    US_PER_DAY, add_days_us, day_of, end_of_month_after_us, report_day_of, start_of_day_us,
    start_of_next_year_us, start_of_year_us,
};
use crate::error::FieldReason;
use crate::limits::{
    BUSINESS_TIME_US_MAX, EARN_RATE_BPS_MAX, INACTIVITY_EXPIRY_DAYS_MAX, LOT_EXPIRY_DAYS_MAX,
    LOT_EXPIRY_MONTHS_MAX, MULTIPLIER_BPS_MAX, PENDING_DAYS_MAX, POINT_VALUE_MINOR_UNITS_MAX,
    POINT_VALUE_PER_POINTS_MAX, POINTS_PER_COMMAND_MAX, PROGRAM_CAMPAIGNS_MAX,
    PROGRAM_NAME_BYTES_MAX, PROGRAM_TIERS_MAX, PURCHASE_TAGS_MAX, REFERENCE_BYTES_MAX,
    RFM_WINDOW_DAYS_DEFAULT, RFM_WINDOW_DAYS_MAX, SPEND_MINOR_UNITS_MAX, TAG_BYTES_MAX,
    TIER_NAME_BYTES_MAX, TIER_THRESHOLD_MAX, TIER_WINDOW_DAYS_MAX, UTC_OFFSET_MINUTES_MAX,
    UTC_OFFSET_MINUTES_MIN,
};

/// Basis points that mean 1x: a multiplier of `ONE_X_BPS` leaves points as
/// they are, and an earn rate of `ONE_X_BPS` is one point per major unit.
pub const ONE_X_BPS: i64 = 10_000;

// A multiplier campaign must be able to raise points (it is checked to be
// above 1x and at most the maximum).
const _: () = assert!(ONE_X_BPS < MULTIPLIER_BPS_MAX);

/// Raw program rules, field for field `pointsledger.v1.ProgramRules`. Not
/// validated: build [`Rules`] from it. Rates are basis points (10,000 = 1x).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramRules {
    /// Display name, 1..=128 bytes.
    pub name: String,
    /// ISO 4217 code; purchases in any other currency are rejected.
    pub currency: String,
    /// Points per major currency unit, in basis points (20,000 = 2 points).
    pub earn_rate_bps: i64,
    /// How the earn formula rounds.
    pub rounding: Rounding,
    /// Liability value: this many minor units per `point_value_per_points`.
    pub point_value_minor_units: i64,
    /// Liability value: points worth `point_value_minor_units`.
    pub point_value_per_points: i64,
    /// Tiers, lowest first; the first threshold is 0. Empty = no tiers.
    pub tiers: Vec<Tier>,
    /// What tier thresholds measure.
    pub tier_measure: TierMeasure,
    /// 0 = calendar year; otherwise a rolling window of this many days.
    pub tier_window_days: u32,
    /// At most one level down per period end.
    pub tier_soft_landing: bool,
    /// Earn campaigns.
    pub campaigns: Vec<Campaign>,
    /// Per-lot expiry; `None` (or a rule-less message) = lots never expire.
    pub lot_expiry: Option<LotExpiry>,
    /// 0 = off; else the whole balance expires after this many days without
    /// an earn or a redeem.
    pub inactivity_expiry_days: u32,
    /// Purchase points become available this many days after the purchase.
    pub pending_days: u32,
    /// Bonus (awarded) points wait `pending_days` too.
    pub bonus_points_pending: bool,
    /// Smallest redeem; 0 = no minimum.
    pub min_redeem_points: i64,
    /// What a return does when the points to claw back were already spent.
    pub return_policy: ShortfallPolicy,
    /// Reporting days begin at this offset from UTC, in minutes (0 = UTC).
    pub utc_offset_minutes: i32,
    /// RFM window in days; 0 = [`RFM_WINDOW_DAYS_DEFAULT`].
    pub rfm_window_days: u32,
}

/// `pointsledger.v1.Rounding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Rounding {
    /// Not set: invalid in rules.
    Unspecified,
    /// Round down.
    Floor,
    /// Round half up (x.5 goes up).
    HalfUp,
    /// Round up.
    Ceiling,
}

/// `pointsledger.v1.TierMeasure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TierMeasure {
    /// Not set: invalid when the program has tiers.
    Unspecified,
    /// Qualifying points (the base points of purchases, net of returns).
    QualifyingPoints,
    /// Spend in minor units, net of refunds.
    Spend,
}

/// `pointsledger.v1.ShortfallPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShortfallPolicy {
    /// Not set: invalid in rules.
    Unspecified,
    /// Take what is left, record the rest as forfeited.
    Forfeit,
    /// Carry the rest as debt that later earns pay off first.
    Debt,
}

/// `pointsledger.v1.Tier`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tier {
    /// Unique name, 1..=64 bytes.
    pub name: String,
    /// Qualifying measure needed; the first tier's is 0.
    pub threshold: i64,
    /// Earn multiplier in basis points, > 0.
    pub earn_multiplier_bps: i64,
}

/// `pointsledger.v1.Campaign`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Campaign {
    /// Unique id, 1..=128 bytes.
    pub campaign_id: String,
    /// Inclusive start.
    pub starts_at_us: i64,
    /// Exclusive end.
    pub ends_at_us: i64,
    /// 0 when the campaign gives a flat bonus instead.
    pub multiplier_bps: i64,
    /// Flat bonus points, when `multiplier_bps` is 0.
    pub bonus_points: i64,
    /// Only members in one of these tiers (empty = any tier).
    pub tiers: Vec<String>,
    /// Only purchases carrying one of these tags (empty = any purchase).
    pub tags: Vec<String>,
    /// Only purchases spending at least this (0 = any).
    pub min_spend_minor_units: i64,
    /// Combines with other stackable campaigns.
    pub stackable: bool,
}

/// `pointsledger.v1.LotExpiry`: a message holding an optional oneof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LotExpiry {
    /// The `rule` oneof; `None` = lots never expire.
    pub rule: Option<LotExpiryRule>,
}

/// The `LotExpiry.rule` oneof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LotExpiryRule {
    /// Expires this many days after it was earned.
    AfterDays(u32),
    /// Expires at the end of the Nth calendar month after the month earned.
    AfterMonthsEnd(u32),
}

/// Validated rounding mode of the earn formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RoundingMode {
    /// Round down.
    Floor,
    /// Round half up.
    HalfUp,
    /// Round up.
    Ceiling,
}

/// Validated qualifying measure of tiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum QualifyingMeasure {
    /// Base points of purchases (before tier multiplier, campaigns and
    /// bonuses), net of returns.
    Points,
    /// Spend in minor units, net of refunds.
    Spend,
}

/// Validated tier window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TierWindow {
    /// The calendar year (UTC); periods end on January 1.
    CalendarYear,
    /// The last N UTC days, today included; periods are N days long.
    RollingDays(u32),
}

/// Validated return policy; also the `shortfall_policy` of `EarnReversed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReturnPolicy {
    /// The shortfall is forfeited (the program absorbs it).
    Forfeit,
    /// The shortfall becomes debt.
    Debt,
}

/// What a campaign gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignEffect {
    /// A multiplier in bps above 1x (e.g. 20,000 = double points).
    Multiplier(i64),
    /// Flat bonus points.
    Bonus(Points),
}

/// A validated campaign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRule {
    /// Its id.
    pub campaign_id: String,
    /// Inclusive start.
    pub starts_at_us: i64,
    /// Exclusive end.
    pub ends_at_us: i64,
    /// Multiplier or flat bonus.
    pub effect: CampaignEffect,
    /// Tier names it is limited to (empty = any).
    pub tiers: Vec<String>,
    /// Tags it is limited to (empty = any).
    pub tags: Vec<String>,
    /// Minimum spend, minor units.
    pub min_spend_minor_units: i64,
    /// Combines with other stackable campaigns.
    pub stackable: bool,
}

/// Validated program rules, the argument of `decide`. Built only by
/// [`Rules::from_raw`], so every field is known to be in range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ProgramRules", into = "ProgramRules")]
pub struct Rules {
    raw: ProgramRules,
    currency: Currency,
    rounding: RoundingMode,
    measure: QualifyingMeasure,
    window: TierWindow,
    campaigns: Vec<CampaignRule>,
    lot_expiry: Option<LotExpiryRule>,
    return_policy: ReturnPolicy,
}

impl ProgramRules {
    /// Plain rules in `currency_code`: 1 point per major unit, rounding down,
    /// no tiers, no campaigns, no expiry, no pending period, no minimum
    /// redeem, shortfalls forfeited, 1 minor unit per point. A starting point
    /// for tests and examples.
    pub fn basic(currency_code: &str) -> ProgramRules {
        ProgramRules {
            name: "Basic".to_owned(),
            currency: currency_code.to_owned(),
            earn_rate_bps: ONE_X_BPS,
            rounding: Rounding::Floor,
            point_value_minor_units: 1,
            point_value_per_points: 1,
            tiers: Vec::new(),
            tier_measure: TierMeasure::QualifyingPoints,
            tier_window_days: 0,
            tier_soft_landing: false,
            campaigns: Vec::new(),
            lot_expiry: None,
            inactivity_expiry_days: 0,
            pending_days: 0,
            bonus_points_pending: false,
            min_redeem_points: 0,
            return_policy: ShortfallPolicy::Forfeit,
            utc_offset_minutes: 0,
            rfm_window_days: 0,
        }
    }
}

impl Rules {
    /// Validates raw rules; the first invalid field is named in the error.
    pub fn from_raw(raw: &ProgramRules) -> Result<Rules, DomainError> {
        check_text("name", &raw.name, PROGRAM_NAME_BYTES_MAX)?;
        let currency = Currency::from_code(&raw.currency, "currency")?;
        check_range("earn_rate_bps", raw.earn_rate_bps, 0, EARN_RATE_BPS_MAX)?;
        let rounding = match raw.rounding {
            Rounding::Unspecified => return Err(unspecified("rounding")),
            Rounding::Floor => RoundingMode::Floor,
            Rounding::HalfUp => RoundingMode::HalfUp,
            Rounding::Ceiling => RoundingMode::Ceiling,
        };
        check_range(
            "point_value_minor_units",
            raw.point_value_minor_units,
            0,
            POINT_VALUE_MINOR_UNITS_MAX,
        )?;
        check_range(
            "point_value_per_points",
            raw.point_value_per_points,
            1,
            POINT_VALUE_PER_POINTS_MAX,
        )?;
        let (measure, window) = check_tier_rules(raw)?;
        let campaigns = check_campaigns(&raw.campaigns, &raw.tiers)?;
        let lot_expiry = check_lot_expiry(raw.lot_expiry)?;
        let return_policy = check_redeem_and_return(raw)?;
        check_range(
            "utc_offset_minutes",
            raw.utc_offset_minutes.into(),
            UTC_OFFSET_MINUTES_MIN.into(),
            UTC_OFFSET_MINUTES_MAX.into(),
        )?;
        check_range(
            "rfm_window_days",
            raw.rfm_window_days.into(),
            0,
            RFM_WINDOW_DAYS_MAX.into(),
        )?;
        Ok(Rules {
            raw: raw.clone(),
            currency,
            rounding,
            measure,
            window,
            campaigns,
            lot_expiry,
            return_policy,
        })
    }

    /// The raw rules these were built from (what the log carries).
    pub fn raw(&self) -> &ProgramRules {
        &self.raw
    }

    /// The reporting day (days since 1970-01-01 at the program's UTC
    /// offset) that contains instant `us`.
    pub fn report_day_of(&self, us: i64) -> i64 {
        report_day_of(us, self.raw.utc_offset_minutes)
    }

    /// The RFM window in days (the default when the rules leave it 0).
    pub fn rfm_window_days(&self) -> u32 {
        match self.raw.rfm_window_days {
            0 => RFM_WINDOW_DAYS_DEFAULT,
            days => days,
        }
    }

    /// The program currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// Tiers, lowest first; may be empty.
    pub fn tiers(&self) -> &[Tier] {
        &self.raw.tiers
    }

    /// The qualifying measure.
    pub fn measure(&self) -> QualifyingMeasure {
        self.measure
    }

    /// The tier window.
    pub fn window(&self) -> TierWindow {
        self.window
    }

    /// Validated campaigns, in rules order.
    pub fn campaigns(&self) -> &[CampaignRule] {
        &self.campaigns
    }

    /// The return policy.
    pub fn return_policy(&self) -> ReturnPolicy {
        self.return_policy
    }

    /// The smallest redeem (0 = none).
    pub fn min_redeem_points(&self) -> Points {
        Points::new(self.raw.min_redeem_points)
    }

    /// Inactivity expiry period, when on.
    pub fn inactivity_expiry_us(&self) -> Option<i64> {
        match self.raw.inactivity_expiry_days {
            0 => None,
            days => Some(i64::from(days) * US_PER_DAY),
        }
    }

    /// Base points of a purchase: `spend x earn_rate_bps / (10,000 x
    /// 10^exponent)`, rounded with the program's mode. i128 keeps the product
    /// exact; the caller range-checks the result.
    pub fn base_points(&self, spend_minor_units: i64) -> i128 {
        let numerator = i128::from(spend_minor_units) * i128::from(self.raw.earn_rate_bps);
        let denominator = i128::from(ONE_X_BPS) * i128::from(self.currency.minor_units_per_major());
        self.round_div(numerator, denominator)
    }

    /// `numerator / denominator` with the program's rounding mode, for
    /// non-negative numerators and positive denominators (the only ones the
    /// earn formula produces).
    pub fn round_div(&self, numerator: i128, denominator: i128) -> i128 {
        debug_assert!(numerator >= 0, "earn formula: numerator is never negative");
        debug_assert!(denominator > 0, "earn formula: denominator is positive");
        if denominator <= 0 {
            return 0;
        }
        match self.rounding {
            RoundingMode::Floor => numerator.div_euclid(denominator),
            RoundingMode::HalfUp => (2 * numerator + denominator).div_euclid(2 * denominator),
            RoundingMode::Ceiling => (numerator + denominator - 1).div_euclid(denominator),
        }
    }

    /// When a lot earned at `earned_at_us` expires, if ever: the first
    /// microsecond at which it is expired.
    pub fn lot_expires_at_us(&self, earned_at_us: i64) -> Option<i64> {
        self.lot_expiry.map(|rule| match rule {
            LotExpiryRule::AfterDays(days) => add_days_us(earned_at_us, i64::from(days)),
            LotExpiryRule::AfterMonthsEnd(months) => end_of_month_after_us(earned_at_us, months),
        })
    }

    /// When points earned at `earned_at_us` become available. Purchases wait
    /// `pending_days` (the returns window); bonus points wait only when
    /// `bonus_points_pending` says so.
    pub fn available_at_us(&self, earned_at_us: i64, purchase: bool) -> i64 {
        if purchase || self.raw.bonus_points_pending {
            add_days_us(earned_at_us, i64::from(self.raw.pending_days))
        } else {
            earned_at_us
        }
    }

    /// Position of tier `name`, if the rules define it.
    pub fn tier_index(&self, name: &str) -> Option<usize> {
        self.raw.tiers.iter().position(|tier| tier.name == name)
    }

    /// The highest tier whose threshold `measure` meets (0 without tiers or
    /// for a negative measure: the first threshold is 0).
    pub fn tier_for_measure(&self, measure: i64) -> usize {
        self.raw
            .tiers
            .iter()
            .rposition(|tier| tier.threshold <= measure)
            .unwrap_or(0)
    }

    /// The earn multiplier of tier `index` (1x without tiers).
    pub fn tier_multiplier_bps(&self, index: usize) -> i64 {
        self.raw
            .tiers
            .get(index)
            .map_or(ONE_X_BPS, |tier| tier.earn_multiplier_bps)
    }

    /// The name of tier `index` ("" without tiers).
    pub fn tier_name(&self, index: usize) -> &str {
        self.raw
            .tiers
            .get(index)
            .map_or("", |tier| tier.name.as_str())
    }

    /// The days `[first, end)` of the window "as of" the day before
    /// `end_day` (exclusive): rolling = the last N days; calendar year = from
    /// January 1 of the year containing day `end_day - 1`.
    pub fn window_days(&self, end_day: i64) -> (i64, i64) {
        match self.window {
            TierWindow::RollingDays(days) => (end_day - i64::from(days), end_day),
            TierWindow::CalendarYear => {
                let last_us = start_of_day_us(end_day - 1);
                (day_of(start_of_year_us(last_us)), end_day)
            }
        }
    }

    /// The end of the tier period that starts at `anchor_us` (the last tier
    /// change or review): the next January 1 for the calendar year, else the
    /// midnight N days after the anchor's day.
    pub fn period_end_us(&self, anchor_us: i64) -> i64 {
        match self.window {
            TierWindow::CalendarYear => start_of_next_year_us(anchor_us),
            TierWindow::RollingDays(days) => {
                start_of_day_us(day_of(anchor_us).saturating_add(i64::from(days)))
            }
        }
    }
}

impl TryFrom<ProgramRules> for Rules {
    type Error = DomainError;
    fn try_from(raw: ProgramRules) -> Result<Self, Self::Error> {
        Rules::from_raw(&raw)
    }
}

impl From<Rules> for ProgramRules {
    fn from(rules: Rules) -> Self {
        rules.raw
    }
}

fn unspecified(field: &'static str) -> DomainError {
    DomainError::invalid(field, FieldReason::Unspecified)
}

fn check_range(
    field: impl Into<String>,
    value: i64,
    min: i64,
    max: i64,
) -> Result<(), DomainError> {
    if (min..=max).contains(&value) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            FieldReason::OutOfRange {
                value: value.into(),
                min: min.into(),
                max: max.into(),
            },
        ))
    }
}

fn check_count(field: impl Into<String>, count: usize, max: usize) -> Result<(), DomainError> {
    if count <= max {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            FieldReason::TooMany { count, max },
        ))
    }
}

/// Tiers, their measure and their window.
fn check_tier_rules(raw: &ProgramRules) -> Result<(QualifyingMeasure, TierWindow), DomainError> {
    check_tiers(&raw.tiers)?;
    let measure = match raw.tier_measure {
        TierMeasure::QualifyingPoints => QualifyingMeasure::Points,
        TierMeasure::Spend => QualifyingMeasure::Spend,
        // Without tiers nothing is measured, so the field may stay unset.
        TierMeasure::Unspecified if raw.tiers.is_empty() => QualifyingMeasure::Points,
        TierMeasure::Unspecified => return Err(unspecified("tier_measure")),
    };
    let window = match raw.tier_window_days {
        0 => TierWindow::CalendarYear,
        days => {
            check_range(
                "tier_window_days",
                i64::from(days),
                0,
                i64::from(TIER_WINDOW_DAYS_MAX),
            )?;
            TierWindow::RollingDays(days)
        }
    };
    Ok((measure, window))
}

/// Inactivity, pending period, minimum redeem and return policy.
fn check_redeem_and_return(raw: &ProgramRules) -> Result<ReturnPolicy, DomainError> {
    check_range(
        "inactivity_expiry_days",
        i64::from(raw.inactivity_expiry_days),
        0,
        i64::from(INACTIVITY_EXPIRY_DAYS_MAX),
    )?;
    check_range(
        "pending_days",
        i64::from(raw.pending_days),
        0,
        i64::from(PENDING_DAYS_MAX),
    )?;
    check_range(
        "min_redeem_points",
        raw.min_redeem_points,
        0,
        POINTS_PER_COMMAND_MAX,
    )?;
    match raw.return_policy {
        ShortfallPolicy::Unspecified => Err(unspecified("return_policy")),
        ShortfallPolicy::Forfeit => Ok(ReturnPolicy::Forfeit),
        ShortfallPolicy::Debt => Ok(ReturnPolicy::Debt),
    }
}

/// Tiers: ordered, first threshold 0, strictly increasing thresholds, unique
/// names, multiplier > 0.
fn check_tiers(tiers: &[Tier]) -> Result<(), DomainError> {
    check_count("tiers", tiers.len(), PROGRAM_TIERS_MAX)?;
    let mut previous: Option<&Tier> = None;
    for (index, tier) in tiers.iter().enumerate() {
        let field = |name: &str| format!("tiers[{index}].{name}");
        check_text(field("name"), &tier.name, TIER_NAME_BYTES_MAX)?;
        if tiers
            .iter()
            .take(index)
            .any(|earlier| earlier.name == tier.name)
        {
            return Err(DomainError::invalid(
                field("name"),
                FieldReason::Duplicate {
                    value: tier.name.clone(),
                },
            ));
        }
        match previous {
            None => check_range(field("threshold"), tier.threshold, 0, 0)?,
            Some(before) if tier.threshold <= before.threshold => {
                return Err(DomainError::invalid(
                    field("threshold"),
                    FieldReason::NotIncreasing {
                        previous: before.threshold,
                        value: tier.threshold,
                    },
                ));
            }
            Some(_) => check_range(field("threshold"), tier.threshold, 0, TIER_THRESHOLD_MAX)?,
        }
        check_range(
            field("earn_multiplier_bps"),
            tier.earn_multiplier_bps,
            1,
            MULTIPLIER_BPS_MAX,
        )?;
        previous = Some(tier);
    }
    Ok(())
}

fn check_campaigns(
    campaigns: &[Campaign],
    tiers: &[Tier],
) -> Result<Vec<CampaignRule>, DomainError> {
    check_count("campaigns", campaigns.len(), PROGRAM_CAMPAIGNS_MAX)?;
    let mut checked = Vec::with_capacity(campaigns.len());
    for (index, campaign) in campaigns.iter().enumerate() {
        let id_field = format!("campaigns[{index}].campaign_id");
        check_text(&id_field, &campaign.campaign_id, REFERENCE_BYTES_MAX)?;
        if campaigns
            .iter()
            .take(index)
            .any(|earlier| earlier.campaign_id == campaign.campaign_id)
        {
            return Err(DomainError::invalid(
                id_field,
                FieldReason::Duplicate {
                    value: campaign.campaign_id.clone(),
                },
            ));
        }
        checked.push(check_campaign(index, campaign, tiers)?);
    }
    Ok(checked)
}

fn check_campaign(
    index: usize,
    campaign: &Campaign,
    tiers: &[Tier],
) -> Result<CampaignRule, DomainError> {
    let field = |name: &str| format!("campaigns[{index}].{name}");
    check_range(
        field("starts_at_us"),
        campaign.starts_at_us,
        0,
        BUSINESS_TIME_US_MAX,
    )?;
    check_range(
        field("ends_at_us"),
        campaign.ends_at_us,
        0,
        BUSINESS_TIME_US_MAX,
    )?;
    if campaign.ends_at_us <= campaign.starts_at_us {
        return Err(DomainError::invalid(
            field("ends_at_us"),
            FieldReason::NotAfter {
                other: "starts_at_us",
            },
        ));
    }
    let effect = check_campaign_effect(campaign, &field)?;
    check_campaign_conditions(campaign, tiers, &field)?;
    check_range(
        field("min_spend_minor_units"),
        campaign.min_spend_minor_units,
        0,
        SPEND_MINOR_UNITS_MAX,
    )?;
    Ok(CampaignRule {
        campaign_id: campaign.campaign_id.clone(),
        starts_at_us: campaign.starts_at_us,
        ends_at_us: campaign.ends_at_us,
        effect,
        tiers: campaign.tiers.clone(),
        tags: campaign.tags.clone(),
        min_spend_minor_units: campaign.min_spend_minor_units,
        stackable: campaign.stackable,
    })
}

/// A campaign is a multiplier or a flat bonus, never both: "0 when the
/// campaign gives a flat bonus instead".
fn check_campaign_effect(
    campaign: &Campaign,
    field: &impl Fn(&str) -> String,
) -> Result<CampaignEffect, DomainError> {
    if campaign.multiplier_bps == 0 {
        check_range(
            field("bonus_points"),
            campaign.bonus_points,
            1,
            POINTS_PER_COMMAND_MAX,
        )?;
        return Ok(CampaignEffect::Bonus(Points::new(campaign.bonus_points)));
    }
    if campaign.bonus_points != 0 {
        return Err(DomainError::invalid(
            field("bonus_points"),
            FieldReason::Excludes {
                other: "multiplier_bps",
            },
        ));
    }
    // At or below 1x a "multiplier campaign" would take points away.
    check_range(
        field("multiplier_bps"),
        campaign.multiplier_bps,
        ONE_X_BPS + 1,
        MULTIPLIER_BPS_MAX,
    )?;
    Ok(CampaignEffect::Multiplier(campaign.multiplier_bps))
}

/// Tier conditions name tiers of the same rules; tags are short text.
fn check_campaign_conditions(
    campaign: &Campaign,
    tiers: &[Tier],
    field: &impl Fn(&str) -> String,
) -> Result<(), DomainError> {
    check_count(field("tiers"), campaign.tiers.len(), PROGRAM_TIERS_MAX)?;
    for (position, name) in campaign.tiers.iter().enumerate() {
        if !tiers.iter().any(|tier| &tier.name == name) {
            return Err(DomainError::invalid(
                field(&format!("tiers[{position}]")),
                FieldReason::UnknownTier { name: name.clone() },
            ));
        }
    }
    check_count(field("tags"), campaign.tags.len(), PURCHASE_TAGS_MAX)?;
    for (position, tag) in campaign.tags.iter().enumerate() {
        check_text(field(&format!("tags[{position}]")), tag, TAG_BYTES_MAX)?;
    }
    Ok(())
}

fn check_lot_expiry(lot_expiry: Option<LotExpiry>) -> Result<Option<LotExpiryRule>, DomainError> {
    let rule = lot_expiry.and_then(|expiry| expiry.rule);
    match rule {
        Some(LotExpiryRule::AfterDays(days)) => check_range(
            "lot_expiry.after_days",
            i64::from(days),
            1,
            i64::from(LOT_EXPIRY_DAYS_MAX),
        )?,
        Some(LotExpiryRule::AfterMonthsEnd(months)) => check_range(
            "lot_expiry.after_months_end",
            i64::from(months),
            1,
            i64::from(LOT_EXPIRY_MONTHS_MAX),
        )?,
        None => {}
    }
    Ok(rule)
}
