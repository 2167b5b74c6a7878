//! The `hotspot-edge` binary: parse arguments, hand over to the library.

fn main() {
    std::process::exit(hotspot_edge::cli::main(std::env::args_os()));
}
