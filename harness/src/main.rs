//! The `faultline` binary: everything is in the library (`faultline::cmd`).
fn main() -> std::process::ExitCode {
    faultline::cmd::main()
}
