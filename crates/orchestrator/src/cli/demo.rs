//! The `--demo` mission: a scripted model (from `opencode-client`'s testkit) plays all four agents for a
//! small but real mission in a scratch project. The Planner writes three tasks (two independent, one that
//! depends on both); the Workers write Python modules and their unit tests through OpenCode's `write` tool;
//! the gate runs `python3 -m unittest`; the Reviewer approves. Whatever mission text is given, the script
//! plays this one: it stands in for an LLM so that the whole machinery runs offline.

use std::path::Path;

use opencode_client::testkit::{Match, Reply, Rule, Script, ToolCall};
use serde_json::json;

use crate::domain::gate::GateCommand;
use crate::domain::prompts::Role;

/// The plan the scripted Planner writes.
pub const DEMO_PLAN: &str = "\
# Mission: A small text toolkit in Python
## M1: Text functions
### T1.1: Slugs | agent:Worker | priority:high
Write textkit_slug.py with slugify(text): lower case, runs of non-alphanumerics become one dash, no dash at
either end; and test_slug.py with unittest tests.
- [ ] slugify
- [ ] tests
### T1.2: Word counts | agent:Worker | priority:medium
Write textkit_words.py with word_counts(text) -> dict of lower-cased words to counts; and test_words.py.
- [ ] word_counts
- [ ] tests
### T1.3: Report | agent:Worker | depends:T1.1,T1.2 | priority:medium
Write textkit_report.py with report(title, text) combining both: the slug and the three most common words;
and test_report.py.
- [ ] report
- [ ] tests
";

/// A file the scripted Workers write.
pub const SLUG: &str = r#""""Slugs for titles."""
import re


def slugify(text):
    """Lower case; every run of characters other than letters and digits becomes one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
"#;

/// A file the scripted Workers write.
pub const SLUG_TEST: &str = r#"import unittest

from textkit_slug import slugify


class SlugTest(unittest.TestCase):
    def test_words_are_joined_by_dashes(self):
        self.assertEqual(slugify("Hello, World!"), "hello-world")

    def test_no_dash_at_the_ends(self):
        self.assertEqual(slugify("  --Rust & Python--  "), "rust-python")

    def test_empty(self):
        self.assertEqual(slugify(""), "")


if __name__ == "__main__":
    unittest.main()
"#;

/// A file the scripted Workers write.
pub const WORDS: &str = r#""""Word counts."""
import re
from collections import Counter


def word_counts(text):
    """Counts of each lower-cased word."""
    return dict(Counter(re.findall(r"[a-z0-9']+", text.lower())))
"#;

/// A file the scripted Workers write.
pub const WORDS_TEST: &str = r#"import unittest

from textkit_words import word_counts


class WordsTest(unittest.TestCase):
    def test_counts_ignore_case(self):
        self.assertEqual(word_counts("a A b"), {"a": 2, "b": 1})

    def test_punctuation_is_not_a_word(self):
        self.assertEqual(word_counts("hi, hi!"), {"hi": 2})


if __name__ == "__main__":
    unittest.main()
"#;

/// A file the scripted Workers write.
pub const REPORT: &str = r#""""A one-line report on a text."""
from textkit_slug import slugify
from textkit_words import word_counts


def report(title, text):
    """The title's slug and the three most common words, most common first (ties by word)."""
    counts = word_counts(text)
    top = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:3]
    return slugify(title) + ": " + ", ".join(f"{word}={count}" for word, count in top)
"#;

/// A file the scripted Workers write.
pub const REPORT_TEST: &str = r#"import unittest

from textkit_report import report


class ReportTest(unittest.TestCase):
    def test_report(self):
        self.assertEqual(
            report("My Notes", "b a b c a b d"),
            "my-notes: b=3, a=2, c=1",
        )


if __name__ == "__main__":
    unittest.main()
"#;

/// What the scripted Commander answers.
pub const DEMO_BRIEF: &str = "\
Goal: a small Python text toolkit (slugs, word counts, a report that combines them).
Done means: each module has unittest tests and `python3 -m unittest` passes in the project root.
Conventions: Python 3 standard library only; modules at the project root named textkit_*.py, tests named \
test_*.py next to them.";

/// A rule that matches one agent's requests (by the marker line of its system prompt).
pub fn agent(role: Role) -> Match {
    Match::SystemContains(role.marker())
}

/// OpenCode's title requests carry no system prompt of ours: they are answered first, by every script.
pub fn titles() -> Rule {
    Rule::when(Match::Not(Box::new(Match::SystemContains("ROLE: ".into()))))
        .reply(Reply::text("Mission session"))
}

/// A `write` tool call for `name`, relative to the session's directory: the task's worktree when the
/// mission works in isolation, the project otherwise.
pub fn write(name: &str, content: &str) -> ToolCall {
    ToolCall::new("write", json!({ "filePath": name, "content": content }))
}

/// The rules of a Worker that writes `files` for task `id`, then reports done.
pub fn worker_rules(id: &str, files: Vec<ToolCall>, summary: &str) -> Vec<Rule> {
    let task = Match::AnyUserContains(format!("TASK {id}:"));
    vec![
        Rule::when(Match::All(vec![
            agent(Role::Worker),
            task.clone(),
            Match::LastIsToolResult,
        ]))
        .reply(Reply::text(format!("{summary}\nSTATUS: DONE {summary}"))),
        Rule::when(Match::All(vec![agent(Role::Worker), task])).reply(Reply::ToolCalls(files)),
    ]
}

/// The Planner's answer for `plan`, as TODO.md text.
pub fn planner_reply(plan: &str) -> Reply {
    Reply::text(format!("Here is the plan.\n\n```markdown\n{plan}```\n"))
}

/// The Planner's structured answer for `plan` (written as TODO.md), in the form of the plan's JSON schema.
///
/// # Panics
///
/// If `plan` does not parse: the scripts' plans are written to.
pub fn planner_structured(plan: &str) -> Reply {
    let plan = crate::domain::plan::parse(plan).expect("a scripted plan parses");
    let tasks: Vec<serde_json::Value> = plan
        .tasks
        .iter()
        .map(|task| {
            json!({
                "id": task.id,
                "title": task.title,
                "agent": task.agent,
                "depends": task.depends,
                "priority": task.priority.as_str(),
                "files": task.files,
                "changes": task.changes.as_str(),
                "description": task.description,
                "steps": task.steps.iter().map(|step| step.text.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Reply::structured(json!({ "title": plan.title, "tasks": tasks }))
}

/// The Planner's rules for `plan`: its structured output when the prompt asks for one, else the TODO.md
/// text.
pub fn planner(plan: &str) -> [Rule; 2] {
    [
        Rule::when(Match::All(vec![
            agent(Role::Planner),
            Match::AsksForStructuredOutput,
        ]))
        .reply(planner_structured(plan)),
        Rule::when(agent(Role::Planner)).reply(planner_reply(plan)),
    ]
}

/// The Reviewer's approval.
pub fn approve() -> Rule {
    Rule::when(agent(Role::Reviewer)).reply(Reply::text(
        "VERDICT: APPROVED\n- The change does the task and the checks pass.",
    ))
}

/// The whole demo script, for a scratch project at `project`.
pub fn script() -> Script {
    let mut script = Script::new()
        .rule(titles())
        .rule(Rule::when(agent(Role::Commander)).reply(Reply::text(DEMO_BRIEF)));
    for rule in planner(DEMO_PLAN) {
        script = script.rule(rule);
    }
    let workers = [
        (
            "T1.1",
            vec![
                write("textkit_slug.py", SLUG),
                write("test_slug.py", SLUG_TEST),
            ],
            "Wrote textkit_slug.py (slugify) and test_slug.py.",
        ),
        (
            "T1.2",
            vec![
                write("textkit_words.py", WORDS),
                write("test_words.py", WORDS_TEST),
            ],
            "Wrote textkit_words.py (word_counts) and test_words.py.",
        ),
        (
            "T1.3",
            vec![
                write("textkit_report.py", REPORT),
                write("test_report.py", REPORT_TEST),
            ],
            "Wrote textkit_report.py (report) and test_report.py.",
        ),
    ];
    for (id, files, summary) in workers {
        for rule in worker_rules(id, files, summary) {
            script = script.rule(rule);
        }
    }
    script
        .rule(approve())
        .fallback(Reply::text("Nothing is scripted for this request."))
}

/// The demo's review gate: the project's unit tests.
pub fn gate() -> Vec<GateCommand> {
    vec![GateCommand::new(
        "python3 -m unittest",
        "python3",
        vec![
            "-m".to_string(),
            "unittest".to_string(),
            "discover".to_string(),
            "-v".to_string(),
        ],
    )]
}

/// Writes the scratch project's starting files (a README saying what it is).
///
/// # Errors
///
/// The I/O error.
pub fn prepare_project(project: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(project)?;
    std::fs::write(
        project.join("README.md"),
        "# Scratch project of an orchestrator demo\n\nA scripted model stood in for an LLM: the files here \
         were written by OpenCode's tools as the script told them.\n",
    )
}
