//! The `faultline` binary: everything is in the library (`faultline::cmd`).
fn main() -> std::process::ExitCode {
    faultline::cluster::this_process_is_faultline();
    faultline::cmd::main()
}
