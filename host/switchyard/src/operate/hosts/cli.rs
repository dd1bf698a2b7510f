//! `switchyard loyalty credit|balance` and `switchyard coupons issue|list`:
//! like `tranlog`/`saf`/`keys`, they ask the running switch (its admin API)
//! when one holds the data directory, and otherwise open the stopped
//! switch's data directory directly.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};

use super::{
    CardRequest, CouponList, DEFAULT_COUPON_PLUGIN, DEFAULT_LOYALTY_PLUGIN, DEFAULT_TENANT,
    IssueRequest, IssuedCoupons, LoyaltyView, Scope, values,
};
use crate::config::Config;
use crate::operate::cli::{Backend, Target, print, q};

/// Whose data: the tenant, the plugin, the switch.
#[derive(Debug, Args)]
pub struct HostTarget {
    /// The tenant.
    #[arg(long, default_value = DEFAULT_TENANT)]
    tenant: String,
    /// The plugin's name under [plugins.NAME] in the config (default: the
    /// one whose file is builtin:loyalty or builtin:coupon, else loyalty or
    /// coupon).
    #[arg(long)]
    plugin: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// `switchyard loyalty …`.
#[derive(Debug, Subcommand)]
pub enum LoyaltyCommand {
    /// Add POINTS to a loyalty card (1 point = 0.01 of the currency) and
    /// print its new balance.
    #[command(after_help = "Example: switchyard loyalty credit 6006490000000004 1500")]
    Credit {
        /// The loyalty card's number (12 to 19 digits, Luhn-valid).
        card: String,
        /// How many points: a positive whole number.
        points: String,
        #[command(flatten)]
        on: HostTarget,
    },
    /// A loyalty card's balance, in points and as money.
    #[command(
        after_help = "Example: switchyard loyalty balance 6006490000000004 --tenant acme --json"
    )]
    Balance {
        /// The loyalty card's number (12 to 19 digits, Luhn-valid).
        card: String,
        #[command(flatten)]
        on: HostTarget,
    },
}

/// `switchyard coupons …`.
#[derive(Debug, Subcommand)]
pub enum CouponsCommand {
    /// Issue coupons: new numbers in the range 600650 (Luhn-valid), printed
    /// in full to hand out, each redeemable once up to its value.
    #[command(
        after_help = "Example: switchyard coupons issue --value 25.00 --expires 2027-06-30 --count 10"
    )]
    Issue {
        /// Each coupon's value: an amount such as 25.00.
        #[arg(long)]
        value: String,
        /// The last day it can be redeemed, YYYY-MM-DD (UTC); not in the past.
        #[arg(long)]
        expires: String,
        /// How many coupons (1 to 1000).
        #[arg(long, default_value_t = 1)]
        count: u32,
        #[command(flatten)]
        on: HostTarget,
    },
    /// Every coupon of the tenant: number (masked), value, expiry, state
    /// (open, redeemed, expired).
    #[command(after_help = "Example: switchyard coupons list --tenant acme")]
    List {
        #[command(flatten)]
        on: HostTarget,
    },
}

impl HostTarget {
    /// The tenant and plugin meant: `--plugin`, else the config's
    /// `[plugins.X]` with `file = "builtin:BUILTIN"`, else `fallback`.
    fn scope(&self, builtin: &str, fallback: &str) -> anyhow::Result<Scope> {
        let plugin = match &self.plugin {
            Some(p) => p.clone(),
            None => {
                let config = Config::load_or_default(self.target.admin.config.as_deref());
                match config {
                    Ok(c) => plugin_of(&c, builtin, fallback)?,
                    // The API named by --url answers without the config.
                    Err(_) if self.target.admin.url.is_some() => fallback.to_owned(),
                    Err(e) => return Err(anyhow!("{e}")),
                }
            }
        };
        let scope = Scope {
            tenant: self.tenant.clone(),
            plugin,
        };
        scope.check()?;
        Ok(scope)
    }
}

/// The name of the config's one plugin whose file is `builtin:BUILTIN`;
/// `fallback` when there is none.
pub fn plugin_of(config: &Config, builtin: &str, fallback: &str) -> anyhow::Result<String> {
    let file = format!("builtin:{builtin}");
    let names: Vec<&String> = config
        .plugins
        .iter()
        .filter(|(_, p)| p.file == file)
        .map(|(name, _)| name)
        .collect();
    match names[..] {
        [] => Ok(fallback.to_owned()),
        [one] => Ok(one.clone()),
        _ => bail!(
            "the config has several {file} plugins ({}): say which with --plugin",
            names
                .iter()
                .map(|n| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs a `loyalty` subcommand.
pub async fn loyalty(command: LoyaltyCommand) -> anyhow::Result<ExitCode> {
    let (card, points, on) = match command {
        LoyaltyCommand::Credit { card, points, on } => (card, Some(points), on),
        LoyaltyCommand::Balance { card, on } => (card, None, on),
    };
    let points = points.as_deref().map(values::parse_points).transpose()?;
    let request = CardRequest {
        scope: on.scope("loyalty", DEFAULT_LOYALTY_PLUGIN)?,
        card: values::card_number(&card)?,
        points,
    };
    let view: LoyaltyView = match (on.target.backend().await?, points.is_some()) {
        (Backend::Remote(c), true) => c.post_body_json("/loyalty/credit", &request).await?,
        (Backend::Remote(c), false) => c.post_body_json("/loyalty/balance", &request).await?,
        (Backend::Direct(ops, _lock), true) => ops.loyalty_credit(request).await?,
        (Backend::Direct(ops, _lock), false) => ops.loyalty_balance(request).await?,
    };
    print(on.target.json, &view, format_loyalty)?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a `coupons` subcommand.
pub async fn coupons(command: CouponsCommand) -> anyhow::Result<ExitCode> {
    match command {
        CouponsCommand::Issue {
            value,
            expires,
            count,
            on,
        } => {
            let request = IssueRequest {
                scope: on.scope("coupon", DEFAULT_COUPON_PLUGIN)?,
                value_minor: values::parse_money("--value", &value)?,
                expires: super::expiry(&expires)?.to_string(),
                count,
            };
            let issued: IssuedCoupons = match on.target.backend().await? {
                Backend::Remote(c) => c.post_body_json("/coupons/issue", &request).await?,
                Backend::Direct(ops, _lock) => ops.issue_coupons(request).await?,
            };
            if issued.coupons.is_empty()
                && let Some(e) = &issued.error
            {
                bail!("no coupon issued: {e}");
            }
            print(on.target.json, &issued, format_issued)?;
            Ok(match issued.error {
                Some(_) => ExitCode::FAILURE,
                None => ExitCode::SUCCESS,
            })
        }
        CouponsCommand::List { on } => {
            let scope = on.scope("coupon", DEFAULT_COUPON_PLUGIN)?;
            let list: CouponList = match on.target.backend().await? {
                Backend::Remote(c) => {
                    let path = format!(
                        "/coupons?tenant={}&plugin={}",
                        q(&scope.tenant),
                        q(&scope.plugin)
                    );
                    c.get_json(&path).await?
                }
                Backend::Direct(ops, _lock) => ops.list_coupons(scope).await?,
            };
            print(on.target.json, &list, format_coupons)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn scope_text(s: &Scope) -> String {
    format!("tenant {}, plugin {}", s.tenant, s.plugin)
}

/// `loyalty credit` / `loyalty balance`.
pub fn format_loyalty(v: &LoyaltyView) -> String {
    let credited = v
        .credited
        .map(|p| format!("credited {p} points; "))
        .unwrap_or_default();
    format!(
        "card {}: {credited}balance {} points ({}) ({})",
        v.card,
        v.balance_points,
        v.balance,
        scope_text(&v.scope)
    )
}

/// `coupons issue`: the numbers in full.
pub fn format_issued(v: &IssuedCoupons) -> String {
    let mut out = format!(
        "issued {} coupon(s) ({}):\n{:<19}  {:>14}  EXPIRES\n",
        v.coupons.len(),
        scope_text(&v.scope),
        "COUPON",
        "VALUE"
    );
    for c in &v.coupons {
        let _ = writeln!(out, "{:<19}  {:>14}  {}", c.number, c.value, c.expires);
    }
    if let Some(e) = &v.error {
        let _ = writeln!(out, "stopped early: {e}");
    }
    out
}

/// `coupons list`: the numbers masked.
pub fn format_coupons(list: &CouponList) -> String {
    let mut out = String::new();
    if list.coupons.is_empty() {
        let _ = writeln!(out, "no coupons ({})", scope_text(&list.scope));
    } else {
        let _ = writeln!(
            out,
            "{:<19}  {:>14}  {:<10}  STATE",
            "COUPON", "VALUE", "EXPIRES"
        );
        for c in &list.coupons {
            let by = c
                .redeemed_by
                .as_ref()
                .map(|t| format!(" by {t}"))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "{:<19}  {:>14}  {:<10}  {}{by}",
                c.number, c.value, c.expires, c.state
            );
        }
        let _ = writeln!(
            out,
            "{} coupon(s) ({})",
            list.coupons.len(),
            scope_text(&list.scope)
        );
    }
    if list.other_values > 0 {
        let _ = writeln!(
            out,
            "{} value(s) of this plugin are not coupons: skipped",
            list.other_values
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_plugin_defaults_to_the_builtin_one_in_the_config() {
        let mut config = crate::config::Config::default_config();
        config.plugins.retain(|_, p| p.file != "builtin:coupon");
        assert_eq!(plugin_of(&config, "coupon", "coupon").unwrap(), "coupon");
        let template = config.plugins.values().next().unwrap().clone();
        let coupon = crate::config::PluginConfig {
            file: "builtin:coupon".into(),
            ..template
        };
        config.plugins.insert("gifts".into(), coupon.clone());
        assert_eq!(plugin_of(&config, "coupon", "coupon").unwrap(), "gifts");
        config.plugins.insert("more".into(), coupon);
        let e = plugin_of(&config, "coupon", "coupon")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gifts, more") && e.contains("--plugin"), "{e}");
    }
}
