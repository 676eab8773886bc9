//! The demo's build image, `jamstack/busybox:1`, made on this machine when
//! the engine lacks it, so `jamstack-controller up --demo` is a newcomer's
//! one command (`jamstack-runner images build-demo` runs it alone).
//!
//! It is what `scripts/build-images.sh` makes for that tag: `FROM scratch`,
//! Debian's static busybox with its applets linked, and a non-root user
//! `builder` (1000:1000), built by the engine from a context sent as a tar.
//! No registry is needed. This module knows bollard as `docker` does: it
//! belongs with the Docker executor and moves with it.

use anyhow::Context as _;
use bollard::Docker;
use bollard::image::BuildImageOptions;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The image the demo site's jamstack.toml names, and the runner's default
/// build and helper image.
pub const DEMO_IMAGE: &str = "jamstack/busybox:1";

/// Where Debian's `busybox-static` puts its binary (`/bin` is `/usr/bin` on
/// merged-/usr systems, but not on every one).
pub const BUSYBOX_PATHS: &[&str] = &["/bin/busybox", "/usr/bin/busybox"];

/// How long a build usually takes, said before it starts: measured at 7.9 s
/// on a two-core machine busy compiling beside it.
pub const USUAL_BUILD_TIME: &str = "5 to 10 seconds";

/// The user builds run as, as `scripts/build-images.sh` makes it.
const BUILDER_UID: u32 = 1000;
const BUILDER_GID: u32 = 1000;

/// Marks images this module built (`scripts/build-images.sh` labels its own
/// with the hash of their inputs instead, and rebuilds ours when run).
const BUILT_BY_LABEL: &str = "org.jamstack.built-by";

/// What [`ensure_demo_image`] found or did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoImage {
    /// The engine had it already.
    Present,
    /// Built now, in this long.
    Built(Duration),
}

/// Makes sure the engine has `tag`, building it from this machine's static
/// busybox (the first of `busybox_paths` that exists) when it does not.
/// `say` is told, in one line each, what is being done and how it goes.
pub async fn ensure_demo_image(
    tag: &str,
    busybox_paths: &[&Path],
    say: &mut (dyn FnMut(&str) + Send),
) -> anyhow::Result<DemoImage> {
    let docker = connect().await?;
    if docker.inspect_image(tag).await.is_ok() {
        return Ok(DemoImage::Present);
    }
    let busybox = static_busybox(tag, busybox_paths)?;
    say(&format!(
        "{tag} is not in the Docker engine: building it from {} (busybox-static); this takes {USUAL_BUILD_TIME}",
        busybox.display()
    ));
    let started = Instant::now();
    let binary = std::fs::read(&busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let context = build_context(&binary).context("packing the image's build context")?;
    let options = BuildImageOptions {
        t: tag.to_owned(),
        labels: HashMap::from([(
            BUILT_BY_LABEL.to_owned(),
            "jamstack-runner images build-demo".to_owned(),
        )]),
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let mut build = docker.build_image(options, None, Some(context.into()));
    while let Some(step) = build.next().await {
        let step = step.with_context(|| format!("building {tag}"))?;
        if let Some(error) = step.error {
            anyhow::bail!("building {tag}: {error}");
        }
        if let Some(line) = step.stream.as_deref().map(str::trim)
            && line.starts_with("Step ")
        {
            // The steps' numbers show the progress; a long command, the
            // whole of it, would not.
            match line.char_indices().nth(100) {
                Some((cut, _)) => say(&format!("{} ...", &line[..cut])),
                None => say(line),
            }
        }
    }
    docker
        .inspect_image(tag)
        .await
        .with_context(|| format!("the engine built {tag} but does not list it"))?;
    Ok(DemoImage::Built(started.elapsed()))
}

async fn connect() -> anyhow::Result<Docker> {
    let hint = "is the Docker engine running? Start it (`systemctl start docker` or `dockerd &`) \
                or point DOCKER_HOST at one";
    let docker = Docker::connect_with_defaults()
        .with_context(|| format!("connecting to Docker; {hint}"))?
        .negotiate_version()
        .await
        .with_context(|| format!("reaching the Docker engine; {hint}"))?;
    Ok(docker)
}

/// The first of `paths` that exists, when it is a statically linked
/// program: the image has no libraries for a dynamic one to load.
pub fn static_busybox(tag: &str, paths: &[&Path]) -> anyhow::Result<PathBuf> {
    let looked = paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let Some(found) = paths.iter().find(|p| p.exists()) else {
        anyhow::bail!(
            "{tag} is not in the Docker engine, and this machine has no busybox to build it from \
             (looked at {looked}). Install Debian's static busybox (`apt-get install busybox-static`, \
             as root), then run this again"
        );
    };
    let binary = std::fs::read(found).with_context(|| format!("reading {}", found.display()))?;
    match is_statically_linked(&binary) {
        Some(true) => Ok(found.to_path_buf()),
        Some(false) => anyhow::bail!(
            "{} is linked dynamically (Debian's `busybox` package), and {tag} has no libraries for \
             it. Install the static one instead (`apt-get install busybox-static`, as root), then run \
             this again",
            found.display()
        ),
        None => anyhow::bail!(
            "{} is not a program this machine runs (not an ELF file). Install Debian's static busybox \
             (`apt-get install busybox-static`, as root), then run this again",
            found.display()
        ),
    }
}

/// Whether an ELF file names no program interpreter (`PT_INTERP`), which a
/// dynamically linked program always does; `None` for a file that is not
/// ELF. Read by hand: five header fields, rather than a parser crate for
/// one bit.
pub fn is_statically_linked(elf: &[u8]) -> Option<bool> {
    const PT_INTERP: u32 = 3;
    if elf.get(..4)? != b"\x7fELF" {
        return None;
    }
    let wide = match elf.get(4)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let big_endian = match elf.get(5)? {
        1 => false,
        2 => true,
        _ => return None,
    };
    let number = |at: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(at..at + len)?;
        let mut padded = [0u8; 8];
        if big_endian {
            padded[8 - len..].copy_from_slice(bytes);
            Some(u64::from_be_bytes(padded))
        } else {
            padded[..len].copy_from_slice(bytes);
            Some(u64::from_le_bytes(padded))
        }
    };
    let (table, entry_size, entries) = if wide {
        (number(0x20, 8)?, number(0x36, 2)?, number(0x38, 2)?)
    } else {
        (number(0x1c, 4)?, number(0x2a, 2)?, number(0x2c, 2)?)
    };
    for index in 0..entries {
        let at = usize::try_from(table + index * entry_size).ok()?;
        if number(at, 4)? == u64::from(PT_INTERP) {
            return Some(false);
        }
    }
    Some(true)
}

/// The build context, as a tar: the Dockerfile and the root file system
/// it copies in, as `scripts/build-images.sh` lays them out.
pub fn build_context(busybox: &[u8]) -> std::io::Result<Vec<u8>> {
    let (uid, gid) = (BUILDER_UID, BUILDER_GID);
    let passwd = format!(
        "root:x:0:0:root:/root:/bin/sh\n\
         builder:x:{uid}:{gid}:builder:/home/builder:/bin/sh\n\
         nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    );
    let group = format!("root:x:0:\nbuilder:x:{gid}:\nnogroup:x:65534:\n");
    let nsswitch = "hosts: files dns\npasswd: files\ngroup: files\n";
    // Applet links in /bin, the usual directories, /usr/bin/env for
    // `#!/usr/bin/env sh` scripts; builds run as `builder` in /workspace.
    let dockerfile = format!(
        "FROM scratch\n\
         COPY rootfs/ /\n\
         RUN [\"/bin/busybox\", \"sh\", \"-c\", \"set -e; \
             /bin/busybox --install -s /bin; \
             mkdir -p /sbin /usr/bin /usr/sbin /usr/local/bin /root /tmp /var/tmp /home/builder /workspace; \
             ln -sf /bin/busybox /usr/bin/env; \
             chmod 1777 /tmp /var/tmp; chmod 0700 /root; \
             chown {uid}:{gid} /home/builder /workspace\"]\n\
         ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/home/builder\n\
         USER {uid}:{gid}\n\
         WORKDIR /workspace\n\
         CMD [\"sh\"]\n"
    );
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: &str, mode: u32, contents: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(contents.len() as u64);
        header.set_mode(mode);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, path, contents)
    };
    add("Dockerfile", 0o644, dockerfile.as_bytes())?;
    add("rootfs/bin/busybox", 0o755, busybox)?;
    add("rootfs/etc/passwd", 0o644, passwd.as_bytes())?;
    add("rootfs/etc/group", 0o644, group.as_bytes())?;
    add("rootfs/etc/nsswitch.conf", 0o644, nsswitch.as_bytes())?;
    tar.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 64-bit little-endian ELF header with one program header of `kind`.
    fn elf_with_program_header(kind: u32) -> Vec<u8> {
        let mut elf = vec![0u8; 0x40 + 0x38];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2;
        elf[5] = 1;
        elf[0x20..0x28].copy_from_slice(&0x40u64.to_le_bytes());
        elf[0x36..0x38].copy_from_slice(&0x38u16.to_le_bytes());
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        elf[0x40..0x44].copy_from_slice(&kind.to_le_bytes());
        elf
    }

    #[test]
    fn a_program_that_names_an_interpreter_is_dynamic_and_one_without_is_static() {
        assert_eq!(is_statically_linked(&elf_with_program_header(1)), Some(true));
        assert_eq!(is_statically_linked(&elf_with_program_header(3)), Some(false));
        assert_eq!(is_statically_linked(b"#!/bin/sh\necho hi\n"), None);
        assert_eq!(is_statically_linked(b"\x7fEL"), None);
        // This machine's shell is a dynamically linked program.
        let shell = std::fs::read("/bin/sh").unwrap();
        assert_eq!(is_statically_linked(&shell), Some(false));
    }

    #[test]
    fn a_machine_without_busybox_is_told_which_package_to_install() {
        let empty = tempfile::tempdir().unwrap();
        let missing = empty.path().join("busybox");
        let error = static_busybox("demo/image:1", &[&missing])
            .unwrap_err()
            .to_string();
        assert!(error.contains("apt-get install busybox-static"), "{error}");
        assert!(error.contains(&missing.display().to_string()), "{error}");
    }

    #[test]
    fn a_dynamically_linked_busybox_is_refused_with_the_static_package_named() {
        let error = static_busybox("demo/image:1", &[Path::new("/bin/sh")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("linked dynamically"), "{error}");
        assert!(error.contains("apt-get install busybox-static"), "{error}");
    }

    #[test]
    fn the_build_context_holds_the_dockerfile_and_the_root_file_system() {
        let context = build_context(b"busybox bytes").unwrap();
        let mut archive = tar::Archive::new(context.as_slice());
        let mut found = HashMap::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let mode = entry.header().mode().unwrap();
            let mut contents = String::new();
            std::io::Read::read_to_string(&mut entry, &mut contents).unwrap();
            found.insert(entry.path().unwrap().display().to_string(), (mode, contents));
        }
        assert_eq!(found["rootfs/bin/busybox"], (0o755, "busybox bytes".to_owned()));
        assert!(found["rootfs/etc/passwd"].1.contains("builder:x:1000:1000:"));
        let dockerfile = &found["Dockerfile"].1;
        assert!(dockerfile.starts_with("FROM scratch\n"), "{dockerfile}");
        assert!(dockerfile.contains("USER 1000:1000\n"), "{dockerfile}");
    }
}
