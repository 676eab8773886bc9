//! `up --demo` on a machine whose engine lacks the demo's image: the runner
//! builds it from the host's static busybox. A tag of the test's own keeps
//! `jamstack/busybox:1`, which the other tests build in, untouched.

use crate::processes::binary;
use std::process::Command;

/// Removes the image when the test ends, however it ends.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["image", "rm", "-f", &self.0])
            .output();
    }
}

fn build_demo(tag: &str) -> String {
    let built = Command::new(binary("jamstack-runner"))
        .args(["images", "build-demo", "--tag", tag])
        .output()
        .unwrap();
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    assert!(built.status.success(), "{printed}");
    printed
}

#[test]
fn the_demo_image_is_built_when_the_engine_lacks_it_and_builds_run_in_it_as_builder() {
    let tag = format!("jamstack-test/demo-busybox:{}", std::process::id());
    let _cleanup = RemoveImage(tag.clone());
    let _ = Command::new("docker").args(["image", "rm", "-f", &tag]).output();

    let printed = build_demo(&tag);
    assert!(
        printed.contains("is not in the Docker engine: building it from"),
        "{printed}"
    );
    assert!(printed.contains("; this takes "), "{printed}");
    assert!(printed.contains(&format!("built {tag} in ")), "{printed}");

    let ran = Command::new("docker")
        .args([
            "run",
            "--rm",
            &tag,
            "sh",
            "-c",
            "echo ok && id -u && env | grep ^HOME=",
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert_eq!(
        said.lines().collect::<Vec<_>>(),
        ["ok", "1000", "HOME=/home/builder"]
    );

    let again = build_demo(&tag);
    assert!(
        again.contains(&format!("{tag} is in the Docker engine")),
        "{again}"
    );
    assert!(!again.contains("building"), "{again}");
}
