fn main() -> std::process::ExitCode {
    eprintln!("faultline-node: not built yet");
    std::process::ExitCode::from(3)
}
