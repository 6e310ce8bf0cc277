//! The interactive documentation renders in a real browser: headless Chromium loads `/docs`
//! from a running `quire serve`, Swagger UI fetches `/openapi.json`, and the operations appear.
//!
//! Chromium comes from `QUIRE_TEST_CHROMIUM` (default `/usr/bin/chromium`; `.ci/run` installs
//! Debian's package). Without it this test fails: a missing browser is a broken environment.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn swagger_ui_renders_the_api_operations_in_chromium() {
    let chromium =
        std::env::var("QUIRE_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "this test needs Chromium at {chromium} (install Debian's chromium, or set QUIRE_TEST_CHROMIUM)"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_quire"))
        .env("RUST_LOG", "warn")
        .env_remove("QUIRE_DATABASE_URL")
        .args(["--data-dir"])
        .arg(dir.path().join("data"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start quire serve");
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("quire listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();

    let output = Command::new(&chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=15000",
            "--dump-dom",
        ])
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("chrome").display()
        ))
        .arg(format!("{base}/docs/"))
        .output()
        .expect("run chromium");
    let _ = server.kill();
    let _ = server.wait();
    let dom = String::from_utf8_lossy(&output.stdout);
    // These elements exist only once Swagger UI's scripts ran and read the OpenAPI document.
    for path in [
        "data-path=\"/books\"",
        "data-path=\"/books/{id}/reviews\"",
        "data-path=\"/auth/token\"",
    ] {
        assert!(
            dom.contains(path),
            "the rendered page lacks {path}; chromium said: {}\n{dom:.2000}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    assert!(dom.contains("Quire"), "the API title is shown");
}
