//! Watch paths: which changes build a site of a monorepo.
//!
//! A site's watch paths are globs relative to the repository root, taken
//! from the first that has any: `watch` in `jamstack.toml`, the site's
//! `watch_paths` setting, or `<base>/**` when the site builds in a base
//! folder and has no `ignore` command of its own (an `ignore` command is
//! then the one that decides, as on Netlify). A site with none builds on
//! every change.
//!
//! `*` and `?` stay within one folder, `**` crosses folders, and a glob
//! that matches a folder matches everything in it (`sites/blog` is
//! `sites/blog/**`). A path changes when it differs between the commit of
//! the site's last successful build of the same context and the commit
//! being built; a rename changes both its old and its new path.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

/// Where a site's watch paths come from, for the log and the skip reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchSource {
    /// `watch` in `jamstack.toml`.
    File,
    /// The site's `watch_paths` setting.
    SiteSettings,
    /// The folder the site builds in.
    Base,
}

impl WatchSource {
    fn describe(self) -> &'static str {
        match self {
            WatchSource::File => "watch in jamstack.toml",
            WatchSource::SiteSettings => "the site's watch paths",
            WatchSource::Base => "the site's base",
        }
    }
}

/// A site's compiled watch paths.
#[derive(Debug, Clone)]
pub struct WatchPaths {
    globs: Vec<String>,
    set: GlobSet,
    source: WatchSource,
}

/// Compiles one glob as watch paths match it; the error says what is wrong.
fn glob(text: &str) -> Result<globset::Glob, String> {
    GlobBuilder::new(text)
        .literal_separator(true)
        .backslash_escape(false)
        .build()
        .map_err(|e| format!("`{text}` is not a glob: {}", e.kind()))
}

/// Why `text` cannot be a watch path, or `None` when it can: relative to
/// the repository root, inside it, and a glob.
pub fn check_glob(text: &str) -> Option<String> {
    if text.trim().is_empty() {
        return Some("a watch path is empty; remove it".to_owned());
    }
    if text.starts_with('/') {
        return Some(format!(
            "watch path `{text}` is an absolute path; write it relative to the repository root, like `{}`",
            text.trim_start_matches('/')
        ));
    }
    if text.contains('\\') {
        return Some(format!(
            "watch path `{text}` contains a backslash; separate folders with `/`"
        ));
    }
    if text.split('/').any(|part| part == "..") {
        return Some(format!(
            "watch path `{text}` climbs out with `..`; write it relative to the repository root"
        ));
    }
    glob(text).err()
}

impl WatchPaths {
    /// The watch paths of a build: `file` (jamstack.toml's `watch`, if it
    /// sets one), else `site` (the site's setting, if not empty), else
    /// `<base>/**` when `base` is set and there is no ignore command.
    /// `None`: every change builds.
    pub fn choose(
        file: Option<&[String]>,
        site: &[String],
        base: &str,
        has_ignore_command: bool,
    ) -> Result<Option<WatchPaths>, String> {
        let (globs, source) = match (file, site) {
            (Some(file), _) => (file.to_vec(), WatchSource::File),
            (None, site) if !site.is_empty() => (site.to_vec(), WatchSource::SiteSettings),
            _ if !base.is_empty() && !has_ignore_command => (vec![format!("{base}/**")], WatchSource::Base),
            _ => return Ok(None),
        };
        if globs.is_empty() {
            return Ok(None);
        }
        let mut builder = GlobSetBuilder::new();
        for text in &globs {
            if let Some(problem) = check_glob(text) {
                return Err(format!(
                    "{} ({}): {problem}",
                    problem_owner(source),
                    source.describe()
                ));
            }
            builder.add(glob(text)?);
        }
        let set = builder
            .build()
            .map_err(|e| format!("the watch paths do not compile: {e}"))?;
        Ok(Some(WatchPaths { globs, set, source }))
    }

    /// Whether `path` (relative to the repository root) or a folder it is
    /// in matches a glob.
    pub fn matches(&self, path: &str) -> bool {
        path.match_indices('/')
            .any(|(slash, _)| self.set.is_match(&path[..slash]))
            || self.set.is_match(path)
    }

    /// The globs, quoted, for the log: `` `a/**`, `b/**` ``.
    pub fn listed(&self) -> String {
        self.globs
            .iter()
            .map(|glob| format!("`{glob}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Where they come from, in words.
    pub fn source(&self) -> WatchSource {
        self.source
    }

    /// The reason a build that changes nothing under them is skipped.
    pub fn skip_reason(&self, from: &str, to: &str) -> String {
        format!(
            "no file under {} ({}) changed between {} and {}",
            self.listed(),
            self.source.describe(),
            short(from),
            short(to)
        )
    }
}

fn problem_owner(source: WatchSource) -> &'static str {
    match source {
        WatchSource::File => "jamstack.toml",
        WatchSource::SiteSettings => "the site's settings",
        WatchSource::Base => "the site's base",
    }
}

/// A commit id as people read it: its first seven hex digits.
pub fn short(sha: &str) -> &str {
    &sha[..sha.len().min(7)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn watch(globs: &[&str]) -> WatchPaths {
        let globs: Vec<String> = globs.iter().map(|g| (*g).to_owned()).collect();
        WatchPaths::choose(Some(&globs), &[], "", false).unwrap().unwrap()
    }

    #[test]
    fn a_double_star_crosses_folders_and_a_single_star_stays_in_one() {
        let paths = watch(&["sites/blog/**", "shared/*.css"]);
        assert!(paths.matches("sites/blog/index.html"));
        assert!(paths.matches("sites/blog/content/posts/one.md"));
        assert!(!paths.matches("sites/blogroll/index.html"));
        assert!(paths.matches("shared/site.css"));
        assert!(!paths.matches("shared/deep/site.css"));
        assert!(!paths.matches("README.md"));
    }

    #[test]
    fn a_glob_naming_a_folder_matches_what_is_in_it() {
        let paths = watch(&["sites/blog", "themes/*"]);
        assert!(paths.matches("sites/blog/index.html"));
        assert!(paths.matches("themes/dark/layout.html"));
        assert!(!paths.matches("sites/docs/index.html"));
    }

    #[test]
    fn the_file_beats_the_site_setting_which_beats_the_base() {
        let site = vec!["sites/a/**".to_owned(), "shared/**".to_owned()];
        let file = vec!["sites/a/content/**".to_owned()];
        let chosen = WatchPaths::choose(Some(&file), &site, "sites/a", false)
            .unwrap()
            .unwrap();
        assert_eq!(chosen.source(), WatchSource::File);
        assert!(!chosen.matches("shared/x.css"));
        let chosen = WatchPaths::choose(None, &site, "sites/a", false)
            .unwrap()
            .unwrap();
        assert_eq!(chosen.source(), WatchSource::SiteSettings);
        assert!(chosen.matches("shared/x.css"));
        let chosen = WatchPaths::choose(None, &[], "sites/a", false).unwrap().unwrap();
        assert_eq!(chosen.source(), WatchSource::Base);
        assert_eq!(chosen.listed(), "`sites/a/**`");
    }

    #[test]
    fn without_globs_or_base_every_change_builds_and_an_ignore_command_replaces_the_base() {
        assert!(WatchPaths::choose(None, &[], "", false).unwrap().is_none());
        assert!(WatchPaths::choose(None, &[], "sites/a", true).unwrap().is_none());
        assert!(
            WatchPaths::choose(Some(&[]), &[], "sites/a", false)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn globs_that_leave_the_repository_or_do_not_parse_are_refused() {
        assert!(check_glob("/etc/**").unwrap().contains("absolute path"));
        assert!(check_glob("../other/**").unwrap().contains("`..`"));
        assert!(check_glob("sites\\blog").unwrap().contains("backslash"));
        assert!(check_glob("sites/[blog").unwrap().contains("not a glob"));
        assert!(check_glob("sites/{a,b}/**").is_none());
        let bad = vec!["sites/[a".to_owned()];
        let error = WatchPaths::choose(None, &bad, "", false).unwrap_err();
        assert!(error.starts_with("the site's settings"), "{error}");
    }

    #[test]
    fn the_skip_reason_names_the_globs_and_both_commits() {
        let paths = watch(&["sites/b/**"]);
        assert_eq!(
            paths.skip_reason(&"1a2b3c4d".repeat(5), &"5d6e7f80".repeat(5)),
            "no file under `sites/b/**` (watch in jamstack.toml) changed between 1a2b3c4 and 5d6e7f8"
        );
    }
}
