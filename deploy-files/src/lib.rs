//! The files of a deploy, as the runner (a build's publish directory) and
//! the `jamstack deploy` command (a folder a person names) both send them
//! in Netlify's digest flow.
//!
//! [`build_manifest`] walks a folder without ever leaving it (a symlink out
//! is refused, never followed), hashes every file on all cores and answers
//! a [`Manifest`]: the wire's file list plus, for each hash, a file holding
//! that content. [`build_manifest_with_cache`] does the same for a folder
//! deployed again and again, reading only the files that changed since its
//! last deploy ([`hash_cache`]). Once the controller has answered with the
//! hashes it lacks, [`Manifest::blobs_for`] names their files and
//! [`upload::upload_blobs`] sends them, several requests at once and the
//! small ones many to a request ([`upload::Bundle`]), through whatever
//! calls the client makes.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let manifest = jamstack_deploy_files::build_manifest(std::path::Path::new("public"))?;
//! // Send `manifest.files`; the controller answers with the hashes it lacks.
//! let missing: Vec<String> = Vec::new();
//! let blobs = manifest.blobs_for::<std::io::Error>(&missing)?;
//! let _sent = jamstack_deploy_files::upload::upload_blobs(
//!     blobs,
//!     8,
//!     |blob| async move {
//!         // PUT the file at `blob.source` as `/blobs/{blob.sha256}`.
//!         Ok::<(), std::io::Error>(())
//!     },
//!     |bundle| async move {
//!         // POST `bundle.body()?` to `/blob-bundles`.
//!         Ok::<(), std::io::Error>(())
//!     },
//! )
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Architecture invariant: this crate knows nothing of Docker, git or the
//! controller's HTTP API, so the CLI that uses it links none of them.

pub mod hash_cache;
pub mod manifest;
pub mod upload;

pub use manifest::{Manifest, ManifestError, build_manifest, build_manifest_with_cache};

/// `1 MiB`, `512 KiB`, `10 GiB`: sizes in messages people read.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    match bytes {
        b if b >= KIB * KIB * KIB && b % (KIB * KIB * KIB) == 0 => format!("{} GiB", b / (KIB * KIB * KIB)),
        b if b >= KIB * KIB => format!("{} MiB", b / (KIB * KIB)),
        b if b >= KIB => format!("{} KiB", b / KIB),
        b => format!("{b} bytes"),
    }
}
