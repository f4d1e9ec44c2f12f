fn main() -> std::process::ExitCode {
    drsnd::cli::main()
}
