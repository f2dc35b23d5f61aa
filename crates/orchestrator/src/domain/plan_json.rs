//! The plan as structured output: the JSON schema the Planner's answer must follow ([`schema`]) and the
//! document it gives ([`PlanDocument`]), turned into the TODO.md form ([`PlanDocument::to_markdown`]) so
//! that one parser validates every plan (ids, dependencies, cycles) and one file shows it to people.
//!
//! ```
//! use orchestrator::domain::plan::{self, Changes};
//! use orchestrator::domain::plan_json::PlanDocument;
//!
//! let answer = serde_json::json!({
//!     "title": "Text tools",
//!     "tasks": [
//!         { "id": "T1", "title": "Slugs", "description": "Write slug.py.", "files": ["slug.py"] },
//!         { "id": "T2", "title": "Check", "description": "Run the tests.", "depends": ["T1"],
//!           "changes": "none" }
//!     ]
//! });
//! let document = PlanDocument::from_value(answer)?;
//! let plan = plan::parse(&document.to_markdown()).unwrap();
//! assert_eq!(plan.tasks[1].depends, ["T1"]);
//! assert_eq!(plan.tasks[1].changes, Changes::None);
//! # Ok::<(), serde_json::Error>(())
//! ```

use serde::Deserialize;
use serde_json::{Value, json};

use crate::domain::plan::Priority;

/// The JSON schema of a plan, for OpenCode's structured output.
pub fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "title": { "type": "string", "description": "The mission in a few words." },
            "tasks": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {
                        "id": {
                            "type": "string",
                            "pattern": "^T[0-9]+(\\.[0-9]+)*$",
                            "description": "T<milestone>.<n>, unique, e.g. T1.2"
                        },
                        "title": { "type": "string" },
                        "agent": { "type": "string", "description": "Worker unless another is needed" },
                        "depends": {
                            "type": "array",
                            "items": { "type": "string" },
                            "description": "ids of tasks of this plan that must be done first"
                        },
                        "priority": { "type": "string", "enum": ["high", "medium", "low"] },
                        "files": {
                            "type": "array",
                            "items": { "type": "string" },
                            "description": "paths or globs relative to the project that the task changes"
                        },
                        "changes": {
                            "type": "string",
                            "enum": ["required", "none"],
                            "description": "none for a task that only checks or reports"
                        },
                        "description": { "type": "string", "description": "files, behaviour, tests" },
                        "steps": { "type": "array", "items": { "type": "string" } }
                    },
                    "required": ["id", "title", "description"],
                    "additionalProperties": false
                }
            }
        },
        "required": ["tasks"],
        "additionalProperties": false
    })
}

/// A plan as the Planner's structured output gives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanDocument {
    /// The mission in a few words.
    #[serde(default)]
    pub title: Option<String>,
    /// The tasks, in order.
    pub tasks: Vec<TaskDocument>,
}

/// One task of a [`PlanDocument`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskDocument {
    /// `T1.2`.
    pub id: String,
    /// Its title.
    pub title: String,
    /// The agent (Worker by default).
    #[serde(default)]
    pub agent: Option<String>,
    /// The tasks it waits for.
    #[serde(default)]
    pub depends: Vec<String>,
    /// `high`, `medium` or `low`.
    #[serde(default)]
    pub priority: Option<Priority>,
    /// Paths or globs it changes.
    #[serde(default)]
    pub files: Vec<String>,
    /// `required` or `none`.
    #[serde(default)]
    pub changes: Option<String>,
    /// What to do.
    #[serde(default)]
    pub description: String,
    /// Sub-steps.
    #[serde(default)]
    pub steps: Vec<String>,
}

impl PlanDocument {
    /// Reads a structured answer.
    ///
    /// # Errors
    ///
    /// The decoding error when the value does not follow the schema.
    pub fn from_value(value: Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(value)
    }

    /// The plan in the TODO.md form. Text that the form would read as structure is kept as text: a `|` or a
    /// line break in a heading becomes `/` or a space, and a description line that starts like a heading or
    /// a check box is escaped with a backslash.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        if let Some(title) = &self.title {
            out.push_str(&format!("# Mission: {}\n", one_line(title)));
        }
        for task in &self.tasks {
            out.push_str(&format!(
                "### {}: {}",
                one_line(&task.id),
                one_line(&task.title)
            ));
            if let Some(agent) = &task.agent {
                out.push_str(&format!(" | agent:{}", one_line(agent)));
            }
            if !task.depends.is_empty() {
                let depends: Vec<String> = task.depends.iter().map(|id| one_line(id)).collect();
                out.push_str(&format!(" | depends:{}", depends.join(",")));
            }
            if let Some(priority) = task.priority {
                out.push_str(&format!(" | priority:{}", priority.as_str()));
            }
            if !task.files.is_empty() {
                let files: Vec<String> = task.files.iter().map(|file| one_line(file)).collect();
                out.push_str(&format!(" | files:{}", files.join(",")));
            }
            if let Some(changes) = &task.changes {
                out.push_str(&format!(" | changes:{}", one_line(changes)));
            }
            out.push('\n');
            for line in task
                .description
                .lines()
                .filter(|line| !line.trim().is_empty())
            {
                out.push_str(&escape(line));
                out.push('\n');
            }
            for step in &task.steps {
                out.push_str(&format!("- [ ] {}\n", one_line(step)));
            }
        }
        out
    }
}

/// Text for a heading field: no `|`, no line break.
fn one_line(text: &str) -> String {
    text.replace('|', "/")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// A description line that would read as a heading or a step, escaped.
fn escape(line: &str) -> String {
    let trimmed = line.trim_start();
    if trimmed.starts_with('#') || trimmed.starts_with("- [") || trimmed.starts_with("* [") {
        format!("\\{trimmed}")
    } else {
        line.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::plan::{self, PlanErrorKind};

    #[test]
    fn text_that_looks_like_structure_stays_text() {
        let document = PlanDocument::from_value(json!({
            "tasks": [{
                "id": "T1",
                "title": "A | B\nC",
                "description": "# not a heading\n- [ ] not a step\nplain",
                "steps": ["first | step"]
            }]
        }))
        .unwrap();
        let plan = plan::parse(&document.to_markdown()).unwrap();
        assert_eq!(plan.tasks.len(), 1);
        assert_eq!(plan.tasks[0].title, "A / B C");
        assert!(plan.tasks[0].description.contains("# not a heading"));
        assert_eq!(plan.tasks[0].steps.len(), 1);
    }

    #[test]
    fn the_parser_validates_a_structured_plan() {
        let document = PlanDocument::from_value(json!({
            "tasks": [
                { "id": "T1", "title": "A", "description": "a", "depends": ["T2"] },
                { "id": "T2", "title": "B", "description": "b", "depends": ["T1"] }
            ]
        }))
        .unwrap();
        let errors = plan::parse(&document.to_markdown()).unwrap_err();
        assert!(
            errors
                .0
                .iter()
                .any(|error| matches!(error.kind, PlanErrorKind::Cycle { .. })),
            "{errors}"
        );
    }

    #[test]
    fn an_answer_off_the_schema_is_refused() {
        assert!(PlanDocument::from_value(json!({ "tasks": [{ "id": "T1" }] })).is_err());
        assert!(PlanDocument::from_value(json!({ "steps": [] })).is_err());
        assert!(
            PlanDocument::from_value(json!({
                "tasks": [{ "id": "T1", "title": "A", "description": "", "owner": "me" }]
            }))
            .is_err()
        );
    }

    #[test]
    fn the_schema_names_every_field_the_document_reads() {
        let schema = schema();
        let properties = schema["properties"]["tasks"]["items"]["properties"]
            .as_object()
            .unwrap();
        for field in [
            "id",
            "title",
            "agent",
            "depends",
            "priority",
            "files",
            "changes",
            "description",
            "steps",
        ] {
            assert!(properties.contains_key(field), "{field}");
        }
    }
}
