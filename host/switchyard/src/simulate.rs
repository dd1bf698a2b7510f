//! `switchyard simulate`: a fake host for integration tests — the endpoint
//! simulator of the default wire contract, in any spec and framing, or with
//! the user's own rules (amount suffix → response code, delay or silence).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use serde::Deserialize;
use switchyard_net::mainframe::{MainframeOptions, MainframeSimulator};
use switchyard_net::simulator::{Decision, Rule, Rules};
use switchyard_net::{Simulator, SimulatorOptions};
use tokio_util::sync::CancellationToken;

use crate::Config;
use crate::config::{EndpointConfig, SimulatorFormat};

/// Examples shown by `switchyard simulate --help`.
pub const EXAMPLES: &str = "Examples:
  switchyard simulate                                  # endpoint xxx of the default config on 127.0.0.1:7002
  switchyard simulate --bind 127.0.0.1:9000 --spec iso87-binary --framing 4a
  switchyard simulate --config my.toml --endpoint visa # that endpoint's address and framing
  switchyard simulate --endpoint yyy                   # the mainframe host (EBCDIC records, RDW) on 127.0.0.1:7005
  switchyard simulate --rules host-rules.toml          # your own answers (see below)

A rules file (TOML), first matching rule wins:
  default_rc = \"00\"        # an original no rule matches (default 00, approved with DE38)
  reversal_rc = \"00\"       # every reversal and advice (default 00)
  [[rule]]
  amount_suffix = \"51\"     # DE4 ends in these digits
  rc = \"51\"
  [[rule]]
  amount_suffix = \"77\"
  rc = \"00\"
  delay_ms = 250           # answer late
  [[rule]]
  amount_suffix = \"91\"
  silence = true           # never answer

Serves until SIGINT/SIGTERM.";

/// `switchyard simulate`.
#[derive(Debug, clap::Args)]
#[command(after_help = EXAMPLES)]
pub struct SimulateArgs {
    /// Address to listen on (default: the endpoint's address, 127.0.0.1:7002 for xxx).
    #[arg(long)]
    pub bind: Option<SocketAddr>,
    /// Configuration whose `[endpoints]` and `[specs]` --endpoint and --spec may name.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The endpoint of the configuration to stand in for: its address and
    /// framing (default: xxx, when the configuration has it).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Message spec: a built-in name, a `[specs.NAME]` of --config, or a spec file (.toml).
    #[arg(long, default_value = "iso87-ascii")]
    pub spec: String,
    /// Length framing, e.g. nac, 4a, 2b+tpdu (default: the endpoint's, with the
    /// TPDU the bundled formatter writes).
    #[arg(long)]
    pub framing: Option<String>,
    /// Messages carry no 5-byte TPDU header.
    #[arg(long)]
    pub no_tpdu: bool,
    /// A rules file (TOML, see below) replacing the default contract's answers.
    #[arg(long)]
    pub rules: Option<PathBuf>,
}

/// A rules file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RulesFile {
    #[serde(default = "approved")]
    default_rc: String,
    #[serde(default = "approved")]
    reversal_rc: String,
    #[serde(default)]
    rule: Vec<RuleEntry>,
}

fn approved() -> String {
    "00".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleEntry {
    amount_suffix: String,
    rc: Option<String>,
    delay_ms: Option<u64>,
    #[serde(default)]
    silence: bool,
}

/// Reads and checks a rules file; every problem is named with its place.
pub fn load_rules(path: &Path) -> anyhow::Result<Rules> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading the rules file {}", path.display()))?;
    parse_rules(&text).map_err(|e| anyhow!("rules file {}: {e}", path.display()))
}

/// Parses rules-file text.
pub fn parse_rules(text: &str) -> Result<Rules, String> {
    let file: RulesFile = toml::from_str(text).map_err(|e| e.message().trim().to_owned())?;
    let mut problems = Vec::new();
    check_code("default_rc", &file.default_rc, &mut problems);
    check_code("reversal_rc", &file.reversal_rc, &mut problems);
    let mut rules = Vec::new();
    for (i, r) in file.rule.iter().enumerate() {
        let at = format!("rule[{i}]");
        if r.amount_suffix.is_empty()
            || r.amount_suffix.len() > 12
            || !r.amount_suffix.bytes().all(|b| b.is_ascii_digit())
        {
            problems.push(format!(
                "{at}.amount_suffix: {:?} is not 1 to 12 digits",
                r.amount_suffix
            ));
        }
        let decision = match (r.silence, &r.rc, r.delay_ms) {
            (true, None, None) => Decision::Silence,
            (true, _, _) => {
                problems.push(format!(
                    "{at}: silence = true never answers, so it takes no rc or delay_ms"
                ));
                continue;
            }
            (false, None, _) => {
                problems.push(format!("{at}: give rc = \"NN\" (or silence = true)"));
                continue;
            }
            (false, Some(rc), delay) => {
                check_code(&format!("{at}.rc"), rc, &mut problems);
                if delay.is_some_and(|d| d > 600_000) {
                    problems.push(format!("{at}.delay_ms: at most 600000 (10 minutes)"));
                }
                Decision::Answer {
                    code: rc.clone(),
                    after: delay.map(Duration::from_millis),
                }
            }
        };
        rules.push(Rule {
            amount_suffix: r.amount_suffix.clone(),
            decision,
        });
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok(Rules {
        rules,
        default_code: file.default_rc,
        reversal_code: file.reversal_rc,
    })
}

fn check_code(at: &str, code: &str, problems: &mut Vec<String>) {
    if !(2..=3).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        problems.push(format!(
            "{at}: {code:?} is not a response code (2 characters, or 3 digits for ISO 8583:1993)"
        ));
    }
}

/// Runs `switchyard simulate` until SIGINT/SIGTERM.
pub async fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let config = Config::load_or_default(args.config.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let mainframe =
        endpoint(&args, &config)?.is_some_and(|e| e.simulator_format == SimulatorFormat::Mainframe);
    let token = CancellationToken::new();
    let serving = match mainframe {
        true => serve_mainframe(&args, &config, &token).await?,
        false => serve_iso8583(&args, &config, &token).await?,
    };
    crate::wait_for_signal().await?;
    token.cancel();
    let _ = serving.await;
    Ok(ExitCode::SUCCESS)
}

/// The ISO 8583 simulator (endpoint `xxx` and its kind), serving.
async fn serve_iso8583(
    args: &SimulateArgs,
    config: &Config,
    token: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let options = options(args, config)?;
    let (bind, tpdu, framing) = (options.bind, options.tpdu, options.framing);
    let sim = Simulator::bind(options)
        .await
        .with_context(|| format!("binding {bind}"))?;
    tracing::info!(
        addr = %sim.local_addr()?,
        endpoint = args.endpoint.as_deref().unwrap_or("(none)"),
        spec = %args.spec,
        framing = %framing.with_tpdu(tpdu),
        rules = %rules_name(args),
        "simulating a host"
    );
    Ok(tokio::spawn(sim.serve(token.clone())))
}

/// The mainframe simulator (endpoint `yyy`'s EBCDIC records), serving.
/// `--spec` and the TPDU options do not apply to it.
async fn serve_mainframe(
    args: &SimulateArgs,
    config: &Config,
    token: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let iso = options(args, config)?;
    let framing_name = match &args.framing {
        Some(f) => f.clone(),
        None => endpoint(args, config)?.map_or("rdw".into(), |e| e.framing.clone()),
    };
    let framing = crate::send::framing_named(&framing_name)?;
    let sim = MainframeSimulator::bind(MainframeOptions {
        bind: iso.bind,
        framing,
        max_frame: iso.max_frame,
        rules: iso.rules,
    })
    .await
    .with_context(|| format!("binding {}", iso.bind))?;
    tracing::info!(
        addr = %sim.local_addr()?,
        endpoint = args.endpoint.as_deref().unwrap_or("(none)"),
        format = "mainframe (EBCDIC cp037 records, docs/mainframe.md)",
        framing = %framing,
        rules = %rules_name(args),
        "simulating a host"
    );
    Ok(tokio::spawn(sim.serve(token.clone())))
}

fn rules_name(args: &SimulateArgs) -> String {
    args.rules
        .as_ref()
        .map_or("the default contract".into(), |p| p.display().to_string())
}

/// The endpoint `--endpoint` names (it must exist), or else endpoint `xxx`
/// when the configuration has one.
fn endpoint<'c>(
    args: &SimulateArgs,
    config: &'c Config,
) -> anyhow::Result<Option<&'c EndpointConfig>> {
    let Some(name) = &args.endpoint else {
        return Ok(config.endpoints.get("xxx"));
    };
    let found = config.endpoints.get(name).ok_or_else(|| {
        anyhow!(
            "--endpoint {name:?}: no such endpoint in {} (defined: {})",
            args.config
                .as_ref()
                .map_or("the default config".into(), |p| p.display().to_string()),
            config
                .endpoints
                .keys()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    Ok(Some(found))
}

/// What the simulator serves: the arguments over the endpoint's settings.
fn options(args: &SimulateArgs, config: &Config) -> anyhow::Result<SimulatorOptions> {
    let endpoint = endpoint(args, config)?;
    let bind = match (args.bind, endpoint) {
        (Some(b), _) => b,
        (None, Some(e)) => e.address.parse().with_context(|| {
            format!(
                "the endpoint's address {:?} is not ip:port; give --bind",
                e.address
            )
        })?,
        (None, None) => bail!("the configuration has no endpoint xxx: give --bind or --endpoint"),
    };
    // The bundled formatters write a TPDU after the endpoint's header.
    let framing_name = args
        .framing
        .clone()
        .unwrap_or_else(|| format!("{}+tpdu", endpoint.map_or("nac", |e| e.framing.as_str())));
    let framing = crate::send::framing_named(&framing_name)?;
    let spec = config
        .find_spec(&args.spec)
        .map_err(|e| anyhow!("--spec: {e}"))?;
    if spec.field(39).is_none() {
        bail!(
            "--spec {}: it has no DE39, so it cannot carry a response code",
            spec.name()
        );
    }
    let rules = match &args.rules {
        Some(path) => load_rules(path)?,
        None => Rules::contract(Duration::from_millis(250)),
    };
    Ok(SimulatorOptions {
        bind,
        framing: framing.with_tpdu(false),
        tpdu: framing.tpdu() && !args.no_tpdu,
        spec: Arc::new(spec),
        max_frame: endpoint.map_or(8192, |e| e.max_frame.max(8192)),
        rules: Arc::new(rules),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rules_file_with_every_kind_of_rule() {
        let rules = parse_rules(
            "default_rc = \"05\"\nreversal_rc = \"96\"\n\
             [[rule]]\namount_suffix = \"51\"\nrc = \"51\"\n\
             [[rule]]\namount_suffix = \"77\"\nrc = \"00\"\ndelay_ms = 300\n\
             [[rule]]\namount_suffix = \"91\"\nsilence = true\n",
        )
        .unwrap();
        assert_eq!(rules.default_code, "05");
        assert_eq!(rules.reversal_code, "96");
        assert_eq!(rules.rules.len(), 3);
        assert_eq!(rules.rules[2].decision, Decision::Silence);
        assert_eq!(
            rules.rules[1].decision,
            Decision::Answer {
                code: "00".into(),
                after: Some(Duration::from_millis(300))
            }
        );
    }

    #[test]
    fn a_bad_rules_file_names_every_problem() {
        let err = parse_rules(
            "[[rule]]\namount_suffix = \"5x\"\nrc = \"5\"\n\
             [[rule]]\namount_suffix = \"91\"\nsilence = true\nrc = \"00\"\n\
             [[rule]]\namount_suffix = \"12\"\n",
        )
        .unwrap_err();
        for needle in [
            "rule[0].amount_suffix: \"5x\" is not 1 to 12 digits",
            "rule[0].rc: \"5\" is not a response code",
            "rule[1]: silence = true never answers",
            "rule[2]: give rc",
        ] {
            assert!(err.contains(needle), "{needle:?} not in {err}");
        }
        let err =
            parse_rules("[[rule]]\namount_suffix = \"1\"\nrc = \"00\"\ncolour = 1\n").unwrap_err();
        assert!(err.contains("colour"), "{err}");
    }
}
