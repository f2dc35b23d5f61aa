//! The `orchestrator` command; everything it does is in [`orchestrator::cli`].

fn main() -> std::process::ExitCode {
    orchestrator::cli::main()
}
