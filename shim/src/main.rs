//! containerd shim v2 for runsc-rs (being written).
fn main() {
    eprintln!("containerd-shim-runsc-rs-v2: not built yet");
    std::process::exit(1);
}
