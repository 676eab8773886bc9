//! Reading what a repository or a build made without leaving it.
//!
//! Everything in a checkout or a build's output is written by whoever
//! pushed the commit, a fork's pull request among them: a folder may be a
//! symlink to `../..` (the runner's own work directory, its token inside),
//! `jamstack.toml` may be a symlink to `/dev/zero`, the engine's archive of
//! the output may hold links and `..` entries. So paths are walked one
//! component at a time with `symlink_metadata`, a symlink on the way is
//! refused rather than followed, nothing is resolved with `canonicalize`
//! into the host, and files are read only when they are regular files,
//! up to a limit.

pub use jamstack_deploy_files::human_size;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

/// The most `jamstack.toml` (and a publish directory's `_redirects` and
/// `_headers`) may hold; the controller takes rule files up to the same.
pub const CONFIG_FILE_LIMIT: u64 = jamstack_proto::MAX_RULE_FILE_BYTES;

#[derive(Debug, thiserror::Error)]
pub enum InsideError {
    #[error(
        "`{path}` is a symlink (to `{target}`); {what} must be a real folder inside the {within}, \
         not a link, so nothing outside it is read. Point {what} at the folder itself"
    )]
    Symlink {
        what: String,
        within: &'static str,
        path: String,
        target: String,
    },
    #[error("`{path}` is not a folder; check {what} in jamstack.toml")]
    NotADirectory { what: String, path: String },
    #[error("`{path}` does not exist")]
    Missing { path: String },
    #[error("`{path}` is not a plain relative path inside the {within}")]
    NotRelative { path: String, within: &'static str },
    #[error(
        "`{path}` is a symlink (to `{target}`); {path} must be a regular file in the {within}. \
         Commit the file itself instead of a link"
    )]
    FileIsSymlink {
        path: String,
        target: String,
        within: &'static str,
    },
    #[error("`{path}` is not a regular file; {path} must be a regular file in the {within}")]
    NotAFile { path: String, within: &'static str },
    #[error("`{path}` is larger than the limit of {limit}; make it smaller")]
    TooLarge { path: String, limit: String },
    #[error("reading `{path}`: {error}")]
    Io { path: String, error: std::io::Error },
}

/// `relative` under `root`, every component a real directory that exists
/// (none a symlink); `what` names the setting for the error message
/// (`publish`, `base`) and `within` the place (`repository`, `build's
/// output`).
pub fn real_dir(
    root: &Path,
    relative: &str,
    what: &str,
    within: &'static str,
) -> Result<PathBuf, InsideError> {
    let mut here = root.to_path_buf();
    let mut shown = PathBuf::new();
    for component in Path::new(relative).components() {
        let name = match component {
            Component::Normal(name) => name,
            Component::CurDir => continue,
            _ => {
                return Err(InsideError::NotRelative {
                    path: relative.to_owned(),
                    within,
                });
            }
        };
        here.push(name);
        shown.push(name);
        let metadata = match here.symlink_metadata() {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(InsideError::Missing {
                    path: shown.display().to_string(),
                });
            }
            Err(error) => {
                return Err(InsideError::Io {
                    path: shown.display().to_string(),
                    error,
                });
            }
        };
        if metadata.file_type().is_symlink() {
            let target = std::fs::read_link(&here).unwrap_or_default();
            return Err(InsideError::Symlink {
                what: what.to_owned(),
                within,
                path: shown.display().to_string(),
                target: target.display().to_string(),
            });
        }
        if !metadata.is_dir() {
            return Err(InsideError::NotADirectory {
                what: what.to_owned(),
                path: shown.display().to_string(),
            });
        }
    }
    Ok(here)
}

/// Like [`real_dir`], but a folder that does not exist yet is fine (a
/// build may make it): only a symlink or a file on the way is refused.
pub fn no_link_on_the_way(
    root: &Path,
    relative: &str,
    what: &str,
    within: &'static str,
) -> Result<(), InsideError> {
    match real_dir(root, relative, what, within) {
        Ok(_) | Err(InsideError::Missing { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// The text of the regular file `name` in `dir` (a folder already checked
/// with [`real_dir`]), or `None` when there is none. A symlink, a device or
/// a folder is refused, and so is a file larger than `limit`, without
/// reading more than `limit` + 1 bytes whatever the file claims.
pub fn read_small_file(
    dir: &Path,
    name: &str,
    shown: &str,
    within: &'static str,
    limit: u64,
) -> Result<Option<String>, InsideError> {
    let path = dir.join(name);
    let io = |error| InsideError::Io {
        path: shown.to_owned(),
        error,
    };
    let metadata = match path.symlink_metadata() {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if metadata.file_type().is_symlink() {
        return Err(InsideError::FileIsSymlink {
            path: shown.to_owned(),
            target: std::fs::read_link(&path)
                .unwrap_or_default()
                .display()
                .to_string(),
            within,
        });
    }
    check_regular_file(&metadata, shown, within, limit)?;
    let file = std::fs::File::open(&path).map_err(io)?;
    // What was opened is checked again: it may not be what was looked at.
    check_regular_file(&file.metadata().map_err(io)?, shown, within, limit)?;
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(shown, limit));
    }
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| io(std::io::Error::other("it is not UTF-8 text")))
}

fn check_regular_file(
    metadata: &std::fs::Metadata,
    shown: &str,
    within: &'static str,
    limit: u64,
) -> Result<(), InsideError> {
    if !metadata.is_file() {
        return Err(InsideError::NotAFile {
            path: shown.to_owned(),
            within,
        });
    }
    if metadata.len() > limit {
        return Err(too_large(shown, limit));
    }
    Ok(())
}

fn too_large(shown: &str, limit: u64) -> InsideError {
    InsideError::TooLarge {
        path: shown.to_owned(),
        limit: human_size(limit),
    }
}

/// What [`unpack`] left out.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unpacked {
    /// Entries that are neither files, folders nor symlinks (devices,
    /// fifos, hard links), or whose path leaves the folder: not unpacked.
    pub skipped: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error(
        "the build's output is larger than this runner's limit of {limit} (--publish-limit-mib); publish less"
    )]
    TooLarge { limit: String },
    #[error("unpacking the build's output: {0}")]
    Io(#[from] std::io::Error),
}

/// Unpacks a tar archive (the engine's copy of a build's output) into
/// `dest`, an empty folder: only folders, regular files and symlinks
/// (created as links, never followed), each at a plain relative path with
/// no symlink on the way, no more than `limit` bytes of file content in
/// all. Anything else is skipped and named in the answer.
pub fn unpack(archive: impl Read, dest: &Path, limit: u64) -> Result<Unpacked, UnpackError> {
    let mut archive = tar::Archive::new(archive);
    let mut unpacked = Unpacked::default();
    let mut total = 0u64;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let shown = path.display().to_string();
        let plain = path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        let kind = entry.header().entry_type();
        let relative: PathBuf = path.components().filter(|c| *c != Component::CurDir).collect();
        if !plain || relative.as_os_str().is_empty() {
            unpacked.skipped.push(shown);
            continue;
        }
        // The folder it goes in must be made of real folders only: a
        // symlink made by an earlier entry is never written through.
        let parent = relative.parent().unwrap_or(Path::new(""));
        let Ok(parent_dir) = real_dir(dest, &parent.to_string_lossy(), "output", "build's output") else {
            unpacked.skipped.push(shown);
            continue;
        };
        let target = parent_dir.join(relative.file_name().expect("a normal last component"));
        match kind {
            tar::EntryType::Directory => match target.symlink_metadata() {
                Ok(metadata) if metadata.is_dir() => {}
                Ok(_) => unpacked.skipped.push(shown),
                Err(_) => std::fs::create_dir(&target)?,
            },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                total = total.saturating_add(entry.header().size()?);
                if total > limit {
                    return Err(UnpackError::TooLarge {
                        limit: human_size(limit),
                    });
                }
                // `create_new` fails on anything already there, a symlink
                // included, so a file is never written through a link.
                let mut file = match std::fs::File::options()
                    .write(true)
                    .create_new(true)
                    .open(&target)
                {
                    Ok(file) => file,
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        unpacked.skipped.push(shown);
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                std::io::copy(&mut (&mut entry).take(limit), &mut file)?;
                #[cfg(unix)]
                if let Ok(mode) = entry.header().mode() {
                    use std::os::unix::fs::PermissionsExt;
                    file.set_permissions(std::fs::Permissions::from_mode(mode & 0o755))?;
                }
            }
            #[cfg(unix)]
            tar::EntryType::Symlink => match entry.link_name()? {
                Some(link) if target.symlink_metadata().is_err() => {
                    std::os::unix::fs::symlink(link, &target)?;
                }
                _ => unpacked.skipped.push(shown),
            },
            _ => unpacked.skipped.push(shown),
        }
    }
    Ok(unpacked)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn a_publish_folder_that_is_a_symlink_out_of_the_checkout_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("site")).unwrap();
        symlink("../..", dir.path().join("site/out")).unwrap();
        let error = real_dir(dir.path(), "site/out", "publish", "repository").unwrap_err();
        assert!(matches!(error, InsideError::Symlink { .. }), "{error}");
        assert_eq!(
            error.to_string(),
            "`site/out` is a symlink (to `../..`); publish must be a real folder inside the repository, \
             not a link, so nothing outside it is read. Point publish at the folder itself"
        );
    }

    #[test]
    fn a_base_folder_symlink_is_refused_on_any_component() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("real/public")).unwrap();
        symlink("real", dir.path().join("site")).unwrap();
        let error = real_dir(dir.path(), "site/public", "base", "repository").unwrap_err();
        assert!(error.to_string().starts_with("`site` is a symlink"), "{error}");
        assert!(no_link_on_the_way(dir.path(), "site/later", "base", "repository").is_err());
        assert!(no_link_on_the_way(dir.path(), "real/later", "base", "repository").is_ok());
        assert_eq!(
            real_dir(dir.path(), "real/./public", "publish", "repository").unwrap(),
            dir.path().join("real/public")
        );
    }

    #[test]
    fn a_config_file_that_is_a_symlink_to_dev_zero_is_refused_unread() {
        let dir = tempfile::tempdir().unwrap();
        symlink("/dev/zero", dir.path().join("jamstack.toml")).unwrap();
        let error = read_small_file(
            dir.path(),
            "jamstack.toml",
            "jamstack.toml",
            "repository",
            CONFIG_FILE_LIMIT,
        )
        .unwrap_err();
        assert!(matches!(error, InsideError::FileIsSymlink { .. }), "{error}");
        assert!(error.to_string().contains("/dev/zero"), "{error}");
    }

    #[test]
    fn a_config_file_over_the_limit_is_refused_naming_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("jamstack.toml"), vec![b'#'; 2 * 1024 * 1024]).unwrap();
        let error = read_small_file(
            dir.path(),
            "jamstack.toml",
            "jamstack.toml",
            "repository",
            CONFIG_FILE_LIMIT,
        )
        .unwrap_err();
        assert_eq!(
            error.to_string(),
            "`jamstack.toml` is larger than the limit of 1 MiB; make it smaller"
        );
        std::fs::write(dir.path().join("jamstack.toml"), "[build]\n").unwrap();
        assert_eq!(
            read_small_file(
                dir.path(),
                "jamstack.toml",
                "jamstack.toml",
                "repository",
                CONFIG_FILE_LIMIT
            )
            .unwrap(),
            Some("[build]\n".to_owned())
        );
        assert_eq!(
            read_small_file(
                dir.path(),
                "none.toml",
                "none.toml",
                "repository",
                CONFIG_FILE_LIMIT
            )
            .unwrap(),
            None
        );
    }

    /// A tar as an attacker's engine (or a build) could make it.
    fn hostile_tar() -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut add = |name: &[u8], kind: tar::EntryType, link: Option<&str>, data: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            // Written raw, so `..` and absolute names reach the archive.
            header.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name);
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, data).unwrap();
        };
        add(b"public", tar::EntryType::Directory, None, b"");
        add(b"public/index.html", tar::EntryType::Regular, None, b"hi");
        add(b"public/up", tar::EntryType::Symlink, Some("../../.."), b"");
        add(b"public/up/escaped", tar::EntryType::Regular, None, b"x");
        add(b"public/../../escaped", tar::EntryType::Regular, None, b"x");
        add(b"/tmp/escaped", tar::EntryType::Regular, None, b"x");
        add(b"public/hard", tar::EntryType::Link, Some("/etc/passwd"), b"");
        add(b"public/zero", tar::EntryType::Char, None, b"");
        builder.into_inner().unwrap()
    }

    #[test]
    fn a_hostile_archive_of_the_output_lands_only_inside_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("a/b/publish");
        std::fs::create_dir_all(&dest).unwrap();
        let unpacked = unpack(&hostile_tar()[..], &dest, 1024).unwrap();
        assert_eq!(
            unpacked.skipped,
            [
                "public/up/escaped",
                "public/../../escaped",
                "/tmp/escaped",
                "public/hard",
                "public/zero"
            ]
        );
        assert_eq!(std::fs::read(dest.join("public/index.html")).unwrap(), b"hi");
        assert!(
            dest.join("public/up")
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert!(!dir.path().join("escaped").exists());
        assert!(!dir.path().join("a/escaped").exists());
        assert!(!dest.join("tmp").exists());
    }

    #[test]
    fn an_archive_larger_than_the_limit_is_refused() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(4096);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, "big.bin", &[0u8; 4096][..])
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let error = unpack(&builder.into_inner().unwrap()[..], dir.path(), 1024).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the build's output is larger than this runner's limit of 1 KiB (--publish-limit-mib); publish less"
        );
    }
}
