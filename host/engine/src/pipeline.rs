//! Pipelines: participants, groups, and the transaction manager that runs them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::context::Context;
use crate::participant::{AsyncParticipant, Failure, FailureKind, Outcome, Participant};
use crate::profiler::Label;
use crate::rc;

/// Index of a participant within its pipeline.
pub type NodeId = u32;

/// Most participants one transaction may run, selected groups included: a
/// selector that selects itself must not spin for ever.
const MAX_STEPS: usize = 256;

/// How a participant is called.
#[derive(Clone)]
pub enum Step {
    /// Runs on the transaction's thread.
    Sync(Arc<dyn Participant>),
    /// Waits on the outside world in `prepare`.
    Async(Arc<dyn AsyncParticipant>),
}

/// A named participant of a pipeline.
#[derive(Clone)]
pub struct Node {
    name: Arc<str>,
    step: Step,
}

impl Node {
    /// The participant's name in the pipeline's configuration.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it is called.
    pub fn step(&self) -> &Step {
        &self.step
    }
}

/// Errors building a pipeline.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// Two participants share a name.
    #[error("participant {0:?} is defined twice")]
    DuplicateParticipant(String),
    /// A group or the main list names a participant that does not exist.
    #[error("{list} names participant {name:?}, which is not defined")]
    UnknownParticipant {
        /// `participants` or `groups.NAME`.
        list: String,
        /// The missing name.
        name: String,
    },
    /// The main list is empty.
    #[error("the pipeline has no participants")]
    Empty,
}

/// Called when a transaction enters a pipeline, before any participant
/// (the WASM runtime pins the plugin versions the transaction will use).
pub type BeginHook = Arc<dyn Fn(&mut Context) + Send + Sync>;

/// Builds a [`Pipeline`].
#[derive(Default)]
pub struct PipelineBuilder {
    name: String,
    begin: Vec<BeginHook>,
    nodes: Vec<Node>,
    by_name: HashMap<String, NodeId>,
    main: Vec<String>,
    groups: Vec<(String, Vec<String>)>,
}

impl PipelineBuilder {
    /// A builder for the pipeline called `name`.
    pub fn new(name: impl Into<String>) -> PipelineBuilder {
        PipelineBuilder {
            name: name.into(),
            ..PipelineBuilder::default()
        }
    }

    /// Defines a participant.
    pub fn participant(&mut self, name: &str, step: Step) -> Result<NodeId, PipelineError> {
        if self.by_name.contains_key(name) {
            return Err(PipelineError::DuplicateParticipant(name.into()));
        }
        let id = self.nodes.len() as NodeId;
        self.nodes.push(Node {
            name: name.into(),
            step,
        });
        self.by_name.insert(name.into(), id);
        Ok(id)
    }

    /// Sets the main list: the participants every transaction starts with.
    pub fn main<S: AsRef<str>>(&mut self, names: &[S]) -> &mut Self {
        self.main = names.iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }

    /// Defines a group a selector can choose.
    pub fn group<S: AsRef<str>>(&mut self, name: &str, members: &[S]) -> &mut Self {
        self.groups.push((
            name.to_owned(),
            members.iter().map(|s| s.as_ref().to_owned()).collect(),
        ));
        self
    }

    /// Adds a hook run when each transaction enters the pipeline.
    pub fn on_begin(&mut self, hook: BeginHook) -> &mut Self {
        self.begin.push(hook);
        self
    }

    /// Resolves every name; reports every unknown one at once.
    pub fn build(self) -> Result<Pipeline, Vec<PipelineError>> {
        let mut errors = Vec::new();
        let resolve = |list: &str, names: &[String], errors: &mut Vec<PipelineError>| {
            names
                .iter()
                .filter_map(|n| match self.by_name.get(n) {
                    Some(id) => Some(*id),
                    None => {
                        errors.push(PipelineError::UnknownParticipant {
                            list: list.to_owned(),
                            name: n.clone(),
                        });
                        None
                    }
                })
                .collect::<Vec<_>>()
        };
        let main = resolve("participants", &self.main, &mut errors);
        if self.main.is_empty() {
            errors.push(PipelineError::Empty);
        }
        let mut groups = HashMap::new();
        for (name, members) in &self.groups {
            let ids = resolve(&format!("groups.{name}"), members, &mut errors);
            groups.insert(name.clone(), ids);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Pipeline {
            name: self.name.into(),
            begin: self.begin,
            nodes: self.nodes,
            by_name: self.by_name,
            main,
            groups,
        })
    }
}

/// A transaction pipeline: the main list of participants and the groups that
/// selectors splice in.
pub struct Pipeline {
    name: Arc<str>,
    begin: Vec<BeginHook>,
    nodes: Vec<Node>,
    by_name: HashMap<String, NodeId>,
    main: Vec<NodeId>,
    groups: HashMap<String, Vec<NodeId>>,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every participant prepared; joined ones were committed.
    Committed,
    /// A participant aborted or failed; joined ones were aborted.
    Aborted,
}

/// The result of running a pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disposition {
    /// Committed or aborted.
    pub verdict: Verdict,
    /// Participants that failed (trap, deadline, host error), by name.
    pub failures: Vec<(String, Failure)>,
    /// Participants that joined and committed, in order (empty when
    /// aborted): what a later reversal of the transaction tells.
    pub committed: Vec<NodeId>,
}

impl Pipeline {
    /// The pipeline's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A participant by id.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(id as usize)
    }

    /// A participant's id by name.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.by_name.get(name).copied()
    }

    /// Every participant, in definition order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The participants of a group: a defined group, or else the participant
    /// of that name alone.
    fn group(&self, name: &str) -> Option<std::borrow::Cow<'_, [NodeId]>> {
        if let Some(g) = self.groups.get(name) {
            return Some(std::borrow::Cow::Borrowed(g));
        }
        self.by_name
            .get(name)
            .map(|id| std::borrow::Cow::Owned(vec![*id]))
    }

    /// Runs one transaction through the pipeline (jPOS TransactionManager
    /// semantics) and records each step in the context's profiler.
    pub async fn run(&self, ctx: &mut Context) -> Disposition {
        for hook in &self.begin {
            hook(ctx);
        }
        let mut queue: Vec<NodeId> = Vec::with_capacity(self.main.len() + 8);
        queue.extend_from_slice(&self.main);
        let mut members: Vec<NodeId> = Vec::with_capacity(queue.capacity());
        let mut failures = Vec::new();
        let mut aborting = false;
        let mut i = 0;

        while i < queue.len() {
            let id = queue[i];
            i += 1;
            if i > MAX_STEPS {
                let f = Failure::new(
                    FailureKind::UnknownGroup,
                    format!("more than {MAX_STEPS} participants selected: a selector loops"),
                );
                self.fail(ctx, &mut failures, id, f, &mut aborting);
                break;
            }
            let node = &self.nodes[id as usize];
            let was_aborting = aborting;
            let result = if aborting {
                match &node.step {
                    Step::Sync(p) => p.prepare_for_abort(ctx),
                    Step::Async(p) => p.prepare_for_abort(ctx),
                }
            } else {
                Some(match &node.step {
                    Step::Sync(p) => p.prepare(ctx),
                    Step::Async(p) => p.prepare(ctx).await,
                })
            };
            let outcome = match result {
                None => None,
                Some(Ok(outcome)) => Some(outcome),
                Some(Err(f)) => {
                    self.fail(ctx, &mut failures, id, f, &mut aborting);
                    Some(Outcome::ABORTED)
                }
            };
            if let Some(outcome) = outcome {
                ctx.profiler.checkpoint(Label::Prepare(id));
                if outcome.joins() {
                    members.push(id);
                }
                if !outcome.is_prepared() && !aborting {
                    aborting = true;
                    if ctx.result_code().is_none() {
                        ctx.set_result_code(rc::SYSTEM_ERROR);
                    }
                }
            }
            // A selector chooses after a successful prepare, and also while
            // the transaction aborts, so that the abort participants of the
            // chosen groups (response building, sending) still run.
            let selects = match outcome {
                Some(o) => o.is_prepared() || was_aborting,
                None => true,
            };
            if selects && let Step::Sync(p) = &node.step {
                let selection = p.select(ctx);
                if outcome.is_none() && selection.is_some() {
                    // Skipped prepare while aborting, but selected: show it.
                    ctx.profiler.checkpoint(Label::Prepare(id));
                }
                match selection {
                    None => {}
                    Some(Ok(groups)) => {
                        if let Err(f) = self.splice(&mut queue, i, &groups) {
                            self.fail(ctx, &mut failures, id, f, &mut aborting);
                        }
                    }
                    Some(Err(f)) => self.fail(ctx, &mut failures, id, f, &mut aborting),
                }
            }
        }

        for &id in &members {
            let node = &self.nodes[id as usize];
            let (result, label) = match (&node.step, aborting) {
                (Step::Sync(p), false) => (p.commit(ctx), Label::Commit(id)),
                (Step::Sync(p), true) => (p.abort(ctx), Label::Abort(id)),
                (Step::Async(p), false) => (p.commit(ctx), Label::Commit(id)),
                (Step::Async(p), true) => (p.abort(ctx), Label::Abort(id)),
            };
            ctx.profiler.checkpoint(label);
            if let Err(f) = result {
                tracing::error!(tenant = %ctx.tenant(), listener = ctx.listener(),
                    pipeline = %self.name, participant = %node.name,
                    stan = ctx.request.get_str(11).unwrap_or(""), error = %f,
                    "participant failed in the second phase");
                failures.push((node.name.to_string(), f));
            }
        }
        ctx.profiler.end();
        Disposition {
            verdict: if aborting {
                Verdict::Aborted
            } else {
                Verdict::Committed
            },
            failures,
            committed: if aborting { Vec::new() } else { members },
        }
    }

    /// Tells the participants named in `names` (those that committed a
    /// transaction, as the tranlog recorded them) that it was reversed:
    /// [`Participant::reverse`] of each, in order. Names the pipeline no
    /// longer defines are skipped; the failures are returned by name.
    pub fn reverse(&self, names: &[String], ctx: &mut Context) -> Vec<(String, Failure)> {
        let mut failures = Vec::new();
        for name in names {
            let Some(node) = self.node_id(name).and_then(|id| self.node(id)) else {
                tracing::warn!(tenant = %ctx.tenant(), listener = ctx.listener(),
                    pipeline = %self.name, participant = %name,
                    "a reversed transaction names a participant this pipeline no longer has");
                continue;
            };
            if let Step::Sync(p) = &node.step
                && let Some(Err(f)) = p.reverse(ctx)
            {
                failures.push((name.clone(), f));
            }
        }
        failures
    }

    fn splice(&self, queue: &mut Vec<NodeId>, at: usize, groups: &[String]) -> Result<(), Failure> {
        let mut ids = Vec::new();
        for g in groups {
            match self.group(g) {
                Some(members) => ids.extend_from_slice(&members),
                None => {
                    return Err(Failure::new(
                        FailureKind::UnknownGroup,
                        format!(
                            "selected group {g:?} is not defined in pipeline {:?}",
                            self.name
                        ),
                    ));
                }
            }
        }
        queue.splice(at..at, ids);
        Ok(())
    }

    fn fail(
        &self,
        ctx: &mut Context,
        failures: &mut Vec<(String, Failure)>,
        id: NodeId,
        failure: Failure,
        aborting: &mut bool,
    ) {
        let name = &self.nodes[id as usize].name;
        if failure.logged {
            tracing::debug!(tenant = %ctx.tenant(), listener = ctx.listener(),
                pipeline = %self.name, participant = %name, kind = ?failure.kind,
                stan = ctx.request.get_str(11).unwrap_or(""), error = %failure.message,
                "participant failed; transaction aborts with 96");
        } else {
            tracing::warn!(tenant = %ctx.tenant(), listener = ctx.listener(),
                pipeline = %self.name, participant = %name, kind = ?failure.kind,
                stan = ctx.request.get_str(11).unwrap_or(""), error = %failure.message,
                "participant failed; transaction aborts with 96");
        }
        if !*aborting {
            ctx.set_result_code(rc::SYSTEM_ERROR);
            *aborting = true;
        }
        ctx.failure
            .get_or_insert_with(|| format!("{name}: {failure}"));
        failures.push((name.to_string(), failure));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parking_lot_free::Log;
    use switchyard_iso8583::{Message, Mti};

    /// A tiny shared log without extra dependencies.
    mod parking_lot_free {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        pub struct Log(Arc<Mutex<Vec<String>>>);
        impl Log {
            pub fn push(&self, s: String) {
                self.0.lock().unwrap().push(s);
            }
            pub fn take(&self) -> Vec<String> {
                std::mem::take(&mut self.0.lock().unwrap())
            }
        }
    }

    struct Fake {
        name: &'static str,
        outcome: Outcome,
        on_abort: bool,
        selects: Option<Vec<String>>,
        fails: bool,
        log: Log,
    }

    impl Fake {
        fn new(name: &'static str, outcome: Outcome, log: &Log) -> Fake {
            Fake {
                name,
                outcome,
                on_abort: false,
                selects: None,
                fails: false,
                log: log.clone(),
            }
        }
    }

    impl Participant for Fake {
        fn prepare(&self, ctx: &mut Context) -> Result<Outcome, Failure> {
            self.log.push(format!("prepare {}", self.name));
            if self.fails {
                return Err(Failure::new(FailureKind::Trap, "boom"));
            }
            if !self.outcome.is_prepared() {
                ctx.set_result_code("14");
            }
            Ok(self.outcome)
        }
        fn prepare_for_abort(&self, _ctx: &mut Context) -> Option<Result<Outcome, Failure>> {
            self.on_abort.then(|| {
                self.log.push(format!("prepare-for-abort {}", self.name));
                Ok(Outcome::PREPARED)
            })
        }
        fn commit(&self, _ctx: &mut Context) -> Result<(), Failure> {
            self.log.push(format!("commit {}", self.name));
            Ok(())
        }
        fn abort(&self, _ctx: &mut Context) -> Result<(), Failure> {
            self.log.push(format!("abort {}", self.name));
            Ok(())
        }
        fn select(&self, _ctx: &mut Context) -> Option<Result<Vec<String>, Failure>> {
            self.selects.clone().map(Ok)
        }
    }

    fn ctx() -> Context {
        Context::new(
            "t".into(),
            "l".into(),
            5001,
            Message::new(Mti::new("0200").unwrap()),
        )
    }

    fn run(p: &Pipeline, ctx: &mut Context) -> Disposition {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(p.run(ctx))
    }

    fn sync(f: Fake) -> Step {
        Step::Sync(Arc::new(f))
    }

    #[test]
    fn all_prepared_commits_joined_in_order() {
        let log = Log::default();
        let mut b = PipelineBuilder::new("p");
        b.participant("a", sync(Fake::new("a", Outcome::PREPARED, &log)))
            .unwrap();
        b.participant("b", sync(Fake::new("b", Outcome::NO_JOIN, &log)))
            .unwrap();
        b.participant("c", sync(Fake::new("c", Outcome::PREPARED_READ_ONLY, &log)))
            .unwrap();
        b.main(&["a", "b", "c"]);
        let p = b.build().unwrap();
        let mut c = ctx();
        let d = run(&p, &mut c);
        assert_eq!(d.verdict, Verdict::Committed);
        assert_eq!(
            log.take(),
            [
                "prepare a",
                "prepare b",
                "prepare c",
                "commit a",
                "commit c"
            ]
        );
        let trace = c.profiler.trace(Some(&p), None).to_string();
        assert!(trace.starts_with("open [0.000/0.000] a ["), "{trace}");
        assert!(trace.contains(" commit:c ["), "{trace}");
        assert!(trace.contains(" end ["), "{trace}");
    }

    #[test]
    fn abort_stops_prepare_and_aborts_members_including_the_aborter() {
        let log = Log::default();
        let mut b = PipelineBuilder::new("p");
        b.participant("a", sync(Fake::new("a", Outcome::PREPARED, &log)))
            .unwrap();
        b.participant("v", sync(Fake::new("v", Outcome::ABORTED, &log)))
            .unwrap();
        b.participant("x", sync(Fake::new("x", Outcome::PREPARED, &log)))
            .unwrap();
        let mut send = Fake::new("send", Outcome::PREPARED, &log);
        send.on_abort = true;
        b.participant("send", sync(send)).unwrap();
        b.main(&["a", "v", "x", "send"]);
        let p = b.build().unwrap();
        let mut c = ctx();
        let d = run(&p, &mut c);
        assert_eq!(d.verdict, Verdict::Aborted);
        assert_eq!(c.result_code(), Some("14"));
        assert_eq!(
            log.take(),
            [
                "prepare a",
                "prepare v",
                "prepare-for-abort send",
                "abort a",
                "abort v",
                "abort send"
            ]
        );
    }

    #[test]
    fn selector_splices_groups_and_single_participant_names() {
        let log = Log::default();
        let mut b = PipelineBuilder::new("p");
        let mut sw = Fake::new("switch", Outcome::NO_JOIN, &log);
        sw.selects = Some(vec!["auth".into(), "send".into()]);
        b.participant("switch", sync(sw)).unwrap();
        b.participant("local", sync(Fake::new("local", Outcome::PREPARED, &log)))
            .unwrap();
        b.participant("close", sync(Fake::new("close", Outcome::PREPARED, &log)))
            .unwrap();
        b.participant("send", sync(Fake::new("send", Outcome::PREPARED, &log)))
            .unwrap();
        b.main(&["switch", "close"]);
        b.group("auth", &["local"]);
        let p = b.build().unwrap();
        let mut c = ctx();
        assert_eq!(run(&p, &mut c).verdict, Verdict::Committed);
        assert_eq!(
            log.take(),
            [
                "prepare switch",
                "prepare local",
                "prepare send",
                "prepare close",
                "commit local",
                "commit send",
                "commit close"
            ]
        );
    }

    #[test]
    fn selector_selects_while_aborting_so_abort_participants_run() {
        let log = Log::default();
        let mut b = PipelineBuilder::new("p");
        b.participant("v", sync(Fake::new("v", Outcome::ABORTED, &log)))
            .unwrap();
        let mut sw = Fake::new("switch", Outcome::NO_JOIN, &log);
        sw.selects = Some(vec!["local".into(), "send".into()]);
        b.participant("switch", sync(sw)).unwrap();
        b.participant("local", sync(Fake::new("local", Outcome::PREPARED, &log)))
            .unwrap();
        let mut send = Fake::new("send", Outcome::PREPARED, &log);
        send.on_abort = true;
        b.participant("send", sync(send)).unwrap();
        b.main(&["v", "switch"]);
        let p = b.build().unwrap();
        let mut c = ctx();
        assert_eq!(run(&p, &mut c).verdict, Verdict::Aborted);
        assert_eq!(
            log.take(),
            [
                "prepare v",
                "prepare-for-abort send",
                "abort v",
                "abort send"
            ]
        );
    }

    #[test]
    fn failure_aborts_with_96_and_unknown_group_too() {
        let log = Log::default();
        let mut b = PipelineBuilder::new("p");
        let mut bad = Fake::new("bad", Outcome::PREPARED, &log);
        bad.fails = true;
        b.participant("bad", sync(bad)).unwrap();
        b.main(&["bad"]);
        let p = b.build().unwrap();
        let mut c = ctx();
        let d = run(&p, &mut c);
        assert_eq!(d.verdict, Verdict::Aborted);
        assert_eq!(c.result_code(), Some("96"));
        assert_eq!(d.failures.len(), 1);

        let mut b = PipelineBuilder::new("p");
        let mut sw = Fake::new("switch", Outcome::NO_JOIN, &log);
        sw.selects = Some(vec!["nowhere".into()]);
        b.participant("switch", sync(sw)).unwrap();
        b.main(&["switch"]);
        let p = b.build().unwrap();
        let mut c = ctx();
        let d = run(&p, &mut c);
        assert_eq!(d.verdict, Verdict::Aborted);
        assert_eq!(c.result_code(), Some("96"));
        assert_eq!(d.failures[0].1.kind, FailureKind::UnknownGroup);
    }

    #[test]
    fn self_selecting_selector_is_stopped() {
        let log = Log::default();
        let mut b = PipelineBuilder::new("p");
        let mut sw = Fake::new("switch", Outcome::NO_JOIN, &log);
        sw.selects = Some(vec!["switch".into()]);
        b.participant("switch", sync(sw)).unwrap();
        b.main(&["switch"]);
        let p = b.build().unwrap();
        let mut c = ctx();
        assert_eq!(run(&p, &mut c).verdict, Verdict::Aborted);
        assert_eq!(c.result_code(), Some("96"));
    }

    #[test]
    fn build_reports_every_unknown_name() {
        let log = Log::default();
        let mut b = PipelineBuilder::new("p");
        b.participant("a", sync(Fake::new("a", Outcome::PREPARED, &log)))
            .unwrap();
        assert!(matches!(
            b.participant("a", sync(Fake::new("a", Outcome::PREPARED, &log))),
            Err(PipelineError::DuplicateParticipant(_))
        ));
        b.main(&["a", "nope"]);
        b.group("g", &["gone"]);
        let errs = b.build().err().unwrap();
        assert_eq!(errs.len(), 2, "{errs:?}");
        assert_eq!(
            errs[1].to_string(),
            "groups.g names participant \"gone\", which is not defined"
        );
    }
}
