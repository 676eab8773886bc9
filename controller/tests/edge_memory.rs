//! What a deploy's index really holds in memory, against what the edge's
//! index cache counts it as: the cache is bounded by those estimates
//! (`--edge-index-cache-mib`), so an estimate that is low lets the
//! controller's memory grow with the number of sites.
//!
//! Its own test binary, with a counting allocator, and one test: nothing
//! else allocates while it counts.

use jamstack_controller::db::{DeployContents, IndexedFile, IndexedVariant};
use jamstack_controller::edge::index::DeployIndex;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use std::alloc::System;

#[global_allocator]
static COUNTING: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn hash(seed: usize) -> String {
    format!("{seed:064x}")
}

/// A documentation site's deploy as the database gives it: `files` pages
/// under nested folders, keyed as the blob store keys them, and a gzip and
/// a brotli variant for every `variant_every`th file.
fn contents(files: usize, variant_every: usize) -> DeployContents {
    let files_: Vec<IndexedFile> = (0..files)
        .map(|n| IndexedFile {
            path: format!("docs/section-{}/topic-{n}/index.html", n % 17),
            sha256: hash(n),
            size: 2_600,
            key: format!("{}.0123abcd", hash(n)),
        })
        .collect();
    let variants = (0..files)
        .filter(|n| n % variant_every == 0)
        .flat_map(|n| {
            ["br", "gzip"].map(|encoding| IndexedVariant {
                sha256: hash(n),
                encoding: encoding.to_owned(),
                variant_sha256: hash(n + 1_000_000),
                size: 900,
                key: format!("{}.4567cdef", hash(n + 1_000_000)),
            })
        })
        .collect();
    DeployContents {
        files: files_,
        variants,
        rules: None,
    }
}

/// The index built from `contents`, and the heap bytes it holds: what
/// making the input and building the index allocated and did not free
/// (the input is consumed, its strings moved into the index).
fn built(files: usize, variant_every: usize) -> (DeployIndex, usize) {
    let region = Region::new(COUNTING);
    let index = DeployIndex::from_contents("deploy-1", contents(files, variant_every));
    let change = region.change();
    // A reallocation is counted in both `bytes_allocated` and
    // `bytes_deallocated` (by how much it grew or shrank).
    let held = change.bytes_allocated as isize - change.bytes_deallocated as isize;
    (index, usize::try_from(held).unwrap_or(0))
}

#[test]
fn the_edge_counts_a_deploy_index_at_what_it_really_holds() {
    for (files, variant_every) in [(200, usize::MAX), (200, 1), (5_000, 3)] {
        let (index, held) = built(files, variant_every);
        let estimate = index.approximate_bytes();
        let ratio = estimate as f64 / held.max(1) as f64;
        println!(
            "{files} files, variants every {variant_every}: holds {held} bytes, counted as {estimate} ({ratio:.2})"
        );
        assert!(
            (0.9..=1.5).contains(&ratio),
            "{files} files (variants for one in {variant_every}): the index holds {held} bytes \
             and the edge counts it as {estimate}"
        );
    }
}
