//! How a build's source goes into its container: one tar archive of the
//! checkout under `workspace/`, every entry owned by the build user, sent
//! through the engine's archive API (never a bind mount of the host, so a
//! remote engine works the same).

use super::BUILD_USER;
use std::path::Path;

/// Adds an empty directory owned by the build user.
pub fn append_owned_dir<W: std::io::Write>(builder: &mut tar::Builder<W>, name: &str) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Directory);
    header.set_mode(0o755);
    header.set_uid(BUILD_USER.into());
    header.set_gid(BUILD_USER.into());
    header.set_size(0);
    builder.append_data(&mut header, name, std::io::empty())
}

/// Writes a tar archive of `dir` (without `.git` folders) under
/// `workspace/` into `out`, every entry owned by the build user, ready for
/// [`super::Workspace::create_step`]. `extra_dirs` are empty directories added
/// beside `workspace/` (mount points to hand to the build user).
pub fn write_workspace_tar(dir: &Path, extra_dirs: &[&str], out: &Path) -> std::io::Result<()> {
    write_tar(dir, extra_dirs, false, out)
}

/// Like [`write_workspace_tar`], keeping the checkout's own `.git` (not
/// those of submodules): for the `ignore` command, which compares commits
/// with git. The runner made that folder with git2; it holds the fetched
/// objects and no credentials (tokens never enter a URL or the config).
pub fn write_workspace_tar_with_history(dir: &Path, out: &Path) -> std::io::Result<()> {
    write_tar(dir, &[], true, out)
}

fn write_tar(dir: &Path, extra_dirs: &[&str], keep_top_git: bool, out: &Path) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut builder = tar::Builder::new(file);
    builder.follow_symlinks(false);
    append_owned_dir(&mut builder, "workspace")?;
    for extra in extra_dirs {
        append_owned_dir(&mut builder, extra.trim_start_matches('/'))?;
    }
    let entries = walkdir::WalkDir::new(dir)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| e.file_name() != ".git" || (keep_top_git && e.depth() == 1));
    for entry in entries {
        let entry = entry.map_err(std::io::Error::other)?;
        let relative = entry.path().strip_prefix(dir).map_err(std::io::Error::other)?;
        let metadata = entry.path().symlink_metadata()?;
        let mut header = tar::Header::new_gnu();
        header.set_metadata(&metadata);
        header.set_uid(BUILD_USER.into());
        header.set_gid(BUILD_USER.into());
        let name = Path::new("workspace").join(relative);
        if metadata.file_type().is_symlink() {
            let target = std::fs::read_link(entry.path())?;
            builder.append_link(&mut header, &name, &target)?;
        } else if metadata.is_dir() {
            builder.append_data(&mut header, &name, std::io::empty())?;
        } else {
            builder.append_data(&mut header, &name, std::fs::File::open(entry.path())?)?;
        }
    }
    builder.into_inner()?.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_tar_leaves_out_git_and_belongs_to_the_build_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("src/theme/.git")).unwrap();
        std::fs::write(dir.path().join("src/theme/.git/HEAD"), "x").unwrap();
        std::fs::write(dir.path().join("src/a.txt"), "hello").unwrap();
        let out = tempfile::NamedTempFile::new().unwrap();
        write_workspace_tar(dir.path(), &["cache"], out.path()).unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(out.path()).unwrap());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let entry = entry.unwrap();
            assert_eq!(entry.header().uid().unwrap(), 1000);
            names.push(entry.path().unwrap().to_string_lossy().into_owned());
        }
        names.sort();
        assert_eq!(
            names,
            [
                "cache",
                "workspace",
                "workspace/src",
                "workspace/src/a.txt",
                "workspace/src/theme"
            ]
        );
    }

    #[test]
    fn the_ignore_commands_tar_keeps_the_checkouts_own_git_only() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
        std::fs::write(dir.path().join(".git/HEAD"), "x").unwrap();
        std::fs::create_dir_all(dir.path().join("src/theme/.git")).unwrap();
        std::fs::write(dir.path().join("src/theme/.git/HEAD"), "x").unwrap();
        let out = tempfile::NamedTempFile::new().unwrap();
        write_workspace_tar_with_history(dir.path(), out.path()).unwrap();
        let mut archive = tar::Archive::new(std::fs::File::open(out.path()).unwrap());
        let mut names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|entry| entry.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "workspace",
                "workspace/.git",
                "workspace/.git/HEAD",
                "workspace/.git/objects",
                "workspace/src",
                "workspace/src/theme"
            ]
        );
    }
}
