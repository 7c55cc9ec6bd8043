//! The Reports service: tier distribution, RFM scores and segments, the
//! liability roll-forward and expiring points, read from the views. Every
//! field is checked and named; every answer states the position it
//! reflects.

use crate::ledger::{business_time_us, timestamp, view_query};
use crate::pb;
use crate::status;
use ledger_core::clock::Clock;
use ledger_core::domain::time::{format_date, parse_date};
use ledger_core::error::{FieldError, FieldReason};
use ledger_core::ids::{MemberId, ProgramId};
use ledger_core::limits::{RFM_WINDOW_DAYS_MAX, STATEMENT_PAGE_LINES_MAX};
use ledger_core::store::Store;
use projections::liability::{self, Flows};
use projections::{Runtime, ViewKind, balance, rfm, tier};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// Horizons of the expiring-points summary, in days.
pub const EXPIRING_HORIZONS_DAYS: [u32; 3] = [30, 60, 90];
/// Horizon of `GetExpiringPoints` when the request leaves it 0.
pub const EXPIRING_WITHIN_DAYS_DEFAULT: u32 = 90;
/// Members listed by `GetExpiringPoints` when the request leaves `top` 0.
pub const EXPIRING_TOP_DEFAULT: u32 = 10;

/// The Reports service.
pub struct ReportsService {
    store: Store,
    views: Arc<Runtime>,
    clock: Arc<dyn Clock>,
}

impl ReportsService {
    /// A service over the views.
    pub fn new(store: Store, views: Arc<Runtime>, clock: Arc<dyn Clock>) -> Self {
        ReportsService {
            store,
            views,
            clock,
        }
    }

    /// A request's checked `as_of`, or now when it has none.
    fn as_of(&self, as_of_us: Option<i64>) -> i64 {
        as_of_us.unwrap_or_else(|| self.clock.now_us())
    }
}

fn invalid(error: FieldError) -> Status {
    status::invalid_field(&error)
}

fn program(program_id: &str) -> Result<ProgramId, FieldError> {
    ProgramId::parse("program_id", program_id)
}

/// An optional `as_of`, checked when given.
fn optional_as_of(as_of: Option<&prost_types::Timestamp>) -> Result<Option<i64>, FieldError> {
    match as_of {
        Some(_) => business_time_us("as_of", as_of).map(Some),
        None => Ok(None),
    }
}

/// The checked fields of a `GetTierDistribution` request.
pub(crate) fn check_get_tier_distribution(
    request: &pb::GetTierDistributionRequest,
) -> Result<ProgramId, FieldError> {
    program(&request.program_id)
}

/// The checked fields of a `GetRfm` request.
pub(crate) fn check_get_rfm(
    request: &pb::GetRfmRequest,
) -> Result<(ProgramId, MemberId, Option<i64>), FieldError> {
    let program = program(&request.program_id)?;
    let member = MemberId::parse("member_id", &request.member_id)?;
    let as_of_us = optional_as_of(request.as_of.as_ref())?;
    Ok((program, member, as_of_us))
}

/// The checked fields of a `GetSegmentSizes` request.
pub(crate) fn check_get_segment_sizes(
    request: &pb::GetSegmentSizesRequest,
) -> Result<(ProgramId, Option<i64>), FieldError> {
    let program = program(&request.program_id)?;
    let as_of_us = optional_as_of(request.as_of.as_ref())?;
    Ok((program, as_of_us))
}

/// The checked fields of a `ListSegmentMembers` request (the page token is
/// checked by the query).
pub(crate) fn check_list_segment_members(
    request: &pb::ListSegmentMembersRequest,
) -> Result<(ProgramId, rfm::Segment, Option<i64>, u32), FieldError> {
    let program = program(&request.program_id)?;
    let segment = rfm::Segment::parse("segment", &request.segment)?;
    let as_of_us = optional_as_of(request.as_of.as_ref())?;
    let page_size = bounded(
        "page_size",
        request.page_size,
        STATEMENT_PAGE_LINES_MAX as u32,
    )?;
    Ok((program, segment, as_of_us, page_size))
}

/// The checked fields of a `GetLiability` request: the program and the
/// days from and to.
pub(crate) fn check_get_liability(
    request: &pb::GetLiabilityRequest,
) -> Result<(ProgramId, i64, i64), FieldError> {
    let program = program(&request.program_id)?;
    let from_day = date("from_date", &request.from_date)?;
    let to_day = date("to_date", &request.to_date)?;
    liability::check_range(from_day, to_day, "from_date", "to_date")?;
    Ok((program, from_day, to_day))
}

/// The checked fields of a `GetExpiringPoints` request: the program, its
/// `as_of`, and the horizon and count with their defaults.
pub(crate) fn check_get_expiring_points(
    request: &pb::GetExpiringPointsRequest,
) -> Result<(ProgramId, Option<i64>, u32, u32), FieldError> {
    let program = program(&request.program_id)?;
    let as_of_us = optional_as_of(request.as_of.as_ref())?;
    let within_days = match bounded("within_days", request.within_days, RFM_WINDOW_DAYS_MAX)? {
        0 => EXPIRING_WITHIN_DAYS_DEFAULT,
        days => days,
    };
    let top = match bounded("top", request.top, STATEMENT_PAGE_LINES_MAX as u32)? {
        0 => EXPIRING_TOP_DEFAULT,
        top => top,
    };
    Ok((program, as_of_us, within_days, top))
}

/// A reporting date of a request; errors name `field`.
pub fn date(field: &str, text: &str) -> Result<i64, FieldError> {
    if text.is_empty() {
        return Err(FieldError::new(field, FieldReason::Missing));
    }
    parse_date(text).ok_or_else(|| {
        FieldError::new(
            field,
            FieldReason::Invalid(format!(
                "`{text}` is not a calendar date YYYY-MM-DD from 1970 to 9999"
            )),
        )
    })
}

fn bounded(field: &str, value: u32, max: u32) -> Result<u32, FieldError> {
    if value > max {
        return Err(FieldError::new(
            field,
            FieldReason::OutOfRange {
                value: value.into(),
                min: 0,
                max: max.into(),
            },
        ));
    }
    Ok(value)
}

fn flows_to_wire(flows: &Flows) -> pb::LiabilityFlows {
    pb::LiabilityFlows {
        earned: flows.earned,
        awarded: flows.awarded,
        redeemed: flows.redeemed,
        cancelled: flows.cancelled,
        expired: flows.expired,
        reversed: flows.reversed,
        forfeited: flows.forfeited,
        adjusted_in: flows.adjusted_in,
        adjusted_out: flows.adjusted_out,
        transferred_in: flows.transferred_in,
        transferred_out: flows.transferred_out,
        issued: flows.earned.saturating_add(flows.awarded),
    }
}

fn expiring_summary(expiring: &balance::Expiring) -> pb::ExpiringSummary {
    let within = |days: u32| {
        expiring
            .within
            .iter()
            .find(|(horizon, _)| *horizon == days)
            .map_or(0, |(_, points)| *points)
    };
    pb::ExpiringSummary {
        overdue: expiring.overdue,
        within_30_days: within(30),
        within_60_days: within(60),
        within_90_days: within(90),
    }
}

fn scope(as_of_day: i64, window_days: u32, currency: &str, scored: u64) -> Option<pb::RfmScope> {
    Some(pb::RfmScope {
        as_of_date: format_date(as_of_day),
        window_days,
        currency: currency.to_owned(),
        scored_members: scored,
    })
}

fn rfm_to_wire(member: &rfm::MemberRfm) -> pb::MemberRfm {
    pb::MemberRfm {
        member_id: member.member_id.clone(),
        recency_days: member.recency_days,
        frequency: member.frequency,
        monetary_minor_units: member.monetary_minor_units,
        recency_score: member.r.into(),
        frequency_score: member.f.into(),
        monetary_score: member.m.into(),
        segment: member.segment.name().to_owned(),
        last_purchase_date: format_date(member.last_purchase_day),
    }
}

#[tonic::async_trait]
impl pb::reports_server::Reports for ReportsService {
    async fn get_tier_distribution(
        &self,
        request: Request<pb::GetTierDistributionRequest>,
    ) -> Result<Response<pb::GetTierDistributionResponse>, Status> {
        let request = request.into_inner();
        let program = check_get_tier_distribution(&request).map_err(invalid)?;
        let answer = view_query(
            &self.store,
            &self.views,
            ViewKind::Tier,
            request.min_position,
            move |store| tier::tier_distribution(store, &program),
        )
        .await?;
        Ok(Response::new(pb::GetTierDistributionResponse {
            position: answer.position,
            tiers: answer
                .value
                .into_iter()
                .map(|(tier, members)| pb::TierCount {
                    tier,
                    members: u64::try_from(members).unwrap_or(0),
                })
                .collect(),
        }))
    }

    async fn get_rfm(
        &self,
        request: Request<pb::GetRfmRequest>,
    ) -> Result<Response<pb::GetRfmResponse>, Status> {
        let request = request.into_inner();
        let (program, member, as_of_us) = check_get_rfm(&request).map_err(invalid)?;
        let as_of_us = self.as_of(as_of_us);
        let answer = view_query(
            &self.store,
            &self.views,
            ViewKind::Rfm,
            request.min_position,
            move |store| {
                // One scoring of the program gives the member and the scope;
                // a member it does not hold gets member_rfm's own error.
                let scores = rfm::score_program(store, &program, as_of_us)?;
                let found = scores
                    .value
                    .members
                    .binary_search_by(|scored| scored.member_id.as_str().cmp(member.as_str()));
                match found {
                    Ok(index) => Ok((scores.position, scores.value, index)),
                    Err(_) => Err(rfm::member_rfm(store, &program, &member, as_of_us)
                        .err()
                        .unwrap_or_else(|| projections::QueryError::NotFound {
                            what: format!("member {member}"),
                            position: scores.position,
                        })),
                }
            },
        )
        .await?;
        let (position, scores, index) = answer;
        Ok(Response::new(pb::GetRfmResponse {
            position,
            scope: scope(
                scores.as_of_day,
                scores.window_days,
                &scores.currency,
                scores.members.len() as u64,
            ),
            rfm: scores.members.get(index).map(rfm_to_wire),
        }))
    }

    async fn get_segment_sizes(
        &self,
        request: Request<pb::GetSegmentSizesRequest>,
    ) -> Result<Response<pb::GetSegmentSizesResponse>, Status> {
        let request = request.into_inner();
        let (program, as_of_us) = check_get_segment_sizes(&request).map_err(invalid)?;
        let as_of_us = self.as_of(as_of_us);
        let answer = view_query(
            &self.store,
            &self.views,
            ViewKind::Rfm,
            request.min_position,
            move |store| rfm::segment_sizes(store, &program, as_of_us),
        )
        .await?;
        let sizes = answer.value;
        Ok(Response::new(pb::GetSegmentSizesResponse {
            position: answer.position,
            scope: scope(
                sizes.as_of_day,
                sizes.window_days,
                &sizes.currency,
                sizes.scored,
            ),
            segments: sizes
                .sizes
                .iter()
                .map(|(segment, members)| pb::SegmentSize {
                    segment: segment.name().to_owned(),
                    label: segment.label().to_owned(),
                    members: *members,
                })
                .collect(),
        }))
    }

    async fn list_segment_members(
        &self,
        request: Request<pb::ListSegmentMembersRequest>,
    ) -> Result<Response<pb::ListSegmentMembersResponse>, Status> {
        let request = request.into_inner();
        let (program, segment, as_of_us, page_size) =
            check_list_segment_members(&request).map_err(invalid)?;
        let as_of_us = self.as_of(as_of_us);
        let token = request.page_token;
        let answer = view_query(
            &self.store,
            &self.views,
            ViewKind::Rfm,
            request.min_position,
            move |store| {
                rfm::segment_members(
                    store,
                    &program,
                    as_of_us,
                    segment,
                    page_size as usize,
                    &token,
                )
            },
        )
        .await?;
        let page = answer.value;
        Ok(Response::new(pb::ListSegmentMembersResponse {
            position: answer.position,
            scope: scope(
                page.as_of_day,
                page.window_days,
                &page.currency,
                page.scored,
            ),
            members: page.members.iter().map(rfm_to_wire).collect(),
            next_page_token: page.next_page_token,
        }))
    }

    async fn get_liability(
        &self,
        request: Request<pb::GetLiabilityRequest>,
    ) -> Result<Response<pb::GetLiabilityResponse>, Status> {
        let request = request.into_inner();
        let (program, from_day, to_day) = check_get_liability(&request).map_err(invalid)?;
        let now_us = self.clock.now_us();
        let (answer, check, expiring) = view_query(
            &self.store,
            &self.views,
            ViewKind::Liability,
            request.min_position,
            move |store| {
                let answer = liability::liability(store, &program, from_day, to_day)?;
                let check = liability::check_outstanding(store, &program)?;
                let expiring =
                    balance::expiring_points(store, &program, now_us, &EXPIRING_HORIZONS_DAYS, 0)?;
                Ok((answer, check, expiring.value))
            },
        )
        .await?;
        let report = answer.value;
        Ok(Response::new(pb::GetLiabilityResponse {
            position: answer.position,
            currency: report.currency,
            utc_offset_minutes: report.utc_offset_minutes,
            days: report
                .days
                .iter()
                .map(|day| pb::LiabilityDay {
                    date: format_date(day.day),
                    opening: day.opening,
                    flows: Some(flows_to_wire(&day.flows)),
                    closing: day.closing,
                    money_opening: day.money_opening,
                    money_flows: Some(flows_to_wire(&day.money_flows)),
                    money_closing: day.money_closing,
                    point_value_minor_units: day.point_value.minor_units,
                    point_value_per_points: day.point_value.per_points,
                })
                .collect(),
            opening: report.opening,
            totals: Some(flows_to_wire(&report.totals)),
            closing: report.closing,
            breakage_bps: report.breakage_bps,
            outstanding: Some(pb::Outstanding {
                position: check.position,
                closing: check.closing,
                member_points: check.outstanding,
                ties: check.ties(),
            }),
            expiring: Some(expiring_summary(&expiring)),
        }))
    }

    async fn get_expiring_points(
        &self,
        request: Request<pb::GetExpiringPointsRequest>,
    ) -> Result<Response<pb::GetExpiringPointsResponse>, Status> {
        let request = request.into_inner();
        let (program, as_of_us, within_days, top) =
            check_get_expiring_points(&request).map_err(invalid)?;
        let as_of_us = self.as_of(as_of_us);
        let (summary, answer) = view_query(
            &self.store,
            &self.views,
            ViewKind::Balance,
            request.min_position,
            move |store| {
                // The program must exist: the balance view has no row for a
                // program without members.
                liability::active_days(store, &program)?;
                let summary = balance::expiring_points(
                    store,
                    &program,
                    as_of_us,
                    &EXPIRING_HORIZONS_DAYS,
                    0,
                )?;
                let requested = balance::expiring_points(
                    store,
                    &program,
                    as_of_us,
                    &[within_days],
                    top as usize,
                )?;
                Ok((summary.value, requested))
            },
        )
        .await?;
        let expiring = answer.value;
        let within_requested = expiring.within.first().map_or(0, |(_, points)| *points);
        Ok(Response::new(pb::GetExpiringPointsResponse {
            position: answer.position,
            summary: Some(expiring_summary(&summary)),
            within_days,
            within_requested,
            top: expiring
                .top
                .iter()
                .map(|member| pb::ExpiringMember {
                    member_id: member.member_id.clone(),
                    points: member.points,
                    first_expiry: Some(timestamp(member.first_expiry_us)),
                })
                .collect(),
        }))
    }
}
