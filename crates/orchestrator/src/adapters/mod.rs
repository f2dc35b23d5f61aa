//! What the engine talks to, each behind a trait the engine owns (`engine::ports`): OpenCode
//! ([`opencode`]), the mission's journal ([`journal`]), the project's check commands ([`gate`]), the
//! repository's worktrees and branches ([`git`]), the machine's available memory ([`memory`]); and the
//! user's OpenCode configuration ([`opencode_json`]), the user's own `opencode serve` started when no server
//! runs ([`own_server`]), the files this crate writes for others to read ([`files`]), the claims that make
//! one `/task` command run one mission ([`claim`]) and the records missions leave for the next ones
//! ([`records`]). Adapters import only the domain.

pub mod claim;
pub mod files;
pub mod gate;
pub mod git;
pub mod journal;
pub mod memory;
pub mod opencode;
pub mod opencode_json;
pub mod own_server;
pub mod records;
