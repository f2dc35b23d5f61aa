//! What a mission costs, budgets that hold and a stop that reaches every agent, from outside: the
//! `orchestrator` binary against a real OpenCode server whose scripted model reports token usage on every
//! answer, priced in OpenCode's configuration so that each answer has a cost. What the tests expect comes
//! from the scripted model's log of what it reported ([`ModelRequest::usage`]), never from constants.
//! `ORCH_SKIP_OPENCODE=1` skips them.
//!
//! OpenCode also asks the model for session titles; those answers are not messages of any session, so
//! neither OpenCode's session usage nor the orchestrator sees them, and they are left out of the sums
//! (every title request offers no tools; every agent's turn offers some).

mod common;

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{orchestrator, show, status, task_status, wait_with_limit, worker_first_turns};
use opencode_client::testkit::{
    Match, ModelPrice, ModelRequest, Reply, Rule, Script, ScriptedModel, Usage,
};
use orchestrator::adapters::journal;
use orchestrator::cli::demo::{agent, approve, planner_reply, titles, write};
use orchestrator::domain::prompts::Role;
use serde_json::{Value, json};

/// The scripted model's price: 2 per million input tokens, 10 per million output (and reasoning) tokens,
/// 0.5 per million cached tokens read.
fn price() -> ModelPrice {
    ModelPrice::new(2.0, 10.0).cache(0.5, 0.0)
}

/// Worker slots of the budget test.
const SLOTS: usize = 2;

/// The tasks of the three-task plan (T1.3 depends on the others) and the files their Workers write.
const TASKS: [(&str, &str); 3] = [
    ("T1.1", "one.txt"),
    ("T1.2", "two.txt"),
    ("T1.3", "three.txt"),
];

/// The three-task mission with a usage on every answer (each rule its own, so that sums per task and per
/// role differ); `slow` delays that task's first Worker answer, once.
fn script(slow: Option<(&str, Duration)>) -> Script {
    let mut script = Script::new()
        .rule(titles())
        .rule(
            Rule::when(agent(Role::Commander))
                .reply(Reply::text("Three files.").with_usage(Usage::new(1200, 80))),
        )
        .rule(Rule::when(agent(Role::Planner)).reply(
            planner_reply(common::THREE_TASKS).with_usage(Usage::new(1800, 300).reasoning(100)),
        ));
    for (number, (id, file)) in (1u64..).zip(TASKS) {
        let task = Match::AnyUserContains(format!("TASK {id}:"));
        let first = Reply::ToolCalls(vec![write(file, &format!("{id}\n"))]).with_usage(
            Usage::new(3000 + 100 * number, 400)
                .cached(1000)
                .reasoning(50),
        );
        script = script.rule(
            Rule::when(Match::All(vec![
                agent(Role::Worker),
                task.clone(),
                Match::LastIsToolResult,
            ]))
            .reply(
                Reply::text(format!("Wrote {file}.\nSTATUS: DONE Wrote {file}."))
                    .with_usage(Usage::new(3500 + 10 * number, 120).cached(2000)),
            ),
        );
        if let Some((slow_id, delay)) = slow
            && slow_id == id
        {
            script = script.rule(
                Rule::when(Match::All(vec![agent(Role::Worker), task.clone()]))
                    .reply(first.clone().delayed(delay))
                    .times(1),
            );
        }
        script = script.rule(Rule::when(Match::All(vec![agent(Role::Worker), task])).reply(first));
    }
    script.rule(
        Rule::when(agent(Role::Reviewer)).reply(
            Reply::text("VERDICT: APPROVED\n- The change does the task.")
                .with_usage(Usage::new(2500, 60).cached(500)),
        ),
    )
}

/// Usage as the orchestrator shows it (its `--json` and `status --json` objects).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counted {
    input: u64,
    output: u64,
    reasoning: u64,
    cache_read: u64,
    cache_write: u64,
    cost_nanos: u64,
}

impl Counted {
    /// What OpenCode records for an answer that reported `usage`, priced at [`price`], in the
    /// orchestrator's units (billionths of the currency).
    fn of(usage: Usage) -> Counted {
        let tokens = usage.as_recorded();
        Counted {
            input: tokens.input,
            output: tokens.output,
            reasoning: tokens.reasoning,
            cache_read: tokens.cache.read,
            cache_write: tokens.cache.write,
            cost_nanos: (price().cost_of(&tokens) * 1e9).round() as u64,
        }
    }

    /// The sum of what the model reported for `requests` (title requests left out: see the file's docs).
    fn reported<'a>(requests: impl IntoIterator<Item = &'a ModelRequest>) -> Counted {
        requests
            .into_iter()
            .filter(|request| !request.tools.is_empty())
            .filter_map(|request| request.usage)
            .map(Counted::of)
            .fold(Counted::default(), |sum, one| sum.add(one))
    }

    fn add(self, other: Counted) -> Counted {
        Counted {
            input: self.input + other.input,
            output: self.output + other.output,
            reasoning: self.reasoning + other.reasoning,
            cache_read: self.cache_read + other.cache_read,
            cache_write: self.cache_write + other.cache_write,
            cost_nanos: self.cost_nanos + other.cost_nanos,
        }
    }

    /// A usage object of the orchestrator's JSON.
    fn from_json(value: &Value) -> Counted {
        let field = |name: &str| {
            value[name]
                .as_u64()
                .unwrap_or_else(|| panic!("no `{name}` in the usage {value}"))
        };
        Counted {
            input: field("input"),
            output: field("output"),
            reasoning: field("reasoning"),
            cache_read: field("cache_read"),
            cache_write: field("cache_write"),
            cost_nanos: field("cost_nanos"),
        }
    }

    fn tokens(&self) -> u64 {
        self.input + self.output + self.reasoning + self.cache_read + self.cache_write
    }
}

/// The requests of task `id`'s turns: its Workers' and its Reviewers'.
fn of_task<'a>(requests: &'a [ModelRequest], id: &str) -> impl Iterator<Item = &'a ModelRequest> {
    let task = Match::AnyUserContains(format!("TASK {id}:"));
    let roles = Match::Any(vec![agent(Role::Worker), agent(Role::Reviewer)]);
    requests
        .iter()
        .filter(move |request| roles.matches(request) && task.matches(request))
}

/// The requests of `role`'s turns.
fn of_role(requests: &[ModelRequest], role: Role) -> impl Iterator<Item = &ModelRequest> {
    let role = agent(role);
    requests.iter().filter(move |request| role.matches(request))
}

/// Checks that the orchestrator's usage (`usage` object of the summary or of `status --json`, and each
/// task's) is what the model reported, in total, per role and per task.
fn assert_usage_is_reported(
    requests: &[ModelRequest],
    usage: &Value,
    task_usage: impl Fn(&str) -> Value,
) {
    let total = Counted::reported(requests);
    assert!(
        total.cost_nanos > 0 && total.tokens() > 0,
        "the model reported usage"
    );
    assert_eq!(Counted::from_json(&usage["total"]), total, "total: {usage}");
    for role in [Role::Commander, Role::Planner, Role::Worker, Role::Reviewer] {
        let reported = Counted::reported(of_role(requests, role));
        let shown = usage["by_role"]
            .get(role.name())
            .map_or_else(Counted::default, Counted::from_json);
        assert_eq!(shown, reported, "{} in {usage}", role.name());
    }
    for (id, _) in TASKS {
        let reported = Counted::reported(of_task(requests, id));
        assert_eq!(Counted::from_json(&task_usage(id)), reported, "task {id}");
    }
}

/// The summary object `--json` prints last.
fn json_summary(output: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|line| !line.trim().is_empty())
        .unwrap_or_else(|| panic!("no output: {}", show(output)));
    let summary: Value = serde_json::from_str(last).unwrap();
    assert_eq!(summary["event"], "summary", "{summary}");
    summary
}

/// Each task's usage in a `--json` summary.
fn summary_task_usage(summary: &Value, id: &str) -> Value {
    summary["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["id"] == id)
        .unwrap_or_else(|| panic!("no task {id} in {summary}"))["usage"]
        .clone()
}

/// Waits until `ready` holds for the model's requests.
async fn until(
    model: &ScriptedModel,
    limit: Duration,
    what: &str,
    ready: impl Fn(&[ModelRequest]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !ready(&model.requests()) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the requests:\n{}",
            model
                .requests()
                .iter()
                .map(|request| format!(
                    "{} (tool result: {:?})",
                    request.last_user.lines().next().unwrap_or(""),
                    request.last_tool_result()
                ))
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits for `child` (at most `limit`) on a blocking thread; returns its output and when it exited.
async fn exited(child: Child, limit: Duration) -> (Output, Instant) {
    let waiting = Instant::now();
    let (output, took) = tokio::task::spawn_blocking(move || wait_with_limit(child, limit))
        .await
        .unwrap();
    (output, waiting + took)
}

fn reviewed(requests: &[ModelRequest], id: &str) -> bool {
    requests
        .iter()
        .any(|request| request.last_user.starts_with(&format!("REVIEW TASK {id}:")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_in_the_summary_is_what_the_model_reported_also_after_sigkill_and_resume() {
    let Some(rig) =
        common::rig_priced(|_| script(Some(("T1.2", Duration::from_secs(8)))), price()).await
    else {
        return;
    };
    let server = &rig.demo.server;
    let mut child = orchestrator(server, &rig.project, &["task", "Three files"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Killed once T1.1 is under review and T1.2's Worker waits for its (slow) answer: answers counted by
    // the killed run, one answer still coming.
    until(
        &rig.demo.model,
        Duration::from_secs(90),
        "T1.1's review and T1.2's Worker",
        |requests| reviewed(requests, "T1.1") && worker_first_turns(requests, "T1.2") == 1,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let _ = child.wait();
    let killed = status(&rig.project);
    assert_eq!(killed["status"]["outcome"], "running", "{killed}");

    let (output, _) = exited(
        orchestrator(server, &rig.project, &["resume", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
        Duration::from_secs(120),
    )
    .await;
    assert!(output.status.success(), "{}", show(&output));
    rig.print_requests();
    let summary = json_summary(&output);
    assert_eq!(summary["completed"], true, "{summary}");
    let requests = rig.requests();
    for (id, _) in TASKS {
        assert_eq!(worker_first_turns(&requests, id), 1, "{id} ran once");
    }
    assert_usage_is_reported(&requests, &summary["usage"], |id| {
        summary_task_usage(&summary, id)
    });
    let total = Counted::reported(&requests);
    assert_eq!(summary["tokens"], total.tokens(), "{summary}");
    // `status` reads the same numbers from the journal.
    let after = status(&rig.project);
    assert_usage_is_reported(&requests, &after["usage"], |id| {
        after["tasks"][id]["usage"].clone()
    });
}

/// Starts `orchestrator task` with `args` on the rig, its output read as it comes.
fn start(rig: &common::Rig, args: &[&str]) -> Child {
    let mut task = vec!["task"];
    task.extend_from_slice(args);
    task.push("Three files");
    orchestrator(&rig.demo.server, &rig.project, &task)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The request whose answer took the mission's reported cost to `limit` (nanos) or past it, in the order
/// the requests arrived (the script answers at once, so in the order the answers came).
fn crossing(requests: &[ModelRequest], limit: u64) -> Option<usize> {
    let mut spent = 0;
    requests.iter().position(|request| {
        if !request.tools.is_empty()
            && let Some(usage) = request.usage
        {
            spent += Counted::of(usage).cost_nanos;
        }
        spent >= limit
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_cost_pauses_within_five_seconds_and_resume_with_a_higher_one_completes() {
    // T1.2's Worker answers 25 s late, so T1.1 is done (it takes about 20 s here) and T1.2's turn runs when
    // the budget is reached: the mission costs about $0.07 in all; $0.04 is reached during T1.2's turn.
    let Some(rig) =
        common::rig_priced(|_| script(Some(("T1.2", Duration::from_secs(25)))), price()).await
    else {
        return;
    };
    let limit = 40_000_000; // $0.04
    let child = start(&rig, &["--max-cost", "0.04", "--slots", &SLOTS.to_string()]);
    let (output, exit_at) = exited(child, Duration::from_secs(120)).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    // Nothing more reaches the model once the orchestrator is gone.
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.print_requests();
    let paused = rig.requests();
    let cross = crossing(&paused, limit).expect("the model's answers reached the budget");
    let crossed_at = paused[cross].at;
    assert!(
        exit_at.saturating_duration_since(crossed_at) < Duration::from_secs(5),
        "exited {:?} after the answer that reached the budget was asked for",
        exit_at.saturating_duration_since(crossed_at)
    );
    assert!(
        paused.iter().all(|request| request.at <= exit_at),
        "a request reached the model after the orchestrator exited"
    );
    // The overshoot is bounded by the turns already running: after the answer that reached the budget no
    // task starts, and what follows comes from at most one turn per slot, each of a task already started.
    // (These are the turns in flight when the orchestrator sees that answer: one may have started while the
    // answer was still on its way to it, as a Reviewer's turn does here.)
    let started: Vec<&str> = TASKS
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| of_task(&paused[..=cross], id).next().is_some())
        .collect();
    let later: Vec<&ModelRequest> = paused[cross + 1..]
        .iter()
        .filter(|request| !request.tools.is_empty())
        .collect();
    let mut turns = std::collections::BTreeSet::new();
    for request in &later {
        let id = started
            .iter()
            .find(|id| of_task(std::slice::from_ref(*request), id).next().is_some())
            .unwrap_or_else(|| {
                panic!(
                    "a task started after the budget was reached: {:?}",
                    request.last_user.lines().next()
                )
            });
        turns.insert((*id, agent(Role::Worker).matches(request)));
    }
    assert!(turns.len() <= SLOTS, "turns after the budget: {turns:?}");
    // Every answer is counted, those of the turns the pause cancelled included: the spending shown is the
    // real one, and it passes the limit by no more than the answer that reached it and those that followed.
    let saved = status(&rig.project);
    assert_eq!(saved["status"]["outcome"], "stopped", "{saved}");
    let spent = Counted::from_json(&saved["usage"]["total"]);
    assert_eq!(spent, Counted::reported(&paused), "{saved}");
    let overshoot_bound = Counted::reported(&paused[cross..]);
    assert!(
        spent.cost_nanos >= limit && spent.cost_nanos - limit <= overshoot_bound.cost_nanos,
        "spent {} of {limit}; the answers from the one that reached it on: {}",
        spent.cost_nanos,
        overshoot_bound.cost_nanos
    );
    assert!(
        stdout.contains("paused at its cost budget") && stdout.contains("--max-cost"),
        "{stdout}"
    );
    let done_before: Vec<&str> = TASKS
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| task_status(&saved, id) == "done")
        .collect();
    assert!(
        done_before.contains(&"T1.1"),
        "T1.1 finished before the pause: {saved}"
    );
    assert_ne!(task_status(&saved, "T1.3"), "done", "{saved}");

    let resumed_at = Instant::now();
    let (output, _) = exited(
        orchestrator(
            &rig.demo.server,
            &rig.project,
            &["resume", "--max-cost", "1", "--json"],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap(),
        Duration::from_secs(120),
    )
    .await;
    assert!(output.status.success(), "{}", show(&output));
    let summary = json_summary(&output);
    assert_eq!(summary["completed"], true, "{summary}");
    assert_eq!(
        summary["budgets"]["cost_nanos"], 1_000_000_000u64,
        "{summary}"
    );
    let requests = rig.requests();
    for id in &done_before {
        assert_eq!(worker_first_turns(&requests, id), 1, "{id} is not redone");
        assert!(
            !requests
                .iter()
                .filter(|request| request.at > resumed_at)
                .any(|request| of_task(std::slice::from_ref(request), id).next().is_some()),
            "{id} got a request after the resume"
        );
    }
    assert_usage_is_reported(&requests, &summary["usage"], |id| {
        summary_task_usage(&summary, id)
    });
}

/// The mark of the sub-agent's prompt.
const SUB_AGENT: &str = "SUBAGENT-NEVER-ENDS";

/// One task whose Worker starts a sub-agent (OpenCode's `task` tool) that never answers.
fn sub_agent_script(project: &Path) -> Script {
    let plan = "# Mission: one\n## M1: One\n### T1.1: One\nWrite one.txt.\n";
    Script::new()
        // The sub-agent's turn (OpenCode's `general` agent: no role marker) streams forever.
        .rule(
            Rule::when(Match::All(vec![
                Match::HasTools(true),
                Match::Not(Box::new(Match::SystemContains("ROLE: ".into()))),
                Match::AnyUserContains(SUB_AGENT.into()),
            ]))
            .reply(Reply::Endless),
        )
        .rule(titles())
        .rule(common::commander())
        .rule(Rule::when(agent(Role::Planner)).reply(planner_reply(plan)))
        .rule(
            Rule::when(Match::All(vec![
                agent(Role::Worker),
                Match::LastIsToolResult,
            ]))
            .reply(Reply::text(
                "The helper stopped.\nSTATUS: BLOCKED the helper stopped",
            )),
        )
        .rule(Rule::when(agent(Role::Worker)).reply(Reply::tool(
            "task",
            json!({
                "description": "Endless helper",
                "prompt": format!("{SUB_AGENT}: look at {} and never finish.", project.display()),
                "subagent_type": "general",
            }),
        )))
        .rule(approve())
}

fn is_sub_agent(request: &ModelRequest) -> bool {
    !request.tools.is_empty()
        && !request.system.contains("ROLE: ")
        && Match::AnyUserContains(SUB_AGENT.into()).matches(request)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_aborts_a_worker_and_the_sub_agent_it_started() {
    // OpenCode 1.18.33 counts a session's parents against `subagent_depth` (default 1), and a Worker's
    // session is a child of the orchestrator's pooled parent session: without 2 its `task` tool refuses
    // ("Subagent depth limit reached").
    let Some(rig) =
        common::rig_configured(sub_agent_script, None, Some(json!({"subagent_depth": 2}))).await
    else {
        return;
    };
    let child = orchestrator(&rig.demo.server, &rig.project, &["task", "One file"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    until(
        &rig.demo.model,
        Duration::from_secs(90),
        "the sub-agent's turn",
        |requests| requests.iter().any(is_sub_agent),
    )
    .await;
    let running = status(&rig.project);
    let worker = running["tasks"]["T1.1"]["worker_session"]
        .as_str()
        .unwrap_or_else(|| panic!("no Worker session: {running}"))
        .to_string();
    // OpenCode keeps a session's status in the instance of its directory: the task's worktree.
    let client = match running["tasks"]["T1.1"]["tree"]["path"].as_str() {
        Some(directory) => rig.demo.server.client().with_directory(directory),
        None => rig.demo.server.client(),
    };
    let children = client.children(&worker).await.unwrap();
    assert_eq!(children.len(), 1, "the Worker's sub-agent session");
    let sub_agent = children[0].id.clone();
    let busy = client.session_status().await.unwrap();
    assert!(
        busy.contains_key(&worker) && busy.contains_key(&sub_agent),
        "both are busy before the stop: {busy:?}"
    );

    let stopped_at = Instant::now();
    let stop = Command::new(common::binary())
        .args(["stop", "--project", rig.project.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(stop.status.success(), "{}", show(&stop));
    let (output, exit_at) = exited(child, Duration::from_secs(10)).await;
    assert_eq!(output.status.code(), Some(143), "{}", show(&output));
    assert!(
        exit_at.saturating_duration_since(stopped_at) < Duration::from_secs(5),
        "the orchestrator exited {:?} after the stop",
        exit_at.saturating_duration_since(stopped_at)
    );
    // Neither session is busy any more, within 5 s of the stop.
    let stdout = String::from_utf8_lossy(&output.stdout);
    loop {
        let busy = client.session_status().await.unwrap();
        if !busy.contains_key(&worker) && !busy.contains_key(&sub_agent) {
            break;
        }
        if stopped_at.elapsed() >= Duration::from_secs(5) {
            rig.print_requests();
            panic!(
                "still busy 5 s after the stop: {busy:?} (the Worker's session {worker}, its sub-agent's \
                 {sub_agent}); the orchestrator said:\n{stdout}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(stdout.contains("aborted:  2 session(s)"), "{stdout}");
    // The model gets no request after the stop (the Worker is not called back with the sub-agent's end).
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.print_requests();
    let late: Vec<String> = rig
        .requests()
        .iter()
        .filter(|request| request.at > stopped_at)
        .map(|request| format!("{:?}", request.last_user.lines().next()))
        .collect();
    assert!(late.is_empty(), "requests after the stop: {late:?}");
    let saved = status(&rig.project);
    assert_eq!(saved["status"]["outcome"], "stopped", "{saved}");
    assert_eq!(task_status(&saved, "T1.1"), "interrupted", "{saved}");
}

/// Runs `orchestrator task` with `args` on the rig's project and waits for it.
fn run_task(rig: &common::Rig, args: &[&str]) -> Output {
    let mut task = vec!["task"];
    task.extend_from_slice(args);
    task.push("One file");
    let child = orchestrator(&rig.demo.server, &rig.project, &task)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_with_limit(child, Duration::from_secs(120)).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budgets_in_the_configuration_file_hold_and_bad_ones_are_refused_before_anything_runs() {
    let Some(rig) = common::rig(|_| common::one_task(common::commander())).await else {
        return;
    };
    let config = rig.project.join(".opencode").join("orchestrator.toml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    let refused = |output: &Output, says: &str| {
        assert_eq!(output.status.code(), Some(2), "{}", show(output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "`{says}` not in {stderr}");
        assert!(rig.requests().is_empty(), "the model was asked something");
        assert!(
            !journal::missions_dir(&rig.project).exists(),
            "a mission was created"
        );
    };
    // On the command line.
    for (args, says) in [
        (["--max-cost=-1"], "`-1` is not a positive amount"),
        (["--max-cost=lots"], "`lots` is not an amount (e.g. 2.50)"),
        (["--max-tokens=-5"], "`-5` is not a positive token count"),
        (
            ["--max-time=soon"],
            "`soon` is not a duration (e.g. 45m, 2h or 1h30m)",
        ),
        (["--max-time=-5m"], "`-5m` is not a positive duration"),
        (["--max-turns-per-task=0"], "0 is not in 1.."),
    ] {
        refused(&run_task(&rig, &args), says);
    }
    // In the configuration file: the file, the line, the key and what is allowed.
    for (text, says) in [
        (
            "[budgets]\nmax_cost = -0.5\n",
            "orchestrator.toml:2: budgets.max_cost: must be a positive amount (e.g. 2.50), got -0.5",
        ),
        (
            "[limits]\nslots = 2\n\n[budgets]\nmax_time = \"later\"\n",
            "orchestrator.toml:5: budgets.max_time: `later` is not a duration (e.g. 45m, 2h or 1h30m)",
        ),
        (
            "[budgets]\nmax_tokens = \"a lot\"\nmax_turns_per_task = -3\n",
            "2 invalid settings",
        ),
        (
            "[budgets]\nmax_spend = 3\n",
            "orchestrator.toml:2:1: budgets.max_spend: unknown field",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        refused(&run_task(&rig, &[]), says);
    }

    // A budget the file sets holds: 100 tokens are used by the Commander's first answer.
    std::fs::write(&config, "[budgets]\nmax_tokens = 100\n").unwrap();
    let output = run_task(&rig, &[]);
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    assert_eq!(output.status.code(), Some(3), "{}", show(&output));
    assert!(stdout.contains("paused at its tokens budget"), "{stdout}");
    assert!(stdout.contains("budgets:  tokens 100 tokens"), "{stdout}");
    let requests = rig.requests();
    assert!(
        requests
            .iter()
            .all(|request| !agent(Role::Planner).matches(request)),
        "the Planner was asked after the budget was reached"
    );
    let paused = status(&rig.project);
    assert_eq!(paused["budgets"]["tokens"], 100, "{paused}");
    // The command line wins over the file.
    let output = orchestrator(
        &rig.demo.server,
        &rig.project,
        &["resume", "--max-tokens", "2M"],
    )
    .output()
    .unwrap();
    assert!(output.status.success(), "{}", show(&output));
    let done = status(&rig.project);
    assert_eq!(done["status"]["outcome"], "completed", "{done}");
    assert_eq!(done["budgets"]["tokens"], 2_000_000, "{done}");
    assert_eq!(worker_first_turns(&rig.requests(), "T1.1"), 1);
}
