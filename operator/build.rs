//! Generates the master gRPC client from `proto/master.proto` (the operator calls
//! ConnectToMaster, ListMasters, AddMaster, RemoveMaster and StepDown). Uses a vendored
//! `protoc` unless `PROTOC` is set.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::var_os("PROTOC").is_none() {
        let protoc = protoc_bin_vendored::protoc_bin_path()?;
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { std::env::set_var("PROTOC", protoc) };
    }
    println!("cargo:rerun-if-changed=../proto/master.proto");
    tonic_prost_build::configure().build_server(false).compile_protos(&["../proto/master.proto"], &["../proto"])?;
    Ok(())
}
