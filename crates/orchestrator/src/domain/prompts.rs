//! Stage 2, `prompts`: each agent's system prompt, assembled from named modules (philosophy, role,
//! forbidden, required, tools, completion, status format, and the plan format for the Planner), so one
//! module can change, or be overridden by the project's configuration, without touching the others; and the
//! messages each agent is sent.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

/// The four agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Frames the mission: what done means, constraints, conventions.
    Commander,
    /// Writes the plan.
    Planner,
    /// Does one task.
    Worker,
    /// Checks one task's result.
    Reviewer,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 4] = [Role::Commander, Role::Planner, Role::Worker, Role::Reviewer];

    /// Its name, as it appears in prompts and summaries.
    pub fn name(self) -> &'static str {
        match self {
            Role::Commander => "Commander",
            Role::Planner => "Planner",
            Role::Worker => "Worker",
            Role::Reviewer => "Reviewer",
        }
    }

    /// The line that opens its system prompt (`ROLE: Worker`): it names the agent to the model, and lets a
    /// scripted model tell the agents apart.
    pub fn marker(self) -> String {
        format!("ROLE: {}", self.name())
    }

    /// The OpenCode tools the role may use (`false` disables one for the prompt). The Commander, the Planner
    /// and the Reviewer change no file and run no command: only the Worker may.
    pub fn tools(self, delegate: bool) -> Vec<(&'static str, bool)> {
        let writes = matches!(self, Role::Worker);
        vec![
            ("write", writes),
            ("edit", writes),
            ("patch", writes),
            ("bash", writes),
            ("todowrite", false),
            ("webfetch", false),
            ("question", false),
            // The `task` tool starts a sub-agent session: only for a Worker, and only under the depth limit.
            ("task", writes && delegate),
        ]
    }
}

/// The philosophy every agent shares.
pub const PHILOSOPHY: &str = "\
You are one agent of a team that carries out a software mission in a real project. Work from facts you can \
check (files, command output), not guesses. Prefer the smallest change that fully does the job. Say plainly \
what you did and what you did not do; never claim work that is not in the project.";

/// The Commander's role.
pub const ROLE_COMMANDER: &str = "\
You are the Commander. You receive the user's mission and turn it into a brief for the Planner: the goal in \
one sentence, what done means (observable checks), constraints, and the project's conventions you can see \
(language, layout, test command). You do not plan tasks and you do not change files.";

/// The Planner's role.
pub const ROLE_PLANNER: &str = "\
You are the Planner. You turn the Commander's brief into a plan of small tasks that Workers can do in \
parallel: each task changes a few files and can be checked on its own. Name dependencies only where a task \
needs another's result.";

/// The Worker's role.
pub const ROLE_WORKER: &str = "\
You are a Worker. You do exactly one task of the plan in the project, with the tools you have, and report \
what you changed.";

/// The Reviewer's role.
pub const ROLE_REVIEWER: &str = "\
You are the Reviewer. You judge one task's result: the task, the Worker's report, the diff of the files it \
changed and the results of the project's checks. Approve only work that does the task and passes the checks.";

/// What the Commander must not do.
pub const FORBIDDEN_COMMANDER: &str = "\
Do not write or edit files, run commands, or write the plan yourself.";

/// What the Planner must not do.
pub const FORBIDDEN_PLANNER: &str = "\
Do not write or edit files or run commands: the orchestrator saves your plan. Do not create a task that only \
restates another, and no dependency cycles.";

/// What a Worker must not do.
pub const FORBIDDEN_WORKER: &str = "\
Do not work on other tasks of the plan. Do not delete or rewrite files your task does not need. Do not \
weaken or skip tests to make them pass. Do not edit .opencode/todo.md.";

/// What the Reviewer must not do.
pub const FORBIDDEN_REVIEWER: &str = "\
Do not change files or run commands. Do not approve when a check failed.";

/// What the Commander must do.
pub const REQUIRED_COMMANDER: &str = "\
Answer with the brief only, in plain text, under 300 words.";

/// What the Planner must do.
pub const REQUIRED_PLANNER: &str = "\
Answer with the complete plan in the TODO.md format below, in one fenced ```markdown block, and nothing that \
contradicts it outside the block.";

/// What a Worker must do.
pub const REQUIRED_WORKER: &str = "\
Make the change with your tools, keep to the project's conventions, add or update tests for what you \
change, and run them if you can.";

/// What the Reviewer must do.
pub const REQUIRED_REVIEWER: &str = "\
Read the diff and the check results. List each finding as a line starting with `- ` that says what is wrong \
and where.";

/// The plan format the Planner writes.
pub const TODO_FORMAT: &str = "\
TODO.md format:
# Mission: <title>
## M1: <milestone title>
### T1.1: <task title> | agent:Worker | depends:<ids, comma separated, or none> | priority:<high|medium|low>
<one or more lines describing the task: files, behaviour, tests>
- [ ] <sub-step>
- [ ] <sub-step>
Task ids are T<milestone>.<n>, unique. `depends` names only tasks of this plan.";

/// The tools module, per role.
pub const TOOLS_READ_ONLY: &str = "\
You may read files (read, glob, grep). Writing, editing and shell tools are disabled for you.";

/// The Worker's tools module.
pub const TOOLS_WORKER: &str = "\
Use read/glob/grep to look, write/edit to change files (absolute paths inside the project), bash to run \
commands such as the tests.";

/// When the Commander is done.
pub const COMPLETION_COMMANDER: &str = "You are done when you have answered with the brief.";
/// When the Planner is done.
pub const COMPLETION_PLANNER: &str = "You are done when you have answered with the whole plan.";
/// When a Worker is done.
pub const COMPLETION_WORKER: &str = "\
You are done when the task's change is in the project and its tests pass, or when you find you cannot do it.";
/// When the Reviewer is done.
pub const COMPLETION_REVIEWER: &str = "You are done when you have given your verdict.";

/// How a Worker reports.
pub const STATUS_WORKER: &str = "\
End your last message with one line: `STATUS: DONE` followed by a one-line summary, or `STATUS: BLOCKED` \
followed by the reason.";

/// How the Reviewer reports.
pub const STATUS_REVIEWER: &str = "\
Start your answer with one line: `VERDICT: APPROVED` or `VERDICT: CHANGES_REQUESTED`, then the findings.";

/// One named part of a system prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    /// Its name (`philosophy`, `role`, `forbidden`, `required`, `format`, `tools`, `completion`, `status`).
    pub name: &'static str,
    /// Its text.
    pub text: String,
}

/// The prompt modules of every role, with the project's overrides applied.
#[derive(Debug, Clone, Default)]
pub struct Prompts {
    overrides: BTreeMap<(Role, String), String>,
}

impl Prompts {
    /// The built-in modules.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces one module of one role (an empty text drops the module).
    pub fn with_override(mut self, role: Role, module: &str, text: impl Into<String>) -> Self {
        self.overrides
            .insert((role, module.to_string()), text.into());
        self
    }

    /// The modules of a role's system prompt, in order.
    pub fn modules(&self, role: Role) -> Vec<Module> {
        let (role_text, forbidden, required, tools, completion, status) = match role {
            Role::Commander => (
                ROLE_COMMANDER,
                FORBIDDEN_COMMANDER,
                REQUIRED_COMMANDER,
                TOOLS_READ_ONLY,
                COMPLETION_COMMANDER,
                "",
            ),
            Role::Planner => (
                ROLE_PLANNER,
                FORBIDDEN_PLANNER,
                REQUIRED_PLANNER,
                TOOLS_READ_ONLY,
                COMPLETION_PLANNER,
                "",
            ),
            Role::Worker => (
                ROLE_WORKER,
                FORBIDDEN_WORKER,
                REQUIRED_WORKER,
                TOOLS_WORKER,
                COMPLETION_WORKER,
                STATUS_WORKER,
            ),
            Role::Reviewer => (
                ROLE_REVIEWER,
                FORBIDDEN_REVIEWER,
                REQUIRED_REVIEWER,
                TOOLS_READ_ONLY,
                COMPLETION_REVIEWER,
                STATUS_REVIEWER,
            ),
        };
        let format = if role == Role::Planner {
            TODO_FORMAT
        } else {
            ""
        };
        [
            ("philosophy", PHILOSOPHY),
            ("role", role_text),
            ("forbidden", forbidden),
            ("required", required),
            ("format", format),
            ("tools", tools),
            ("completion", completion),
            ("status", status),
        ]
        .into_iter()
        .map(|(name, text)| Module {
            name,
            text: self
                .overrides
                .get(&(role, name.to_string()))
                .cloned()
                .unwrap_or_else(|| text.to_string()),
        })
        .filter(|module| !module.text.is_empty())
        .collect()
    }

    /// A role's system prompt: its marker line, then its modules.
    pub fn system(&self, role: Role) -> String {
        let mut prompt = role.marker();
        prompt.push_str("\n\n");
        for module in self.modules(role) {
            prompt.push_str(&module.text);
            prompt.push_str("\n\n");
        }
        prompt.truncate(prompt.trim_end().len());
        prompt
    }
}

/// The Commander's message: the mission.
pub fn commander_message(mission: &str, project: &str) -> String {
    format!(
        "MISSION\n{mission}\n\nPROJECT DIRECTORY\n{project}\n\nWrite the brief for the Planner."
    )
}

/// The Planner's message: the mission and the Commander's brief.
pub fn planner_message(mission: &str, brief: &str, project: &str) -> String {
    format!(
        "PLAN REQUEST\nMission: {mission}\n\nProject directory: {project}\n\nThe Commander's brief:\n{brief}\n\n\
         Write the plan in the TODO.md format."
    )
}

/// The Planner's message when its last plan did not parse or validate. It goes to a fresh session, so it
/// carries the request again and the last plan's errors only, not every earlier answer.
pub fn plan_retry_message(mission: &str, brief: &str, project: &str, errors: &str) -> String {
    format!(
        "{}\n\nA PREVIOUS PLAN WAS REJECTED:\n{errors}\n\nAvoid these errors: answer with the whole plan.",
        planner_message(mission, brief, project)
    )
}

/// Added to the Planner's message when the plan is asked as structured output.
pub const STRUCTURED_PLAN_NOTE: &str = "\n\nGive the plan as the structured output this prompt asks for (its \
JSON schema has the fields of the TODO.md format: id, title, agent, depends, priority, files, changes, \
description, steps), not as text.";

/// What a Worker that said it was done without changing anything is told.
pub const NO_CHANGE_FINDING: &str = "- No change: you said the task is done, but nothing changed in the \
worktree. Make the change with your tools (write/edit files in the project directory) before you report \
`STATUS: DONE`; if the task needs no change, say why with `STATUS: BLOCKED <reason>`.";

/// What a Worker is told when its change conflicted with what was integrated since it started: git's
/// account of the conflicting files and hunks, and what to do.
pub fn conflict_findings(conflicts: &str) -> String {
    format!(
        "- Your change conflicted with changes integrated while you worked. Your worktree now starts from \
         the new integration head: redo the task on top of it, keeping what is already there.\n{conflicts}"
    )
}

/// What a Worker is told when the project's checks failed on its change merged with what was integrated
/// since it started.
pub fn integrated_gate_findings(checks: &str) -> String {
    format!(
        "- Your change passed its checks alone but fails them merged with what was integrated while you \
         worked. Your worktree now starts from the new integration head: redo the task so the checks pass \
         there.\n{checks}"
    )
}

/// The message that asks an agent for the rest of an answer the model's output limit cut off.
pub fn continue_message() -> String {
    "CONTINUE: your last answer was cut off at the model's output limit. Continue exactly where it stopped, \
     without repeating what you already wrote."
        .to_string()
}

/// The message that asks the Commander or the Planner to answer again, because its answer ran past the
/// model's output limit.
pub fn answer_again_message(role: Role) -> String {
    let what = match role {
        Role::Planner => "the whole plan, with shorter task descriptions",
        _ => "the whole brief, in under 300 words",
    };
    format!(
        "ANSWER AGAIN: your last answer was cut off at the model's output limit. Answer again with {what}."
    )
}

/// The message that takes a Worker up again in its session after the orchestrator was stopped mid-task.
pub fn resume_message(id: &str) -> String {
    format!(
        "RESUME TASK {id}: the orchestrator was stopped while you worked, and your last turn was aborted. \
         Check what is already done in the project, finish the task, then end with `STATUS: DONE <summary>` \
         or `STATUS: BLOCKED <reason>`."
    )
}

/// What a Worker is told about a task it depends on.
#[derive(Debug, Clone)]
pub struct Dependency<'a> {
    /// Its id.
    pub id: &'a str,
    /// Its title.
    pub title: &'a str,
    /// Its Worker's report.
    pub result: &'a str,
    /// The files it changed.
    pub files: &'a [String],
}

/// A Worker's message: the task, its dependencies' results, the conventions, and the last review's findings.
pub fn worker_message(
    id: &str,
    title: &str,
    brief: &str,
    dependencies: &[Dependency<'_>],
    conventions: &str,
    project: &str,
    findings: Option<&str>,
) -> String {
    let mut message = format!("TASK {id}: {title}\n\nProject directory: {project}\n\n{brief}\n");
    if !dependencies.is_empty() {
        message.push_str("\nDONE BEFORE YOU (tasks yours depends on):\n");
        for dependency in dependencies {
            let _ = writeln!(
                message,
                "- {}: {} — {}{}",
                dependency.id,
                dependency.title,
                dependency.result.trim(),
                if dependency.files.is_empty() {
                    String::new()
                } else {
                    format!(" (files: {})", dependency.files.join(", "))
                }
            );
        }
    }
    if !conventions.trim().is_empty() {
        let _ = write!(
            message,
            "\nCONVENTIONS (from the Commander):\n{conventions}\n"
        );
    }
    if let Some(findings) = findings {
        let _ = write!(
            message,
            "\nREVIEW FINDINGS on your previous attempt (fix every one):\n{findings}\n"
        );
    }
    message
}

/// The message that asks a Worker that did not report a status to go on.
pub fn nudge_message(id: &str) -> String {
    format!(
        "TASK {id}: you have not reported a status. Finish the task, then end with `STATUS: DONE <summary>` or \
         `STATUS: BLOCKED <reason>`."
    )
}

/// The diagnostic prompt for a Worker that stopped making progress.
pub fn diagnostic_message(id: &str, reason: &str) -> String {
    format!(
        "DIAGNOSTIC for TASK {id}: you are not making progress ({reason}). Stop repeating yourself. Check the \
         project's files and the task, say in one paragraph what blocks you, then either finish with \
         `STATUS: DONE <summary>` or give up with `STATUS: BLOCKED <reason>`."
    )
}

/// The Reviewer's message: the task, the Worker's report, the diff and the gate's results.
pub fn reviewer_message(
    id: &str,
    title: &str,
    brief: &str,
    report: &str,
    diff: &str,
    gate: &str,
) -> String {
    format!(
        "REVIEW TASK {id}: {title}\n\nThe task:\n{brief}\n\nThe Worker's report:\n{report}\n\nThe diff:\n{diff}\n\n\
         The project's checks:\n{gate}\n\nGive your verdict."
    )
}

/// What a Worker's answer says about its task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerStatus {
    /// `STATUS: DONE`, with its summary.
    Done(String),
    /// `STATUS: BLOCKED`, with its reason.
    Blocked(String),
    /// No status line.
    Missing,
}

/// Reads the last `STATUS:` line of a Worker's answer.
pub fn worker_status(answer: &str) -> WorkerStatus {
    for line in answer.lines().rev() {
        let line = line.trim().trim_start_matches(['*', '`']).trim();
        let Some(rest) = strip_prefix_ignore_case(line, "STATUS:") else {
            continue;
        };
        let rest = rest.trim().trim_end_matches(['*', '`']).trim();
        if let Some(summary) = strip_prefix_ignore_case(rest, "DONE") {
            return WorkerStatus::Done(clean(summary));
        }
        if let Some(reason) = strip_prefix_ignore_case(rest, "BLOCKED") {
            return WorkerStatus::Blocked(clean(reason));
        }
    }
    WorkerStatus::Missing
}

/// The Reviewer's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// `VERDICT: APPROVED`.
    Approved,
    /// `VERDICT: CHANGES_REQUESTED`, with the findings.
    ChangesRequested(String),
}

/// Reads the Reviewer's verdict; an answer without one asks for changes (the Reviewer must approve
/// explicitly).
pub fn verdict(answer: &str) -> Verdict {
    let mut approved = None;
    for line in answer.lines() {
        let line = line.trim().trim_start_matches(['*', '`', '#']).trim();
        if let Some(rest) = strip_prefix_ignore_case(line, "VERDICT:") {
            let rest = rest
                .trim()
                .trim_end_matches(['*', '`'])
                .to_ascii_uppercase();
            approved = Some(rest.starts_with("APPROVED"));
            break;
        }
    }
    match approved {
        Some(true) => Verdict::Approved,
        Some(false) => Verdict::ChangesRequested(findings(answer)),
        None => Verdict::ChangesRequested(format!(
            "The review did not start with a VERDICT line. Its answer was:\n{}",
            answer.trim()
        )),
    }
}

fn findings(answer: &str) -> String {
    let lines: Vec<&str> = answer
        .lines()
        .filter(|line| !line.trim().to_ascii_uppercase().contains("VERDICT:"))
        .collect();
    lines.join("\n").trim().to_string()
}

fn clean(text: &str) -> String {
    text.trim()
        .trim_start_matches([':', '-', '—', '*', '`', ' '])
        .trim()
        .to_string()
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// The plan in a Planner's answer: the first fenced block (```markdown, ```md or plain ```), else the whole
/// answer.
pub fn plan_text(answer: &str) -> String {
    let mut inside = false;
    let mut block = Vec::new();
    for line in answer.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") {
            if inside {
                return block.join("\n") + "\n";
            }
            inside = true;
            continue;
        }
        if inside {
            block.push(line);
        }
    }
    if inside && !block.is_empty() {
        return block.join("\n") + "\n";
    }
    answer.to_string()
}

/// The first non-empty line of `text`, trimmed: how summaries and reasons quote a longer text.
pub fn first_line(text: &str) -> &str {
    text.lines()
        .find(|line| !line.trim().is_empty())
        .unwrap_or("")
        .trim()
}

/// The plan in a Planner's answer, if it has one: [`plan_text`] when it holds at least one `### ` task
/// heading. An answer without any is no plan at all, which deserves its own message rather than the
/// parser's "the plan has no tasks".
pub fn plan_in_answer(answer: &str) -> Option<String> {
    let text = plan_text(answer);
    text.lines()
        .any(|line| line.trim_start().starts_with("### "))
        .then_some(text)
}

/// What the Planner is told when its answer held no plan at all.
pub const NO_PLAN_IN_ANSWER: &str = "the answer holds no plan: no fenced ```markdown block with task headings \
such as `### T1.1: Title | agent:Worker | depends:none | priority:high`";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_role_has_its_marker_and_modules() {
        let prompts = Prompts::new();
        for role in Role::ALL {
            let system = prompts.system(role);
            assert!(system.starts_with(&role.marker()), "{system}");
            assert!(system.contains(PHILOSOPHY));
        }
        assert!(prompts.system(Role::Planner).contains("TODO.md format"));
        assert!(!prompts.system(Role::Worker).contains("TODO.md format"));
        assert!(prompts.system(Role::Worker).contains("STATUS: DONE"));
        assert!(prompts.system(Role::Reviewer).contains("VERDICT: APPROVED"));
    }

    #[test]
    fn an_override_replaces_one_module_only() {
        let prompts = Prompts::new().with_override(Role::Worker, "philosophy", "Be brief.");
        let worker = prompts.system(Role::Worker);
        assert!(worker.contains("Be brief."));
        assert!(!worker.contains(PHILOSOPHY));
        assert!(worker.contains(ROLE_WORKER));
        assert!(prompts.system(Role::Reviewer).contains(PHILOSOPHY));
        let dropped = Prompts::new().with_override(Role::Worker, "status", "");
        assert!(!dropped.system(Role::Worker).contains("STATUS: DONE"));
    }

    #[test]
    fn only_the_worker_writes() {
        for role in Role::ALL {
            let tools = role.tools(true);
            for name in ["write", "edit", "bash"] {
                let enabled = tools.iter().find(|(tool, _)| *tool == name).unwrap().1;
                assert_eq!(enabled, role == Role::Worker, "{role:?} {name}");
            }
        }
        assert!(!Role::Worker.tools(false).contains(&("task", true)));
    }

    #[test]
    fn worker_status_lines() {
        assert_eq!(
            worker_status("did it\nSTATUS: DONE wrote slug.py"),
            WorkerStatus::Done("wrote slug.py".into())
        );
        assert_eq!(
            worker_status("**STATUS: BLOCKED** — no python"),
            WorkerStatus::Blocked("no python".into())
        );
        assert_eq!(
            worker_status("status: done"),
            WorkerStatus::Done(String::new())
        );
        assert_eq!(worker_status("I am working on it"), WorkerStatus::Missing);
        assert_eq!(
            worker_status("STATUS: DONE first\nthen\nSTATUS: BLOCKED later"),
            WorkerStatus::Blocked("later".into())
        );
    }

    #[test]
    fn verdicts() {
        assert_eq!(verdict("VERDICT: APPROVED\nfine"), Verdict::Approved);
        assert_eq!(
            verdict("VERDICT: CHANGES_REQUESTED\n- slug.py: no test for empty input"),
            Verdict::ChangesRequested("- slug.py: no test for empty input".into())
        );
        assert!(
            matches!(verdict("Looks good"), Verdict::ChangesRequested(text) if text.contains("Looks good"))
        );
    }

    #[test]
    fn plan_text_takes_the_fenced_block() {
        assert_eq!(
            plan_text("Here:\n```markdown\n# Mission: x\n### T1.1: a\n```\nthanks"),
            "# Mission: x\n### T1.1: a\n"
        );
        assert_eq!(plan_text("# Mission: x\n"), "# Mission: x\n");
        assert_eq!(plan_text("```\n### T1.1: a"), "### T1.1: a\n");
    }

    #[test]
    fn worker_message_carries_dependencies_and_findings() {
        let files = vec!["slug.py".to_string()];
        let message = worker_message(
            "T1.3",
            "Report",
            "Combine both.",
            &[Dependency {
                id: "T1.1",
                title: "Slug",
                result: "wrote slug.py",
                files: &files,
            }],
            "Python, unittest",
            "/p",
            Some("- no test"),
        );
        for part in [
            "TASK T1.3: Report",
            "T1.1: Slug — wrote slug.py (files: slug.py)",
            "Python, unittest",
            "REVIEW FINDINGS",
            "- no test",
        ] {
            assert!(message.contains(part), "{part} in {message}");
        }
    }
}
