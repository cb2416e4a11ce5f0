//! Builds the vDSO the sentry maps into application address spaces (src/vdso/vdso.c, laid
//! out by src/vdso/vdso.lds) with the C compiler that links the workspace (`$CC`, else
//! `cc`), into `$OUT_DIR/vdso.so`, which src/vdso/mod.rs embeds.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = PathBuf::from("src/vdso/vdso.c");
    let script = PathBuf::from("src/vdso/vdso.lds");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", script.display());
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-O2",
            "-fPIC",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-stack-protector",
            // No endbr64 landing pads: nothing calls the vDSO indirectly under IBT here,
            // and Linux's own vDSO needs none either.
            "-fcf-protection=none",
            "-nostdlib",
            "-shared",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,--hash-style=both",
            "-Wl,-soname=linux-vdso.so.1",
            "-Wl,--no-undefined",
            "-Wl,--eh-frame-hdr",
            "-Wl,-z,max-page-size=4096",
            "-Wl,--build-id=none",
        ])
        .arg(format!("-Wl,-T,{}", script.display()))
        .arg("-o")
        .arg(out.join("vdso.so"))
        .arg(&src)
        .status()
        .unwrap_or_else(|e| panic!("running the C compiler {cc:?} for the vDSO: {e}"));
    assert!(status.success(), "building the vDSO with {cc:?} failed");
}
