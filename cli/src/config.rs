//! The saved login: the controller's URL and a token, in
//! `$JAMSTACK_CONFIG`, or `$XDG_CONFIG_HOME/jamstack/config.toml` (by
//! default `~/.config/jamstack/config.toml`). The file is written readable
//! by its owner only (mode 0600): it holds a token.

use crate::error::{CliError, CliResult};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedLogin {
    pub url: Option<String>,
    pub token: Option<String>,
}

/// Where the login is saved, from the environment given.
pub fn config_path(env: impl Fn(&str) -> Option<String>) -> CliResult<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    if let Some(path) = set("JAMSTACK_CONFIG") {
        return Ok(PathBuf::from(path));
    }
    let config_home = match set("XDG_CONFIG_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(set("HOME").ok_or_else(|| {
            CliError::error("neither JAMSTACK_CONFIG, XDG_CONFIG_HOME nor HOME is set; set JAMSTACK_CONFIG to the file to keep the login in")
        })?)
        .join(".config"),
    };
    Ok(config_home.join("jamstack").join("config.toml"))
}

pub fn default_config_path() -> CliResult<PathBuf> {
    config_path(|name| std::env::var(name).ok())
}

/// Where `jamstack deploy` keeps the hashes of the folders it deployed:
/// `$XDG_CACHE_HOME/jamstack/hashes` (by default `~/.cache/jamstack/hashes`);
/// `None` without either variable (every file is then hashed).
pub fn hash_cache_dir(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    let cache_home = match set("XDG_CACHE_HOME") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(set("HOME")?).join(".cache"),
    };
    Some(cache_home.join("jamstack").join("hashes"))
}

/// The saved login, or an empty one when nothing was saved yet.
pub fn load(path: &Path) -> CliResult<SavedLogin> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SavedLogin::default()),
        Err(e) => return Err(CliError::error(format!("reading {}: {e}", path.display()))),
    };
    toml::from_str(&text).map_err(|e| {
        CliError::error(format!(
            "{} is not a valid login file: {e}Fix it or run `jamstack login` again to rewrite it",
            path.display()
        ))
    })
}

/// Saves the login, readable and writable by its owner only.
pub fn save(path: &Path, login: &SavedLogin) -> CliResult {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| CliError::error(format!("creating {}: {e}", dir.display())))?;
    }
    let text = toml::to_string(login).map_err(|e| CliError::error(e.to_string()))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let write = |options: &std::fs::OpenOptions| -> std::io::Result<()> {
        use std::io::Write as _;
        let mut file = options.open(path)?;
        // A file made earlier with a wider mode is narrowed before the
        // token goes in.
        #[cfg(unix)]
        file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        file.write_all(text.as_bytes())
    };
    write(&options).map_err(|e| CliError::error(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn the_config_file_is_found_as_documented() {
        let path = config_path(env_of(&[
            ("JAMSTACK_CONFIG", "/tmp/j.toml"),
            ("XDG_CONFIG_HOME", "/x"),
        ]));
        assert_eq!(path.unwrap(), PathBuf::from("/tmp/j.toml"));
        let path = config_path(env_of(&[("XDG_CONFIG_HOME", "/x"), ("HOME", "/home/a")]));
        assert_eq!(path.unwrap(), PathBuf::from("/x/jamstack/config.toml"));
        let path = config_path(env_of(&[("XDG_CONFIG_HOME", ""), ("HOME", "/home/a")]));
        assert_eq!(
            path.unwrap(),
            PathBuf::from("/home/a/.config/jamstack/config.toml")
        );
        assert!(config_path(env_of(&[])).is_err());
    }

    #[test]
    fn the_hash_cache_is_kept_where_documented() {
        let dir = hash_cache_dir(env_of(&[("XDG_CACHE_HOME", "/c"), ("HOME", "/home/a")]));
        assert_eq!(dir, Some(PathBuf::from("/c/jamstack/hashes")));
        let dir = hash_cache_dir(env_of(&[("XDG_CACHE_HOME", ""), ("HOME", "/home/a")]));
        assert_eq!(dir, Some(PathBuf::from("/home/a/.cache/jamstack/hashes")));
        assert_eq!(hash_cache_dir(env_of(&[])), None);
    }

    #[cfg(unix)]
    #[test]
    fn a_saved_login_is_private_and_reads_back() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/config.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let login = SavedLogin {
            url: Some("http://127.0.0.1:1".into()),
            token: Some("tok".into()),
        };
        save(&path, &login).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load(&path).unwrap(), login);
        assert_eq!(
            load(&dir.path().join("absent.toml")).unwrap(),
            SavedLogin::default()
        );
    }

    #[test]
    fn a_broken_login_file_is_named_in_the_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "url = \n").unwrap();
        let error = load(&path).unwrap_err();
        assert!(error.message.contains("config.toml"), "{error}");
        assert!(error.message.contains("jamstack login"), "{error}");
    }
}
