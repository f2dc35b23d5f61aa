//! The `orchestrator` binary on bad input: each case ends with a clear message and a non-zero exit, and
//! nothing is started for it.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn orchestrator(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(args)
        .env_remove("OPENCODE_SERVER_PASSWORD")
        .output()
        .expect("run the orchestrator binary");
    (output, started.elapsed())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A local port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[test]
fn no_opencode_at_the_url() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let project = tempfile::tempdir().unwrap();
    let (output, took) = orchestrator(&[
        "task",
        "--url",
        &url,
        "--project",
        project.path().to_str().unwrap(),
        "--no-isolation",
        "Do something",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let message = stderr(&output);
    assert!(
        message.contains("no OpenCode server reachable at"),
        "{message}"
    );
    assert!(message.contains(&url), "{message}");
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert!(
        !project.path().join(".opencode").exists(),
        "nothing was written for a mission that never started"
    );
}

#[test]
fn a_bad_url() {
    let (output, _) = orchestrator(&["task", "--url", "not a url", "Do something"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("bad OpenCode URL \"not a url\""),
        "{message}"
    );
}

#[test]
fn a_server_that_is_not_opencode() {
    // A listener that answers every request with plain text.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buffer = [0u8; 4096];
            let _ = stream.read(&mut buffer);
            let _ = stream.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: 5\r\nconnection: close\r\n\r\nhello",
            );
        }
    });
    let (output, _) = orchestrator(&["task", "--url", &url, "Do something"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("no OpenCode server reachable at"),
        "{message}"
    );
}

#[test]
fn a_mission_of_one_megabyte() {
    // Too long for one argument (Linux caps one at 128 KiB): it comes from a file.
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), "x".repeat(1 << 20)).unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (output, _) = orchestrator(&[
        "task",
        "--url",
        &url,
        "--file",
        file.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("the mission text is 1048576 bytes; the limit is 65536 bytes"),
        "{message}"
    );
}

#[test]
fn an_empty_mission() {
    let (output, _) = orchestrator(&["task", "--demo", "   "]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("the mission text is empty"));
}

#[test]
fn a_bad_model_name() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (output, _) = orchestrator(&["task", "--url", &url, "--model", "nomodel", "Do"]);
    assert_eq!(output.status.code(), Some(2));
    // Options are checked before any server is asked.
    let message = stderr(&output);
    assert!(
        message.contains("--model \"nomodel\" is not provider/model"),
        "{message}"
    );
}

#[test]
fn a_mission_file_that_does_not_exist() {
    let (output, _) = orchestrator(&["task", "--file", "/nonexistent/mission.md"]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("read the mission from /nonexistent/mission.md"),
        "{message}"
    );
}

#[test]
fn an_unparsable_configuration_names_its_line() {
    let project = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(project.path().join(".opencode")).unwrap();
    std::fs::write(
        project.path().join(".opencode/orchestrator.toml"),
        "[limits]\nslots = 4\nslot = 2\n",
    )
    .unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (output, _) = orchestrator(&[
        "task",
        "--url",
        &url,
        "--project",
        project.path().to_str().unwrap(),
        "Do",
    ]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("orchestrator.toml:3"), "{message}");
    assert!(message.contains("slot"), "{message}");
    assert!(
        !project
            .path()
            .join(".opencode/orchestrator/missions")
            .exists(),
        "no mission was created"
    );
}

#[test]
fn a_mission_id_that_does_not_exist() {
    let project = tempfile::tempdir().unwrap();
    let path = project.path().to_str().unwrap();
    for command in ["status", "resume", "stop"] {
        let (output, _) = orchestrator(&[command, "m123", "--project", path]);
        assert_eq!(output.status.code(), Some(2), "{command}");
        let message = stderr(&output);
        assert!(message.contains("no mission m123"), "{command}: {message}");
    }
    let (output, _) = orchestrator(&["status", "--project", path]);
    assert!(
        stderr(&output).contains("no mission in"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_corrupt_state_directory_is_reported_not_used() {
    let project = tempfile::tempdir().unwrap();
    let directory = project.path().join(".opencode/orchestrator/missions/m1");
    std::fs::create_dir_all(&directory).unwrap();
    // Not a store file: a snapshot-or-log name holding junk.
    std::fs::write(
        directory.join("log-00000000000000000001"),
        b"this is not a commit log at all",
    )
    .unwrap();
    let before = std::fs::read(directory.join("log-00000000000000000001")).unwrap();
    let (output, _) = orchestrator(&[
        "status",
        "m1",
        "--project",
        project.path().to_str().unwrap(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(
        message.contains("cannot open the mission state in"),
        "{message}"
    );
    assert_eq!(
        std::fs::read(directory.join("log-00000000000000000001")).unwrap(),
        before,
        "nothing rewritten"
    );
}

#[test]
fn install_into_a_read_only_project_writes_nothing() {
    let project = tempfile::tempdir().unwrap();
    let path = project.path();
    std::fs::write(path.join("opencode.json"), "{ \"model\": \"a/b\" }\n").unwrap();
    let mut permissions = std::fs::metadata(path).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o555);
    std::fs::set_permissions(path, permissions.clone()).unwrap();
    // Root writes anyway: only check when the directory is really read-only to us.
    let read_only = std::fs::write(path.join("probe"), b"").is_err();
    let (output, _) = orchestrator(&["install", "--project", path.to_str().unwrap()]);
    std::os::unix::fs::PermissionsExt::set_mode(&mut permissions, 0o755);
    std::fs::set_permissions(path, permissions).unwrap();
    if read_only {
        assert_eq!(output.status.code(), Some(2));
        assert!(
            stderr(&output).contains("not writable"),
            "{}",
            stderr(&output)
        );
        assert!(!path.join(".opencode").exists());
    } else {
        let _ = std::fs::remove_file(path.join("probe"));
        assert!(output.status.success(), "{}", stderr(&output));
    }
    assert!(
        std::fs::read_to_string(path.join("opencode.json"))
            .unwrap()
            .contains("\"model\"")
    );
}

/// Fails when something listens at the default URL: the cases below are about the one where nothing does
/// (and would otherwise run their mission on whatever answers there).
fn assert_nothing_at_the_default_url() {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect("127.0.0.1:4096").is_ok() {
        assert!(
            Instant::now() < deadline,
            "something listens at 127.0.0.1:4096: this test needs the default URL free"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A directory holding only an executable `opencode` script that prints `version`, for PATH.
fn fake_opencode_dir(version: &str) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opencode");
    std::fs::write(&path, format!("#!/bin/sh\necho {version}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

#[test]
fn no_server_and_no_opencode_on_path() {
    assert_nothing_at_the_default_url();
    let project = tempfile::tempdir().unwrap();
    // A PATH with no `opencode` in it (nor anything else).
    let empty = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["task", "--project", project.path().to_str().unwrap()])
        // No git on this PATH either: without isolation, the server is the first thing looked for.
        .args(["--no-isolation", "--check", "true", "Do something"])
        .env("PATH", empty.path())
        .env_remove("OPENCODE_BIN")
        .env_remove("OPENCODE_SERVER_PASSWORD")
        .output()
        .unwrap();
    let took = started.elapsed();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stderr(&output).trim(),
        "orchestrator: no OpenCode server at http://127.0.0.1:4096 and no `opencode` on PATH: \
         install it (npm i -g opencode-ai) or pass --url"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        !project.path().join(".opencode").exists(),
        "nothing was written for a mission that never started"
    );

    // `$OPENCODE_BIN` naming nothing usable is said so.
    let output = Command::new(env!("CARGO_BIN_EXE_orchestrator"))
        .args(["task", "--project", project.path().to_str().unwrap()])
        // No git on this PATH either: without isolation, the server is the first thing looked for.
        .args(["--no-isolation", "--check", "true", "Do something"])
        .env("PATH", empty.path())
        .env("OPENCODE_BIN", empty.path().join("missing"))
        .env_remove("OPENCODE_SERVER_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("OPENCODE_BIN names ")
            && stderr(&output).contains("which is not an executable file"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn doctor_says_what_task_does_without_url() {
    assert_nothing_at_the_default_url();
    let project = tempfile::tempdir().unwrap();
    let doctor = |path: &Path| {
        Command::new(env!("CARGO_BIN_EXE_orchestrator"))
            .args(["doctor", "--project", project.path().to_str().unwrap()])
            .env("PATH", path)
            .env_remove("OPENCODE_BIN")
            .env_remove("OPENCODE_SERVER_PASSWORD")
            .output()
            .unwrap()
    };
    let with = fake_opencode_dir("1.18.33");
    let output = doctor(with.path());
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    let opencode = with.path().join("opencode");
    assert!(
        report.contains(&format!(
            "✓ opencode: OpenCode 1.18.33, the version the orchestrator is tested against ({})",
            opencode.display()
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "✓ without --url: nothing answers at http://127.0.0.1:4096: `task` starts your opencode ({})",
            opencode.display()
        )),
        "{report}"
    );
    assert!(!report.contains("✗ server"), "{report}");

    let without = tempfile::tempdir().unwrap();
    let output = doctor(without.path());
    let report = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(output.status.code(), Some(1), "{report}");
    assert!(
        report.contains("! opencode: `opencode` is not on PATH"),
        "{report}"
    );
    assert!(
        report.contains(
            "✗ without --url: no OpenCode server at http://127.0.0.1:4096 and no `opencode` on PATH"
        ),
        "{report}"
    );
}

#[test]
fn a_bad_otlp_endpoint() {
    let project = tempfile::tempdir().unwrap();
    let project_arg = project.path().to_str().unwrap();
    for (endpoint, why) in [
        ("localhost:4318", "the scheme must be http or https"),
        ("not a url", "relative URL without a base"),
        (
            "grpc://collector:4317",
            "the scheme must be http or https, not `grpc`",
        ),
    ] {
        for command in ["task", "resume"] {
            let mut args = vec![command, "--project", project_arg, "--otlp", endpoint];
            if command == "task" {
                args.push("Do something");
            }
            let (output, took) = orchestrator(&args);
            let message = stderr(&output);
            assert_eq!(output.status.code(), Some(2), "{args:?}: {message}");
            assert!(
                message.contains(&format!("`{endpoint}` is not an OTLP endpoint: {why}"))
                    && message.contains("e.g. http://localhost:4318"),
                "{args:?}: {message}"
            );
            assert!(took < Duration::from_secs(5), "{took:?}");
        }
    }
    assert!(
        !project.path().join(".opencode").exists(),
        "nothing was written for a mission that never started"
    );
}

/// Without the `otel` feature, `--otlp` is refused before anything runs (with it, `tests/otlp.rs` shows the
/// export).
#[cfg(not(feature = "otel"))]
#[test]
fn otlp_in_a_build_without_the_feature() {
    let project = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{}", closed_port());
    let (output, took) = orchestrator(&[
        "task",
        "--url",
        &url,
        "--project",
        project.path().to_str().unwrap(),
        "--otlp",
        "http://127.0.0.1:4318",
        "Do something",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        stderr(&output).trim(),
        "orchestrator: cannot export traces to http://127.0.0.1:4318/v1/traces: this orchestrator was \
         built without OTLP export (rebuild it with `--features otel`)"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(!project.path().join(".opencode").exists());
}
