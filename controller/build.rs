// The migrations are embedded by `sqlx::migrate!`; a new migration file must
// rebuild the crate, which Cargo only knows when told.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
