//! The internal hosts' data for operators: `switchyard loyalty
//! credit|balance` and `switchyard coupons issue|list` (`switchyard::operate::hosts::cli`). The
//! loyalty and coupon plugins keep their state in the plugin key/value store
//! (scoped by tenant and the plugin's name in the config); these tools read
//! and change the same values ([`values`] has their formats) through
//! [`Ops::kv`], on a running switch through its admin API
//! (`POST /api/loyalty/credit`, `POST /api/loyalty/balance`, `POST
//! /api/coupons/issue`, `GET /api/coupons`), on a stopped one's data directory directly.
//!
//! Card numbers travel only in request bodies, never in a URL; answers and
//! logs show them masked (first 6, last 4), except the number of a coupon
//! just issued, which the operator hands out.

pub mod values;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use switchyard_engine::ports::{KvStore, PortError};
use switchyard_iso8583::mask_pan;

use super::Ops;
use values::{Coupon, CouponState, Day, MAX_AMOUNT, Points};

/// The tenant when none is given.
pub const DEFAULT_TENANT: &str = "default";
/// The loyalty plugin's name when none is given (and the config names no
/// `builtin:loyalty`).
pub const DEFAULT_LOYALTY_PLUGIN: &str = "loyalty";
/// The coupon plugin's name when none is given (and the config names no
/// `builtin:coupon`).
pub const DEFAULT_COUPON_PLUGIN: &str = "coupon";
/// Most compare-and-sets one change tries before giving up.
pub const MAX_ATTEMPTS: usize = 32;
/// Most coupons one `coupons issue` makes.
pub const MAX_ISSUE: u32 = 1000;
/// Largest request body the admin API reads for these routes.
pub const MAX_BODY: usize = 4096;

/// Why an internal-host operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostsError {
    /// A request field is missing or wrong (HTTP 400).
    #[error("{field}: {message}")]
    Invalid {
        /// The field (`card`, `points`, `value`, …).
        field: String,
        /// What is expected.
        message: String,
    },
    /// A stored value is not in its format: left as it is (HTTP 500).
    #[error("{0}")]
    Corrupt(String),
    /// Concurrent changes won every attempt (HTTP 503): try again.
    #[error("{0}")]
    Contended(String),
    /// The store failed (HTTP 500).
    #[error("{0}")]
    Store(#[from] PortError),
    /// Anything else (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl HostsError {
    /// A bad request field.
    pub fn invalid(field: &str, message: impl Into<String>) -> HostsError {
        HostsError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The tenant and the plugin (its name in the config) whose data is meant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scope {
    /// The tenant.
    pub tenant: String,
    /// The plugin's name under `[plugins.NAME]`.
    pub plugin: String,
}

impl Scope {
    /// Checks both names: 1 to 128 printable characters, no space.
    pub fn check(&self) -> Result<(), HostsError> {
        for (field, v) in [("tenant", &self.tenant), ("plugin", &self.plugin)] {
            if v.is_empty() || v.len() > 128 || v.chars().any(|c| c.is_control() || c == ' ') {
                return Err(HostsError::invalid(
                    field,
                    "1 to 128 printable characters, no space",
                ));
            }
        }
        Ok(())
    }
}

/// `POST /loyalty/credit` and `POST /loyalty/balance` (`points` absent).
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct CardRequest {
    /// Whose data.
    #[serde(flatten)]
    pub scope: Scope,
    /// The loyalty card's number (full: a body, never a URL).
    pub card: String,
    /// The points to credit (`credit` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<i64>,
}

impl fmt::Debug for CardRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CardRequest")
            .field("scope", &self.scope)
            .field("card", &mask_pan(&self.card))
            .field("points", &self.points)
            .finish()
    }
}

/// `POST /coupons/issue`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IssueRequest {
    /// Whose data.
    #[serde(flatten)]
    pub scope: Scope,
    /// Each coupon's value, in minor units.
    pub value_minor: i64,
    /// The last day they can be redeemed, `YYYY-MM-DD` (UTC).
    pub expires: String,
    /// How many (default 1).
    pub count: u32,
}

/// A JSON request body's fields, each taken once; errors name the field.
struct Body(Map<String, Value>);

impl Body {
    fn parse(body: &[u8], known: &[&str]) -> Result<Body, HostsError> {
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| HostsError::invalid("body", format!("not JSON ({e})")))?;
        let Value::Object(map) = value else {
            return Err(HostsError::invalid("body", "a JSON object"));
        };
        if let Some(k) = map.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(HostsError::invalid(
                k,
                format!("unknown field (expected: {})", known.join(", ")),
            ));
        }
        Ok(Body(map))
    }

    fn text(&mut self, field: &str) -> Result<Option<String>, HostsError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(HostsError::invalid(field, "a string")),
        }
    }

    fn integer(&mut self, field: &str) -> Result<Option<i64>, HostsError> {
        match self.0.remove(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| HostsError::invalid(field, "a whole number")),
            Some(_) => Err(HostsError::invalid(field, "a whole number")),
        }
    }

    fn required<T>(field: &str, v: Option<T>) -> Result<T, HostsError> {
        v.ok_or_else(|| HostsError::invalid(field, "missing"))
    }

    fn scope(&mut self, default_plugin: &str) -> Result<Scope, HostsError> {
        Ok(Scope {
            tenant: self
                .text("tenant")?
                .unwrap_or_else(|| DEFAULT_TENANT.into()),
            plugin: self
                .text("plugin")?
                .unwrap_or_else(|| default_plugin.into()),
        })
    }
}

impl CardRequest {
    /// Reads a `/loyalty/credit` (`with_points`) or `/loyalty/balance`
    /// body: `{"tenant", "plugin", "card", "points"}`, tenant and plugin
    /// optional.
    pub fn from_json(body: &[u8], with_points: bool) -> Result<CardRequest, HostsError> {
        let known: &[&str] = if with_points {
            &["tenant", "plugin", "card", "points"]
        } else {
            &["tenant", "plugin", "card"]
        };
        let mut b = Body::parse(body, known)?;
        let points = match with_points {
            true => Some(Body::required("points", b.integer("points")?)?),
            false => None,
        };
        Ok(CardRequest {
            scope: b.scope(DEFAULT_LOYALTY_PLUGIN)?,
            card: Body::required("card", b.text("card")?)?,
            points,
        })
    }
}

impl IssueRequest {
    /// Reads a `/coupons/issue` body: `{"tenant", "plugin", "value_minor",
    /// "expires", "count"}`, tenant, plugin and count optional.
    pub fn from_json(body: &[u8]) -> Result<IssueRequest, HostsError> {
        let known = ["tenant", "plugin", "value_minor", "expires", "count"];
        let mut b = Body::parse(body, &known)?;
        let count = match b.integer("count")? {
            None => 1,
            Some(n) => u32::try_from(n)
                .map_err(|_| HostsError::invalid("count", format!("1 to {MAX_ISSUE}")))?,
        };
        Ok(IssueRequest {
            scope: b.scope(DEFAULT_COUPON_PLUGIN)?,
            value_minor: Body::required("value_minor", b.integer("value_minor")?)?,
            expires: Body::required("expires", b.text("expires")?)?,
            count,
        })
    }
}

/// A loyalty card's balance (after a credit, with what was credited).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoyaltyView {
    /// Whose data.
    #[serde(flatten)]
    pub scope: Scope,
    /// The card, masked.
    pub card: String,
    /// The points just credited (`credit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credited: Option<i64>,
    /// The balance in points.
    pub balance_points: i64,
    /// The balance as money (1 point = 0.01): `15.00`.
    pub balance: String,
}

/// One coupon just issued.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCoupon {
    /// Its number, in full: the operator hands it out.
    pub number: String,
    /// Its value: `25.00`.
    pub value: String,
    /// Its value in minor units.
    pub value_minor: i64,
    /// The last day it can be redeemed.
    pub expires: String,
}

impl fmt::Debug for IssuedCoupon {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCoupon")
            .field("number", &mask_pan(&self.number))
            .field("value_minor", &self.value_minor)
            .field("expires", &self.expires)
            .finish()
    }
}

/// `coupons issue`: what was issued; `error` when it stopped early (the
/// coupons listed are issued all the same).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedCoupons {
    /// Whose data.
    #[serde(flatten)]
    pub scope: Scope,
    /// The coupons, in the order issued.
    pub coupons: Vec<IssuedCoupon>,
    /// Why it stopped before `count`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One coupon in `coupons list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponView {
    /// Its number, masked.
    pub number: String,
    /// Its value: `25.00`.
    pub value: String,
    /// Its value in minor units.
    pub value_minor: i64,
    /// The last day it can be redeemed.
    pub expires: String,
    /// `open`, `redeemed` or `expired` (open, past its day).
    pub state: String,
    /// The tranlog id of the redemption (`-`: a switch without tranlog).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redeemed_by: Option<String>,
}

/// `coupons list`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CouponList {
    /// Whose data.
    #[serde(flatten)]
    pub scope: Scope,
    /// Every coupon, by expiry then masked number.
    pub coupons: Vec<CouponView>,
    /// Values of the plugin that are not coupons (skipped).
    pub other_values: usize,
}

impl CouponView {
    fn new(c: &Coupon, today: Day) -> CouponView {
        let (state, redeemed_by) = match &c.state {
            CouponState::Open if c.expires < today => ("expired", None),
            CouponState::Open => ("open", None),
            CouponState::Redeemed(t) => ("redeemed", Some(t.clone())),
        };
        CouponView {
            number: mask_pan(&c.pan),
            value: values::money(c.value_minor),
            value_minor: c.value_minor,
            expires: c.expires.to_string(),
            state: state.into(),
            redeemed_by,
        }
    }
}

/// Runs blocking store work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HostsError> + Send + 'static,
) -> Result<T, HostsError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| HostsError::Internal(format!("the store task failed: {e}")))?
}

/// Adds `points` to the card's balance: one compare-and-set, retried;
/// the new balance.
fn credit(kv: &dyn KvStore, scope: &Scope, card: &str, points: i64) -> Result<i64, HostsError> {
    let key = values::points_key(card);
    for _ in 0..MAX_ATTEMPTS {
        let current = kv.kv_get(&scope.tenant, &scope.plugin, &key)?;
        let mut record = read_points(current.as_deref(), card)?;
        record.balance = record
            .balance
            .checked_add(points)
            .ok_or_else(|| HostsError::invalid("points", "the balance would overflow"))?;
        let value = record.to_value();
        if kv.kv_compare_and_set(
            &scope.tenant,
            &scope.plugin,
            &key,
            current.as_deref(),
            value.as_bytes(),
        )? {
            return Ok(record.balance);
        }
    }
    Err(HostsError::Contended(format!(
        "card {}: {MAX_ATTEMPTS} concurrent changes in a row; nothing credited, try again",
        mask_pan(card)
    )))
}

fn read_points(value: Option<&[u8]>, card: &str) -> Result<Points, HostsError> {
    value.map_or(Ok(Points::default()), |v| {
        Points::parse(v).map_err(|e| {
            HostsError::Corrupt(format!(
                "the stored points of card {} are not in the loyalty format ({e}); left unchanged",
                mask_pan(card)
            ))
        })
    })
}

/// Stores `count` new open coupons, each under a fresh number (a number
/// already taken is drawn again).
fn issue(kv: &dyn KvStore, r: &IssueRequest, expires: Day) -> IssuedCoupons {
    let mut out = IssuedCoupons {
        scope: r.scope.clone(),
        coupons: Vec::new(),
        error: None,
    };
    'coupons: for _ in 0..r.count {
        for _ in 0..MAX_ATTEMPTS {
            let coupon = match values::new_coupon_number() {
                Ok(pan) => Coupon {
                    pan,
                    value_minor: r.value_minor,
                    expires,
                    state: CouponState::Open,
                },
                Err(e) => {
                    out.error = Some(e.to_string());
                    break 'coupons;
                }
            };
            let key = values::coupon_key(&coupon.pan);
            let value = coupon.to_value();
            match kv.kv_compare_and_set(
                &r.scope.tenant,
                &r.scope.plugin,
                &key,
                None,
                value.as_bytes(),
            ) {
                Ok(true) => {
                    out.coupons.push(IssuedCoupon {
                        number: coupon.pan,
                        value: values::money(r.value_minor),
                        value_minor: r.value_minor,
                        expires: expires.to_string(),
                    });
                    continue 'coupons;
                }
                Ok(false) => {}
                Err(e) => {
                    out.error = Some(format!("storing a coupon: {e}"));
                    break 'coupons;
                }
            }
        }
        out.error = Some(format!("{MAX_ATTEMPTS} numbers drawn in a row were taken"));
        break;
    }
    out
}

/// A coupon's last day, `YYYY-MM-DD`: today (UTC) or later.
pub fn expiry(text: &str) -> Result<Day, HostsError> {
    let expires = Day::parse(text.trim())
        .ok_or_else(|| HostsError::invalid("expires", "a day, YYYY-MM-DD"))?;
    let today = Day::today();
    if expires < today {
        return Err(HostsError::invalid(
            "expires",
            format!("{expires} is in the past (today is {today}, UTC)"),
        ));
    }
    Ok(expires)
}

impl Ops {
    /// `loyalty credit CARD POINTS`.
    pub async fn loyalty_credit(&self, r: CardRequest) -> Result<LoyaltyView, HostsError> {
        r.scope.check()?;
        let card = values::card_number(&r.card)?;
        let points = r
            .points
            .ok_or_else(|| HostsError::invalid("points", "missing"))?;
        values::check_points(points)?;
        let (kv, scope) = (self.kv.clone(), r.scope.clone());
        let balance = {
            let card = card.clone();
            blocking(move || credit(kv.as_ref(), &scope, &card, points)).await?
        };
        tracing::info!(tenant = %r.scope.tenant, plugin = %r.scope.plugin,
            card = %mask_pan(&card), points, balance, "loyalty points credited");
        Ok(LoyaltyView {
            scope: r.scope,
            card: mask_pan(&card),
            credited: Some(points),
            balance_points: balance,
            balance: values::money(balance),
        })
    }

    /// `loyalty balance CARD`.
    pub async fn loyalty_balance(&self, r: CardRequest) -> Result<LoyaltyView, HostsError> {
        r.scope.check()?;
        let card = values::card_number(&r.card)?;
        let (kv, scope) = (self.kv.clone(), r.scope.clone());
        let key = values::points_key(&card);
        let value = blocking(move || Ok(kv.kv_get(&scope.tenant, &scope.plugin, &key)?)).await?;
        let balance = read_points(value.as_deref(), &card)?.balance;
        Ok(LoyaltyView {
            scope: r.scope,
            card: mask_pan(&card),
            credited: None,
            balance_points: balance,
            balance: values::money(balance),
        })
    }

    /// `coupons issue --value V --expires D [--count N]`.
    pub async fn issue_coupons(&self, r: IssueRequest) -> Result<IssuedCoupons, HostsError> {
        r.scope.check()?;
        if !(1..=MAX_AMOUNT).contains(&r.value_minor) {
            return Err(HostsError::invalid(
                "value_minor",
                format!("more than 0 and at most {MAX_AMOUNT} (minor units)"),
            ));
        }
        let expires = expiry(&r.expires)?;
        if !(1..=MAX_ISSUE).contains(&r.count) {
            return Err(HostsError::invalid("count", format!("1 to {MAX_ISSUE}")));
        }
        let kv = self.kv.clone();
        let request = r.clone();
        let issued = blocking(move || Ok(issue(kv.as_ref(), &request, expires))).await?;
        tracing::info!(tenant = %r.scope.tenant, plugin = %r.scope.plugin,
            count = issued.coupons.len(), value_minor = r.value_minor, %expires,
            error = issued.error.as_deref(), "coupons issued");
        Ok(issued)
    }

    /// `coupons list`: every coupon of the tenant, masked.
    pub async fn list_coupons(&self, scope: Scope) -> Result<CouponList, HostsError> {
        scope.check()?;
        let kv: Arc<dyn KvStore> = self.kv.clone();
        let s = scope.clone();
        let stored = blocking(move || Ok(kv.kv_values(&s.tenant, &s.plugin)?)).await?;
        let today = Day::today();
        let coupons: Vec<Coupon> = stored.iter().filter_map(|v| Coupon::parse(v)).collect();
        let other_values = stored.len() - coupons.len();
        let mut coupons: Vec<CouponView> =
            coupons.iter().map(|c| CouponView::new(c, today)).collect();
        coupons.sort_by(|a, b| (&a.expires, &a.number).cmp(&(&b.expires, &b.number)));
        Ok(CouponList {
            scope,
            coupons,
            other_values,
        })
    }
}

#[cfg(test)]
mod tests;
