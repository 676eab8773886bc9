//! Secret build variables are never stored in clear: a controller seals
//! those an older version stored in clear when it starts.

use jamstack_controller::db::{Database, NewSite};
use jamstack_controller::secrets::{SecretBox, env_var_purpose, looks_sealed};
use jamstack_controller::{Application, Config};

#[tokio::test]
async fn a_starting_controller_seals_secret_variables_an_older_version_stored_in_clear() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();

    // What an older controller left: a secret variable in clear, and a
    // plain one that must stay as it is.
    let app = Application::build(config.clone()).await.unwrap();
    drop(app);
    let db = Database::connect(&config.database_url()).await.unwrap();
    let site = db
        .insert_site(&NewSite {
            name: "legacy".into(),
            repo_url: Some("/repos/legacy".into()),
            github_repo: None,
            production_branch: "main".into(),
            production_branch_follows_default: false,
            settings: Default::default(),
        })
        .await
        .unwrap()
        .unwrap();
    db.set_site_env_var(site.id, "API_TOKEN", "tok-in-clear-1234", true)
        .await
        .unwrap();
    db.set_site_env_var(site.id, "THEME", "midnight", false)
        .await
        .unwrap();
    drop(db);

    let app = Application::build(config.clone()).await.unwrap();
    drop(app);
    let db = Database::connect(&config.database_url()).await.unwrap();
    let vars = db.site_env_vars(site.id).await.unwrap();
    let token = vars.iter().find(|v| v.name == "API_TOKEN").unwrap();
    assert!(looks_sealed(&token.value), "{}", token.value);
    let key = SecretBox::load_or_create(&config.secret_key_path()).unwrap();
    assert_eq!(
        key.open(&env_var_purpose(site.id, "API_TOKEN"), &token.value)
            .unwrap(),
        "tok-in-clear-1234"
    );
    let theme = vars.iter().find(|v| v.name == "THEME").unwrap();
    assert_eq!(theme.value, "midnight");

    // Starting again leaves sealed values alone.
    let app = Application::build(config.clone()).await.unwrap();
    drop(app);
    let again = db.site_env_vars(site.id).await.unwrap();
    assert_eq!(
        again.iter().find(|v| v.name == "API_TOKEN").unwrap().value,
        token.value
    );
}

/// Every file of the controller's data directory, read whole.
fn data_files(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(data_files(&path));
        } else if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            files.push((path, bytes));
        }
    }
    files
}

#[tokio::test]
async fn the_github_webhook_secret_a_controller_makes_is_in_no_data_file() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let app = Application::build(config.clone()).await.unwrap();
    let secret = app.webhook_secret().to_owned();
    drop(app);

    for (path, bytes) in data_files(data.path()) {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{} holds the GitHub webhook secret in clear",
            path.display()
        );
    }
    // A second start opens the same secret: GitHub's signatures still match.
    let again = Application::build(config.clone()).await.unwrap();
    assert_eq!(again.webhook_secret(), secret);
}

#[tokio::test]
async fn a_starting_controller_seals_a_github_webhook_secret_an_older_version_stored_in_clear() {
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::new(data.path());
    config.listen = "127.0.0.1:0".parse().unwrap();
    let app = Application::build(config.clone()).await.unwrap();
    drop(app);
    // What an older controller left: the secret in clear.
    let db = Database::connect(&config.database_url()).await.unwrap();
    let stored = db.setting("github_webhook_secret").await.unwrap().unwrap();
    let in_clear = "0123456789abcdef0123456789abcdef01234567";
    assert!(
        db.replace_setting("github_webhook_secret", &stored, in_clear)
            .await
            .unwrap()
    );

    let app = Application::build(config.clone()).await.unwrap();
    assert_eq!(
        app.webhook_secret(),
        in_clear,
        "the value GitHub signs with is kept"
    );
    drop(app);
    let sealed = db.setting("github_webhook_secret").await.unwrap().unwrap();
    assert!(looks_sealed(&sealed), "{sealed}");
    let key = SecretBox::load_or_create(&config.secret_key_path()).unwrap();
    assert_eq!(
        key.open(
            jamstack_controller::secrets::GITHUB_WEBHOOK_SECRET_PURPOSE,
            &sealed
        )
        .unwrap(),
        in_clear
    );
}
