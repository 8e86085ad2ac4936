//! Generates the gRPC code from `proto/`. Uses a vendored `protoc` unless `PROTOC` is set,
//! so a fresh machine needs no system package.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::configure()
        .compile_protos(&["proto/master.proto", "proto/raft.proto", "proto/tserver.proto"], &["proto"])?;
    Ok(())
}
