//! Records the build time, used as a floor for the wall clock: a router that booted at 1970 has a
//! clock earlier than its own software, and that is how we know not to trust it.
fn main() {
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        });
    println!("cargo:rustc-env=HOTSPOT_EDGE_BUILD_UNIX={secs}");
}
