//! What more than one benchmark needs and the end-to-end tests do not.

/// Stops `child` with SIGTERM and waits for it: a server with workers of
/// its own (nginx) stops them first, where a SIGKILL would leave them
/// running. SIGKILL when SIGTERM cannot be sent.
pub fn terminate(child: &mut std::process::Child) {
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .is_ok_and(|status| status.success());
    if !sent {
        let _ = child.kill();
    }
    let _ = child.wait();
}
